//! What the controller keeps between samples that is not worth a status write: each CPU
//! trigger's recent recommendations (for the stabilization windows) and scale events (for the
//! rate policies).
//!
//! Losing it is safe, which is why it is not in status: after a restart the first decision
//! behaves as if the current replica count had just been recommended, so replicas are only
//! removed after a whole scale-down stabilization window — the HorizontalPodAutoscaler controller
//! behaves the same way after it restarts. Decisions that must survive a restart (cooldowns,
//! pending actions, the last action) are in `status.triggers`.

//!
//! It also remembers when each trigger was last sampled, so that a trigger is sampled once per
//! `spec.scaling.interval` however often its policy is reconciled (its own status writes and
//! workload changes reconcile it too): like the HPA's sync period, this gives an action time to
//! show in the metric before the next decision.

use std::{collections::HashMap, sync::Mutex};

use k8s_openapi::jiff::Timestamp;

use crate::engine::scaling::ScalingHistory;

/// What is remembered of one trigger.
#[derive(Clone, Debug, Default)]
pub struct TriggerMemory {
    /// The CPU maths' recommendations and scale events.
    pub history: ScalingHistory,
    /// When the trigger was last sampled.
    pub sampled_at: Option<Timestamp>,
    /// `decidedAt` (whole seconds) of the last action this process recorded as pending and then
    /// took. A cached policy still showing that `pendingAction` is older than our own final
    /// write, not an interrupted action: it must not be re-applied.
    pub applied_pending: Option<i64>,
    /// When this process applied it (an interrupted action re-applied keeps its old
    /// `decidedAt`, so that says nothing about how long the cache may lag).
    pub applied_at: Option<Timestamp>,
}

/// What is remembered of one policy.
#[derive(Clone, Debug, Default)]
pub struct Histories {
    /// The `metadata.generation` last seen: a spec change samples every trigger at once.
    pub generation: Option<i64>,
    /// By trigger name.
    pub triggers: HashMap<String, TriggerMemory>,
    /// What this process last published as the rollout's cohort (`None`: nothing yet, so the
    /// first reconcile after a start publishes once).
    pub published_cohort: Option<String>,
    /// The rollout's working copy: gate samples not yet worth a status write.
    pub rollout: Option<crate::controller::rollout::display::Working>,
}

/// What is remembered of every policy, keyed by `namespace/name`.
#[derive(Default)]
pub struct Memory {
    policies: Mutex<HashMap<String, Histories>>,
}

impl Memory {
    /// Takes a policy's histories out for one reconcile (kube-runtime never reconciles the same
    /// object twice at once); hand them back with [`Memory::put`].
    pub fn take(&self, key: &str) -> Histories {
        self.policies
            .lock()
            .unwrap()
            .remove(key)
            .unwrap_or_default()
    }

    /// Stores a policy's histories, keeping only the triggers it still has; returns the names
    /// of the triggers it forgot (removed or renamed in the spec), whose metric series must go.
    #[must_use = "the forgotten triggers' metric series must be dropped"]
    pub fn put(&self, key: &str, mut histories: Histories, triggers: &[&str]) -> Vec<String> {
        let forgotten: Vec<String> = histories
            .triggers
            .keys()
            .filter(|name| !triggers.contains(&name.as_str()))
            .cloned()
            .collect();
        for name in &forgotten {
            histories.triggers.remove(name);
        }
        self.policies
            .lock()
            .unwrap()
            .insert(key.to_owned(), histories);
        forgotten
    }

    /// Stores a policy's histories as they are (the caller took them for something other than
    /// the triggers).
    pub fn put_back(&self, key: &str, histories: Histories) {
        self.policies
            .lock()
            .unwrap()
            .insert(key.to_owned(), histories);
    }

    /// Drops the histories of policies that no longer exist; returns their keys and what was
    /// remembered of them (to drop their metric series).
    pub fn retain(&self, exists: impl Fn(&str) -> bool) -> Vec<(String, Histories)> {
        let mut policies = self.policies.lock().unwrap();
        let gone: Vec<String> = policies.keys().filter(|k| !exists(k)).cloned().collect();
        gone.into_iter()
            .filter_map(|key| policies.remove(&key).map(|h| (key, h)))
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
