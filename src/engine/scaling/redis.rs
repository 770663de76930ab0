//! Redis memory → one more replica of its StatefulSet, the next ElastiCache node type, or a
//! signal when there is nothing to scale.

use k8s_openapi::jiff::Timestamp;

use super::{
    cooldown::{self, REDIS_MEMORY_COOLDOWN},
    decision::{Decision, ReplicaChange},
    ladder::{self, Ladder, ResizeAction},
    sample::{Sample, num, usable},
};
use crate::crd::Duration;

/// Everything [`decide_redis_step`] needs besides the time.
#[derive(Clone, Copy, Debug)]
pub struct RedisInput<'a> {
    /// Memory used, in percent of `maxmemory`.
    pub memory_percent: &'a Sample,
    /// `redisMemory.threshold`, in percent.
    pub threshold: i32,
    /// What to scale up.
    pub target: RedisTarget<'a>,
    /// The trigger's `cooldown` (default [`REDIS_MEMORY_COOLDOWN`]).
    pub cooldown: Option<Duration>,
    /// When this trigger last scaled or signalled.
    pub last_action_at: Option<Timestamp>,
}

/// What a redisMemory trigger scales.
#[derive(Clone, Copy, Debug)]
pub enum RedisTarget<'a> {
    /// A workload (`scaleTargetRef`), one replica at a time.
    Replicas {
        /// Its replicas now.
        current: i32,
        /// `replicas.max`.
        max: i32,
    },
    /// An ElastiCache replication group (`cacheResize`), one node type at a time.
    NodeType {
        ladder: Ladder<'a>,
        /// Its node type now, `None` when it is not known.
        current: Option<&'a str>,
    },
    /// Nothing: signal only.
    Nothing,
}

/// What a redisMemory trigger does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisAction {
    /// Scale the target up by one replica.
    ScaleUp(ReplicaChange),
    /// Move the replication group to the next node type (or recommend it).
    Resize(ResizeAction),
    /// Signal only (Event, status, notification): no `scaleTargetRef` is configured.
    Signal,
}

/// Decides whether a redisMemory trigger scales its target up by one step (one replica).
///
/// In order: an unknown or invalid sample → no action; memory at or below the threshold → no
/// action; a target at 0 replicas or already at (or above) `max` → no action; within the
/// cooldown after the last action → no action (signals included, so they are not repeated every
/// sample); otherwise [`RedisAction::ScaleUp`] by one, [`RedisAction::Resize`] by one rung of the
/// node-type ladder ([`ladder::step`]), or [`RedisAction::Signal`] without a target.
pub fn decide_redis_step(input: &RedisInput<'_>, now: Timestamp) -> Decision<RedisAction> {
    let memory = match usable(input.memory_percent, "Redis memory") {
        Ok(memory) => memory,
        Err(why) => return Decision::hold(format!("no action: {why}")),
    };
    let threshold = input.threshold;
    if threshold < 1 {
        return Decision::hold(format!(
            "no action: redisMemory.threshold {threshold} must be at least 1"
        ));
    }
    if memory <= f64::from(threshold) {
        return Decision::hold(format!(
            "no action: Redis memory {}% of maxmemory is at or below the threshold {threshold}%",
            num(memory)
        ));
    }
    let above = format!(
        "Redis memory {}% of maxmemory is above the threshold {threshold}%",
        num(memory)
    );
    if let RedisTarget::Replicas { current, max } = input.target {
        if current < 1 {
            return Decision::hold(format!(
                "no action: {above}, but the target has {current} replicas and scaling up from \
                 zero is out of scope"
            ));
        }
        if current >= max {
            return Decision::hold(format!(
                "no action: {above}, but the target is at max: {current} replicas, \
                 replicas.max {max}"
            ));
        }
    }
    if let RedisTarget::NodeType { ladder, current } = &input.target {
        let cooldown = (input.cooldown, REDIS_MEMORY_COOLDOWN);
        let step = ladder::step(
            &above,
            ladder,
            *current,
            cooldown,
            input.last_action_at,
            now,
        );
        return Decision {
            action: step.action.map(RedisAction::Resize),
            reason: step.reason,
        };
    }
    let cooldown = cooldown::or_default(input.cooldown, REDIS_MEMORY_COOLDOWN);
    if let Err(why) = cooldown::check(input.last_action_at, cooldown, now) {
        return Decision::hold(format!("no action: {above}, but {why}"));
    }
    match input.target {
        RedisTarget::Replicas { current, .. } => Decision::act(
            RedisAction::ScaleUp(ReplicaChange {
                from: current,
                to: current + 1,
            }),
            format!(
                "{above}; scaling up one step from {current} to {} replicas",
                current + 1
            ),
        ),
        RedisTarget::NodeType { .. } | RedisTarget::Nothing => Decision::act(
            RedisAction::Signal,
            format!("{above}; no scaleTargetRef or cacheResize is set, so this is a signal only"),
        ),
    }
}
