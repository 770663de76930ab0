//! What the controller keeps of each policy between reconciles that is not worth a status
//! write: the triggers' memory ([`crate::triggers::memory`]), the rollout's working copy
//! ([`super::rollout::display`]) and what this process last published as the cohort.
//!
//! A reconcile holds its policy's memory through a [`Held`] guard, which hands it back however
//! the reconcile ends (an early return, an error), keeping only the triggers the spec still has
//! and dropping the metric series of the others.

use std::{
    collections::HashMap,
    ops::{Deref, DerefMut},
    sync::Mutex,
};

use kube::runtime::reflector::ObjectRef;

use super::{Context, rollout::display::Working};
use crate::{crd::LaunchPolicy, triggers::Histories};

/// What is remembered of one policy.
#[derive(Clone, Debug, Default)]
pub struct PolicyMemory {
    /// The triggers' samples times, CPU histories and actions taken.
    pub scaling: Histories,
    /// What this process last published as the rollout's cohort (`None`: nothing yet, so the
    /// first reconcile after a start publishes once).
    pub published_cohort: Option<String>,
    /// What this process last published as the kill switches' flags.
    pub published_switches: Option<String>,
    /// The rollout's working copy: gate samples not yet worth a status write. Boxed: most
    /// policies have none, and the map of every policy's memory holds this struct inline.
    pub rollout: Option<Box<Working>>,
    /// The kill switches exported to `/metrics`, so that one removed from the spec is dropped.
    pub switches: Vec<String>,
}

/// What is remembered of every policy.
#[derive(Default)]
pub struct Memory {
    policies: Mutex<HashMap<ObjectRef<LaunchPolicy>, PolicyMemory>>,
}

impl Memory {
    fn take(&self, policy: &ObjectRef<LaunchPolicy>) -> PolicyMemory {
        self.policies
            .lock()
            .unwrap()
            .remove(policy)
            .unwrap_or_default()
    }

    /// Stores a policy's memory, keeping only the triggers it still has; returns the names of
    /// the triggers it forgot (removed or renamed in the spec), whose metric series must go.
    fn put(
        &self,
        policy: ObjectRef<LaunchPolicy>,
        mut memory: PolicyMemory,
        triggers: &[String],
    ) -> Vec<String> {
        let forgotten = memory.scaling.triggers.keep_only(triggers);
        self.policies.lock().unwrap().insert(policy, memory);
        forgotten
    }

    /// Drops the memory of policies that no longer exist; returns them and what was remembered
    /// of them (to drop their metric series).
    pub fn retain(
        &self,
        exists: impl Fn(&ObjectRef<LaunchPolicy>) -> bool,
    ) -> Vec<(ObjectRef<LaunchPolicy>, PolicyMemory)> {
        let mut policies = self.policies.lock().unwrap();
        let gone: Vec<_> = policies.keys().filter(|k| !exists(k)).cloned().collect();
        gone.into_iter()
            .filter_map(|key| policies.remove(&key).map(|m| (key, m)))
            .collect()
    }

    /// Number of policies remembered (for tests and debugging).
    pub fn len(&self) -> usize {
        self.policies.lock().unwrap().len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One policy's memory, taken out for one reconcile (kube-runtime never reconciles the same
/// object twice at once) and handed back when dropped.
pub struct Held<'a> {
    ctx: &'a Context,
    policy: ObjectRef<LaunchPolicy>,
    /// The trigger names of the spec being reconciled.
    triggers: Vec<String>,
    memory: PolicyMemory,
}

impl<'a> Held<'a> {
    pub fn take(ctx: &'a Context, policy: &LaunchPolicy) -> Self {
        let policy_ref = ObjectRef::from(policy);
        let triggers = policy
            .spec
            .scaling
            .iter()
            .flat_map(|s| &s.triggers)
            .map(|t| t.name.clone())
            .collect();
        Held {
            memory: ctx.memory.take(&policy_ref),
            ctx,
            policy: policy_ref,
            triggers,
        }
    }
}

impl Deref for Held<'_> {
    type Target = PolicyMemory;
    fn deref(&self) -> &PolicyMemory {
        &self.memory
    }
}

impl DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut PolicyMemory {
        &mut self.memory
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let memory = std::mem::take(&mut self.memory);
        let forgotten = self
            .ctx
            .memory
            .put(self.policy.clone(), memory, &self.triggers);
        let namespace = self.policy.namespace.as_deref().unwrap_or_default();
        for trigger in &forgotten {
            let labels = [namespace, self.policy.name.as_str(), trigger.as_str()];
            self.ctx.metrics.triggers.forget(labels);
        }
    }
}
