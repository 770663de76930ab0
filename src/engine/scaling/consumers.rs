//! Kafka consumer lag → consumers that follow the partitions: the consumer workload's replicas
//! from the lag, never above the partition count, the partitions raised first when the
//! consumers need more of them.

use k8s_openapi::jiff::Timestamp;

use super::{
    cooldown::{self, KAFKA_LAG_COOLDOWN},
    decision::{Decision, ReplicaChange},
    partitions::PartitionChange,
    sample::{Sample, num, usable},
};
use crate::crd::Duration;

/// Everything [`decide_consumers`] needs besides the time.
#[derive(Clone, Copy, Debug)]
pub struct ConsumerInput<'a> {
    /// Total lag of the consumer group on the topic, in messages.
    pub lag: &'a Sample,
    /// `kafkaLag.threshold`: consumers are only scaled in at or below it.
    pub threshold: i64,
    /// The topic's partition count now, and `partitions.max`.
    pub partitions: (i32, i32),
    /// The consumer workload's replicas now.
    pub consumers: i32,
    /// `consumers.lagPerReplica`.
    pub lag_per_replica: i64,
    /// `consumers.min` and `consumers.max`.
    pub bounds: (i32, i32),
    /// The trigger's `cooldown` (default [`KAFKA_LAG_COOLDOWN`]): between partition changes, and
    /// before consumers are scaled in after any action.
    pub cooldown: Option<Duration>,
    /// When this trigger last acted (partitions or consumers).
    pub last_action_at: Option<Timestamp>,
}

/// What a kafkaLag trigger with consumers does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerStep {
    /// Raise the partitions first: the consumers need more than there are.
    Partitions(PartitionChange),
    /// Set the consumer workload's replicas.
    Consumers(ReplicaChange),
}

/// The consumers the lag asks for: `ceil(lag / lagPerReplica)` within `min..=max`.
pub fn consumers_for_lag(lag: f64, lag_per_replica: i64, (min, max): (i32, i32)) -> i32 {
    let wanted = (lag / lag_per_replica.max(1) as f64).ceil();
    wanted.clamp(f64::from(min), f64::from(max.max(min))) as i32
}

/// Decides a kafkaLag trigger's step when it scales consumers.
///
/// In order: an unknown or invalid sample → no action; consumers at 0 → no action (scaled to
/// zero on purpose); when the lag is above the threshold, wants more consumers than partitions,
/// and the partitions may still grow (below `partitions.max`, out of the cooldown) → raise the
/// partitions to what the consumers want, at least one more; otherwise the consumers go to what
/// the lag wants capped by the partition count, at once when that is more than they run; when it
/// is fewer, they go down to it (never below `min`) only at or below the threshold and out of the
/// cooldown. The cooldown counts from the trigger's last action of either kind.
pub fn decide_consumers(input: &ConsumerInput<'_>, now: Timestamp) -> Decision<ConsumerStep> {
    let lag = match usable(input.lag, "consumer lag") {
        Ok(lag) => lag,
        Err(why) => return Decision::hold(format!("no action: {why}")),
    };
    let ((partitions, max_partitions), current) = (input.partitions, input.consumers);
    if partitions < 1 {
        return Decision::hold(format!(
            "no action: the topic reports {partitions} partitions"
        ));
    }
    if current < 1 {
        return Decision::hold(format!(
            "no action: the consumers run {current} replicas and scaling up from zero is out \
             of scope"
        ));
    }
    let wanted = consumers_for_lag(lag, input.lag_per_replica, input.bounds);
    let lag_text = format!(
        "lag {} wants {wanted} consumers ({} per replica)",
        num(lag),
        input.lag_per_replica
    );
    let cooldown = cooldown::or_default(input.cooldown, KAFKA_LAG_COOLDOWN);
    let cooled = cooldown::check(input.last_action_at, cooldown, now);
    let mut capped = String::new();
    let hot = lag > input.threshold as f64;
    if wanted > partitions {
        match (&cooled, partitions < max_partitions) {
            (Ok(()), true) if hot => {
                let to = wanted.min(max_partitions).max(partitions + 1);
                return Decision::act(
                    ConsumerStep::Partitions(PartitionChange {
                        from: partitions,
                        to,
                    }),
                    format!(
                        "{lag_text}, more than the {partitions} partitions; raising the \
                         partitions to {to} first, the consumers follow"
                    ),
                );
            }
            (Ok(()), true) => {
                capped = format!(
                    " (capped by the {partitions} partitions: the lag is not above the \
                     threshold {}, so no partitions are added)",
                    input.threshold
                )
            }
            (Err(why), true) => {
                capped = format!(" (capped by the {partitions} partitions, which wait: {why})")
            }
            (_, false) => {
                capped = format!(
                    " (capped by the {partitions} partitions, partitions.max {max_partitions})"
                )
            }
        }
    }
    // Never more consumers than partitions; never fewer than `min` by scaling in.
    let cap = wanted.min(partitions);
    let lag_text = format!("{lag_text}{capped}");
    if cap > current {
        return Decision::act(
            ConsumerStep::Consumers(ReplicaChange {
                from: current,
                to: cap,
            }),
            format!("{lag_text}; scaling the consumers from {current} to {cap}"),
        );
    }
    let target = cap.max(input.bounds.0);
    if target >= current {
        return Decision::hold(format!("no action: {lag_text}; {current} run"));
    }
    if hot {
        return Decision::hold(format!(
            "no action: {lag_text}, but the lag is above the threshold {}, so {current} \
             consumers stay",
            input.threshold
        ));
    }
    if let Err(why) = cooled {
        return Decision::hold(format!(
            "no action: {lag_text}, but {why}, so {current} consumers stay"
        ));
    }
    Decision::act(
        ConsumerStep::Consumers(ReplicaChange {
            from: current,
            to: target,
        }),
        format!("{lag_text}; scaling the consumers in from {current} to {target}"),
    )
}
