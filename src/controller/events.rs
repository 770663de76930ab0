//! Kubernetes Events for what Liftoff decides. Publishing is best effort: a failure is logged,
//! never allowed to fail a reconcile.

use std::sync::Arc;

use kube::{
    Resource,
    runtime::events::{Event, EventType, Recorder},
};
use tokio::sync::Semaphore;
use tracing::warn;

use k8s_openapi::{api::core::v1::ObjectReference, apimachinery::pkg::apis::meta::v1::Condition};

use crate::{conditions, crd::LaunchPolicy};

/// Writes Liftoff sends the apiserver at once, status and Events together: a fresh operator
/// over 10,000 stored policies would otherwise fire thousands at the same moment, and an
/// apiserver that cannot take them answers 504. Each write is quick, so a wait for a turn is
/// short; a slow Prometheus or a dead address holds no turn (only writes do).
pub const WRITES_IN_FLIGHT: usize = 32;

/// kube's event recorder, sending at most [`WRITES_IN_FLIGHT`] writes (shared with the status
/// writes: see [`Publisher::turns`]) at a time.
pub struct Publisher {
    recorder: Recorder,
    turns: Arc<Semaphore>,
}

impl Publisher {
    pub fn new(recorder: Recorder) -> Publisher {
        Publisher {
            recorder,
            turns: Arc::new(Semaphore::new(WRITES_IN_FLIGHT)),
        }
    }

    /// The turns every write to the apiserver takes one of.
    pub fn turns(&self) -> &Semaphore {
        &self.turns
    }
}

/// Emits an event when a condition's status or reason differs from the stored object's: Normal
/// when the new state is `healthy`, Warning otherwise. A healthy condition seen for the first
/// time is not announced, `Ready` included: a new policy's status says it is Ready, and an Event
/// per policy would double the apiserver writes it takes to bring a fleet to Ready.
pub async fn on_transition(
    recorder: &Publisher,
    policy: &LaunchPolicy,
    condition: &Condition,
    healthy: bool,
) {
    let previous = policy
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, &condition.type_));
    match previous {
        Some(p) if p.status == condition.status && p.reason == condition.reason => return,
        None if healthy => return,
        _ => {}
    }
    let type_ = if healthy {
        EventType::Normal
    } else {
        EventType::Warning
    };
    publish(
        recorder,
        policy,
        type_,
        &condition.reason,
        &condition.message,
    )
    .await;
}

/// A Warning event for a failed reconcile; `reason` is a stable PascalCase category. `policy`
/// may be a LaunchPolicy or a cached one that could not be read.
pub async fn warning<K>(recorder: &Publisher, policy: &K, reason: &str, note: &str)
where
    K: Resource<DynamicType = ()>,
{
    publish_ref(
        recorder,
        &policy.object_ref(&()),
        EventType::Warning,
        reason,
        note,
    )
    .await;
}

/// Publishes one event about `policy`; failures are logged and otherwise ignored.
pub async fn publish(
    recorder: &Publisher,
    policy: &LaunchPolicy,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    publish_ref(recorder, &policy.object_ref(&()), type_, reason, note).await;
}

/// Publishes one event about the object `regarding`; failures are logged and otherwise ignored.
pub async fn publish_ref(
    recorder: &Publisher,
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(conditions::truncate(note, 1000)),
        action: action(note),
        secondary: None,
    };
    // Never closed: a turn is always granted in the end.
    let _turn = recorder.turns.acquire().await;
    if let Err(e) = recorder.recorder.publish(&event, regarding).await {
        warn!(error = %e, reason, "could not publish event");
    }
}

/// The Event's `action`. kube's recorder folds events with the same type, reason and action into
/// one series (count + 1, first note kept) for minutes; "entered stage gradual" must not become
/// a repeat of "entered stage internal-beta". So the action carries a digest of the note:
/// identical events still fold, different ones stay separate.
fn action(note: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    note.hash(&mut hasher);
    format!("Reconcile-{:08x}", hasher.finish() as u32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn different_notes_get_different_actions_and_equal_notes_the_same() {
        let a = super::action("entered stage internal-beta (100 users)");
        let b = super::action("entered stage gradual (500 users)");
        assert_ne!(a, b);
        assert_eq!(a, super::action("entered stage internal-beta (100 users)"));
        assert!(a.len() <= 128);
    }
}
