//! One reconcile, as a pipeline: look up references → read every trigger and plan (the
//! decisions are pure) → record the intents in status → act → write the final status (only if
//! it changed) → tell what changed (Events, metrics).

use std::{sync::Arc, time::Duration};

use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, ResourceExt, core::error_boundary::InvalidObject, runtime::controller::Action,
    runtime::events::EventType,
};
use tracing::{Instrument, debug, info, info_span, warn};

use super::{
    Context, Error, events, invalid,
    lookup::KubeLookup,
    notify, references, rollout,
    status::{self, write_if_changed},
    summary,
};
use crate::{
    conditions::Desired,
    crd::{LaunchPolicy, LaunchPolicyStatus, NotificationEvent, RolloutStatus, TriggerStatus},
    triggers::{self, Applied, Facts, Hold, Planning, TriggerKind, platform::Platform},
};

/// Floor for `spec.scaling.interval` and `spec.statusRefresh`: a `0s` in the spec must not turn
/// into a hot loop of samples and status writes.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The key of a policy in the controller's memory: `namespace/name`.
pub fn key(policy: &impl kube::Resource) -> String {
    format!(
        "{}/{}",
        policy.namespace().unwrap_or_default(),
        policy.name_any()
    )
}

/// How long a reconcile waits for the workload caches' first list before it is requeued.
const CACHE_SYNC_WAIT: Duration = Duration::from_secs(10);

pub async fn reconcile(watched: Arc<super::Watched>, ctx: Arc<Context>) -> Result<Action, Error> {
    let policy = match &watched.0 {
        Ok(policy) => policy,
        Err(invalid) => {
            // Not retried: the policy is read again when it changes.
            invalid::report(invalid, &ctx).await?;
            return Ok(Action::await_change());
        }
    };
    let namespace = policy.namespace().ok_or(Error::NoNamespace)?;
    let triggers = policy
        .spec
        .scaling
        .as_ref()
        .map(|s| s.triggers.as_slice())
        .unwrap_or_default();
    let kinds = match triggers::kinds(triggers) {
        Ok(kinds) => kinds,
        // Stored under an older CRD that let it through: reported like a policy that cannot be
        // read at all.
        Err(error) => {
            let invalid = InvalidObject {
                error,
                metadata: policy.metadata.clone(),
            };
            invalid::report(&invalid, &ctx).await?;
            return Ok(Action::await_change());
        }
    };
    ctx.metrics
        .invalid_policies
        .remove_label_values(&[&namespace, &policy.name_any()])
        .ok();
    let span = info_span!("reconcile", namespace = %namespace, policy = %policy.name_any());
    let action = reconcile_policy(policy, &kinds, &ctx, &namespace)
        .instrument(span)
        .await?;
    ctx.backoff.succeeded(&key(policy));
    Ok(action)
}

async fn reconcile_policy(
    policy: &LaunchPolicy,
    kinds: &[TriggerKind<'_>],
    ctx: &Context,
    namespace: &str,
) -> Result<Action, Error> {
    // A new leader must not judge references (or act beside an HPA) from caches that have not
    // listed yet. The caches sync on their own tasks, so this wait is short after startup and
    // free afterwards. A cache that takes longer (a huge cluster, RBAC that forbids the list) is
    // not the policy's failure: no Event, no backoff; the operator is not ready meanwhile and
    // the cache's task logs why.
    if tokio::time::timeout(CACHE_SYNC_WAIT, ctx.caches.wait_synced()).await != Ok(true) {
        debug!("the workload caches have not listed yet; reconciling again shortly");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let _timer = ctx.metrics.reconcile_started();
    let api: Api<LaunchPolicy> = Api::namespaced(ctx.client.clone(), namespace);
    let lookup = KubeLookup {
        client: &ctx.client,
        caches: &ctx.caches,
        secrets: &ctx.secrets,
        namespace,
    };
    let problems = references::check(&policy.spec, &lookup).await;
    let ready = status::ready_condition(&problems, policy.spec.suspend);
    let now = Timestamp::now();

    let scaling = policy.spec.scaling.as_ref();
    let triggers = scaling.map(|s| s.triggers.as_slice()).unwrap_or_default();
    let previous = policy
        .status
        .as_ref()
        .map(|s| s.triggers.as_slice())
        .unwrap_or_default();
    let facts = Facts {
        now,
        status_refresh: Duration::from(policy.spec.status_refresh).max(MIN_INTERVAL),
        hold: if policy.spec.suspend {
            Some(Hold::Suspended)
        } else if !problems.is_empty() {
            Some(Hold::NotReady)
        } else {
            None
        },
    };
    let platform = Platform {
        client: &ctx.client,
        lookup: &lookup,
        pools: &ctx.pools,
        namespace,
        prometheus: policy.spec.prometheus.as_ref(),
    };
    let key = key(policy);
    let mut histories = ctx.memory.take(&key);
    if triggers::is_stale(previous, &histories, now) {
        remember(ctx, policy, histories, triggers);
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let interval = scaling
        .map(|s| Duration::from(s.interval))
        .unwrap_or_default();
    let mut plans = triggers::read_and_plan(
        kinds,
        previous,
        &platform,
        &mut histories,
        facts,
        interval,
        policy.metadata.generation,
    )
    .await;
    record_samples(ctx, namespace, policy, &plans);
    let rollout = match &policy.spec.rollout {
        Some(spec) => {
            let working = histories.rollout.as_ref();
            let unpublished = match never_published(ctx, policy, namespace, &histories).await {
                Ok(unpublished) => unpublished,
                Err(e) => {
                    remember(ctx, policy, histories, triggers);
                    return Err(e);
                }
            };
            let io = (&ctx.pools, &lookup);
            let refresh = facts.status_refresh;
            Some(rollout::evaluate(policy, spec, io, working, refresh, now, unpublished).await)
        }
        None => None,
    };
    let rollout_status = rollout.as_ref().map(|r| r.status.clone());
    let summaries = summary::schedule(
        &policy.spec.notifications,
        policy
            .status
            .as_ref()
            .map(|s| s.summaries.as_slice())
            .unwrap_or_default(),
        summary::live(rollout_status.as_ref().map(|r| r.state.phase)),
        now,
    );

    // Record what is about to be done before doing it: a crash after this write re-applies the
    // same targets; a crash before it decides afresh. Either way no action is doubled.
    let mut stored = policy.status.clone();
    let mut version = policy.metadata.resource_version.clone();
    if let Some(intents) = triggers::intents(&plans, now) {
        let rollout = rollout_status.clone();
        let intent = assemble(policy, &ready, intents, rollout, &summaries, now);
        if let Err(e) = write(ctx, &api, policy, &mut version, stored.as_ref(), &intent).await {
            remember(ctx, policy, histories, triggers);
            return Err(e);
        }
        stored = Some(intent);
    }
    if let Err(e) = ctx.ensure_leader() {
        remember(ctx, policy, histories, triggers);
        return Err(e);
    }
    let applied = triggers::apply_all(&mut plans, &platform, &mut histories, now).await;
    remember(ctx, policy, histories, triggers);
    record_actions(ctx, namespace, policy, &applied).await;
    for a in applied.iter().filter(|a| a.result.is_ok()) {
        let what = a.result.as_deref().unwrap_or_default();
        let message = format!("{}: {what}, because {}", a.trigger, a.reason);
        notify(
            ctx,
            &lookup,
            policy,
            NotificationEvent::ScalingAction,
            &message,
        )
        .await;
    }

    let statuses: Vec<TriggerStatus> = plans.into_iter().map(|p| p.plan.status).collect();
    let mut new_status = assemble(policy, &ready, statuses, rollout_status, &summaries, now);
    if let Some(evaluation) = &rollout
        && stored.as_ref() != Some(&new_status)
    {
        // Writing anyway: show the freshest gate samples too, at no extra cost.
        new_status.rollout = Some(evaluation.fresh.clone());
    }
    let stored = stored.as_ref();
    write(ctx, &api, policy, &mut version, stored, &new_status).await?;
    remember_rollout(ctx, policy, &key, triggers, &new_status, rollout.as_ref());
    send_summaries(ctx, &lookup, policy, &new_status, &summaries.due).await;
    announce_transitions(ctx, policy, &new_status).await;
    if let Some(evaluation) = &rollout {
        // The cohort first: an event or a message announcing a stage follows the stage reaching
        // the application.
        publish_cohort(ctx, policy, &key, &evaluation.status).await;
        for event in &evaluation.events {
            let type_ = if event.kind.is_warning() {
                EventType::Warning
            } else {
                EventType::Normal
            };
            let reason = event.kind.as_str();
            events::publish(&ctx.recorder, policy, type_, reason, &event.message).await;
            if let Some(subscription) = event.kind.notification() {
                notify(ctx, &lookup, policy, subscription, &event.message).await;
            }
        }
    }

    let settle = if problems.is_empty() {
        ctx.settings.resync
    } else {
        ctx.settings.retry
    };
    let sample_every = scaling
        .filter(|s| !s.triggers.is_empty())
        .map(|s| Duration::from(s.interval).max(MIN_INTERVAL))
        .unwrap_or(settle);
    let next_timer = rollout
        .and_then(|r| r.requeue_after)
        .unwrap_or(settle)
        .max(Duration::from_millis(100));
    let next_summary = summaries.next_in.unwrap_or(settle);
    Ok(Action::requeue(
        settle.min(sample_every).min(next_timer).min(next_summary),
    ))
}

/// Keeps the rollout's working copy (see [`rollout::display`]) and exports its state; forgets
/// both when the policy no longer has a rollout.
fn remember_rollout(
    ctx: &Context,
    policy: &LaunchPolicy,
    key: &str,
    triggers: &[crate::crd::Trigger],
    written: &LaunchPolicyStatus,
    evaluation: Option<&rollout::Evaluation>,
) {
    let (namespace, name) = (policy.namespace().unwrap_or_default(), policy.name_any());
    let mut memory = ctx.memory.take(key);
    let previous = memory.rollout.take();
    match evaluation {
        Some(evaluation) => {
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
                latest: evaluation.fresh.state.clone(),
            });
        }
        None => {
            if let Some(gone) = previous {
                let gates: Vec<String> = gone.latest.gates.into_iter().map(|g| g.name).collect();
                ctx.metrics.rollouts.forget(&namespace, &name, &gates);
            }
        }
    }
    remember(ctx, policy, memory, triggers);
}

/// Sends the periodic launch update to each subscription that is due, now that `status`
/// (which records the send) is written.
async fn send_summaries(
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

/// Hands a policy's histories back to memory; a trigger no longer in the spec is forgotten
/// there and its metric series are dropped, so no dashboard or alert shows a trigger that is gone.
fn remember(
    ctx: &Context,
    policy: &LaunchPolicy,
    histories: triggers::Histories,
    triggers: &[crate::crd::Trigger],
) {
    let names: Vec<&str> = triggers.iter().map(|t| t.name.as_str()).collect();
    let forgotten = ctx.memory.put(&key(policy), histories, &names);
    let (namespace, name) = (policy.namespace().unwrap_or_default(), policy.name_any());
    for trigger in &forgotten {
        ctx.metrics.triggers.forget([&namespace, &name, trigger]);
    }
}

/// The whole status: conditions from the references, the triggers and the rollout, the
/// triggers' and the rollout's own status, and the launch updates' schedule.
fn assemble(
    policy: &LaunchPolicy,
    ready: &Desired,
    triggers: Vec<TriggerStatus>,
    rollout: Option<RolloutStatus>,
    summaries: &summary::Schedule,
    now: Timestamp,
) -> LaunchPolicyStatus {
    let mut wanted = vec![ready.clone()];
    wanted.extend(triggers::scaling_conditions(&triggers));
    wanted.extend(rollout.as_ref().map(rollout::condition));
    let mut status = status::desired(policy, &wanted, now);
    status.triggers = triggers;
    status.rollout = rollout;
    status.summaries = summaries.entries.clone();
    status
}

async fn notify(
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

/// Whether the stage that status records was never published: checked only until this process
/// has published the policy's cohort itself (i.e. after a start or a takeover), by reading the
/// cohort's ConfigMaps. The operator that recorded the stage may have died before publishing
/// it; within one process the cohort is published right after the status write. A read that
/// fails counts as published (the stage carries on as recorded).
async fn never_published(
    ctx: &Context,
    policy: &LaunchPolicy,
    namespace: &str,
    memory: &triggers::Histories,
) -> Result<bool, Error> {
    let Some(state) = policy.status.as_ref().and_then(|s| s.rollout.as_ref()) else {
        return Ok(false);
    };
    let Some(spec) = policy.spec.rollout.as_ref().and_then(|r| r.cohort.as_ref()) else {
        return Ok(false);
    };
    if memory.published_cohort.is_some() || state.state.stage.is_none() {
        return Ok(false);
    }
    match rollout::cohort::is_published(&ctx.client, namespace, spec, &state.state).await {
        Ok(published) => {
            if !published {
                warn!(stage = ?state.state.stage_name, "the stage in status was never published; it is published now and bakes from now");
            }
            Ok(!published)
        }
        // Neither guess is safe (advancing could skip a cohort, re-entering restarts a bake):
        // retry the reconcile instead.
        Err(e) => {
            warn!(error = %e, "cannot read the published cohort; the reconcile is retried");
            Err(Error::CohortUnreadable(e.to_string()))
        }
    }
}

/// Publishes the cohort that status now records, unless this process already published it.
async fn publish_cohort(ctx: &Context, policy: &LaunchPolicy, key: &str, status: &RolloutStatus) {
    let Some(spec) = policy.spec.rollout.as_ref().and_then(|r| r.cohort.as_ref()) else {
        return;
    };
    let signature = format!(
        "{:?}|{}",
        rollout::cohort::cohort_data(&status.state),
        serde_json::to_string(spec).unwrap_or_default()
    );
    let mut memory = ctx.memory.take(key);
    if memory.published_cohort.as_deref() != Some(signature.as_str()) {
        match rollout::cohort::publish(&ctx.client, policy, spec, &status.state).await {
            Ok(()) => {
                info!(users = %status.state.users, "cohort published");
                memory.published_cohort = Some(signature);
            }
            Err(e) => {
                warn!(error = %e, "cohort not published");
                events::publish(
                    &ctx.recorder,
                    policy,
                    EventType::Warning,
                    "CohortNotPublished",
                    &e,
                )
                .await;
            }
        }
    }
    ctx.memory.put_back(key, memory);
}

/// Writes `status` if it differs from `stored`, on condition that the policy is still at
/// `version` (which is then advanced to the written version).
async fn write(
    ctx: &Context,
    api: &Api<LaunchPolicy>,
    policy: &LaunchPolicy,
    version: &mut Option<String>,
    stored: Option<&LaunchPolicyStatus>,
    status: &LaunchPolicyStatus,
) -> Result<(), Error> {
    if stored != Some(status) {
        ctx.ensure_leader()?;
    }
    let name = policy.name_any();
    match write_if_changed(api, &name, version.as_deref(), stored, status).await {
        Ok(Some(written)) => {
            *version = Some(written);
            ctx.metrics.status_writes.inc();
            info!("status updated");
        }
        Ok(None) => ctx.metrics.status_writes_skipped.inc(),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            info!("status not written: the policy changed since it was read");
            return Err(Error::Stale);
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

fn record_samples(ctx: &Context, namespace: &str, policy: &LaunchPolicy, plans: &[Planning<'_>]) {
    let name = policy.name_any();
    for p in plans {
        let Some(reading) = &p.reading else { continue };
        let trigger = &p.kind.trigger().name;
        let labels = [namespace, name.as_str(), trigger.as_str()];
        let threshold = p.kind.threshold();
        ctx.metrics
            .triggers
            .sampled(labels, reading.sample.value(), threshold);
        if let Some(reason) = p.plan.refused {
            ctx.metrics
                .triggers
                .refused
                .with_label_values(&[namespace, &name, trigger, reason])
                .inc();
        }
    }
}

async fn record_actions(
    ctx: &Context,
    namespace: &str,
    policy: &LaunchPolicy,
    applied: &[Applied],
) {
    let name = policy.name_any();
    for a in applied {
        let labels = [
            namespace,
            name.as_str(),
            a.trigger.as_str(),
            a.action.label(),
        ];
        match &a.result {
            Ok(what) => {
                ctx.metrics
                    .triggers
                    .actions
                    .with_label_values(&labels)
                    .inc();
                info!(trigger = %a.trigger, action = a.action.label(), "{what}");
                let note = format!("{}: {what}, because {}", a.trigger, a.reason);
                events::publish(
                    &ctx.recorder,
                    policy,
                    EventType::Normal,
                    a.action.label(),
                    &note,
                )
                .await;
            }
            Err(why) => {
                ctx.metrics
                    .triggers
                    .action_failures
                    .with_label_values(&labels)
                    .inc();
                warn!(trigger = %a.trigger, action = a.action.label(), error = %why, "action failed");
                let note = format!("{}: {} failed: {why}", a.trigger, a.action.label());
                events::publish(
                    &ctx.recorder,
                    policy,
                    EventType::Warning,
                    "ActionFailed",
                    &note,
                )
                .await;
            }
        }
    }
}

/// Events for conditions that changed: Ready, Degraded and ScalingActive.
/// One decision, one Event: a rollout phase change is announced by the rollout's own event
/// (`Paused`, `Aborted`, …, with its evidence), so `RolloutProgressing` is not announced again.
async fn announce_transitions(ctx: &Context, policy: &LaunchPolicy, status: &LaunchPolicyStatus) {
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
