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

    /// Drops the marks of policies `exists` says are gone.
    pub fn retain(&self, exists: impl Fn(&ObjectRef<super::Watched>) -> bool) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|p| exists(p));
    }

    /// Whether `policy` must sample its triggers now; the mark is used up.
    pub fn take(&self, policy: &ObjectRef<super::Watched>) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(policy)
    }
}

/// During a re-list (after a watch error): the cache before it, and what came back.
type Relist<K> = (Vec<Arc<K>>, HashSet<ObjectRef<K>>);

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
    let cached = store.clone();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        // The uid and generation last seen of each object, to forward spec changes only (a
        // deleted and recreated object is a change whatever its generation).
        let mut seen: HashMap<ObjectRef<K>, (Option<String>, Option<i64>)> = HashMap::new();
        let mut relist: Option<Relist<K>> = None;
        while let Some(event) = events.next().await {
            let changes: Vec<(Arc<K>, bool)> = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    let key = ObjectRef::from_obj(&o);
                    if let Some((_, back)) = relist.as_mut() {
                        back.insert(key.clone());
                    }
                    let now = (o.meta().uid.clone(), o.meta().generation);
                    let unchanged = now.1.is_some() && seen.get(&key) == Some(&now);
                    seen.insert(key, now);
                    if unchanged {
                        continue;
                    }
                    vec![(Arc::new(o), false)]
                }
                Ok(watcher::Event::Delete(o)) => {
                    seen.remove(&ObjectRef::from_obj(&o));
                    vec![(Arc::new(o), true)]
                }
                Ok(watcher::Event::Init) => {
                    relist = Some((cached.state(), HashSet::new()));
                    continue;
                }
                // Deleted while the watch was down: in the cache before, not listed again.
                Ok(watcher::Event::InitDone) => {
                    let Some((before, back)) = relist.take() else {
                        continue;
                    };
                    let gone: Vec<(Arc<K>, bool)> = before
                        .into_iter()
                        .filter(|o| !back.contains(&ObjectRef::from_obj(o.as_ref())))
                        .map(|o| (o, true))
                        .collect();
                    for (o, _) in &gone {
                        seen.remove(&ObjectRef::from_obj(o.as_ref()));
                    }
                    gone
                }
                // The watcher retries with backoff; the cache keeps its last state meanwhile.
                Err(e) => {
                    warn!(%kind, error = %e, "watching workloads failed; retrying");
                    continue;
                }
            };
            for (object, deleted) in changes {
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
        }
    });
    (store, synced)
}
