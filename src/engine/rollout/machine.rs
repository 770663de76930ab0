//! The transitions: follow spec edits, act on tripped gates, move to the next stage.
//! Commands are in `commands.rs`; the message and the requeue time in `explain.rs`.

use k8s_openapi::jiff::Timestamp;

use super::{
    clock,
    decision::{Event, EventKind},
    gates::{self, Health},
    inputs::Inputs,
    plan::{Plan, next_index},
};
use crate::crd::{Approval, GateFailurePolicy, Hold, HoldCause, Phase, RolloutState};

/// One evaluation in progress: the state being changed and the events so far.
pub(crate) struct Machine<'p, 'a> {
    pub plan: &'p Plan<'a>,
    pub state: RolloutState,
    pub events: Vec<Event>,
    /// `now`, whole seconds.
    pub now: Timestamp,
}

impl Machine<'_, '_> {
    pub fn emit(&mut self, kind: EventKind, message: String) {
        self.events.push(Event { kind, message });
    }

    pub fn hold(&self, cause: HoldCause, by: Option<String>, detail: String) -> Hold {
        Hold {
            cause,
            by,
            detail,
            rolled_back_from: None,
            since: clock::time(self.now),
        }
    }

    /// Enters a stage (or, with `None`, the position before the first one): its users are
    /// admitted, its bake deadline is fixed, and its gates start a fresh window.
    pub fn enter(&mut self, position: Option<u32>) {
        let now = self.now;
        let s = &mut self.state;
        match position.and_then(|i| self.plan.stage(i)) {
            Some(stage) => {
                s.stage = position;
                s.stage_name = Some(stage.name.to_owned());
                s.users = stage.users;
                s.stage_started_at = Some(clock::time(now));
                s.bake_until = Some(clock::time(clock::after(now, stage.bake)));
                s.gates_checked_at = Some(clock::time(now));
            }
            None => {
                s.stage = None;
                s.stage_name = None;
                s.users = self.plan.users_at(None);
                s.stage_started_at = None;
                s.bake_until = None;
                s.gates_checked_at = None;
            }
        }
        s.hold = None;
        s.phase = if s.stage.is_some() {
            Phase::Baking
        } else {
            Phase::Pending
        };
        gates::reset(s);
    }

    /// Re-finds the current stage after a spec edit. Stages inserted or appended elsewhere are
    /// harmless: the stage is followed by name. A current stage that is gone (removed or renamed)
    /// is replaced by the last stage admitting no more users than now, and the rollout pauses.
    pub fn follow_spec_edits(&mut self) {
        let Some(index) = self.state.stage else {
            return;
        };
        let found = match &self.state.stage_name {
            Some(name) => self.plan.position_of(name),
            None => (index < self.plan.len()).then_some(index),
        };
        match found {
            Some(i) => {
                self.state.stage = Some(i);
                self.state.stage_name = self.plan.stage(i).map(|s| s.name.to_owned());
                if self.state.phase == Phase::Completed && i + 1 < self.plan.len() {
                    // A stage was appended after the last one: observe again, then carry on.
                    self.state.phase = Phase::Baking;
                    self.state.gates_checked_at = Some(clock::time(self.now));
                    gates::reset(&mut self.state);
                }
            }
            None if self.state.phase == Phase::Aborted => {
                self.state.stage = None;
                self.state.stage_name = None;
            }
            None => self.clamp_to_existing_stage(),
        }
    }

    fn clamp_to_existing_stage(&mut self) {
        let gone = self
            .state
            .stage_name
            .clone()
            .unwrap_or_else(|| format!("#{}", self.state.stage.unwrap_or_default()));
        let admitted = self.state.users;
        let target = (0..self.plan.len())
            .rev()
            .find(|&i| self.plan.users_at(Some(i)) <= admitted);
        self.enter(target);
        self.state.phase = Phase::Paused;
        let detail = format!("stage {gone} is no longer in spec.rollout.stages");
        self.state.hold = Some(self.hold(HoldCause::SpecChange, None, detail.clone()));
        let at = self.plan.describe(target);
        self.emit(
            EventKind::Paused,
            format!("{detail}; holding at {at}; resume to continue"),
        );
    }

    /// Pauses or rolls back when a gate check has failed `failureThreshold` times in a row.
    pub fn act_on_tripped_gates(&mut self) {
        if !matches!(self.state.phase, Phase::Baking | Phase::AwaitingApproval) {
            return;
        }
        let Some((gate, evidence)) = gates::tripped(self.plan, &self.state) else {
            return;
        };
        let gate = gate.name.clone();
        let at = self.plan.describe(self.state.stage);
        self.emit(EventKind::GateFailed, format!("{evidence} at {at}"));
        let mut hold = self.hold(HoldCause::Gate, Some(gate), evidence.clone());
        match self.plan.on_gate_failure {
            GateFailurePolicy::Pause => {
                self.state.phase = Phase::Paused;
                self.state.hold = Some(hold);
                self.emit(
                    EventKind::Paused,
                    format!("paused at {at}: {evidence}; resume or retry to continue"),
                );
            }
            GateFailurePolicy::Rollback => {
                hold.rolled_back_from = self.state.stage_name.clone();
                let back_to = self.state.stage.and_then(|i| i.checked_sub(1));
                self.enter(back_to);
                self.state.phase = Phase::RolledBack;
                self.state.hold = Some(hold);
                let to = self.plan.describe(back_to);
                self.emit(
                    EventKind::RolledBack,
                    format!("rolled back from {at} to {to}: {evidence}"),
                );
            }
        }
    }

    /// A stage recorded but never published has admitted nobody: its bake and gate window
    /// restart now (the deadline moves only in this case), so no stage ends unobserved.
    pub fn rebake_unpublished(&mut self, inputs: &Inputs) {
        let baking = matches!(self.state.phase, Phase::Baking | Phase::AwaitingApproval);
        if inputs.unpublished && baking && self.state.stage.is_some() {
            self.enter(self.state.stage);
        }
    }

    /// Ends the current stage when its bake has elapsed, its gates are healthy and the next
    /// stage's approval (if `Manual`) is given; at most one stage per evaluation.
    pub fn progress(&mut self, inputs: &Inputs) {
        if !self.state.phase.is_progressing() {
            return;
        }
        let baked = self
            .state
            .bake_until
            .as_ref()
            .is_none_or(|until| self.now >= until.0);
        let healthy = gates::health(self.plan, &self.state, inputs) == Health::Healthy;
        if !baked || !healthy {
            self.wait_in_place();
            return;
        }
        let next = next_index(self.state.stage);
        let plan = self.plan;
        let Some(stage) = plan.stage(next) else {
            self.state.phase = Phase::Completed;
            let at = self.plan.describe(self.state.stage);
            self.emit(
                EventKind::Completed,
                format!("rollout completed at {at}: baked with healthy gates"),
            );
            return;
        };
        // A Go that is needed and not given is waited for first, so that a capacity hold that
        // comes and goes does not announce the wait again each time.
        if stage.approval == Approval::Manual && !self.approval_given(next, &inputs.commands) {
            if self.state.phase != Phase::AwaitingApproval {
                self.state.phase = Phase::AwaitingApproval;
                let (name, users) = (stage.name, stage.users);
                self.emit(
                    EventKind::AwaitingApproval,
                    format!("waiting for approval of stage {name} ({users} users), index {next}"),
                );
            }
            return;
        }
        // Short of capacity (an approval waits with the users), or scaling up before the
        // stage's users arrive (see `floors`).
        let short = plan.hold_while_scaling && !inputs.capacity.is_empty();
        if short || !super::floors::unready(plan, next, inputs).is_empty() {
            self.wait_in_place();
            return;
        }
        // A waiting approval is used up on entry even when the stage does not need one, so it
        // can never apply later.
        let approved = self.take_approval(next, &inputs.commands);
        let by = approved.map_or_else(String::new, |who| format!(", approved{who}"));
        self.enter(Some(next));
        let at = self.plan.describe(Some(next));
        self.emit(EventKind::StageAdvanced, format!("entered {at}{by}"));
    }

    /// Stays where it is: baking the current stage, or pending before the first.
    fn wait_in_place(&mut self) {
        self.state.phase = match self.state.stage {
            Some(_) => Phase::Baking,
            None => Phase::Pending,
        };
    }

    /// Brings the admitted users in line with the current stage after a spec edit changed its
    /// users: at once while progressing or completed; while held, only a decrease is applied
    /// (an increase waits for `resume`); nobody while aborted.
    pub fn settle_users(&mut self) {
        let stage_users = self.plan.users_at(self.state.stage);
        let users = match self.state.phase {
            Phase::Aborted => self.plan.users_at(None),
            p if p.is_held() => self.state.users.min(stage_users),
            _ => stage_users,
        };
        if users != self.state.users {
            let at = self.plan.describe(self.state.stage);
            let was = self.state.users;
            self.state.users = users;
            self.emit(
                EventKind::UsersChanged,
                format!("now admitting {users} users (was {was}) at {at}: spec changed"),
            );
        }
    }
}
