//! The last step of a reconcile: telling what happened. Metrics for every sample, an Event and
//! a message for every action, Events for conditions that changed, the rollout's own Events and
//! messages, and the launch updates that fell due. Nothing here changes what was decided.

use k8s_openapi::jiff::Timestamp;
use kube::{ResourceExt, runtime::events::EventType};
use tracing::{info, warn};

use super::{
    Context, events,
    lookup::KubeLookup,
    memory::PolicyMemory,
    notify, rollout, status, summary,
    update::{self, Figure},
};
use crate::{
    crd::{JournalEntry, LaunchPolicy, LaunchPolicyStatus, NotificationEvent},
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

/// A metric, a log line and an Event for every action taken (the war room hears of it from the
/// journal, after the status write).
pub async fn actions(ctx: &Context, policy: &LaunchPolicy, applied: &[Applied]) {
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

/// Everything told once `status` is written: conditions that changed, the rollout's Events, the
/// journal's news, and the launch updates that fell due.
pub async fn after_write(
    ctx: &Context,
    lookup: &KubeLookup<'_>,
    policy: &LaunchPolicy,
    status: &LaunchPolicyStatus,
    rollout: Option<&rollout::Evaluation>,
    news: &[JournalEntry],
    due_summaries: &[summary::Due],
) {
    for entry in news {
        send(ctx, lookup, policy, entry.event, &entry.message).await;
    }
    launch_updates(ctx, lookup, policy, status, due_summaries).await;
    transitions(ctx, policy, status).await;
    for event in rollout.iter().flat_map(|r| &r.events) {
        let type_ = match event.kind.is_warning() {
            true => EventType::Warning,
            false => EventType::Normal,
        };
        let reason = event.kind.as_str();
        events::publish(&ctx.recorder, policy, type_, reason, &event.message).await;
    }
}

/// Sends the launch update to each subscription that is due, now that `status` (which records
/// the send) is written. The team's figures are read once for all of them.
async fn launch_updates(
    ctx: &Context,
    lookup: &KubeLookup<'_>,
    policy: &LaunchPolicy,
    status: &LaunchPolicyStatus,
    due: &[summary::Due],
) {
    if due.is_empty() {
        return;
    }
    let figures = figures(ctx, lookup, policy).await;
    let now = Timestamp::now();
    let name = policy.name_any();
    for d in due {
        let Some(subscription) = policy.spec.notifications.get(d.index) else {
            continue;
        };
        let webhook = summary::webhook_key(subscription);
        let next = status
            .summaries
            .iter()
            .find(|e| e.webhook == webhook)
            .and_then(|e| e.next_at.as_ref());
        let update = update::compose(&policy.spec, status, figures.clone(), d.since, next, now);
        let text = update.text();
        let message = notify::Message {
            namespace: lookup.namespace,
            policy: &name,
            label: notify::LAUNCH_UPDATE,
            text: &text,
            update: Some(&update),
        };
        let failures = &ctx.metrics.notifications_failed;
        notify::send_to(&ctx.http, failures, lookup, subscription, &message).await;
        info!(%webhook, "launch update queued for the webhook");
    }
}

/// The figures of `spec.summary.metrics`, read from `spec.prometheus` now; a figure that cannot
/// be read says so in the update (`no data`) and is logged.
async fn figures(ctx: &Context, lookup: &KubeLookup<'_>, policy: &LaunchPolicy) -> Vec<Figure> {
    let metrics = policy
        .spec
        .summary
        .as_ref()
        .map(|s| s.metrics.as_slice())
        .unwrap_or_default();
    let Some(prometheus) = policy
        .spec
        .prometheus
        .as_ref()
        .filter(|_| !metrics.is_empty())
    else {
        return Vec::new();
    };
    let client = ctx.pools.prometheus(lookup, prometheus).await;
    let reads = metrics.iter().map(|m| {
        let client = client.as_ref();
        async move {
            let value = match client {
                Ok(c) => c
                    .query_value(&m.query)
                    .await
                    .inspect_err(|e| warn!(figure = %m.name, error = %e, "summary figure not read"))
                    .ok(),
                Err(_) => None,
            };
            Figure::of(m, value)
        }
    });
    futures::future::join_all(reads).await
}

/// Announces the launch report, now that status records it: an Event naming its ConfigMap, and
/// the report itself to the webhooks subscribed to `LaunchReport`.
pub async fn launch_report(
    ctx: &Context,
    lookup: &KubeLookup<'_>,
    policy: &LaunchPolicy,
    markdown: &str,
) {
    let config_map = super::launch_report::config_map(&policy.name_any());
    let note = format!(
        "launch report written to ConfigMap {config_map} (key {})",
        super::launch_report::KEY
    );
    info!("{note}");
    events::publish(
        &ctx.recorder,
        policy,
        EventType::Normal,
        "LaunchReport",
        &note,
    )
    .await;
    let message = super::launch_report::for_chat(markdown, &config_map);
    send(
        ctx,
        lookup,
        policy,
        NotificationEvent::LaunchReport,
        &message,
    )
    .await;
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
    let none = crate::crd::RolloutStatus::default();
    let written = written.rollout.as_deref().unwrap_or(&none);
    memory.rollout = Some(Box::new(rollout::display::Working::new(
        written,
        fresh.clone(),
    )));
}

/// Exports the kill switches as they stand, and drops the series of switches no longer in the
/// spec.
pub fn switches(
    ctx: &Context,
    policy: &LaunchPolicy,
    memory: &mut PolicyMemory,
    switches: &[crate::crd::KillSwitchStatus],
) {
    let (namespace, name) = (policy.namespace().unwrap_or_default(), policy.name_any());
    let now: Vec<String> = switches.iter().map(|k| k.name.clone()).collect();
    let dropped: Vec<String> = memory
        .switches
        .iter()
        .filter(|n| !now.contains(n))
        .cloned()
        .collect();
    ctx.metrics
        .rollouts
        .record_switches(&namespace, &name, switches, &dropped);
    memory.switches = now;
}
