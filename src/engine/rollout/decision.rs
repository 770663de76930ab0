//! What one evaluation decided, and why.

use std::time::Duration;

use crate::crd::{NotificationEvent, RolloutState, Users, WaitingOn};

/// The outcome of [`step`](super::step).
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The state to store in status.
    pub state: RolloutState,
    /// The users to publish to the application (equal to `state.users`).
    pub users: Users,
    /// What happened in this evaluation, oldest first; empty when nothing changed.
    pub events: Vec<Event>,
    /// One sentence saying why the rollout is where it is.
    pub message: String,
    /// What it waits on, other than time, in a few words.
    pub waiting_on: Option<WaitingOn>,
    /// Time until the next timer (bake deadline or gate evaluation); `None` when only a change
    /// to the policy (an edit or a command) can move the rollout on.
    pub requeue_after: Option<Duration>,
}

/// Something that happened, for a Kubernetes Event and the war room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub message: String,
}

/// The kinds of rollout events. The names are stable: they are Event reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A stage was entered (the first one, the next one, or one re-entered by `retry`).
    StageAdvanced,
    /// A stage has baked and the next one waits for a person's Go.
    AwaitingApproval,
    /// A gate check failed `failureThreshold` times in a row.
    GateFailed,
    /// The rollout was paused (by a gate, a person or a spec edit).
    Paused,
    /// A person resumed the rollout.
    Resumed,
    /// Users went back to the previous stage's.
    RolledBack,
    /// A person retried.
    Retried,
    /// A person aborted: nobody is admitted.
    Aborted,
    /// The last stage has baked with healthy gates.
    Completed,
    /// A spec edit changed the current stage's users.
    UsersChanged,
    /// A command did not apply in the current phase; it is not applied later either.
    CommandIgnored,
}

impl EventKind {
    /// The Event reason.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::StageAdvanced => "StageAdvanced",
            EventKind::AwaitingApproval => "AwaitingApproval",
            EventKind::GateFailed => "GateFailed",
            EventKind::Paused => "Paused",
            EventKind::Resumed => "Resumed",
            EventKind::RolledBack => "RolledBack",
            EventKind::Retried => "Retried",
            EventKind::Aborted => "Aborted",
            EventKind::Completed => "Completed",
            EventKind::UsersChanged => "UsersChanged",
            EventKind::CommandIgnored => "CommandIgnored",
        }
    }

    /// Whether the Event should be a Warning rather than Normal.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            EventKind::GateFailed
                | EventKind::Paused
                | EventKind::RolledBack
                | EventKind::Aborted
                | EventKind::CommandIgnored
        )
    }

    /// The notification subscription that covers this event, if any.
    pub fn notification(self) -> Option<NotificationEvent> {
        match self {
            EventKind::StageAdvanced => Some(NotificationEvent::StageAdvanced),
            EventKind::AwaitingApproval => Some(NotificationEvent::AwaitingApproval),
            EventKind::GateFailed => Some(NotificationEvent::GateFailed),
            EventKind::Paused => Some(NotificationEvent::RolloutPaused),
            EventKind::Resumed | EventKind::Retried => Some(NotificationEvent::RolloutResumed),
            EventKind::Aborted => Some(NotificationEvent::RolloutAborted),
            EventKind::RolledBack => Some(NotificationEvent::RolloutRolledBack),
            EventKind::Completed => Some(NotificationEvent::RolloutCompleted),
            EventKind::UsersChanged | EventKind::CommandIgnored => None,
        }
    }
}
