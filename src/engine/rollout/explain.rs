//! The one sentence saying why the rollout is where it is, and when to look again.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::{
    clock,
    gates::{self, Health},
    inputs::{Action, CapacityHold, Inputs},
    plan::{Plan, next_index},
};
use crate::crd::{HoldCause, Phase, RolloutState, WaitReason, WaitingOn};

/// Why the rollout is where it is. `now` is whole seconds.
pub(crate) fn message(
    plan: &Plan,
    state: &RolloutState,
    inputs: &Inputs,
    now: Timestamp,
) -> String {
    let why = why(plan, state, inputs, now);
    if inputs.suspended {
        format!("suspended (spec.suspend), nothing changes: {why}")
    } else {
        why
    }
}

fn why(plan: &Plan, state: &RolloutState, inputs: &Inputs, now: Timestamp) -> String {
    let at = plan.describe(state.stage);
    let next = plan.stage(next_index(state.stage));
    let hold = state.hold.as_ref();
    let detail = hold.map_or("", |h| h.detail.as_str());
    match state.phase {
        Phase::Pending => {
            let first =
                next.map_or_else(String::new, |s| format!(" {} ({} users)", s.name, s.users));
            match gates::health(plan, state, inputs) {
                Health::Unknown(why) => {
                    format!("not started: {why}, so stage{first} is not entered yet")
                }
                _ => match capacity_note(plan, inputs)
                    .or_else(|| scaling_first(plan, state, inputs))
                {
                    Some(note) => format!("not started; the first stage is{first}; {note}"),
                    None => format!("not started; the first stage is{first}"),
                },
            }
        }
        Phase::AwaitingApproval => {
            let next =
                next.map_or_else(String::new, |s| format!(" {} ({} users)", s.name, s.users));
            let index = next_index(state.stage);
            match state.stage {
                None => format!(
                    "waiting for approval of stage{next} (index {index}) to start the rollout"
                ),
                Some(_) => format!(
                    "waiting for approval of stage{next} (index {index}); {at} has baked with healthy gates"
                ),
            }
        }
        Phase::Baking => baking(plan, state, inputs, now, &at),
        Phase::Paused => {
            let held = held_users(plan, state);
            let at = plan.name_of(state.stage);
            match hold.map(|h| h.cause) {
                Some(HoldCause::Gate) => {
                    format!("paused: {detail}; holding {held} at {at}; resume, or retry the stage")
                }
                Some(HoldCause::SpecChange) => {
                    format!("paused: {detail}; holding {held} at {at}; resume to continue")
                }
                _ => format!("{detail}; holding {held} at {at}; resume to continue"),
            }
        }
        Phase::RolledBack => {
            let from = hold
                .and_then(|h| h.rolled_back_from.as_deref())
                .map_or_else(String::new, |f| format!(" from stage {f}"));
            let retry = plan
                .stage(next_index(state.stage))
                .map_or_else(String::new, |s| format!(", or retry stage {}", s.name));
            let held = held_users(plan, state);
            format!(
                "rolled back{from} to {at}: {detail}; holding {held}; resume to continue from here{retry}"
            )
        }
        Phase::Completed => format!("completed: {at} has baked with healthy gates"),
        Phase::Aborted => {
            let was = state
                .stage_name
                .as_deref()
                .map_or_else(String::new, |s| format!(" at stage {s}"));
            format!("{detail}{was}: nobody is admitted; retry to start over")
        }
    }
}

/// Why no more users are admitted for now, when the platform is short of capacity and the
/// policy holds stages for it (`holdWhileScaling`); `None` at the last stage.
fn capacity_note(plan: &Plan, inputs: &Inputs) -> Option<String> {
    let holds = capacity_holds(plan, inputs)?;
    let list: Vec<String> = holds
        .iter()
        .map(|h| format!("trigger {} {}", h.trigger, h.why))
        .collect();
    Some(format!(
        "no more users while the platform is short of capacity: {}",
        list.join(", ")
    ))
}

/// Whether the current stage's bake has elapsed (no stage: nothing to bake).
fn baked(state: &RolloutState, now: Timestamp) -> bool {
    state.bake_until.as_ref().is_none_or(|until| now >= until.0)
}

/// The next stage's `scaleUpFirst` not ready yet, as a sentence.
fn scaling_first(plan: &Plan, state: &RolloutState, inputs: &Inputs) -> Option<String> {
    let next = next_index(state.stage);
    let unready = super::floors::unready(plan, next, inputs);
    if unready.is_empty() {
        return None;
    }
    let list: Vec<String> = unready
        .iter()
        .map(|(t, ready, wanted)| format!("trigger {t} has {ready} of {wanted} replicas ready"))
        .collect();
    Some(format!(
        "scaling up before {}: {}",
        plan.name_of(Some(next)),
        list.join(", ")
    ))
}

fn capacity_holds<'i>(plan: &Plan, inputs: &'i Inputs) -> Option<&'i [CapacityHold]> {
    (plan.hold_while_scaling && !inputs.capacity.is_empty()).then_some(inputs.capacity.as_slice())
}

/// What the rollout waits on, other than time: the `Waiting On` column. `None` while it only
/// bakes (or is over).
pub(crate) fn waiting_on(
    plan: &Plan,
    state: &RolloutState,
    inputs: &Inputs,
    now: Timestamp,
) -> Option<WaitingOn> {
    let on = |reason, summary: String| Some(WaitingOn { reason, summary });
    let detail = state.hold.as_ref().map_or("", |h| h.detail.as_str());
    match state.phase {
        Phase::Completed => None,
        _ if inputs.suspended => on(WaitReason::Person, "spec.suspend: false".into()),
        Phase::Pending | Phase::Baking => {
            let unknown = gates::unknown_gates(plan, state, inputs);
            let failing = gates::failing_gates(state);
            if !unknown.is_empty() {
                let names: Vec<&str> = unknown.iter().map(|(name, _)| *name).collect();
                on(
                    WaitReason::GatesUnknown,
                    format!("gates unknown: {}", names.join(", ")),
                )
            } else if !failing.is_empty() {
                on(
                    WaitReason::GatesFailing,
                    format!("gates failing: {}", failing.join(", ")),
                )
            } else if !baked(state, now) || plan.stage(next_index(state.stage)).is_none() {
                None
            } else if let Some(holds) = capacity_holds(plan, inputs) {
                let names: Vec<&str> = holds.iter().map(|h| h.trigger.as_str()).collect();
                on(
                    WaitReason::Capacity,
                    format!("capacity: {}", names.join(", ")),
                )
            } else {
                let unready = super::floors::unready(plan, next_index(state.stage), inputs);
                let list: Vec<String> = unready
                    .iter()
                    .map(|(t, ready, wanted)| format!("{t} {ready}/{wanted}"))
                    .collect();
                (!list.is_empty()).then(|| WaitingOn {
                    reason: WaitReason::Capacity,
                    summary: format!("scale-up first: {}", list.join(", ")),
                })
            }
        }
        Phase::AwaitingApproval => {
            let next = plan.name_of(Some(next_index(state.stage)));
            on(WaitReason::Approval, format!("Go for {next}"))
        }
        Phase::Paused | Phase::RolledBack => {
            on(WaitReason::Person, format!("resume or retry: {detail}"))
        }
        Phase::Aborted => on(WaitReason::Person, format!("retry: {detail}")),
    }
}

/// A Go for the next stage given before the current one has baked with healthy gates: kept,
/// and said, so the room knows it was received and what it still waits for.
fn early_go(plan: &Plan, state: &RolloutState, inputs: &Inputs) -> Option<String> {
    let next = next_index(state.stage);
    let stage = plan.stage(next)?;
    let go = inputs.commands.iter().find(|c| {
        c.action == (Action::Approve { stage: next }) && !state.applied_commands.contains(&c.id)
    })?;
    let by = go
        .by
        .as_deref()
        .map_or_else(String::new, |by| format!(" by {by}"));
    Some(format!(
        "the Go for stage {} was given{by} and applies once this stage has baked with healthy gates",
        stage.name
    ))
}

fn held_users(plan: &Plan, state: &RolloutState) -> String {
    let stage = plan.users_at(state.stage);
    if state.users < stage {
        format!(
            "{} users (the spec now says {stage}; applied on resume)",
            state.users
        )
    } else {
        format!("{} users", state.users)
    }
}

fn baking(plan: &Plan, state: &RolloutState, inputs: &Inputs, now: Timestamp, at: &str) -> String {
    let health = gates::health(plan, state, inputs);
    let started = state.stage_started_at.as_ref().map(|t| t.0);
    let until = state.bake_until.as_ref().map(|t| t.0);
    // While the stage bakes, the count of passes in a row is not what holds it (the deadline
    // is), and a sentence that changed at every gate evaluation would be a status write at
    // each: the count is told once the bake is over.
    let gate_note = |baking: bool| {
        let note = match &health {
            Health::Healthy => None,
            Health::Unknown(why) => Some(format!("{why}, so it cannot advance")),
            Health::NotYet(why) => Some(why.clone()),
            Health::Counting(why) => (!baking).then(|| why.clone()),
        };
        match (note, early_go(plan, state, inputs)) {
            (Some(note), Some(go)) => Some(format!("{note}; {go}")),
            (note, go) => note.or(go),
        }
    };
    match (started, until) {
        (Some(started), Some(until)) if now < until => {
            // No countdown: the message is written to status, and a sentence that changed every
            // second would turn every reconcile into a status write. The deadline is absolute.
            let total = clock::human(clock::until(started, until));
            let mut sentence = format!("{at} baking {total}, until {until}");
            if let Some(note) = gate_note(true) {
                sentence.push_str("; ");
                sentence.push_str(&note);
            }
            sentence
        }
        _ => match (
            gate_note(false),
            capacity_note(plan, inputs).or_else(|| scaling_first(plan, state, inputs)),
        ) {
            (Some(note), _) => format!("{at} has baked; waiting for healthy gates: {note}"),
            (None, Some(capacity)) => format!("{at} has baked with healthy gates; {capacity}"),
            // Only seen between two evaluations that had nothing left to decide.
            (None, None) => format!("{at} has baked with healthy gates"),
        },
    }
}

/// Time from `now` (not rounded) until the next timer: the bake deadline while baking, and the
/// next gate evaluation while gates are evaluated. Before the first stage no gate is evaluated,
/// but an unknown reading that keeps it from starting is looked at again after one interval.
/// Never zero.
pub(crate) fn requeue_after(
    plan: &Plan,
    state: &RolloutState,
    inputs: &Inputs,
    now: Timestamp,
) -> Option<Duration> {
    let suspended = inputs.suspended;
    let bake = state
        .bake_until
        .as_ref()
        .map(|t| t.0)
        .filter(|until| !suspended && state.phase == Phase::Baking && *until > now);
    let gate = gates::next_evaluation(plan, state).or_else(|| {
        let waiting_for_data = !suspended
            && state.phase.is_progressing()
            && matches!(gates::health(plan, state, inputs), Health::Unknown(_));
        waiting_for_data.then(|| clock::after(now, plan.gates.interval))
    });
    let next = match (bake, gate) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    let wait = clock::until(now, next);
    // An evaluation that is already due but was not taken (the controller passed no readings
    // outside the schedule) is retried in one second rather than in a hot loop.
    Some(if wait.is_zero() {
        Duration::from_secs(1)
    } else {
        wait
    })
}
