//! People's commands: approve, pause, resume, abort, retry. Each command id is applied at most
//! once; a command that does not fit the current phase is refused with an event, and forgotten.

use super::{
    clock,
    decision::EventKind,
    gates,
    inputs::{Action, Command},
    machine::Machine,
    plan::next_index,
};
use crate::crd::{ConsumedApproval, HoldCause, MAX_REMEMBERED_COMMANDS, Phase};

fn who(command: &Command) -> String {
    match &command.by {
        Some(by) => format!(" by {by}"),
        None => String::new(),
    }
}

impl Machine<'_, '_> {
    fn seen(&self, command: &Command) -> bool {
        self.state.applied_commands.contains(&command.id)
    }

    /// Remembers `command` as applied. Over capacity, the oldest id that is no longer presented
    /// is forgotten first: a presented id must stay remembered or it would apply again.
    fn remember(&mut self, command: &Command, presented: &[Command]) {
        let ids = &mut self.state.applied_commands;
        ids.push(command.id.clone());
        if ids.len() > MAX_REMEMBERED_COMMANDS {
            let stale = ids
                .iter()
                .position(|id| !presented.iter().any(|c| &c.id == id))
                .unwrap_or(0);
            ids.remove(stale);
        }
    }

    /// An approval waits while it names a stage not entered yet; it is used when that stage is.
    fn approval_waits(&self, stage: u32) -> bool {
        stage >= next_index(self.state.stage) && stage < self.plan.len()
    }

    /// Whether an approval of stage `index` is waiting to be used.
    pub fn approval_given(&self, index: u32, commands: &[Command]) -> bool {
        commands
            .iter()
            .any(|c| c.action == (Action::Approve { stage: index }) && !self.seen(c))
    }

    /// Uses a waiting approval of stage `index`, if one was given; returns ` by <who>`.
    pub fn take_approval(&mut self, index: u32, commands: &[Command]) -> Option<String> {
        let command = commands
            .iter()
            .find(|c| c.action == (Action::Approve { stage: index }) && !self.seen(c))?;
        self.remember(command, commands);
        self.state.last_approval = Some(ConsumedApproval {
            stage: index,
            stage_name: self.plan.stage(index)?.name.to_owned(),
            id: command.id.clone(),
            by: command.by.clone(),
            at: clock::time(self.now),
        });
        Some(who(command))
    }

    pub fn apply_commands(&mut self, commands: &[Command]) {
        for command in commands {
            if self.seen(command) {
                continue;
            }
            if let Action::Approve { stage } = command.action
                && self.approval_waits(stage)
            {
                continue;
            }
            self.remember(command, commands);
            if let Err(why) = self.apply(command, commands) {
                self.emit(EventKind::CommandIgnored, why);
            }
        }
    }

    fn apply(&mut self, command: &Command, commands: &[Command]) -> Result<(), String> {
        let phase = self.state.phase;
        let by = who(command);
        let at = self.plan.describe(self.state.stage);
        match command.action {
            Action::Approve { stage } => Err(match self.plan.stage(stage) {
                Some(s) => format!(
                    "approval{by} of stage {} (index {stage}) ignored: the rollout is already past it ({phase} at {at})",
                    s.name
                ),
                None => {
                    format!("approval{by} of stage index {stage} ignored: there is no such stage")
                }
            }),
            Action::Pause if phase.is_progressing() => {
                self.state.phase = Phase::Paused;
                let hold = self.hold(HoldCause::Person, command.by.clone(), format!("paused{by}"));
                self.state.hold = Some(hold);
                self.emit(EventKind::Paused, format!("paused{by} at {at}"));
                Ok(())
            }
            Action::Pause => Err(format!("pause{by} ignored: the rollout is {phase} at {at}")),
            Action::Resume if phase.is_held() => {
                self.state.phase = if self.state.stage.is_some() {
                    Phase::Baking
                } else {
                    Phase::Pending
                };
                self.state.hold = None;
                // A fresh failure count: the person has looked; the gate must fail again to act.
                for g in &mut self.state.gates {
                    g.consecutive_failures = 0;
                }
                self.emit(EventKind::Resumed, format!("resumed{by} at {at}"));
                Ok(())
            }
            Action::Resume => Err(format!(
                "resume{by} ignored: the rollout is {phase} at {at}, not paused or rolled back"
            )),
            Action::Abort if phase != Phase::Aborted => {
                self.state.phase = Phase::Aborted;
                self.state.users = self.plan.users_at(None);
                self.state.bake_until = None;
                self.state.gates_checked_at = None;
                gates::reset(&mut self.state);
                let hold = self.hold(
                    HoldCause::Person,
                    command.by.clone(),
                    format!("aborted{by}"),
                );
                self.state.hold = Some(hold);
                self.emit(
                    EventKind::Aborted,
                    format!("aborted{by} at {at}: nobody is admitted"),
                );
                Ok(())
            }
            Action::Abort => Err(format!("abort{by} ignored: the rollout is already aborted")),
            Action::Retry => self.retry(&by, &at, commands),
        }
    }

    fn retry(&mut self, by: &str, at: &str, commands: &[Command]) -> Result<(), String> {
        let target = match self.state.phase {
            // Start the current stage over: new bake, fresh gate window.
            Phase::Paused => self.state.stage,
            // Re-enter the stage that failed: one above the stage rolled back to.
            Phase::RolledBack => Some(next_index(self.state.stage)),
            // Start over: back before the first stage; `progress` enters it as usual.
            Phase::Aborted => None,
            phase => {
                return Err(format!(
                    "retry{by} ignored: the rollout is {phase} at {at}; retry applies when paused, rolled back or aborted"
                ));
            }
        };
        let Some(index) = target else {
            self.enter(None);
            self.emit(
                EventKind::Retried,
                format!("retry{by}: starting over from the first stage"),
            );
            return Ok(());
        };
        if index >= self.plan.len() {
            return Err(format!("retry{by} ignored: there is no stage after {at}"));
        }
        // The retry is the Go for the stage; an approval waiting for it is used up with it.
        self.take_approval(index, commands);
        self.enter(Some(index));
        let to = self.plan.describe(Some(index));
        self.emit(
            EventKind::Retried,
            format!("retry{by}: entering {to} again"),
        );
        self.emit(
            EventKind::StageAdvanced,
            format!("entered {to} (retry{by})"),
        );
        Ok(())
    }
}
