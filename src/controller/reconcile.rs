//! One reconcile, as a short driver of named steps: resolve the LaunchSources the policy names →
//! validate (every trigger has a kind) →
//! dereference (what the spec points to: `Ready`) → sample and decide (the triggers that are
//! due, then the rollout; the decisions are pure) → record the intents in status → act → write
//! the final status (only if it changed) → report (the cohort, Events, messages, metrics).

use std::{sync::Arc, time::Duration};

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, ResourceExt,
    core::error_boundary::InvalidObject,
    runtime::{controller::Action, reflector::ObjectRef},
};
use tracing::{Instrument, debug, info, info_span};

use super::{
    Context, Error, contingency, invalid, journal, launch_report,
    lookup::KubeLookup,
    memory::{Held, PolicyMemory},
    publish, references, report, rollout,
    status::{self, write_if_changed},
    summary,
};
use crate::{
    conditions::Desired,
    crd::{LaunchPolicy, LaunchPolicyStatus, RolloutStatus, TriggerStatus},
    sources::address::AddressPolicy,
    triggers::{self, Facts, Hold, TriggerKind, platform::Platform},
};

/// Floor for `spec.scaling.interval` and `spec.statusRefresh`: a `0s` in the spec must not turn
/// into a hot loop of samples and status writes.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// A policy's `namespace/name`: its key for the retry backoff and `liftoff_invalid_policies`.
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
    let policy = match watched.policy() {
        Ok(policy) => policy,
        Err(invalid) => {
            // Not retried: the policy is read again when it changes.
            invalid::report(&invalid, &ctx).await?;
            return Ok(Action::await_change());
        }
    };
    let namespace = policy.namespace().ok_or(Error::NoNamespace)?;
    // Before anything reads the spec: the LaunchSources it names, filled in.
    let (policy, source_problems) = ctx.sources.resolve(&policy);
    // The floors the rollout's `scaleUpFirst` sets now, as raised `replicas.min`.
    let policy = rollout::capacity::with_floors(policy, Timestamp::now());
    let policy = policy.as_ref();
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
    let action = reconcile_policy(policy, &kinds, source_problems, &ctx, &namespace)
        .instrument(span)
        .await?;
    ctx.backoff.succeeded(&key(policy));
    Ok(action)
}

/// One reconcile of a readable policy whose triggers all have a kind: a short driver of named
/// steps, each below. The policy's memory is held by a guard, handed back however this ends.
async fn reconcile_policy(
    policy: &LaunchPolicy,
    kinds: &[TriggerKind<'_>],
    source_problems: Vec<references::Problem>,
    ctx: &Context,
    namespace: &str,
) -> Result<Action, Error> {
    // A new leader must not judge references (or act beside an HPA) from caches that have not
    // listed yet. The caches sync on their own tasks, so this wait is short after startup and
    // free afterwards. A cache that takes longer (a huge cluster, RBAC that forbids the list) is
    // not the policy's failure: no Event, no backoff; the operator is not ready meanwhile and
    // the cache's task logs why.
    let synced = async { ctx.caches.wait_synced().await && ctx.sources.wait_synced().await };
    if tokio::time::timeout(CACHE_SYNC_WAIT, synced).await != Ok(true) {
        debug!("the workload caches have not listed yet; reconciling again shortly");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let _timer = ctx.metrics.reconcile_started();
    let now = Timestamp::now();
    let lookup = KubeLookup {
        client: &ctx.client,
        caches: &ctx.caches,
        secrets: &ctx.secrets,
        namespace,
    };
    let mut memory = Held::take(ctx, policy);

    // Dereference: what the spec points to → Ready, and whether actions are held.
    let refs = dereference(policy, source_problems, &lookup, ctx.pools.policy(), now).await;
    let previous = previous_triggers(policy);
    if triggers::is_stale(previous, &memory.scaling, now) {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }

    // Sample and decide: the triggers that are due, then the rollout.
    let interval = policy.spec.scaling_interval();
    let policy_name = policy.name_any();
    let platform = Platform {
        client: &ctx.client,
        lookup: &lookup,
        pools: &ctx.pools,
        namespace,
        policy: &policy_name,
        prometheus: policy.spec.prometheus.as_ref(),
        reuse: interval.min(ctx.settings.query_reuse),
    };
    let scaling = &mut memory.scaling;
    let due = triggers::Due {
        interval,
        generation: policy.metadata.generation,
        // A workload deleted or an HPA changed under the policy: its triggers say so now.
        urgent: ctx
            .urgent
            .take(&ObjectRef::from_obj(policy).into_kind_unchecked(())),
        annotations: policy.annotations(),
        managed_fields: policy
            .metadata
            .managed_fields
            .as_deref()
            .unwrap_or_default(),
    };
    let mut plans =
        triggers::read_and_plan(kinds, previous, &platform, scaling, refs.facts, due).await;
    report::samples(ctx, policy, &plans);
    let capacity = rollout::capacity::holds(plans.iter().map(|p| &p.plan.status));
    let rollout = step_rollout(ctx, policy, &lookup, &memory, refs.facts, capacity).await?;
    let rollout_status = rollout.as_ref().map(|r| r.status.clone());
    let switches = contingency::step(policy, &plans, rollout.as_ref(), now);
    // The news of these decisions, recorded with the first write below.
    let stored = policy.status.as_ref();
    let stored_launch = stored.and_then(|s| s.launch.as_ref());
    let started = rollout_status
        .as_ref()
        .is_none_or(|r| r.state.stage.is_some());
    let mut news = {
        let decided = journal::Decided {
            policy: (namespace, &policy_name),
            rollout: rollout
                .as_ref()
                .map(|r| r.events.as_slice())
                .unwrap_or_default(),
            flips: switches
                .as_ref()
                .map(|s| s.flips.as_slice())
                .unwrap_or_default(),
        };
        // What the news compares: the triggers' and the rollout's new status.
        let next = LaunchPolicyStatus {
            triggers: plans.iter().map(|p| p.plan.status.clone()).collect(),
            rollout: rollout_status.clone().map(Box::new),
            ..Default::default()
        };
        journal::decided(&decided, stored, &next, now)
    };

    // Record intent: a crash after this write re-applies the same targets; a crash before it
    // decides afresh. Either way no action is doubled, and no decision goes unjournaled.
    let mut writer = StatusWriter::new(ctx, policy);
    if let Some(intents) = triggers::intents(&plans, now) {
        let rollout = rollout_status.clone();
        let decided = (rollout, switches.as_ref());
        let mut intent = assemble(policy, &refs.ready, intents, decided, now);
        intent.launch = journal::record(stored_launch, started, &news, None, now);
        writer.write(&intent).await?;
    }

    // Act.
    ctx.ensure_leader()?;
    let applied = triggers::apply_all(&mut plans, &platform, &mut memory.scaling, now).await;
    report::actions(ctx, policy, &applied).await;
    news.extend(journal::acted(&applied, stored, now));

    // Write status, only if it changed: the decisions, then what the war room is told of them.
    let sampled: Vec<(String, Option<f64>)> = plans
        .iter()
        .map(|p| {
            let value = p.reading.as_ref().and_then(|r| r.sample.value());
            (p.kind.trigger().name.clone(), value)
        })
        .collect();
    let statuses: Vec<TriggerStatus> = plans.into_iter().map(|p| p.plan.status).collect();
    let mut status = assemble(
        policy,
        &refs.ready,
        statuses,
        (rollout_status, switches.as_ref()),
        now,
    );
    if let Some(evaluation) = &rollout
        && !writer.holds(&status)
    {
        // Writing anyway: show the freshest gate samples too, at no extra cost.
        status.rollout = Some(Box::new(evaluation.fresh.clone()));
    }
    // Peaks ride along with a write that happens anyway; they never cause one.
    let samples = (!news.is_empty() || !writer.holds(&status))
        .then(|| journal::samples(sampled.iter().map(|(n, v)| (n.as_str(), *v)), &status));
    status.launch = journal::record(stored_launch, started, &news, samples.as_deref(), now);
    let summaries = schedule_summaries(policy, &status, now);
    status.summaries = summaries.entries.clone();
    let report = write_launch_report(ctx, policy, &mut status, now).await;
    writer.write(&status).await?;

    // Report: the cohort first, so an Event or a message announcing a stage follows the stage
    // reaching the application.
    report::rollout_state(ctx, policy, &mut memory, &status, rollout.as_ref());
    if let Some(evaluation) = &rollout {
        publish::cohort(ctx, policy, &mut memory, &evaluation.status).await;
    }
    contingency::publish(ctx, policy, &mut memory, &status.kill_switches).await;
    report::switches(ctx, policy, &mut memory, &status.kill_switches);
    if let Some(decision) = &switches {
        contingency::report(ctx, policy, decision).await;
    }
    report::after_write(
        ctx,
        &lookup,
        policy,
        &status,
        rollout.as_ref(),
        &news,
        &summaries.due,
    )
    .await;
    let report_timer = match report {
        Report::NotDue => launch_report::next_in(policy, &status, now),
        Report::Written(markdown) => {
            report::launch_report(ctx, &lookup, policy, &markdown).await;
            None
        }
        // Not again at once: the ConfigMap is tried again with the reference retry period.
        Report::Failed => Some(ctx.settings.retry),
    };
    let timers = Timers {
        rollout: rollout.as_ref().and_then(|r| r.requeue_after),
        summary: summaries.next_in,
        report: report_timer,
    };
    Ok(next_reconcile(ctx, policy, &refs, timers))
}

/// What became of the launch report in this reconcile.
enum Report {
    NotDue,
    /// Written to its ConfigMap and recorded in status; sent once status is written.
    Written(String),
    /// The ConfigMap could not be written (an Event says why).
    Failed,
}

/// Writes the launch report when it falls due, and records that in `status`.
async fn write_launch_report(
    ctx: &Context,
    policy: &LaunchPolicy,
    status: &mut LaunchPolicyStatus,
    now: Timestamp,
) -> Report {
    let Some(due) = launch_report::due_at(policy, status) else {
        return Report::NotDue;
    };
    if now < due || ctx.ensure_leader().is_err() {
        return Report::NotDue;
    }
    let markdown = launch_report::markdown(policy, status, now);
    match launch_report::publish(&ctx.client, policy, &markdown).await {
        Ok(()) => match status.launch.as_mut() {
            Some(launch) => {
                launch.report_written_at = Some(Time(now));
                Report::Written(markdown)
            }
            None => Report::NotDue,
        },
        Err(why) => {
            let warning = kube::runtime::events::EventType::Warning;
            super::events::publish(&ctx.recorder, policy, warning, "LaunchReportFailed", &why)
                .await;
            Report::Failed
        }
    }
}

/// The timers a policy waits on besides its samples.
struct Timers {
    rollout: Option<Duration>,
    summary: Option<Duration>,
    report: Option<Duration>,
}

/// What the references say: the `Ready` condition, and the policy-wide facts plans depend on.
struct Dereferenced {
    problems: usize,
    ready: Desired,
    facts: Facts,
}

async fn dereference(
    policy: &LaunchPolicy,
    mut problems: Vec<references::Problem>,
    lookup: &KubeLookup<'_>,
    addresses: &AddressPolicy,
    now: Timestamp,
) -> Dereferenced {
    problems.extend(references::refused_addresses(&policy.spec, addresses));
    problems.extend(references::check(&policy.spec, lookup).await);
    let ready = status::ready_condition(&problems, policy.spec.suspend);
    let hold = match (policy.spec.suspend, problems.is_empty()) {
        (true, _) => Some(Hold::Suspended),
        (false, false) => Some(Hold::NotReady),
        (false, true) => None,
    };
    let facts = Facts {
        now,
        status_refresh: Duration::from(policy.spec.status_refresh).max(MIN_INTERVAL),
        interval: policy.spec.scaling_interval(),
        hold,
    };
    Dereferenced {
        problems: problems.len(),
        ready,
        facts,
    }
}

fn previous_triggers(policy: &LaunchPolicy) -> &[TriggerStatus] {
    policy
        .status
        .as_ref()
        .map(|s| s.triggers.as_slice())
        .unwrap_or_default()
}

/// Steps the rollout, if the policy has one.
async fn step_rollout(
    ctx: &Context,
    policy: &LaunchPolicy,
    lookup: &KubeLookup<'_>,
    memory: &PolicyMemory,
    facts: Facts,
    capacity: Vec<crate::engine::rollout::CapacityHold>,
) -> Result<Option<rollout::Evaluation>, Error> {
    let Some(spec) = &policy.spec.rollout else {
        return Ok(None);
    };
    let unpublished = publish::never_published(ctx, policy, lookup.namespace, memory).await?;
    let io = (&ctx.pools, lookup, ctx.settings.query_reuse);
    let working = memory.rollout.as_deref();
    let pace = rollout::display::Pace {
        refresh: facts.status_refresh,
        writes_busy: ctx.recorder.turns().available_permits() == 0,
    };
    let ready = rollout::capacity::readiness(policy, |_, t| lookup.ready_replicas(t));
    let inputs = (unpublished, capacity, ready);
    let evaluation = rollout::evaluate(policy, spec, io, working, pace, facts.now, inputs).await;
    Ok(Some(evaluation))
}

/// The launch updates due now, from the schedule in the stored status and the launch start in
/// `next` (which may have started in this very reconcile).
fn schedule_summaries(
    policy: &LaunchPolicy,
    next: &LaunchPolicyStatus,
    now: Timestamp,
) -> summary::Schedule {
    let sent = policy
        .status
        .as_ref()
        .map(|s| s.summaries.as_slice())
        .unwrap_or_default();
    let live = summary::live(next.rollout.as_ref().map(|r| r.state.phase));
    let started = next
        .launch
        .as_ref()
        .and_then(|l| l.started_at.as_ref())
        .map(|t| t.0);
    summary::schedule(&policy.spec.notifications, sent, live, started, now)
}

/// When to reconcile again: the next sample, rollout timer, launch update or launch report, and
/// at the latest the resync (or the retry, while a reference is broken).
fn next_reconcile(
    ctx: &Context,
    policy: &LaunchPolicy,
    refs: &Dereferenced,
    timers: Timers,
) -> Action {
    let settle = match refs.problems {
        0 => ctx.settings.resync,
        _ => ctx.settings.retry,
    };
    let sample_every = policy
        .spec
        .scaling
        .as_ref()
        .filter(|s| !s.triggers.is_empty())
        .map(|s| Duration::from(s.interval).max(MIN_INTERVAL))
        .unwrap_or(settle);
    let next_timer = timers
        .rollout
        .unwrap_or(settle)
        .max(Duration::from_millis(100));
    let next_summary = timers.summary.unwrap_or(settle);
    let next_report = timers
        .report
        .unwrap_or(settle)
        .max(Duration::from_millis(100));
    Action::requeue(
        settle
            .min(sample_every)
            .min(next_timer)
            .min(next_summary)
            .min(next_report),
    )
}

/// The whole status: conditions from the references, the triggers and the rollout, the
/// triggers' and the rollout's own status; the launch record and the launch updates' schedule
/// as stored (the final write brings them up to date).
fn assemble(
    policy: &LaunchPolicy,
    ready: &Desired,
    triggers: Vec<TriggerStatus>,
    (rollout, switches): (
        Option<RolloutStatus>,
        Option<&crate::engine::contingency::Decision>,
    ),
    now: Timestamp,
) -> LaunchPolicyStatus {
    let mut wanted = vec![ready.clone()];
    wanted.extend(triggers::scaling_conditions(&triggers));
    wanted.extend(rollout.as_ref().map(rollout::condition));
    let mut status = status::desired(policy, &wanted, now);
    status.triggers = triggers;
    status.rollout = rollout.map(Box::new);
    if let Some(stored) = &policy.status {
        status.summaries = stored.summaries.clone();
        status.launch = stored.launch.clone();
    }
    if let Some(switches) = switches {
        status.kill_switches = switches.switches.clone();
        status.applied_switch_commands = switches.applied.clone();
    }
    status
}

/// Writes a policy's status during one reconcile, each write conditional on the version the
/// previous one produced (or the version read), and none when nothing changed.
struct StatusWriter<'a> {
    ctx: &'a Context,
    api: Api<LaunchPolicy>,
    name: String,
    version: Option<String>,
    stored: Option<LaunchPolicyStatus>,
}

impl<'a> StatusWriter<'a> {
    fn new(ctx: &'a Context, policy: &LaunchPolicy) -> Self {
        let namespace = policy.namespace().unwrap_or_default();
        StatusWriter {
            ctx,
            api: Api::namespaced(ctx.client.clone(), &namespace),
            name: policy.name_any(),
            version: policy.metadata.resource_version.clone(),
            stored: policy.status.clone(),
        }
    }

    /// Whether the stored status is exactly `status`.
    fn holds(&self, status: &LaunchPolicyStatus) -> bool {
        self.stored.as_ref() == Some(status)
    }

    /// Writes `status` if it differs from what is stored.
    async fn write(&mut self, status: &LaunchPolicyStatus) -> Result<(), Error> {
        if self.holds(status) {
            self.ctx.metrics.status_writes_skipped.inc();
            return Ok(());
        }
        let (version, stored) = (self.version.as_deref(), self.stored.as_ref());
        // A turn among the writes in flight (see `events::WRITES_IN_FLIGHT`); never closed. The
        // wait can be long: leadership is checked once it is granted.
        let _turn = self.ctx.recorder.turns().acquire().await;
        self.ctx.ensure_leader()?;
        match write_if_changed(&self.api, &self.name, version, stored, status).await {
            Ok(Some(written)) => {
                self.version = Some(written);
                self.ctx.metrics.status_writes.inc();
                info!("status updated");
                if tracing::enabled!(tracing::Level::DEBUG) {
                    let changed = super::status::changed_paths(stored, status);
                    tracing::debug!(%changed, "what the status write changed");
                }
            }
            Ok(None) => self.ctx.metrics.status_writes_skipped.inc(),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                info!("status not written: the policy changed since it was read");
                return Err(Error::Stale);
            }
            Err(e) => return Err(e.into()),
        }
        self.stored = Some(status.clone());
        Ok(())
    }
}
