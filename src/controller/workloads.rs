//! Watch caches of the workloads triggers scale: Deployments, StatefulSets and the
//! HorizontalPodAutoscalers that may already drive them.
//!
//! Each cache is driven by its own task, not through the controller's trigger streams, so it
//! lists and stays current however busy the controller is: readiness (`/readyz`) and the
//! reconcile gate (`Caches::wait_synced`) depend only on the apiserver. A spec
//! change of a cached object is forwarded to the controller as the policies that reference it,
//! through an unbounded channel: the controller drains it continuously and its scheduler merges
//! duplicates, while a bounded one would make the caches wait on the controller again.

use futures::{StreamExt, channel::mpsc::UnboundedSender};
use kube::{
    Api, Resource,
    runtime::{
        WatchStreamExt, predicates, reflector,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use super::synced::Synced;

/// Starts a task that keeps a cache of `K` (stripped by `strip` to keep memory small) and sends
/// `affected(object)` to `reconcile` whenever an object is created or its spec changes
/// (status-only updates are not forwarded). Returns the cache and whether it has listed yet.
pub fn spawn<K>(
    api: Api<K>,
    strip: impl Fn(&mut K) + Send + Sync + 'static,
    affected: impl Fn(&K) -> Vec<ObjectRef<super::Watched>> + Send + 'static,
    reconcile: UnboundedSender<ObjectRef<super::Watched>>,
) -> (Store<K>, Synced)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let kind = K::kind(&()).to_string();
    let (events, synced) = Synced::track(reflector(
        writer,
        watcher(api, watcher::Config::default()).modify(move |o| {
            o.meta_mut().managed_fields = None;
            o.meta_mut().annotations = None;
            strip(o);
        }),
    ));
    let changes = events
        .default_backoff()
        .touched_objects()
        .predicate_filter(predicates::generation, Default::default());
    tokio::spawn(async move {
        let mut changes = std::pin::pin!(changes);
        while let Some(change) = changes.next().await {
            match change {
                Ok(object) => {
                    for policy in affected(&object) {
                        if reconcile.unbounded_send(policy).is_err() {
                            debug!(%kind, "controller stopped; workload cache task ends");
                            return;
                        }
                    }
                }
                // The watcher retries with backoff; the cache keeps its last state meanwhile.
                Err(e) => warn!(%kind, error = %e, "watching workloads failed; retrying"),
            }
        }
    });
    (store, synced)
}
