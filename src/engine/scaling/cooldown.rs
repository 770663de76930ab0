//! Cooldowns between the actions of a trigger, on caller-given time.

use std::time::Duration as StdDuration;

use k8s_openapi::jiff::Timestamp;

use crate::crd::Duration;

/// Default minimum time between two actions of a `kafkaLag` trigger.
pub const KAFKA_LAG_COOLDOWN: StdDuration = StdDuration::from_secs(10 * 60);
/// Default minimum time between two actions of a `databaseConnections` trigger.
pub const DATABASE_CONNECTIONS_COOLDOWN: StdDuration = StdDuration::from_secs(60 * 60);
/// Default minimum time between two actions of a `redisMemory` trigger.
pub const REDIS_MEMORY_COOLDOWN: StdDuration = StdDuration::from_secs(10 * 60);

/// When a trigger whose last action was at `last_action_at` may act again (`status.nextEligibleAt`);
/// `None` when it never acted. Saturates at the largest representable time.
pub fn next_eligible_at(
    last_action_at: Option<Timestamp>,
    cooldown: StdDuration,
) -> Option<Timestamp> {
    last_action_at.map(|at| at.saturating_add(cooldown).unwrap_or(Timestamp::MAX))
}

/// `Err(reason)` while the cooldown after `last_action_at` runs, `Ok(())` once it elapsed
/// (at exactly `last_action_at + cooldown` the trigger may act again).
pub(crate) fn check(
    last_action_at: Option<Timestamp>,
    cooldown: StdDuration,
    now: Timestamp,
) -> Result<(), String> {
    match (last_action_at, next_eligible_at(last_action_at, cooldown)) {
        (Some(last), Some(until)) if now < until => Err(format!(
            "cooling down until {until} (last action at {last}, cooldown {})",
            Duration::from(cooldown)
        )),
        _ => Ok(()),
    }
}

/// The spec's cooldown, or the trigger kind's default.
pub(crate) fn or_default(cooldown: Option<Duration>, default: StdDuration) -> StdDuration {
    cooldown.map(|d| d.as_std()).unwrap_or(default)
}
