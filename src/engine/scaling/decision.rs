//! The shape of every scaling decision.

/// What the engine decided for one trigger, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision<A> {
    /// The action to take now, or `None` for no action.
    pub action: Option<A>,
    /// One sentence saying why, with the numbers compared: for a status message or an Event note.
    pub reason: String,
}

impl<A> Decision<A> {
    pub(crate) fn act(action: A, reason: impl Into<String>) -> Self {
        Self {
            action: Some(action),
            reason: reason.into(),
        }
    }

    pub(crate) fn hold(reason: impl Into<String>) -> Self {
        Self {
            action: None,
            reason: reason.into(),
        }
    }

    /// Whether the decision is to act.
    pub fn is_action(&self) -> bool {
        self.action.is_some()
    }
}

/// A change of a workload's replica count, through its `/scale` subresource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaChange {
    /// Replicas before the change.
    pub from: i32,
    /// Replicas after the change.
    pub to: i32,
}
