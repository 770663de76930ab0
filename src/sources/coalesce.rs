//! One query per distinct query: identical instant queries to the same Prometheus with the same
//! credentials share one HTTP request while it is in flight, and its answer for a short while
//! after (at most the `reuse` the asker allows: its own interval, capped by the operator's
//! `--query-reuse`). 10,000 policies asking the same PromQL every 15 s then cost one query per
//! reuse window instead of 670 a second. Kafka lag reads of one cluster (same namespace and
//! credentials) are shared the same way, by topic and consumer group.
//!
//! An error is shared like a value: the askers of one request see the same failure, and the next
//! request after the window tries again.

use std::{
    collections::HashMap,
    future::Future,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use tokio::sync::OnceCell;

use super::prometheus::QueryError;

/// Entries older than this are dropped when the map is pruned (no asker reuses one this old).
const KEEP: Duration = Duration::from_secs(120);

struct Entry<A> {
    /// When the request was sent: the answer is as old as that.
    sent: Instant,
    answer: Arc<OnceCell<A>>,
}

/// The requests in flight and the recent answers `A` (by default a Prometheus query's), by a
/// key naming the server, the credentials and the question.
pub struct Coalescer<A = Result<f64, QueryError>> {
    entries: Mutex<Entries<A>>,
    /// Counts each answer, `sent` or `shared` (`liftoff_prometheus_queries_total`,
    /// `liftoff_kafka_lag_reads_total`).
    counter: Option<prometheus::IntCounterVec>,
}

impl<A> Default for Coalescer<A> {
    fn default() -> Self {
        Coalescer {
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                prune_at: 0,
            }),
            counter: None,
        }
    }
}

impl<A> std::fmt::Debug for Coalescer<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Coalescer")
    }
}

struct Entries<A> {
    map: HashMap<u64, Entry<A>>,
    /// Prune when the map grows past this.
    prune_at: usize,
}

/// What identifies a query for sharing: the server, a fingerprint of its credentials (never
/// the credentials themselves), the timeout it is asked with, and the PromQL.
pub fn key(address: &str, credentials: Option<&str>, timeout: Duration, promql: &str) -> u64 {
    key_of((address, credentials, timeout, promql))
}

/// The key of any question: what it is asked of and with hashed together (a Kafka lag read:
/// topic, group and timeout, within one cluster's coalescer).
pub fn key_of(question: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    question.hash(&mut h);
    h.finish()
}

impl<A: Clone> Coalescer<A> {
    /// A coalescer counting its answers in `counter` (label `answer`: `sent`, `shared`).
    pub fn counted(counter: prometheus::IntCounterVec) -> Coalescer<A> {
        Coalescer {
            counter: Some(counter),
            ..Default::default()
        }
    }

    /// The answer to the query `key`: the one in flight, or one sent at most `reuse` ago, or
    /// `fetch`'s.
    pub async fn answer(&self, key: u64, reuse: Duration, fetch: impl Future<Output = A>) -> A {
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let shared = entries.map.get(&key).and_then(|e| {
                let fresh = e.sent.elapsed() <= reuse;
                (fresh || !e.answer.initialized()).then(|| e.answer.clone())
            });
            let answer = if shared.is_some() { "shared" } else { "sent" };
            if let Some(counter) = &self.counter {
                counter.with_label_values(&[answer]).inc();
            }
            match shared {
                Some(cell) => cell,
                None => {
                    entries.prune();
                    let answer = Arc::new(OnceCell::new());
                    let sent = Instant::now();
                    let entry = Entry {
                        sent,
                        answer: answer.clone(),
                    };
                    entries.map.insert(key, entry);
                    answer
                }
            }
        };
        cell.get_or_init(|| fetch).await.clone()
    }
}

impl<A> Entries<A> {
    fn prune(&mut self) {
        if self.map.len() < self.prune_at {
            return;
        }
        // A request is bounded by its timeout; one older than this was cancelled, and no asker
        // reuses an answer this old (`--query-reuse` is at most a minute).
        self.map.retain(|_, e| e.sent.elapsed() < KEEP);
        self.prune_at = self.map.len() * 2 + 64;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    async fn ask(
        c: &Coalescer,
        key: u64,
        reuse: Duration,
        sent: &AtomicUsize,
    ) -> Result<f64, QueryError> {
        c.answer(key, reuse, async {
            sent.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(42.0)
        })
        .await
    }

    #[tokio::test]
    async fn identical_queries_share_one_request_and_its_answer_while_fresh() {
        let c = Coalescer::default();
        let sent = AtomicUsize::new(0);
        let same = key("http://p:9090", None, Duration::from_secs(5), "up");
        let long = Duration::from_secs(60);
        let answers = futures::future::join_all((0..100).map(|_| ask(&c, same, long, &sent))).await;
        assert!(answers.iter().all(|a| *a == Ok(42.0)));
        assert_eq!(sent.load(Ordering::SeqCst), 1, "one request for 100 askers");
        ask(&c, same, long, &sent).await.unwrap();
        assert_eq!(sent.load(Ordering::SeqCst), 1, "reused within the window");
        ask(&c, same, Duration::ZERO, &sent).await.unwrap();
        assert_eq!(
            sent.load(Ordering::SeqCst),
            2,
            "an asker allowing no reuse asks again"
        );
    }

    #[test]
    fn another_server_query_or_credential_is_another_query() {
        let t = Duration::from_secs(5);
        let base = key("http://p:9090", Some("a"), t, "up");
        assert_ne!(base, key("http://q:9090", Some("a"), t, "up"));
        assert_ne!(base, key("http://p:9090", Some("b"), t, "up"));
        assert_ne!(base, key("http://p:9090", None, t, "up"));
        assert_ne!(base, key("http://p:9090", Some("a"), t, "up == 1"));
        assert_ne!(base, key("http://p:9090", Some("a"), t * 2, "up"));
    }
}
