//! Whether a watch cache has finished its first list, for any number of waiters.
//!
//! `Store::wait_until_ready` of kube-runtime 5 wakes only the most recent of several concurrent
//! waiters (its one-shot channel keeps one waker), so a second task waiting on the same store —
//! the controller itself waits on the LaunchPolicy store — can wait forever. That is how `/readyz`
//! sometimes never turned ready while reconciles ran. A `watch` channel wakes every waiter.

use futures::{Stream, TryStreamExt};
use kube::runtime::watcher;
use tokio::sync::watch;

/// Cheap to clone; all clones see the same flag.
#[derive(Clone, Debug)]
pub struct Synced(watch::Receiver<bool>);

impl Synced {
    /// Passes `events` through unchanged and marks the returned flag synced at the first
    /// `InitDone`, i.e. once the watcher's initial list is complete (and stays synced after).
    pub fn track<K, S>(events: S) -> (impl Stream<Item = S::Item> + Send, Synced)
    where
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
    {
        let (tx, rx) = watch::channel(false);
        let events = events.inspect_ok(move |event| {
            if matches!(event, watcher::Event::InitDone) {
                tx.send_replace(true);
            }
        });
        (events, Synced(rx))
    }

    /// Waits until synced. `false` if the stream was dropped before its first list completed.
    pub async fn wait(&self) -> bool {
        self.0.clone().wait_for(|synced| *synced).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::Event;

    use super::*;

    #[tokio::test]
    async fn every_concurrent_waiter_wakes_at_init_done() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Event<ConfigMap>, _>>();
        let (events, synced) = Synced::track(rx);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let synced = synced.clone();
                tokio::spawn(async move { synced.wait().await })
            })
            .collect();
        let mut events = std::pin::pin!(events);
        tx.unbounded_send(Ok(Event::Init)).unwrap();
        events.next().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            waiters.iter().all(|w| !w.is_finished()),
            "not synced before InitDone"
        );
        tx.unbounded_send(Ok(Event::InitDone)).unwrap();
        events.next().await;
        for waiter in waiters {
            let woke = tokio::time::timeout(Duration::from_secs(1), waiter).await;
            assert!(woke.expect("every waiter wakes").unwrap());
        }
    }

    /// Why this module exists. If this fails after a kube upgrade, `Store::wait_until_ready`
    /// wakes every waiter now and [`Synced`] could be replaced by it.
    #[tokio::test]
    async fn kube_store_readiness_wakes_only_the_last_of_two_waiters() {
        let (store, mut writer) = kube::runtime::reflector::store::<ConfigMap>();
        let first = tokio::spawn({
            let store = store.clone();
            async move { store.wait_until_ready().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = tokio::spawn(async move { store.wait_until_ready().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        writer.apply_watcher_event(&Event::InitDone);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), second)
                .await
                .is_ok()
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(500), first)
                .await
                .is_err(),
            "the first waiter is not woken"
        );
    }

    #[tokio::test]
    async fn a_stream_dropped_before_its_first_list_is_never_synced() {
        let (_tx, rx) = futures::channel::mpsc::unbounded::<Result<Event<ConfigMap>, _>>();
        let (events, synced) = Synced::track(rx);
        drop(events);
        assert!(!synced.wait().await);
    }
}
