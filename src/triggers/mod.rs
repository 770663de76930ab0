//! The scaling half of a reconcile: read every trigger, plan (pure), record the intent, act,
//! record the outcome. The I/O sits behind [`TriggerIo`]; [`platform::Platform`] is the real one.

pub mod approval;
mod conditions;
mod cpu;
mod database_connections;
mod kafka_lag;
pub mod kind;
#[cfg(test)]
mod kind_tests;
pub mod memory;
pub mod pause;
pub mod plan;
pub mod platform;
mod redis_memory;

use std::{collections::BTreeMap, future::Future, time::Duration};

use futures::future::join_all;
use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time},
    jiff::Timestamp,
};

pub use conditions::{DEGRADED, SCALING_ACTIVE, scaling_conditions};
pub use kind::{KindError, TriggerKind};
pub use memory::Histories;
pub use plan::{Current, Facts, Hold, Planned, Reading, TriggerPlan};

use crate::{
    crd::{Trigger, TriggerStatus},
    engine::scaling::next_eligible_at,
};

/// Reads triggers and acts on their targets.
pub trait TriggerIo: Sync {
    /// The metric and the target's current state.
    fn read(&self, kind: &TriggerKind<'_>) -> impl Future<Output = Reading> + Send;
    /// Applies `action`; on success, one sentence saying what changed.
    fn apply(
        &self,
        kind: &TriggerKind<'_>,
        action: &Planned,
    ) -> impl Future<Output = Result<String, String>> + Send;
}

/// The kind of every trigger of a policy, or the first trigger without a usable kind, named
/// by its field (`spec.scaling.triggers[2]: trigger "db": …`).
pub fn kinds(triggers: &[Trigger]) -> Result<Vec<TriggerKind<'_>>, String> {
    triggers
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.kind()
                .map_err(|e| format!("spec.scaling.triggers[{i}]: {e}"))
        })
        .collect()
}

/// One trigger's plan, with the reading it came from (`None` when it was not due for a sample).
pub struct Planning<'a> {
    pub kind: &'a TriggerKind<'a>,
    pub reading: Option<Reading>,
    pub plan: TriggerPlan,
}

/// Allowance for reconciles that run a hair before a full interval since the last sample.
const SLACK: std::time::Duration = std::time::Duration::from_millis(250);

/// What [`read_and_plan`] reads of the policy beyond its triggers.
pub struct Due<'a> {
    /// `spec.scaling.interval`: a trigger is sampled at most once per interval.
    pub interval: std::time::Duration,
    /// The policy's generation: a spec change samples every trigger at once.
    pub generation: Option<i64>,
    /// A target changed under the policy: sample every trigger now.
    pub urgent: bool,
    /// The policy's annotations, which may pause scaling ([`pause`]) or approve a resize
    /// ([`approval`]).
    pub annotations: &'a BTreeMap<String, String>,
    /// The policy's `managedFields`: who set an approval.
    pub managed_fields: &'a [ManagedFieldsEntry],
}

/// Reads every trigger that is due (sampled at most once per `interval`; at once after a spec
/// change, with an interrupted action, or when a target changed under it) concurrently, and
/// plans each. A trigger that is not due keeps its previous status and takes no action.
pub async fn read_and_plan<'a>(
    triggers: &'a [TriggerKind<'a>],
    previous: &[TriggerStatus],
    io: &impl TriggerIo,
    memory: &mut Histories,
    facts: Facts,
    due: Due<'_>,
) -> Vec<Planning<'a>> {
    let Due {
        interval,
        generation,
        urgent,
        annotations,
        managed_fields,
    } = due;
    let spec_changed = std::mem::replace(&mut memory.generation, generation) != generation;
    let spec_changed = spec_changed || urgent;
    let before = |t: &TriggerKind| previous.iter().find(|s| s.name == t.trigger().name);
    // A Go for a resize is taken at once, not at the next sample.
    let mut approvals: Vec<_> = triggers
        .iter()
        .map(|t| approval::pending(annotations, managed_fields, &t.trigger().name, before(t)))
        .collect();
    let due: Vec<bool> = triggers
        .iter()
        .zip(&approvals)
        .map(|(t, approval)| {
            let sampled_at = memory
                .triggers
                .get(&t.trigger().name)
                .and_then(|m| m.sampled_at);
            let new_approval = approval
                .as_ref()
                .is_some_and(|a| !approval::waiting(a, before(t)));
            spec_changed
                || new_approval
                || before(t).is_none_or(|s| s.pending_action.is_some())
                || sampled_at.is_none_or(|at| {
                    at.saturating_add(interval)
                        .ok()
                        .and_then(|next| next.checked_sub(SLACK).ok())
                        .is_none_or(|next| facts.now >= next)
                })
        })
        .collect();
    let readings = join_all(triggers.iter().zip(&due).map(|(t, due)| async move {
        if *due {
            Some(io.read(t).await.vetted(t))
        } else {
            None
        }
    }))
    .await;
    triggers
        .iter()
        .zip(readings)
        .zip(approvals.iter_mut())
        .map(|((kind, reading), approval)| {
            let previous = before(kind);
            let remembered = memory.triggers.get_or_default(&kind.trigger().name);
            let plan = match (&reading, previous) {
                (Some(reading), _) => {
                    remembered.sampled_at = Some(facts.now);
                    let hold = pause::hold(facts.hold, annotations, &kind.trigger().name);
                    let facts = Facts { hold, ..facts };
                    let mut plan =
                        plan::plan(kind, previous, reading, &mut remembered.history, facts);
                    if let Some(approval) = approval.take() {
                        approval::take(
                            kind, previous, reading, &mut plan, approval, hold, facts.now,
                        );
                    }
                    plan
                }
                (None, Some(previous)) => TriggerPlan {
                    status: previous.clone(),
                    action: None,
                    reason: String::new(),
                    refused: None,
                    decided_at: None,
                    approved: false,
                },
                (None, None) => unreachable!("a trigger without status is always due"),
            };
            Planning {
                kind,
                reading,
                plan,
            }
        })
        .collect()
}

/// How long a policy still showing a `pendingAction` this process already took is taken for a
/// cache that has not caught up with the final write. Past this, the final write is taken to
/// have failed (an apiserver error, a 409) and the action is treated as interrupted: re-applied
/// to the same target, which the target already has.
pub const CATCH_UP: Duration = Duration::from_secs(5);

/// Whether the policy the controller handed over is older than this process's own last write:
/// it still shows a `pendingAction` that this process took less than [`CATCH_UP`] ago and
/// recorded as done. Reconciling it would re-apply that action; wait for the cache to catch up
/// instead.
pub fn is_stale(previous: &[TriggerStatus], memory: &Histories, now: Timestamp) -> bool {
    previous.iter().any(|s| {
        s.pending_action.as_ref().is_some_and(|p| {
            let Some(m) = memory.triggers.get(&s.name) else {
                return false;
            };
            let recent = m
                .applied_at
                .and_then(|at| at.checked_add(CATCH_UP).ok())
                .is_some_and(|until| now < until);
            recent && m.applied_pending == Some(p.decided_at.0.as_second())
        })
    })
}

/// Whether any plan acts in a way that must be recorded before it is taken.
pub fn intents(plans: &[Planning<'_>], now: Timestamp) -> Option<Vec<TriggerStatus>> {
    let any = plans.iter().any(|p| {
        p.plan
            .action
            .as_ref()
            .and_then(|a| a.pending(now))
            .is_some()
    });
    any.then(|| {
        plans
            .iter()
            .map(|p| {
                let mut status = p.plan.status.clone();
                let decided_at = p.plan.decided_at.unwrap_or(now);
                status.pending_action = p
                    .plan
                    .action
                    .as_ref()
                    .and_then(|a| a.pending(decided_at))
                    .map(Box::new);
                status
            })
            .collect()
    })
}

/// What became of one action.
pub struct Applied {
    pub trigger: String,
    pub action: Planned,
    pub result: Result<String, String>,
    pub reason: String,
}

/// Takes every planned action and records its outcome in the plan's status.
pub async fn apply_all(
    plans: &mut [Planning<'_>],
    io: &impl TriggerIo,
    memory: &mut Histories,
    now: Timestamp,
) -> Vec<Applied> {
    let mut applied = Vec::new();
    for p in plans.iter_mut() {
        let Some(action) = p.plan.action.clone() else {
            continue;
        };
        let result = io.apply(p.kind, &action).await;
        let name = &p.kind.trigger().name;
        if action.pending(now).is_some() {
            let decided_at = p.plan.decided_at.unwrap_or(now);
            let remembered = memory.triggers.get_or_default(name);
            remembered.applied_pending = Some(decided_at.as_second());
            remembered.applied_at = Some(now);
        }
        let status = &mut p.plan.status;
        match &result {
            Ok(what) => {
                status.action_failed_since = None;
                status.last_action = Some(what.clone());
                status.last_action_at = Some(Time(now));
                let cooldown = p.kind.cooldown();
                status.next_eligible_at = (!cooldown.is_zero())
                    .then(|| next_eligible_at(Some(now), cooldown).map(Time))
                    .flatten();
                match &action {
                    Planned::Recommend { of, to, .. } => {
                        status.recommendation = Some(format!("resize {of} to {to}"));
                        status.recommended_to = Some(to.clone());
                    }
                    Planned::ResizeDatabase { .. } | Planned::ResizeCache { .. } => {
                        status.recommendation = None;
                        status.recommended_to = None;
                    }
                    Planned::Scale { from, to } => {
                        memory
                            .triggers
                            .get_or_default(name)
                            .history
                            .record_scale(now, *from, *to);
                        plan::record_recent_scale(p.kind.trigger(), status, now, *from, *to);
                    }
                    _ => {}
                }
                status.message = Some(p.plan.reason.clone());
            }
            Err(why) => {
                status.action_failed_since.get_or_insert(Time(now));
                status.message = Some(format!("action failed: {why} (decided: {})", p.plan.reason));
            }
        }
        if p.plan.approved {
            approval::settle(status, &result);
        }
        applied.push(Applied {
            trigger: name.clone(),
            action,
            result,
            reason: p.plan.reason.clone(),
        });
    }
    applied
}

#[cfg(test)]
mod stale_tests {
    use super::*;
    use crate::crd::PendingAction;

    fn showing_pending(decided: i64) -> Vec<TriggerStatus> {
        vec![TriggerStatus {
            name: "api-cpu".into(),
            pending_action: Some(Box::new(PendingAction {
                kind: "ScaleReplicas".into(),
                from: "2".into(),
                to: "4".into(),
                decided_at: Time(Timestamp::from_second(decided).unwrap()),
            })),
            ..Default::default()
        }]
    }

    /// This process applied the action decided at `decided`, at `applied`.
    fn took(decided: i64, applied: i64) -> Histories {
        let mut memory = Histories::default();
        let m = memory.triggers.get_or_default("api-cpu");
        m.applied_pending = Some(decided);
        m.applied_at = Some(Timestamp::from_second(applied).unwrap());
        memory
    }

    #[test]
    fn a_pending_action_this_process_took_waits_for_the_cache_only_briefly() {
        let t = 1_800_000_000;
        let at = |s: i64| Timestamp::from_second(s).unwrap();
        assert!(is_stale(&showing_pending(t), &took(t, t), at(t + 1)));
        // The final write never landed (an error, a 409): no waiting forever for it.
        assert!(!is_stale(&showing_pending(t), &took(t, t), at(t + 5)));
        // An interrupted action re-applied now keeps its old decidedAt: the wait runs from now.
        assert!(is_stale(&showing_pending(t), &took(t, t + 60), at(t + 61)));
        // Not taken by this process (a restart, another leader): an interrupted action.
        let nobody = Histories::default();
        assert!(!is_stale(&showing_pending(t), &nobody, at(t + 1)));
        assert!(!is_stale(
            &showing_pending(t),
            &took(t - 30, t - 30),
            at(t + 1)
        ));
    }
}
