//! One trigger, one sample: the engine's decision turned into the trigger's next status and the
//! action to take. Pure: readings, the previous status and `now` in; no client, no clock.
//!
//! Status rules (so that status is written for decisions, not for samples):
//! - `value`, `observedAt` and `message` are refreshed only when `active` or the error flips, when
//!   an action is decided, or once `spec.statusRefresh` has passed since `observedAt`;
//! - `error` and `errorSince` are set as soon as a source fails and cleared when it recovers;
//! - `lastAction*`, `nextEligibleAt` and `recommendation` change only with an action.

use std::time::Duration as StdDuration;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

use super::{
    kind::{Deciding, TriggerKind},
    pause::Paused,
};
use crate::{
    crd::{PendingAction, RecentScale, Trigger, TriggerStatus},
    engine::scaling::{self as engine, Sample, ScaleEvent, ScalingHistory},
};

/// What a trigger's target looks like now.
#[derive(Clone, Debug, PartialEq)]
pub enum Current {
    /// Replicas of `scaleTargetRef` (its `/scale` `spec.replicas`).
    Replicas(i32),
    /// Partitions of the Kafka topic.
    Partitions(i32),
    /// Partitions of the Kafka topic and replicas of its consumer workload (`consumers`).
    Consumed { partitions: i32, consumers: i32 },
    /// The database's instance class.
    Class(String),
    /// The trigger has no target (a Redis trigger that only signals).
    Nothing,
}

/// Everything read from the outside world for one trigger.
#[derive(Clone, Debug)]
pub struct Reading {
    /// The metric.
    pub sample: Sample,
    /// The target's current state, or why it could not be read.
    pub current: Result<Current, String>,
    /// Why Liftoff must not act on this target at all (e.g. an HPA also scales it).
    pub refusal: Option<String>,
}

impl Reading {
    /// The reading with its sample vetted ([`TriggerKind::vet`]): a value that cannot be a
    /// measurement is unknown from here on, for decisions, status, conditions and metrics alike.
    pub fn vetted(self, kind: &TriggerKind<'_>) -> Reading {
        Reading {
            sample: kind.vet(self.sample, self.current.as_ref().ok()),
            ..self
        }
    }
}

/// Records in `status` a scale `from → to` applied at `now`, keeping only the scales within
/// the trigger's longest rate-policy period (default 15s), at most 32.
pub fn record_recent_scale(
    trigger: &Trigger,
    status: &mut TriggerStatus,
    now: Timestamp,
    from: i32,
    to: i32,
) {
    let longest = trigger
        .behavior
        .iter()
        .flat_map(|b| [&b.scale_up, &b.scale_down])
        .flatten()
        .flat_map(|rules| &rules.policies)
        .map(|p| StdDuration::from(p.period))
        .max()
        .unwrap_or(engine::DEFAULT_POLICY_PERIOD)
        .max(engine::DEFAULT_POLICY_PERIOD);
    status
        .recent_scales
        .retain(|s| s.at.0.checked_add(longest).is_ok_and(|until| until > now));
    let change = i64::from(to) - i64::from(from);
    if change != 0 {
        status.recent_scales.push(RecentScale {
            at: Time(now),
            change: change.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        });
    }
    let excess = status.recent_scales.len().saturating_sub(32);
    status.recent_scales.drain(..excess);
}

/// The policy-wide facts a plan depends on.
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    pub now: Timestamp,
    /// `spec.statusRefresh`.
    pub status_refresh: StdDuration,
    /// `spec.scaling.interval`: a trigger's `fallback` counts failed samples by it.
    pub interval: StdDuration,
    /// Why no action may be taken now, if so: `Suspended` or `NotReady` (the whole policy), or
    /// `Paused` (per trigger: [`read_and_plan`](super::read_and_plan) adds it).
    pub hold: Option<Hold>,
}

/// Why a trigger takes no action now (or none in one direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// `spec.suspend` is true.
    Suspended,
    /// Some reference does not resolve (the `Ready` condition says which).
    NotReady,
    /// An annotation pauses the trigger's scaling ([`super::pause`]).
    Paused(Paused),
}

impl Hold {
    fn label(self) -> &'static str {
        match self {
            Hold::Suspended => "Suspended",
            Hold::NotReady => "NotReady",
            Hold::Paused(_) => "Paused",
        }
    }

    pub(super) fn explain(self) -> &'static str {
        match self {
            Hold::Suspended => "spec.suspend is true, so no action is taken",
            Hold::NotReady => {
                "the policy is not Ready (see the Ready condition), so no action is taken"
            }
            Hold::Paused(Paused::Both) => {
                "scaling in and out is paused by the annotations liftoff.dev/pause-scaling, or \
                 pause-scale-in with pause-scale-out"
            }
            Hold::Paused(Paused::In) => {
                "scaling in is paused by the annotation liftoff.dev/pause-scale-in"
            }
            Hold::Paused(Paused::Out) => {
                "scaling out is paused by the annotation liftoff.dev/pause-scale-out"
            }
        }
    }

    /// Whether the hold stops `action`: every one, or those in the paused direction.
    pub(super) fn blocks(self, action: &Planned) -> bool {
        match self {
            Hold::Suspended | Hold::NotReady => true,
            Hold::Paused(paused) => paused.blocks(action),
        }
    }
}

/// An action on a trigger's target. Every variant is a target value, so applying it twice is harmless.
#[derive(Clone, Debug, PartialEq)]
pub enum Planned {
    /// Set the replicas of `scaleTargetRef` (cpu and redisMemory triggers).
    Scale { from: i32, to: i32 },
    /// Raise the topic's partition count to `to`.
    Partitions { from: i32, to: i32 },
    /// Patch the ACK `DBInstance`'s class.
    ResizeDatabase { from: String, to: String },
    /// Patch the ACK ElastiCache `ReplicationGroup`'s node type.
    ResizeCache { from: String, to: String },
    /// Only tell people: an Event, the status recommendation and notifications. `of` names
    /// what is to be resized (the RDS instance, the ElastiCache replication group).
    Recommend {
        of: String,
        from: String,
        to: String,
    },
    /// Redis memory is high and there is nothing to scale: tell people.
    Signal,
}

impl Planned {
    /// The `pendingAction` recorded before acting; `None` for actions that only tell people.
    pub fn pending(&self, now: Timestamp) -> Option<PendingAction> {
        let (kind, from, to) = match self {
            Planned::Scale { from, to } => ("ScaleReplicas", from.to_string(), to.to_string()),
            Planned::Partitions { from, to } => ("AddPartitions", from.to_string(), to.to_string()),
            Planned::ResizeDatabase { from, to } => ("ResizeDatabase", from.clone(), to.clone()),
            Planned::ResizeCache { from, to } => ("ResizeCache", from.clone(), to.clone()),
            Planned::Recommend { .. } | Planned::Signal => return None,
        };
        Some(PendingAction {
            kind: kind.into(),
            from,
            to,
            decided_at: Time(now),
        })
    }

    /// Rebuilds the action of a `pendingAction` left by an interrupted reconcile.
    pub fn from_pending(pending: &PendingAction) -> Option<Planned> {
        let int = |s: &str| s.parse::<i32>().ok();
        match pending.kind.as_str() {
            "ScaleReplicas" => Some(Planned::Scale {
                from: int(&pending.from)?,
                to: int(&pending.to)?,
            }),
            "AddPartitions" => Some(Planned::Partitions {
                from: int(&pending.from)?,
                to: int(&pending.to)?,
            }),
            "ResizeDatabase" => Some(Planned::ResizeDatabase {
                from: pending.from.clone(),
                to: pending.to.clone(),
            }),
            "ResizeCache" => Some(Planned::ResizeCache {
                from: pending.from.clone(),
                to: pending.to.clone(),
            }),
            _ => None,
        }
    }

    /// Stable label for `liftoff_actions_total{action}` and the Event reason.
    pub fn label(&self) -> &'static str {
        match self {
            Planned::Scale { from, to } if to > from => "ScaleUp",
            Planned::Scale { .. } => "ScaleDown",
            Planned::Partitions { .. } => "AddPartitions",
            Planned::ResizeDatabase { .. } => "ResizeDatabase",
            Planned::ResizeCache { .. } => "ResizeCache",
            Planned::Recommend { .. } => "RecommendResize",
            Planned::Signal => "MemoryHigh",
        }
    }
}

/// The outcome of planning one trigger.
#[derive(Clone, Debug)]
pub struct TriggerPlan {
    /// The trigger's next status (without the outcome of `action`, which the caller records).
    pub status: TriggerStatus,
    /// What to do now.
    pub action: Option<Planned>,
    /// The engine's reason, for logs and events.
    pub reason: String,
    /// Why a decision to act was not carried out: `Conflict`, `Suspended` or `NotReady`.
    pub refused: Option<&'static str>,
    /// When `action` was decided, if not now: an interrupted action being re-applied keeps the
    /// `decidedAt` of its `pendingAction` (it is the same decision, not a new one).
    pub decided_at: Option<Timestamp>,
    /// Whether `action` is a resize a person approved ([`super::approval`]).
    pub approved: bool,
}

/// No action: the target's state is not one this kind of trigger acts on.
pub(super) fn misfit(current: &Current) -> (Option<Planned>, String) {
    (
        None,
        format!("no action: the target's state {current:?} does not fit this trigger"),
    )
}

/// The error of an action this kind of trigger never plans.
pub(super) fn unfit(action: &Planned, kind: &str) -> String {
    format!("a {kind} trigger cannot apply {}", action.label())
}

/// Plans one trigger. `history` is the CPU trigger's memory (ignored for other kinds).
pub fn plan(
    kind: &TriggerKind<'_>,
    previous: Option<&TriggerStatus>,
    reading: &Reading,
    history: &mut ScalingHistory,
    facts: Facts,
) -> TriggerPlan {
    let now = facts.now;
    if history.scale_events.is_empty() {
        // A restarted operator: the scales recorded in status still count against the rate
        // policies (the engine drops those older than their periods).
        history.scale_events = previous
            .map(|p| &p.recent_scales)
            .into_iter()
            .flatten()
            .map(|s| ScaleEvent {
                // Stored times are whole seconds, truncated: count a scale as up to a second
                // later than stored, so its period never ends early.
                at: s
                    .at
                    .0
                    .checked_add(StdDuration::from_secs(1))
                    .unwrap_or(s.at.0),
                change: s.change,
            })
            .collect();
    }
    let last_action_at = previous
        .and_then(|p| p.last_action_at.as_ref())
        .map(|t| t.0);
    let pending = previous.and_then(|p| p.pending_action.as_ref());
    let resumed = pending.map(|p| p.decided_at.0);
    let (action, reason) = match (&reading.current, pending) {
        (current, Some(pending)) => resume(pending, current),
        (Err(why), None) => (None, format!("no action: cannot read the target: {why}")),
        (Ok(current), None) => {
            let deciding = Deciding {
                sample: &reading.sample,
                current,
                last_action_at,
                now,
            };
            kind.get().decide(deciding, history)
        }
    };
    let (action, reason) = match (
        action,
        pending,
        fallback(kind.trigger(), previous, reading, facts),
    ) {
        (None, None, Some(fallback)) => fallback,
        (action, _, _) => (action, reason),
    };
    let (action, reason, refused) = match (action, reading.refusal.as_ref(), facts.hold) {
        (Some(_), Some(refusal), _) => (None, format!("refused: {refusal}"), Some("Conflict")),
        (Some(action), None, Some(hold)) if hold.blocks(&action) => (
            None,
            format!("{}; would have acted: {reason}", hold.explain()),
            Some(hold.label()),
        ),
        (action, _, _) => (action, reason, None),
    };
    let mut status = next_status(kind, previous, reading, action.is_some(), &reason, facts);
    if reading.current.is_err() || refused.is_some() {
        // The interrupted action is finished once the target can be read again, or once the
        // hold is lifted: dropping it here would have it decided again, as a new action.
        status.pending_action = pending.cloned();
    }
    if let (Some(hold), Some(pending), Ok(current)) = (facts.hold, pending, &reading.current)
        && matches!(hold, Hold::Suspended | Hold::Paused(_))
        && refused.is_some_and(|r| r != "Conflict")
    {
        settle_while_held(kind, &mut status, hold, pending, current);
    }
    TriggerPlan {
        decided_at: resumed.filter(|_| action.is_some()),
        status,
        action,
        reason,
        refused,
        approved: false,
    }
}

/// The trigger's opt-in `fallback`: once its source has failed `afterFailures` samples in a row
/// (counted from `errorSince` by the interval, so a restart does not reset the count), raise the
/// target to `fallback.replicas` if it runs fewer. Never lowers it.
fn fallback(
    trigger: &Trigger,
    previous: Option<&TriggerStatus>,
    reading: &Reading,
    facts: Facts,
) -> Option<(Option<Planned>, String)> {
    let fallback = trigger.fallback.as_ref()?;
    let (Sample::Unknown { source, .. }, Ok(Current::Replicas(current))) =
        (&reading.sample, &reading.current)
    else {
        return None;
    };
    let since = previous
        .and_then(|p| p.error_since.as_ref())
        .map_or(facts.now, |t| t.0);
    let elapsed = facts.now.duration_since(since).as_secs_f64().max(0.0);
    let interval = facts.interval.as_secs_f64().max(1.0);
    // This sample, and one per interval since the first failure (a quarter-second early counts).
    let failures = 1 + ((elapsed + 0.25) / interval) as i64;
    if failures < i64::from(fallback.after_failures) {
        return None;
    }
    let outage = format!(
        "{source} has failed {failures} samples in a row (since {since}); fallback.replicas is {}",
        fallback.replicas
    );
    if *current == 0 {
        // Scaled to zero on purpose, as the engine never scales up from zero: and with no pod,
        // a metrics-API sample always fails, so this is no outage to cover.
        return Some((
            None,
            format!(
                "{outage}: the target runs 0 replicas (scaled to zero on purpose), so no action"
            ),
        ));
    }
    Some(match *current < fallback.replicas {
        true => (
            Some(Planned::Scale {
                from: *current,
                to: fallback.replicas,
            }),
            format!("{outage}: scaling from {current} to {}", fallback.replicas),
        ),
        false => (
            None,
            format!("{outage}: {current} replicas run already, so no action"),
        ),
    })
}

/// What to do with an action interrupted before it was confirmed: re-apply it while the target
/// is where the decision left it (at `from`, or already at `to`); drop it when someone else has
/// moved the target since (re-applying would undo their change); wait while it cannot be read.
fn resume(pending: &PendingAction, current: &Result<Current, String>) -> (Option<Planned>, String) {
    let Some(action) = Planned::from_pending(pending) else {
        return (
            None,
            format!("dropped an unreadable pendingAction {pending:?}"),
        );
    };
    let current = match current {
        Ok(current) => current,
        Err(why) => {
            return (
                None,
                format!(
                    "the interrupted {} waits: cannot read the target: {why}",
                    pending.kind
                ),
            );
        }
    };
    let untouched = match (&action, current) {
        (Planned::Scale { from, to }, Current::Replicas(n))
        | (Planned::Partitions { from, to }, Current::Partitions(n))
        | (Planned::Partitions { from, to }, Current::Consumed { partitions: n, .. })
        | (Planned::Scale { from, to }, Current::Consumed { consumers: n, .. }) => {
            n == from || n == to
        }
        (Planned::ResizeDatabase { from, to }, Current::Class(c))
        | (Planned::ResizeCache { from, to }, Current::Class(c)) => c == from || c == to,
        _ => false,
    };
    if !untouched {
        return (
            None,
            format!(
                "dropped the interrupted {} from {} to {}: the target is now {current:?}, so \
                 someone else changed it",
                pending.kind, pending.from, pending.to
            ),
        );
    }
    let reason = format!(
        "re-applying the {} decided at {} (to {}), interrupted before it was confirmed",
        pending.kind, pending.decided_at.0, pending.to
    );
    (Some(action), reason)
}

/// A person suspended the policy (or paused its scaling) while an action was interrupted: settle
/// it without acting, rather than carry a decision across the hold. If the target shows the
/// action's result, it was applied: record it as the last action (so its cooldown holds).
/// Otherwise it never was: drop it; the samples decide afresh once the hold is lifted.
fn settle_while_held(
    kind: &TriggerKind<'_>,
    status: &mut TriggerStatus,
    hold: Hold,
    pending: &PendingAction,
    current: &Current,
) {
    let held = hold.explain();
    status.pending_action = None;
    let applied = match current {
        Current::Replicas(n) | Current::Partitions(n) => n.to_string() == pending.to,
        Current::Consumed {
            partitions,
            consumers,
        } => match pending.kind.as_str() {
            "AddPartitions" => partitions.to_string() == pending.to,
            _ => consumers.to_string() == pending.to,
        },
        Current::Class(class) => *class == pending.to,
        Current::Nothing => false,
    };
    let message = if applied {
        status.last_action = Some(format!(
            "{} from {} to {} (applied before an interruption)",
            pending.kind, pending.from, pending.to
        ));
        status.last_action_at = Some(pending.decided_at.clone());
        if matches!(current, Current::Class(_)) {
            // As after a resize applied normally: the recommendation is done.
            status.recommendation = None;
            status.recommended_to = None;
        }
        let cooldown = kind.cooldown();
        status.next_eligible_at = (!cooldown.is_zero())
            .then(|| engine::next_eligible_at(Some(pending.decided_at.0), cooldown).map(Time))
            .flatten();
        format!(
            "{held}; the interrupted {} to {} had been applied and is recorded as the last \
             action",
            pending.kind, pending.to
        )
    } else {
        format!(
            "{held}; the interrupted {} from {} to {} (decided at {}) was never applied and is \
             dropped: the samples decide afresh once the hold is lifted",
            pending.kind, pending.from, pending.to, pending.decided_at.0
        )
    };
    status.message = Some(message);
}

fn next_status(
    kind: &TriggerKind<'_>,
    previous: Option<&TriggerStatus>,
    reading: &Reading,
    acting: bool,
    reason: &str,
    facts: Facts,
) -> TriggerStatus {
    let now = facts.now;
    let error = match (&reading.sample, &reading.current) {
        (Sample::Unknown { source, error }, _) => Some(format!("{source}: {error}")),
        (_, Err(why)) => Some(format!("target: {why}")),
        _ => None,
    };
    let active = kind.is_active(&reading.sample);
    let mut status = previous.cloned().unwrap_or_default();
    status.name = kind.trigger().name.clone();
    status.kind = kind.as_str().into();
    status.threshold = kind.display(kind.threshold());
    status.pending_action = None;
    let stale = status.observed_at.as_ref().is_none_or(|at| {
        at.0.saturating_add(facts.status_refresh)
            .unwrap_or(Timestamp::MAX)
            <= now
    });
    // A decision refused, held back (and by what: paused, suspended, not ready) or let through
    // again is news at once.
    fn held(m: Option<&str>) -> Option<&str> {
        let m = m?;
        match m.strip_prefix("refused: ") {
            Some(_) => Some("refused"),
            None => m.split_once("; would have acted: ").map(|(hold, _)| hold),
        }
    }
    let flipped = previous.is_none_or(|p| {
        p.active != active
            || p.error.is_some() != error.is_some()
            || held(p.message.as_deref()) != held(Some(reason))
    });
    if stale || flipped || acting {
        status.value = reading.sample.value().map(|v| kind.display(v));
        status.observed_at = Some(Time(now));
        status.message = Some(reason.to_string());
        status.active = active;
    }
    // A failure lasts while the action is retried or the pressure stays (a hold, the tolerance
    // band); a sample back within the threshold ends it, so a later failure is news again.
    if !acting && !active {
        status.action_failed_since = None;
    }
    status.error_since = match (&error, previous.and_then(|p| p.error_since.clone())) {
        (None, _) => None,
        (Some(_), Some(since)) => Some(since),
        (Some(_), None) => Some(Time(now)),
    };
    // The error text is refreshed with the displayed value; a new error is written at once.
    if error.is_none() || status.error.is_none() || stale || flipped {
        status.error = error;
    }
    status
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
