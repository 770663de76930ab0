//! Wiring of the LaunchPolicy controller: watches, the reconcile pipeline, errors and events.

mod backoff;
pub mod cached;
pub mod claims;
mod contingency;
pub mod events;
pub mod invalid;
mod journal;
mod launch_report;
pub mod lookup;
pub mod memory;
pub mod named_sources;
pub mod notify;
pub mod pools;
mod publish;
mod reconcile;
pub mod references;
mod report;
pub mod rollout;
pub mod secrets;
mod slim;
pub mod status;
pub mod summary;
mod synced;
pub mod update;
mod workload;
mod workloads;

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    autoscaling::v2::HorizontalPodAutoscaler,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::ListParams,
    runtime::{
        Controller, WatchStreamExt,
        controller::{self, Action},
        reflector,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use tracing::{info, warn};

pub use lookup::Caches;
use memory::Memory;
use named_sources::NamedSources;
use pools::Pools;
use reconcile::reconcile;
use secrets::Secrets;
use synced::Synced;
use workload::Workload;
use workloads::Resample;

use crate::{
    crd::{LaunchPolicy, LaunchSource},
    metrics::Metrics,
    sources::address::AddressPolicy,
};

/// A LaunchPolicy as watched and cached: packed, and one that cannot be deserialized kept as an
/// error (with its metadata) instead of failing the watch, so it is reported on itself and stops
/// nothing else (see [`cached`]).
pub type Watched = cached::CachedPolicy;

/// What a reconcile can fail with. Reference problems are not errors: they become conditions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("apiserver request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("the LaunchPolicy has no namespace")]
    NoNamespace,
    #[error("this replica no longer holds the leader lease; another replica acts")]
    NotLeader,
    #[error(
        "the policy changed while it was being reconciled; it is reconciled again from the new version"
    )]
    Stale,
    #[error("cannot read the published cohort to check it matches status: {0}")]
    CohortUnreadable(String),
}

impl Context {
    /// `Err(NotLeader)` once this replica has lost (or given up) the lease. Called right before
    /// every status write and every action, so a replica that could not renew in time stops
    /// acting before another one can take over.
    pub fn ensure_leader(&self) -> Result<(), Error> {
        match &self.settings.leader {
            Some(state) if !state.is_leader() => Err(Error::NotLeader),
            _ => Ok(()),
        }
    }
}

impl Error {
    /// Stable category used as the metric label and the Warning event's reason.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "ApiRequestFailed",
            Error::NoNamespace => "InvalidObject",
            Error::NotLeader => "NotLeader",
            Error::Stale => "Stale",
            Error::CohortUnreadable(_) => "CohortUnreadable",
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub metrics: Metrics,
    /// Events, paced with the status writes (see [`events::WRITES_IN_FLIGHT`]).
    pub recorder: events::Publisher,
    pub caches: Caches,
    pub settings: Settings,
    pub secrets: Secrets,
    pub pools: Pools,
    /// The LaunchSources policies may name instead of addresses.
    pub sources: NamedSources,
    pub memory: Memory,
    /// The client webhook notifications are sent with.
    pub http: notify::Webhooks,
    /// When to retry policies whose reconcile failed.
    pub backoff: backoff::Backoff,
    /// Policies whose triggers must be sampled at once: a workload they scale was deleted, or
    /// an HPA on it changed.
    pub urgent: workloads::Urgent,
}

/// `--query-reuse`'s default, the default sampling interval: identical queries of policies
/// sampling every 15 s cost one request per 15 s however many ask, and an answer is at most
/// 15 s older than a request of its own would have been (Prometheus itself scrapes every
/// 15–60 s). An asker with a shorter interval caps it at its own.
pub const DEFAULT_QUERY_REUSE: Duration = Duration::from_secs(15);

/// `--concurrency`'s default. A reconcile in flight costs about 10 KiB (its future), so 512 cost
/// ~5 MiB however many policies fall due together, where 10,000 policies reconciled at once (a
/// start over a stored fleet) cost ~100 MiB; and 512 turns of at most a 5 s source timeout still
/// sample 100 policies a second with every source down (docs/operations.md#sizing).
pub const DEFAULT_CONCURRENCY: u16 = 512;

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch one namespace only; `None` watches all.
    pub namespace: Option<String>,
    /// Act only on the LaunchPolicies this label selector matches (`--selector`): one shard of
    /// several operators, each with its own Lease.
    pub selector: Option<String>,
    /// Re-check a healthy policy this often (Secrets are not watched).
    pub resync: Duration,
    /// Re-check a policy with problems this often.
    pub retry: Duration,
    /// With leader election: the lease state, checked right before every write and action.
    pub leader: Option<crate::leader::State>,
    /// Which destinations policies may make the operator contact.
    pub address_policy: AddressPolicy,
    /// Refuse Prometheus and Kafka addresses written in policies: only LaunchSources may be
    /// named (`--require-named-sources`).
    pub require_named_sources: bool,
    /// The longest an answer to a Prometheus query is shared with identical queries
    /// (`--query-reuse`); each asker also caps it at its own interval.
    pub query_reuse: Duration,
    /// The most reconciles in flight at once (`--concurrency`).
    pub concurrency: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: None,
            selector: None,
            resync: Duration::from_secs(300),
            retry: Duration::from_secs(30),
            leader: None,
            address_policy: AddressPolicy::new(&[], &[], &[]),
            require_named_sources: false,
            query_reuse: DEFAULT_QUERY_REUSE,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until SIGTERM/SIGINT. Fails fast when the CRD is not installed.
pub async fn run(client: Client, settings: Settings, metrics: Metrics) -> anyhow::Result<()> {
    let policies: Api<Watched> = api(&client, &settings.namespace);
    let mut list = ListParams::default().limit(1);
    let mut watch = watcher::Config::default();
    if let Some(selector) = &settings.selector {
        list = list.labels(selector);
        watch = watch.labels(selector);
    }
    policies.list(&list).await.map_err(|e| {
        anyhow::anyhow!("cannot list LaunchPolicies ({e}); is the CRD installed? `liftoff crd | kubectl apply -f -`")
    })?;

    // Policies to reconcile because a workload they reference changed (see `workloads`).
    let (workload_changes, changed_policies) = futures::channel::mpsc::unbounded();
    let urgent = workloads::Urgent::default();
    let (store, writer) = reflector::store();
    let (policy_events, policies_synced) = Synced::track(reflector(
        writer,
        watcher(policies, watch).modify(|w: &mut Watched| slim::slim(&mut w.metadata)),
    ));
    let controller = Controller::for_stream(policy_events.applied_objects(), store.clone())
        .with_config(controller::Config::default().concurrency(settings.concurrency));
    let (store_d, store_s, store_h) = (store.clone(), store.clone(), store.clone());
    let (deployments, deployments_synced) = workloads::spawn(
        api(&client, &settings.namespace),
        |d: &mut Workload<Deployment>| d.metadata.labels = None,
        move |d: &Workload<Deployment>| {
            referencing(&store_d, "Deployment", &d.namespace(), &d.name_any())
        },
        (workload_changes.clone(), urgent.clone(), Resample::OnDelete),
    );
    let (statefulsets, statefulsets_synced) = workloads::spawn(
        api(&client, &settings.namespace),
        |s: &mut Workload<StatefulSet>| s.metadata.labels = None,
        move |s: &Workload<StatefulSet>| {
            referencing(&store_s, "StatefulSet", &s.namespace(), &s.name_any())
        },
        (workload_changes.clone(), urgent.clone(), Resample::OnDelete),
    );
    let sources = watch_sources(&client, &settings, store.clone(), workload_changes.clone()).await;
    let (hpas, hpas_synced) = workloads::spawn(
        api(&client, &settings.namespace),
        |_: &mut HorizontalPodAutoscaler| {},
        move |h: &HorizontalPodAutoscaler| match h.spec.as_ref().map(|s| &s.scale_target_ref) {
            Some(t) => referencing(&store_h, &t.kind, &h.metadata.namespace, &t.name),
            None => Vec::new(),
        },
        (workload_changes, urgent.clone(), Resample::Always),
    );

    let ctx = Arc::new(Context {
        recorder: events::Publisher::new(client.clone()),
        secrets: Secrets::new(client.clone(), settings.resync, settings.retry),
        client,
        settings: settings.clone(),
        metrics: metrics.clone(),
        caches: Caches {
            deployments,
            statefulsets,
            hpas,
            policies: store.clone(),
            claims: Default::default(),
            discovered: Default::default(),
            synced: [deployments_synced, statefulsets_synced, hpas_synced],
        },
        pools: Pools::new(
            settings.address_policy.clone(),
            metrics.prometheus_queries.clone(),
            metrics.kafka_lag_reads.clone(),
        ),
        sources,
        memory: Memory::default(),
        http: notify::Webhooks::new(settings.address_policy.clone()),
        backoff: Default::default(),
        urgent,
    });

    let ready_ctx = ctx.clone();
    tokio::spawn(async move {
        let (policies, workloads) =
            futures::join!(policies_synced.wait(), ready_ctx.caches.wait_synced());
        if policies && workloads {
            ready_ctx.metrics.ready.set(1);
            info!("caches synced; reconciling");
        }
    });

    tokio::spawn(forget_deleted(ctx.clone(), store.clone()));

    controller
        .reconcile_on(changed_policies)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
    info!("controller stopped");
    Ok(())
}

/// The LaunchSources, watched cluster-wide when the operator may list them; a change reconciles
/// the policies that name the source. Without the CRD (an upgrade that did not apply it) or the
/// RBAC, the operator runs on and a policy that names a source is told why it cannot be used.
async fn watch_sources(
    client: &Client,
    settings: &Settings,
    policies: Store<Watched>,
    reconcile: futures::channel::mpsc::UnboundedSender<ObjectRef<Watched>>,
) -> NamedSources {
    let api: Api<LaunchSource> = Api::all(client.clone());
    let required = settings.require_named_sources;
    if let Err(e) = api.list(&ListParams::default().limit(1)).await {
        warn!(error = %e, "cannot list LaunchSources; policies cannot name sources until the LaunchSource CRD is installed and the operator restarted");
        return NamedSources {
            required,
            ..Default::default()
        };
    }
    let naming = move |source: &LaunchSource| naming_source(&policies, &source.name_any());
    let changes = (reconcile, Default::default(), Resample::Never);
    let (store, synced) = workloads::spawn(api, |_| {}, naming, changes);
    NamedSources {
        store: Some(store),
        synced: Some(synced),
        required,
    }
}

/// Policies that name the LaunchSource `name`.
fn naming_source(store: &Store<Watched>, name: &str) -> Vec<ObjectRef<Watched>> {
    store
        .state()
        .iter()
        .filter(|p| {
            p.outline()
                .is_some_and(|o| o.sources.iter().any(|n| n == name))
        })
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// Policies in `namespace` whose triggers scale the workload `kind`/`name`.
fn referencing(
    store: &Store<Watched>,
    kind: &str,
    namespace: &Option<String>,
    name: &str,
) -> Vec<ObjectRef<Watched>> {
    store
        .state()
        .iter()
        .filter(|p| &p.namespace() == namespace)
        .filter(|p| {
            p.outline().is_some_and(|o| {
                o.scales
                    .iter()
                    .any(|(_, r)| r.kind == kind && r.name == name)
            })
        })
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// Drops in-memory state and metric series of deleted policies, once per resync period.
async fn forget_deleted(ctx: Arc<Context>, store: Store<Watched>) {
    let mut tick = tokio::time::interval(ctx.settings.resync);
    loop {
        tick.tick().await;
        let live: std::collections::HashSet<String> = store
            .state()
            .iter()
            .map(|p| reconcile::key(p.as_ref()))
            .collect();
        ctx.backoff.retain(|key| live.contains(key));
        ctx.caches.claims.expire();
        ctx.metrics.forget_invalid(&live);
        let exists = |policy: &ObjectRef<LaunchPolicy>| {
            let namespace = policy.namespace.as_deref().unwrap_or_default();
            live.contains(&format!("{namespace}/{}", policy.name))
        };
        ctx.urgent.retain(|p| {
            let namespace = p.namespace.as_deref().unwrap_or_default();
            live.contains(&format!("{namespace}/{}", p.name))
        });
        for (gone, remembered) in ctx.memory.retain(exists) {
            let (namespace, policy) = (gone.namespace.as_deref().unwrap_or_default(), &gone.name);
            for trigger in remembered.scaling.triggers.names() {
                ctx.metrics.triggers.forget([namespace, policy, trigger]);
            }
            ctx.metrics
                .rollouts
                .record_switches(namespace, policy, &[], &remembered.switches);
            if let Some(working) = remembered.rollout {
                let gates: Vec<String> = working.latest.gates.into_iter().map(|g| g.name).collect();
                ctx.metrics.rollouts.forget(namespace, policy, &gates);
            }
        }
        ctx.secrets.prune();
        let pruning = ctx.clone();
        match tokio::task::spawn_blocking(move || pruning.pools.prune(pools::IDLE)).await {
            Ok((clusters, groups)) => tracing::debug!(clusters, groups, "Kafka handles kept open"),
            Err(e) => warn!(error = %e, "closing idle Kafka handles failed"),
        }
    }
}

fn error_policy(policy: Arc<Watched>, error: &Error, ctx: Arc<Context>) -> Action {
    match error {
        // Not ours to report: the replica that leads now reconciles this policy.
        Error::NotLeader => return Action::await_change(),
        // Routine, not a failure: the newer version's watch event reconciles the policy again;
        // the requeue is a safety net.
        Error::Stale => {
            ctx.metrics.status_conflicts.inc();
            return Action::requeue(Duration::from_secs(1));
        }
        _ => {}
    }
    ctx.metrics
        .reconcile_errors
        .with_label_values(&[error.category()])
        .inc();
    let retry = ctx.backoff.failed(&reconcile::key(policy.as_ref()));
    warn!(namespace = ?policy.namespace(), policy = %policy.name_any(), error = %error, retry_in = ?retry, "reconcile failed");
    let note = error.to_string();
    let reason = error.category();
    tokio::spawn(
        async move { events::warning(&ctx.recorder, policy.as_ref(), reason, &note).await },
    );
    Action::requeue(retry)
}
