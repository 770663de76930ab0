//! The metric sources (`liftoff::sources`) against real servers: Prometheus scraping an exporter
//! the test controls, a KRaft Kafka broker, PostgreSQL and Redis (installed by
//! `scripts/install-test-deps.sh`). Every test starts its own servers on free loopback ports and
//! stops them before it ends; nothing is mocked.

#[path = "sources/kafka.rs"]
mod kafka;
#[path = "sources/postgres.rs"]
mod postgres;
#[path = "sources/prometheus.rs"]
mod prometheus;
#[path = "sources/redis.rs"]
mod redis;
mod support;

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 200 ms until it returns `Some`, failing the test after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
