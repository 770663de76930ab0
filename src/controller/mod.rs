//! Wiring of the LaunchPolicy controller: watches, the reconcile pipeline, errors and events.

mod events;
mod lookup;
pub mod references;
pub mod secrets;
pub mod status;
pub mod triggers;

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    api::apps::v1::{Deployment, StatefulSet},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ListParams, PartialObjectMeta},
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        events::{Recorder, Reporter},
        reflector,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use tracing::{Instrument, info, info_span, warn};

pub use lookup::Caches;

use crate::{crd::LaunchPolicy, metrics::Metrics};

/// What a reconcile can fail with. Reference problems are not errors: they become conditions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("apiserver request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("the LaunchPolicy has no namespace")]
    NoNamespace,
}

impl Error {
    /// Stable category used as the metric label and the Warning event's reason.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "ApiRequestFailed",
            Error::NoNamespace => "InvalidObject",
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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: None,
            resync: Duration::from_secs(300),
            retry: Duration::from_secs(30),
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
        metadata_cache::<Deployment>(&client, &settings.namespace);
    let (statefulsets, statefulset_events) =
        metadata_cache::<StatefulSet>(&client, &settings.namespace);

    let controller = Controller::new(policies, watcher::Config::default());
    let store = controller.store();
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), Reporter::from("liftoff")),
        client,
        settings: settings.clone(),
        metrics: metrics.clone(),
        caches: Caches {
            deployments,
            statefulsets,
            discovered: Default::default(),
        },
    });

    let ready_ctx = ctx.clone();
    let ready_store = store.clone();
    tokio::spawn(async move {
        let caches = &ready_ctx.caches;
        let synced = futures::join!(
            ready_store.wait_until_ready(),
            caches.deployments.wait_until_ready(),
            caches.statefulsets.wait_until_ready()
        );
        if synced.0.is_ok() && synced.1.is_ok() && synced.2.is_ok() {
            ready_ctx.metrics.ready.set(1);
            info!("caches synced; reconciling");
        }
    });

    let store_d = store.clone();
    let store_s = store.clone();
    controller
        .watches_stream(
            deployment_events,
            move |d: PartialObjectMeta<Deployment>| referencing(&store_d, "Deployment", &d),
        )
        .watches_stream(
            statefulset_events,
            move |s: PartialObjectMeta<StatefulSet>| referencing(&store_s, "StatefulSet", &s),
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
    info!("controller stopped");
    Ok(())
}

/// A metadata-only cache of a workload kind, and the stream of objects it sees change.
fn metadata_cache<K>(
    client: &Client,
    namespace: &Option<String>,
) -> (
    Store<PartialObjectMeta<K>>,
    impl futures::Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static,
)
where
    PartialObjectMeta<K>: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    K: Clone + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let events = reflector(
        writer,
        watcher(
            api::<PartialObjectMeta<K>>(client, namespace),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
    (store, events)
}

/// Policies in the workload's namespace whose triggers scale it.
fn referencing<K: Resource>(
    store: &Store<LaunchPolicy>,
    kind: &str,
    workload: &K,
) -> Vec<ObjectRef<LaunchPolicy>> {
    let (ns, name) = (workload.namespace(), workload.name_any());
    store
        .state()
        .iter()
        .filter(|p| p.namespace() == ns)
        .filter(|p| {
            p.spec.scaling.iter().flat_map(|s| &s.triggers).any(|t| {
                t.scale_target_ref
                    .as_ref()
                    .is_some_and(|r| r.api_version == "apps/v1" && r.kind == kind && r.name == name)
            })
        })
        .map(|p| ObjectRef::from(p.as_ref()))
        .collect()
}

async fn reconcile(policy: Arc<LaunchPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = policy.namespace().ok_or(Error::NoNamespace)?;
    let span = info_span!("reconcile", namespace = %namespace, policy = %policy.name_any());
    reconcile_policy(&policy, &ctx, &namespace)
        .instrument(span)
        .await
}

/// The pipeline: look up references → decide → write status → tell what changed.
async fn reconcile_policy(
    policy: &LaunchPolicy,
    ctx: &Context,
    namespace: &str,
) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started();
    let api: Api<LaunchPolicy> = Api::namespaced(ctx.client.clone(), namespace);

    let lookup = lookup::KubeLookup {
        client: &ctx.client,
        caches: &ctx.caches,
        namespace,
    };
    let problems = references::check(&policy.spec, &lookup).await;

    let ready = status::ready_condition(&problems, policy.spec.suspend);
    let new_status = status::desired(policy, std::slice::from_ref(&ready), Timestamp::now());

    if status::write_if_changed(&api, policy, &new_status).await? {
        ctx.metrics.status_writes.inc();
        info!(ready = ready.status, reason = %ready.reason, "status updated");
    } else {
        ctx.metrics.status_writes_skipped.inc();
    }
    events::on_transition(&ctx.recorder, policy, &ready).await;

    Ok(Action::requeue(if problems.is_empty() {
        ctx.settings.resync
    } else {
        ctx.settings.retry
    }))
}

fn error_policy(policy: Arc<LaunchPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
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
