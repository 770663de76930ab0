//! Tests of the scaling engine, on a fixed clock: `at(s)` is `s` seconds after a fixed instant.

mod partitions;
mod rds;
mod redis;

use super::*;
use crate::crd::Duration;

/// The fixed origin of test time: 2025-03-01T00:00:00Z.
const ORIGIN: i64 = 1_740_787_200;

/// `secs` seconds after the test origin.
fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(ORIGIN + secs).unwrap()
}

fn dur(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn unknown() -> Sample {
    Sample::unknown("prometheus http://prometheus:9090", "connection refused")
}
