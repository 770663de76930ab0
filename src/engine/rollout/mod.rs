//! The staged rollout as a pure state machine: spec + stored state + this evaluation's inputs +
//! `now` in, a [`Decision`] out. No I/O, no client, no wall clock.
//!
//! # Positions and users
//! The rollout is *at* a stage (`state.stage`, an index) or before the first one (`None`, nobody
//! admitted). The users admitted are never more than the current stage's users, and `All` only
//! at a stage whose users are `All`. A stage is entered only from the one before it, one per
//! evaluation, so every cohort is published before the next; a rollback goes back exactly one.
//!
//! # When a stage ends
//! All three at once:
//! 1. **Bake**: `now ≥ bakeUntil`. The deadline is fixed when the stage is entered
//!    (`stageStartedAt + bake`, rounded up to whole seconds, at least one second) and never moves
//!    on re-evaluation, pause, restart or spec edit; only `retry` starts a stage afresh. An edit to
//!    `bake` applies to stages entered afterwards. One exception: a stage recorded in status whose
//!    cohort was never published (`Inputs::unpublished`: the operator stopped in between) has
//!    admitted nobody, so it is entered afresh — new bake, new gate window — when a restarted or
//!    new leader finds it; otherwise it could end without its users ever having been admitted.
//! 2. **Healthy gates**: the healthy window is the last `failureThreshold` evaluations — every
//!    check passed its last `failureThreshold` evaluations in this stage, its latest value is
//!    known, and no reading in this evaluation is `Unknown`. The window restarts when a stage is
//!    entered (readings from another cohort say nothing about this one). The first evaluation is
//!    one `interval` after the stage is entered.
//! 3. **Approval** of the *next* stage when its `approval` is `Manual`. An approval names the stage
//!    index it approves. It may be given ahead of time: it waits until that stage is entered and
//!    is used up then (even if the stage turned out not to need it), so it never applies twice —
//!    after a rollback and a new bake, the stage needs a new approval. An approval of a stage the
//!    rollout is already past, or of no stage at all, is refused (`CommandIgnored`).
//!
//! After the last stage has ended the rollout is `Completed` and gates are no longer evaluated.
//!
//! # Gates
//! Gates are evaluated every `interval` while a stage is admitted and the rollout is not over
//! (`Baking`, `AwaitingApproval`, and for status also `Paused` and `RolledBack`). Readings passed
//! between two due evaluations are not counted, so repeating an evaluation changes nothing; a
//! check with no reading in a due evaluation counts as unknown. A value outside `min`/`max` is a
//! failure; NaN and infinities are unknown. An **unknown** value is never a failure: it neither
//! adds to nor resets the counts, it holds the stage (no advance, not even into the first stage)
//! and the message names the check and its error. `failureThreshold` failures in a row of one check, while `Baking` or
//! `AwaitingApproval`, apply `onGateFailure`:
//! - `Pause`: hold the current users (`Paused`).
//! - `Rollback`: enter the previous stage — its users, a fresh bake and gate window — and hold
//!   (`RolledBack`). From the first stage that is the position before it: **0 users**, because
//!   the first cohort is the smallest one that ever saw the change.
//!
//! Failures of other checks are acted on even while one check is unknown: missing data never
//! causes an action by itself, and never hides one that real data calls for.
//!
//! # Commands
//! Each carries an id and is applied at most once (`state.appliedCommands` remembers the latest
//! ids). While suspended, commands wait. A command that does not fit the phase is refused with a
//! `CommandIgnored` event, once.
//! - `pause`: a progressing rollout → `Paused` (same users).
//! - `resume`: `Paused` → carry on at the same stage with the same bake deadline; `RolledBack` →
//!   carry on from the stage rolled back to (its bake started at the rollback). Failure counts
//!   restart at zero.
//! - `retry`: `Paused` → the current stage starts over (new bake, fresh gates); `RolledBack` →
//!   re-enter the stage that failed (a person's explicit decision: it counts as that stage's
//!   approval and is not held by unknown gates); `Aborted` → start over from the first stage.
//! - `abort`: any phase but `Aborted` → nobody admitted, `Aborted` (the stage index is kept for
//!   the record).
//!
//! # Spec edits mid-rollout
//! The current stage is followed by **name**:
//! - stages added after it (or before it) → the rollout continues; a `Completed` rollout whose
//!   last stage is no longer last observes its gates again and continues;
//! - its `users` changed → the new number is published at once while progressing or completed;
//!   while `Paused`/`RolledBack` a decrease applies at once and an increase waits for `resume`;
//! - it was removed or renamed → the rollout moves to the last stage that still exists whose
//!   users are at or below the users admitted (the position before the first stage if none),
//!   enters it (new bake) and pauses, saying which stage disappeared;
//! - a spec the engine cannot use (no stages, bad users, users not increasing, a name used
//!   twice) → nothing changes and the message says what is wrong.
//!
//! # Suspended
//! `spec.suspend` → no transition, no command applied, users unchanged; gate readings are still
//! recorded (observe and report), and act once the suspension is lifted.
//!
//! # Time
//! `now` is only an argument. Stored times are whole seconds (what `metav1.Time` keeps), so a
//! state written to status and read back after a restart gives the same decisions as if the
//! operator had never stopped. `requeue_after` is exactly the time until the next timer.

mod clock;
mod commands;
mod decision;
mod explain;
mod floors;
mod gates;
mod inputs;
mod machine;
mod plan;

#[cfg(test)]
mod tests;

/// The state the engine works from is status, and status is the CRD's.
pub use crate::crd::{
    ConsumedApproval, GateState, Hold, HoldCause, MAX_REMEMBERED_COMMANDS, Phase, RolloutState,
    Users,
};
pub use decision::{Decision, Event, EventKind};
pub use floors::{floors, next_stage};
pub use inputs::{Action, CapacityHold, Command, GateReading, Inputs, Readiness};
pub use plan::{MIN_GATE_INTERVAL, MIN_STAGE_DURATION};

use k8s_openapi::jiff::Timestamp;

use crate::crd::{RolloutSpec, WaitReason, WaitingOn};
use machine::Machine;
use plan::Plan;

/// Decides the rollout's next state from the spec, the stored state, this evaluation's inputs
/// and the current time. Pure: the same arguments always give the same decision.
pub fn step(spec: &RolloutSpec, state: &RolloutState, inputs: &Inputs, now: Timestamp) -> Decision {
    let plan = match Plan::from_spec(spec) {
        Ok(plan) => plan,
        Err(problem) => return unusable_spec(state, problem),
    };
    let mut m = Machine {
        plan: &plan,
        state: state.clone(),
        events: Vec::new(),
        now: clock::whole_second(now),
    };
    gates::sync(&plan, &mut m.state);
    if !inputs.suspended {
        m.follow_spec_edits();
    }
    gates::record(&plan, &mut m.state, inputs, m.now);
    if !inputs.suspended {
        m.apply_commands(&inputs.commands);
        m.act_on_tripped_gates();
        m.rebake_unpublished(inputs);
        m.progress(inputs);
        m.settle_users();
    }
    let message = explain::message(&plan, &m.state, inputs, m.now);
    let waiting_on = explain::waiting_on(&plan, &m.state, inputs, m.now);
    let requeue_after = explain::requeue_after(&plan, &m.state, inputs, now);
    Decision {
        users: m.state.users,
        state: m.state,
        events: m.events,
        message,
        waiting_on,
        requeue_after,
    }
}

/// Whether the controller should read the gates before calling [`step`] at `now`.
pub fn gates_due(spec: &RolloutSpec, state: &RolloutState, now: Timestamp) -> bool {
    let Ok(plan) = Plan::from_spec(spec) else {
        return false;
    };
    gates::next_evaluation(&plan, state).is_some_and(|due| clock::whole_second(now) >= due)
}

fn unusable_spec(state: &RolloutState, problem: String) -> Decision {
    Decision {
        state: state.clone(),
        users: state.users,
        events: Vec::new(),
        message: format!(
            "spec.rollout cannot be used ({problem}); holding {} users, nothing changes until it is fixed",
            state.users
        ),
        waiting_on: Some(WaitingOn {
            reason: WaitReason::Person,
            summary: "a fix of spec.rollout".into(),
        }),
        requeue_after: None,
    }
}
