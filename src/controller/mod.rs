//! Wiring of the LaunchPolicy controller: watches, the reconcile pipeline, errors and events.

pub mod events;
pub mod lookup;
pub mod notify;
pub mod pools;
mod reconcile;
pub mod references;
pub mod rollout;
pub mod secrets;
pub mod status;
pub mod summary;
pub mod triggers;

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
        controller::Action,
        events::{Recorder, Reporter},
        predicates, reflector,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

pub use lookup::Caches;
use pools::Pools;
use reconcile::reconcile;
use secrets::Secrets;
use triggers::Memory;

use crate::{crd::LaunchPolicy, metrics::Metrics};

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
    pub recorder: Recorder,
    pub caches: Caches,
    pub settings: Settings,
    pub secrets: Secrets,
    pub pools: Pools,
    pub memory: Memory,
    /// HTTP client for webhook notifications.
    pub http: reqwest::Client,
}

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch one namespace only; `None` watches all.
    pub namespace: Option<String>,
    /// Re-check a healthy policy this often (Secrets are not watched).
    pub resync: Duration,
    /// Re-check a policy with problems this often.
    pub retry: Duration,
    /// With leader election: the lease state, checked right before every write and action.
    pub leader: Option<crate::leader::State>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: None,
            resync: Duration::from_secs(300),
            retry: Duration::from_secs(30),
            leader: None,
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
    let policies: Api<LaunchPolicy> = api(&client, &settings.namespace);
    policies.list(&ListParams::default().limit(1)).await.map_err(|e| {
        anyhow::anyhow!("cannot list LaunchPolicies ({e}); is the CRD installed? `liftoff crd | kubectl apply -f -`")
    })?;

    let (deployments, deployment_events) =
        workload_cache(&client, &settings.namespace, |d: &mut Deployment| {
            if let Some(spec) = d.spec.as_mut() {
                spec.template = Default::default();
            }
        });
    let (statefulsets, statefulset_events) =
        workload_cache(&client, &settings.namespace, |s: &mut StatefulSet| {
            if let Some(spec) = s.spec.as_mut() {
                spec.template = Default::default();
                spec.volume_claim_templates = None;
            }
        });
    let (hpas, hpa_events) = workload_cache(
        &client,
        &settings.namespace,
        |_: &mut HorizontalPodAutoscaler| {},
    );

    let controller = Controller::new(policies, watcher::Config::default());
    let store = controller.store();
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), Reporter::from("liftoff")),
        secrets: Secrets::new(client.clone(), settings.resync, settings.retry),
        client,
        settings: settings.clone(),
        metrics: metrics.clone(),
        caches: Caches {
            deployments,
            statefulsets,
            hpas,
            discovered: Default::default(),
        },
        pools: Pools::default(),
        memory: Memory::default(),
        http: reqwest::Client::new(),
    });

    let ready_ctx = ctx.clone();
    let ready_store = store.clone();
    tokio::spawn(async move {
        let caches = &ready_ctx.caches;
        let synced = futures::join!(
            ready_store.wait_until_ready(),
            caches.deployments.wait_until_ready(),
            caches.statefulsets.wait_until_ready(),
            caches.hpas.wait_until_ready()
        );
        if synced.0.is_ok() && synced.1.is_ok() && synced.2.is_ok() && synced.3.is_ok() {
            ready_ctx.metrics.ready.set(1);
            info!("caches synced; reconciling");
        }
    });

    tokio::spawn(forget_deleted(ctx.clone(), store.clone()));

    let store_d = store.clone();
    let store_s = store.clone();
    let store_h = store.clone();
    controller
        .watches_stream(deployment_events, move |d: Deployment| {
            referencing(&store_d, "Deployment", &d.namespace(), &d.name_any())
        })
        .watches_stream(statefulset_events, move |s: StatefulSet| {
            referencing(&store_s, "StatefulSet", &s.namespace(), &s.name_any())
        })
        .watches_stream(hpa_events, move |h: HorizontalPodAutoscaler| {
            let target = h.spec.map(|s| s.scale_target_ref);
            match target {
                Some(t) => referencing(&store_h, &t.kind, &h.metadata.namespace, &t.name),
                None => Vec::new(),
            }
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
    info!("controller stopped");
    Ok(())
}

/// A cache of a kind the controller reads (stripped by `strip` to keep memory small), and the
/// stream of objects whose spec changed (status-only updates are filtered out).
fn workload_cache<K>(
    client: &Client,
    namespace: &Option<String>,
    strip: impl Fn(&mut K) + Send + Sync + 'static,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let events = reflector(
        writer,
        watcher(api::<K>(client, namespace), watcher::Config::default()).modify(move |o| {
            o.meta_mut().managed_fields = None;
            o.meta_mut().annotations = None;
            strip(o);
        }),
    )
    .default_backoff()
    .touched_objects()
    .predicate_filter(predicates::generation, Default::default());
    (store, events)
}

/// Policies in `namespace` whose triggers scale the workload `kind`/`name`.
fn referencing(
    store: &Store<LaunchPolicy>,
    kind: &str,
    namespace: &Option<String>,
    name: &str,
) -> Vec<ObjectRef<LaunchPolicy>> {
    store
        .state()
        .iter()
        .filter(|p| &p.namespace() == namespace)
        .filter(|p| {
            p.spec.scaling.iter().flat_map(|s| &s.triggers).any(|t| {
                t.scale_target_ref
                    .as_ref()
                    .is_some_and(|r| r.kind == kind && r.name == name)
            })
        })
        .map(|p| ObjectRef::from(p.as_ref()))
        .collect()
}

/// Drops in-memory state and metric series of deleted policies, once per resync period.
async fn forget_deleted(ctx: Arc<Context>, store: Store<LaunchPolicy>) {
    let mut tick = tokio::time::interval(ctx.settings.resync);
    loop {
        tick.tick().await;
        let live: std::collections::HashSet<String> =
            store.state().iter().map(|p| reconcile::key(p)).collect();
        for (key, remembered) in ctx.memory.retain(|key| live.contains(key)) {
            let (namespace, policy) = key.split_once('/').unwrap_or(("", &key));
            for trigger in remembered.triggers.keys() {
                ctx.metrics.triggers.forget([namespace, policy, trigger]);
            }
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

fn error_policy(policy: Arc<LaunchPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
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
    warn!(namespace = ?policy.namespace(), policy = %policy.name_any(), error = %error, "reconcile failed");
    let note = error.to_string();
    let reason = error.category();
    tokio::spawn(async move { events::warning(&ctx.recorder, &policy, reason, &note).await });
    Action::requeue(Duration::from_secs(10))
}
