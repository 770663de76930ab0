//! The last step of a reconcile: telling what happened. Metrics for every sample, an Event and
//! a message for every action, Events for conditions that changed, the rollout's own Events and
//! messages, and the launch updates that fell due. Nothing here changes what was decided.

use kube::{ResourceExt, runtime::events::EventType};
use tracing::{info, warn};

use super::{
    Context, events, lookup::KubeLookup, memory::PolicyMemory, notify, rollout, status, summary,
};
use crate::{
    crd::{LaunchPolicy, LaunchPolicyStatus, NotificationEvent},
    triggers::{self, Applied, Planning},
};

/// Exports every trigger sampled in this reconcile, and every decision to act that was refused.
pub fn samples(ctx: &Context, policy: &LaunchPolicy, plans: &[Planning<'_>]) {
    let (namespace, name) = (policy.namespace().unwrap_or_default(), policy.name_any());
    for p in plans {
        let Some(reading) = &p.reading else { continue };
        let trigger = &p.kind.trigger().name;
        let labels = [namespace.as_str(), name.as_str(), trigger.as_str()];
        let threshold = p.kind.threshold();
        ctx.metrics
            .triggers
            .sampled(labels, reading.sample.value(), threshold);
        if let Some(reason) = p.plan.refused {
            ctx.metrics
                .triggers
                .refused
                .with_label_values(&[&namespace, &name, trigger, reason])
                .inc();
        }
    }
}

/// A metric, a log line, an Event and (on success) a scaling message for every action taken.
pub async fn actions(
    ctx: &Context,
    lookup: &KubeLookup<'_>,
    policy: &LaunchPolicy,
    applied: &[Applied],
) {
    let (namespace, name) = (policy.namespace().unwrap_or_default(), policy.name_any());
    for a in applied {
        let label = a.action.label();
        let labels = [namespace.as_str(), name.as_str(), a.trigger.as_str(), label];
        match &a.result {
            Ok(what) => {
                ctx.metrics
                    .triggers
                    .actions
                    .with_label_values(&labels)
                    .inc();
                info!(trigger = %a.trigger, action = label, "{what}");
                let note = format!("{}: {what}, because {}", a.trigger, a.reason);
                events::publish(&ctx.recorder, policy, EventType::Normal, label, &note).await;
                let event = NotificationEvent::ScalingAction;
                send(ctx, lookup, policy, event, &note).await;
            }
            Err(why) => {
                let failures = &ctx.metrics.triggers.action_failures;
                failures.with_label_values(&labels).inc();
                warn!(trigger = %a.trigger, action = label, error = %why, "action failed");
                let note = format!("{}: {label} failed: {why}", a.trigger);
                let warning = EventType::Warning;
                events::publish(&ctx.recorder, policy, warning, "ActionFailed", &note).await;
            }
        }
    }
}

/// Everything told once `status` is written: conditions that changed, the rollout's Events and
/// messages, and the launch updates that fell due.
pub async fn after_write(
    ctx: &Context,
    lookup: &KubeLookup<'_>,
    policy: &LaunchPolicy,
    status: &LaunchPolicyStatus,
    rollout: Option<&rollout::Evaluation>,
    due_summaries: &[usize],
) {
    launch_updates(ctx, lookup, policy, status, due_summaries).await;
    transitions(ctx, policy, status).await;
    for event in rollout.iter().flat_map(|r| &r.events) {
        let type_ = match event.kind.is_warning() {
            true => EventType::Warning,
            false => EventType::Normal,
        };
        let reason = event.kind.as_str();
        events::publish(&ctx.recorder, policy, type_, reason, &event.message).await;
        if let Some(subscription) = event.kind.notification() {
            send(ctx, lookup, policy, subscription, &event.message).await;
        }
    }
}

/// Sends the periodic launch update to each subscription that is due, now that `status`
/// (which records the send) is written.
async fn launch_updates(
    ctx: &Context,
    lookup: &KubeLookup<'_>,
    policy: &LaunchPolicy,
    status: &LaunchPolicyStatus,
    due: &[usize],
) {
    for subscription in due.iter().filter_map(|&i| policy.spec.notifications.get(i)) {
        let webhook = summary::webhook_key(subscription);
        let next = status
            .summaries
            .iter()
            .find(|e| e.webhook == webhook)
            .and_then(|e| e.next_at.as_ref());
        let text = summary::text(&policy.spec, status, next);
        notify::send_to(
            &ctx.http,
            &ctx.metrics.notifications_failed,
            lookup,
            subscription,
            &policy.name_any(),
            notify::LAUNCH_UPDATE,
            &text,
        )
        .await;
        info!(%webhook, "launch update queued for the webhook");
    }
}

/// Events for conditions that changed: Ready, Degraded and ScalingActive. One decision, one
/// Event: a rollout phase change is announced by the rollout's own event (`Paused`, `Aborted`,
/// …, with its evidence), so `RolloutProgressing` is not announced again.
async fn transitions(ctx: &Context, policy: &LaunchPolicy, status: &LaunchPolicyStatus) {
    for condition in &status.conditions {
        let healthy = match condition.type_.as_str() {
            status::READY => condition.status == "True",
            triggers::DEGRADED => condition.status == "False",
            rollout::ROLLOUT_PROGRESSING => continue,
            _ => true,
        };
        events::on_transition(&ctx.recorder, policy, condition, healthy).await;
    }
}

/// Sends `message` to every webhook subscribed to `event`.
pub(super) async fn send(
    ctx: &Context,
    lookup: &KubeLookup<'_>,
    policy: &LaunchPolicy,
    event: NotificationEvent,
    message: &str,
) {
    if policy.spec.notifications.is_empty() {
        return;
    }
    notify::send(
        &ctx.http,
        ctx.metrics.notifications_failed.clone(),
        lookup,
        &policy.spec.notifications,
        &policy.name_any(),
        event,
        message,
    )
    .await;
}

/// Exports the rollout's state and keeps its working copy (see [`rollout::display`]); forgets
/// both when the policy no longer has a rollout.
pub fn rollout_state(
    ctx: &Context,
    policy: &LaunchPolicy,
    memory: &mut PolicyMemory,
    written: &LaunchPolicyStatus,
    evaluation: Option<&rollout::Evaluation>,
) {
    let (namespace, name) = (policy.namespace().unwrap_or_default(), policy.name_any());
    let previous = memory.rollout.take();
    let Some(evaluation) = evaluation else {
        if let Some(gone) = previous {
            let gates: Vec<String> = gone.latest.gates.into_iter().map(|g| g.name).collect();
            ctx.metrics.rollouts.forget(&namespace, &name, &gates);
        }
        return;
    };
    let fresh = &evaluation.fresh.state;
    let dropped: Vec<String> = previous
        .iter()
        .flat_map(|p| &p.latest.gates)
        .filter(|g| !fresh.gates.iter().any(|f| f.name == g.name))
        .map(|g| g.name.clone())
        .collect();
    ctx.metrics
        .rollouts
        .forget_gates(&namespace, &name, &dropped);
    ctx.metrics.rollouts.record(&namespace, &name, fresh);
    memory.rollout = Some(rollout::display::Working {
        written: written.rollout.clone().unwrap_or_default(),
        latest: fresh.clone(),
    });
}
