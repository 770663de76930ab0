//! Kafka consumer lag → a higher partition count for the topic.

use k8s_openapi::jiff::Timestamp;

use super::{
    cooldown::{self, KAFKA_LAG_COOLDOWN},
    decision::Decision,
    sample::{Sample, num, usable},
};
use crate::crd::Duration;

/// Everything [`decide_partitions`] needs besides the time.
#[derive(Clone, Copy, Debug)]
pub struct PartitionInput<'a> {
    /// Total lag of the consumer group on the topic, in messages.
    pub lag: &'a Sample,
    /// `kafkaLag.threshold`: the total lag above which partitions are added.
    pub threshold: i64,
    /// The topic's partition count now.
    pub current_partitions: i32,
    /// `partitions.max`.
    pub max_partitions: i32,
    /// The trigger's `cooldown` (default [`KAFKA_LAG_COOLDOWN`]).
    pub cooldown: Option<Duration>,
    /// When this trigger last changed the partition count.
    pub last_action_at: Option<Timestamp>,
}

/// A new total partition count for the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionChange {
    /// Partitions before the change.
    pub from: i32,
    /// Partitions after the change (always more than `from`, never more than `partitions.max`).
    pub to: i32,
}

/// The partition count a lag asks for, given that it is above the threshold:
/// `min(max, max(current + 1, ceil(current × lag / threshold)))`.
///
/// Growing in proportion to `lag / threshold` gives the consumer group (at most one consumer per
/// partition) proportionally more parallelism for a proportionally bigger backlog: a lag of
/// twice the threshold doubles the partitions. At least one partition is added, so a lag just
/// above the threshold still makes progress, and the result never exceeds `max`. Expects
/// `lag > threshold > 0` and `current >= 1`.
pub fn partitions_for_lag(current: i32, lag: f64, threshold: i64, max: i32) -> i32 {
    // Lags and thresholds are integers; f64 holds them exactly up to 2^53.
    let proportional = (f64::from(current) * lag / threshold as f64).ceil();
    let at_least_one_more = f64::from(current) + 1.0;
    proportional.max(at_least_one_more).min(f64::from(max)) as i32
}

/// Decides whether to add partitions to a kafkaLag trigger's topic. Partitions are never removed.
///
/// In order: an unknown or invalid sample → no action; lag at or below the threshold → no
/// action; already at (or above) `max` → no action, "at max"; within the cooldown after the last
/// action → no action; otherwise the new total from [`partitions_for_lag`].
pub fn decide_partitions(input: &PartitionInput<'_>, now: Timestamp) -> Decision<PartitionChange> {
    let lag = match usable(input.lag, "consumer lag") {
        Ok(lag) => lag,
        Err(why) => return Decision::hold(format!("no action: {why}")),
    };
    let (current, max, threshold) = (
        input.current_partitions,
        input.max_partitions,
        input.threshold,
    );
    if threshold < 1 {
        return Decision::hold(format!(
            "no action: kafkaLag.threshold {threshold} must be at least 1"
        ));
    }
    if max < 1 {
        return Decision::hold(format!(
            "no action: partitions.max {max} must be at least 1"
        ));
    }
    if current < 1 {
        return Decision::hold(format!("no action: the topic reports {current} partitions"));
    }
    if lag <= threshold as f64 {
        return Decision::hold(format!(
            "no action: lag {} is at or below the threshold {threshold}",
            num(lag)
        ));
    }
    if current >= max {
        let above = if current > max {
            " (partitions are never removed)"
        } else {
            ""
        };
        return Decision::hold(format!(
            "no action: at max: lag {} is above the threshold {threshold}, but the topic has \
             {current} partitions and partitions.max is {max}{above}",
            num(lag)
        ));
    }
    let cooldown = cooldown::or_default(input.cooldown, KAFKA_LAG_COOLDOWN);
    if let Err(why) = cooldown::check(input.last_action_at, cooldown, now) {
        return Decision::hold(format!(
            "no action: lag {} is above the threshold {threshold}, but {why}",
            num(lag)
        ));
    }
    let to = partitions_for_lag(current, lag, threshold, max);
    let capped = if to == max {
        format!(" (partitions.max {max})")
    } else {
        String::new()
    };
    Decision::act(
        PartitionChange { from: current, to },
        format!(
            "lag {} is above the threshold {threshold}; raising the partitions from {current} \
             to {to}{capped}",
            num(lag)
        ),
    )
}
