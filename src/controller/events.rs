//! Kubernetes Events for what Liftoff decides. Publishing is best effort: a failure is logged,
//! never allowed to fail a reconcile.

use kube::{
    Resource,
    runtime::events::{Event, EventType, Recorder},
};
use tracing::warn;

use crate::{
    conditions::{self, Desired},
    crd::LaunchPolicy,
};

/// Emits an event when the Ready condition changes status or reason compared with the stored object.
pub async fn on_transition(recorder: &Recorder, policy: &LaunchPolicy, ready: &Desired) {
    let previous = policy
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, ready.type_));
    let status = if ready.status { "True" } else { "False" };
    if previous.is_some_and(|p| p.status == status && p.reason == ready.reason) {
        return;
    }
    let type_ = if ready.status {
        EventType::Normal
    } else {
        EventType::Warning
    };
    publish(recorder, policy, type_, &ready.reason, &ready.message).await;
}

/// A Warning event for a failed reconcile; `reason` is a stable PascalCase category.
pub async fn warning(recorder: &Recorder, policy: &LaunchPolicy, reason: &str, note: &str) {
    publish(recorder, policy, EventType::Warning, reason, note).await;
}

async fn publish(
    recorder: &Recorder,
    policy: &LaunchPolicy,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(conditions::truncate(note, 1000)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &policy.object_ref(&())).await {
        warn!(error = %e, reason, "could not publish event");
    }
}
