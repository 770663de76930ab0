//! When to retry a policy whose reconcile failed: 5 s after the first failure, doubling with each
//! failure in a row up to 5 minutes, spread by ±10 % so that policies that failed together (an
//! apiserver outage) do not all retry in the same second. A success starts over.
//!
//! A fixed retry would have 10,000 policies hit a struggling apiserver every few seconds, which is
//! the load that keeps it struggling.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::Mutex,
    time::Duration,
};

/// The retry after the first failure.
pub const FIRST: Duration = Duration::from_secs(5);
/// The longest retry.
pub const MAX: Duration = Duration::from_secs(300);

/// Failures in a row, by policy (`namespace/name`).
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Counts a failure of `key` and returns when to retry it.
    pub fn failed(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap();
        let n = failures.entry(key.to_owned()).or_default();
        *n = n.saturating_add(1);
        delay(key, *n)
    }

    /// A reconcile of `key` succeeded: its next failure waits [`FIRST`] again.
    pub fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap();
        if !failures.is_empty() {
            failures.remove(key);
        }
    }

    /// Forgets policies that no longer exist.
    pub fn retain(&self, exists: impl Fn(&str) -> bool) {
        self.failures.lock().unwrap().retain(|key, _| exists(key));
    }
}

/// The retry after the `failures`-th failure in a row of `key` (1 = the first).
pub fn delay(key: &str, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let base = FIRST.saturating_mul(1 << doublings).min(MAX);
    // A stable spread in [0.9, 1.1), different per policy and per attempt.
    let mut hasher = DefaultHasher::new();
    (key, failures).hash(&mut hasher);
    let spread = 0.9 + (hasher.finish() % 1000) as f64 / 5000.0;
    base.mul_f64(spread)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn doubles_from_five_seconds_and_starts_over_after_a_success() {
        let backoff = Backoff::default();
        let waits: Vec<u64> = (0..4).map(|_| backoff.failed("ns/a").as_secs()).collect();
        assert!((4..=5).contains(&waits[0]), "{waits:?}");
        assert!((9..=11).contains(&waits[1]), "{waits:?}");
        assert!((18..=22).contains(&waits[2]), "{waits:?}");
        assert!((36..=44).contains(&waits[3]), "{waits:?}");
        assert!(
            backoff.failed("ns/b") < Duration::from_secs(6),
            "per policy"
        );
        backoff.succeeded("ns/a");
        assert!(backoff.failed("ns/a") < Duration::from_secs(6));
    }

    #[test]
    fn policies_that_failed_together_retry_spread_out() {
        let waits: std::collections::BTreeSet<u128> = (0..100)
            .map(|i| delay(&format!("ns/p{i}"), 3).as_millis())
            .collect();
        assert!(waits.len() > 50, "{} distinct retries", waits.len());
    }

    proptest! {
        #[test]
        fn never_shorter_than_the_first_nor_longer_than_the_max(key in "[a-z/]{1,20}", n in 1u32..=u32::MAX) {
            let d = delay(&key, n);
            prop_assert!(d >= FIRST.mul_f64(0.9));
            prop_assert!(d <= MAX.mul_f64(1.1));
        }

        #[test]
        fn never_shorter_after_more_failures(key in "[a-z/]{1,20}", n in 1u32..64) {
            // The spread is ±10 %, so a doubling always wins until the cap.
            let (this, next) = (delay(&key, n), delay(&key, n + 1));
            prop_assert!(next >= this || this > MAX.mul_f64(0.9));
        }
    }
}
