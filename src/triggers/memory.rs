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

use std::collections::HashMap;

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
    pub triggers: HashMap<String, TriggerMemory>,
}
