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

pub use support::eventually;
