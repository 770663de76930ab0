//! What is kept of a policy's triggers between samples that is not worth a status write: each CPU
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

/// What is remembered of one policy's triggers.
#[derive(Clone, Debug, Default)]
pub struct Histories {
    /// The `metadata.generation` last seen: a spec change samples every trigger at once.
    pub generation: Option<i64>,
    /// By trigger name.
    pub triggers: ByTrigger,
}

/// Each trigger's memory, by name. A vector rather than a hash map: a policy has a handful of
/// triggers, and a hash map of one entry takes four buckets (≈ 0.6 KiB per policy, with 10,000
/// policies in memory).
#[derive(Clone, Debug, Default)]
pub struct ByTrigger(Vec<(String, TriggerMemory)>);

impl ByTrigger {
    /// The memory of trigger `name`, if any.
    pub fn get(&self, name: &str) -> Option<&TriggerMemory> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }

    /// The memory of trigger `name`, empty the first time.
    pub fn get_or_default(&mut self, name: &str) -> &mut TriggerMemory {
        let at = match self.0.iter().position(|(n, _)| n == name) {
            Some(at) => at,
            None => {
                self.0.reserve_exact(1);
                self.0.push((name.to_string(), TriggerMemory::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }

    /// The names of the triggers remembered.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// Forgets the triggers not in `keep`; returns their names.
    pub fn keep_only(&mut self, keep: &[String]) -> Vec<String> {
        let mut forgotten = Vec::new();
        self.0.retain(|(name, _)| {
            let kept = keep.contains(name);
            if !kept {
                forgotten.push(name.clone());
            }
            kept
        });
        forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_trigger_is_remembered_once_and_forgotten_when_gone() {
        let mut by = ByTrigger::default();
        by.get_or_default("cpu").applied_pending = Some(1);
        by.get_or_default("lag").applied_pending = Some(2);
        assert_eq!(by.get_or_default("cpu").applied_pending, Some(1));
        assert_eq!(by.names().collect::<Vec<_>>(), ["cpu", "lag"]);
        assert_eq!(by.keep_only(&["lag".to_string()]), ["cpu"]);
        assert!(by.get("cpu").is_none());
        assert_eq!(by.get("lag").and_then(|m| m.applied_pending), Some(2));
        assert!(by.keep_only(&["lag".to_string()]).is_empty());
    }
}
