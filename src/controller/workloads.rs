//! Watch caches of the workloads triggers scale: Deployments, StatefulSets and the
//! HorizontalPodAutoscalers that may already drive them.
//!
//! Each cache is driven by its own task, not through the controller's trigger streams, so it
//! lists and stays current however busy the controller is: readiness (`/readyz`) and the
//! reconcile gate (`Caches::wait_synced`) depend only on the apiserver. A spec
//! change of a cached object is forwarded to the controller as the policies that reference it,
//! through an unbounded channel: the controller drains it continuously and its scheduler merges
//! duplicates, while a bounded one would make the caches wait on the controller again.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
};

use futures::{StreamExt, channel::mpsc::UnboundedSender};
use kube::{
    Api, Resource,
    runtime::{
        WatchStreamExt, reflector,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use super::synced::Synced;

/// Which changes of a cached object make the policies that reference it sample their triggers at
/// once, rather than at their next interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resample {
    /// None: the change is seen by the next sample (a LaunchSource's address).
    Never,
    /// Its deletion: the target is gone, and the policy says so now (a Deployment, a
    /// StatefulSet). Its spec changes are Liftoff's own scales mostly, and a scale must show in
    /// the metric before the next decision.
    OnDelete,
    /// Any change: it decides whether the policy may act at all (a HorizontalPodAutoscaler).
    Always,
}

/// The policies that must sample their triggers at their next reconcile, set by the caches and
/// taken by the reconcile.
#[derive(Clone, Default)]
pub struct Urgent(Arc<Mutex<HashSet<ObjectRef<super::Watched>>>>);

impl Urgent {
    fn mark(&self, policy: &ObjectRef<super::Watched>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(policy.clone());
    }

    /// Whether `policy` must sample its triggers now; the mark is used up.
    pub fn take(&self, policy: &ObjectRef<super::Watched>) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(policy)
    }
}

/// Starts a task that keeps a cache of `K` (stripped by `strip` to keep memory small) and sends
/// `affected(object)` to `reconcile` whenever an object is created, deleted or its spec changes
/// (status-only updates are not forwarded). Changes that `resample` names also mark the
/// policies in `urgent`. Returns the cache and whether it has listed yet.
pub fn spawn<K>(
    api: Api<K>,
    strip: impl Fn(&mut K) + Send + Sync + 'static,
    affected: impl Fn(&K) -> Vec<ObjectRef<super::Watched>> + Send + 'static,
    (reconcile, urgent, resample): (UnboundedSender<ObjectRef<super::Watched>>, Urgent, Resample),
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
    let events = events.default_backoff();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        // The generation last seen of each object, to forward spec changes only.
        let mut generations: HashMap<ObjectRef<K>, Option<i64>> = HashMap::new();
        while let Some(event) = events.next().await {
            let (object, deleted) = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    let generation = o.meta().generation;
                    let before = generations.insert(ObjectRef::from_obj(&o), generation);
                    if before == Some(generation) && generation.is_some() {
                        continue;
                    }
                    (o, false)
                }
                Ok(watcher::Event::Delete(o)) => {
                    generations.remove(&ObjectRef::from_obj(&o));
                    (o, true)
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
                // The watcher retries with backoff; the cache keeps its last state meanwhile.
                Err(e) => {
                    warn!(%kind, error = %e, "watching workloads failed; retrying");
                    continue;
                }
            };
            let now = match resample {
                Resample::Never => false,
                Resample::OnDelete => deleted,
                Resample::Always => true,
            };
            for policy in affected(&object) {
                if now {
                    urgent.mark(&policy);
                }
                if reconcile.unbounded_send(policy).is_err() {
                    debug!(%kind, "controller stopped; workload cache task ends");
                    return;
                }
            }
        }
    });
    (store, synced)
}
