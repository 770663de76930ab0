//! Every value a projection of one object took, as the apiserver's watch delivered them: what was
//! done is counted from the apiserver's side, whatever the operator believes.

use std::{
    fmt::Debug,
    time::{Duration, Instant},
};

use futures::StreamExt;
use kube::{
    Api, Resource,
    runtime::{WatchStreamExt, watcher},
};
use serde::de::DeserializeOwned;
use tokio::{sync::watch, task::JoinHandle};

/// How long a watch may take to list, and `until` to be satisfied.
const WAIT: Duration = Duration::from_secs(60);

/// Every distinct value (consecutive repeats dropped) that `project` took on one object, in the
/// order the apiserver's watch delivered them, with when the test saw each.
pub struct Recording<T> {
    pub seen: watch::Receiver<Vec<(T, Instant)>>,
    task: JoinHandle<()>,
}

impl<T: Clone + Debug> Recording<T> {
    /// Starts watching `name` and returns once the watch's initial list is done, so that
    /// nothing written afterwards can be missed.
    pub async fn start<K>(api: Api<K>, name: &str, project: fn(&K) -> Option<T>) -> Self
    where
        K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
        K::DynamicType: Default,
        T: PartialEq + Send + Sync + 'static,
    {
        let (tx, seen) = watch::channel(Vec::new());
        let (synced_tx, synced) = tokio::sync::oneshot::channel();
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let task = tokio::spawn(async move {
            let mut synced_tx = Some(synced_tx);
            let mut events = std::pin::pin!(watcher(api, config).default_backoff());
            while let Some(event) = events.next().await {
                let object = match event {
                    Ok(watcher::Event::InitDone) => {
                        synced_tx.take().map(|s| s.send(()));
                        continue;
                    }
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                    _ => continue,
                };
                let Some(value) = project(&object) else {
                    continue;
                };
                tx.send_if_modified(|seen| {
                    let new = seen.last().is_none_or(|(last, _)| *last != value);
                    if new {
                        seen.push((value, Instant::now()));
                    }
                    new
                });
            }
        });
        tokio::time::timeout(WAIT, synced)
            .await
            .expect("the watch lists within a minute")
            .unwrap();
        Recording { seen, task }
    }

    pub fn values(&self) -> Vec<T> {
        self.seen.borrow().iter().map(|(v, _)| v.clone()).collect()
    }

    /// Waits (bounded) until the values recorded so far satisfy `done`; the moment they do,
    /// not a polling interval later.
    pub async fn until(&self, what: &str, done: impl Fn(&[T]) -> bool) {
        let mut seen = self.seen.clone();
        let waited = seen.wait_for(|s| done(&s.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>()));
        match tokio::time::timeout(WAIT, waited).await {
            Ok(result) => drop(result.unwrap()),
            Err(_) => panic!("timed out waiting for {what}; recorded {:?}", self.values()),
        }
    }
}

impl<T> Drop for Recording<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}
