//! What the controller keeps between samples that is not worth a status write: each CPU
//! trigger's recent recommendations (for the stabilization windows) and scale events (for the
//! rate policies).
//!
//! Losing it is safe, which is why it is not in status: after a restart the first decision
//! behaves as if the current replica count had just been recommended, so replicas are only
//! removed after a whole scale-down stabilization window — the HorizontalPodAutoscaler controller
//! behaves the same way after it restarts. Decisions that must survive a restart (cooldowns,
//! pending actions, the last action) are in `status.triggers`.

use std::{collections::HashMap, sync::Mutex};

use crate::engine::scaling::ScalingHistory;

/// Histories of one policy, by trigger name.
pub type Histories = HashMap<String, ScalingHistory>;

/// Histories of every policy, keyed by `namespace/name`.
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

    /// Stores a policy's histories, keeping only the triggers it still has.
    pub fn put(&self, key: &str, mut histories: Histories, triggers: &[&str]) {
        histories.retain(|name, _| triggers.contains(&name.as_str()));
        if !histories.is_empty() {
            self.policies
                .lock()
                .unwrap()
                .insert(key.to_owned(), histories);
        }
    }

    /// Drops the histories of policies that no longer exist.
    pub fn retain(&self, exists: impl Fn(&str) -> bool) {
        self.policies.lock().unwrap().retain(|key, _| exists(key));
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
