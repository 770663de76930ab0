//! The scaling engine: a trigger's sample, its spec, the history the caller keeps and `now` in;
//! a [`Decision`] and the reason for it out. Pure: no client, no I/O, no wall clock.
//!
//! One function per trigger kind:
//! - [`decide_replicas`]: CPU utilisation → replicas, with the HorizontalPodAutoscaler's maths
//!   (ratio, tolerance, stabilization windows, Pods/Percent rate policies, min/max);
//! - [`decide_partitions`]: Kafka consumer lag → a higher partition count, never lower, capped;
//! - [`decide_consumers`]: Kafka consumer lag → consumers that follow the partitions (raised
//!   first when the consumers need more of them);
//! - [`decide_rds_resize`]: database connections → the next instance class on the ladder;
//! - [`decide_redis_step`]: Redis memory → one more StatefulSet replica, the next ElastiCache
//!   node type, or a signal only;
//!
//! Both resizes climb a [`Ladder`] one rung at a time ([`ladder::step`]).
//!
//! Rules every decision follows:
//! - An unknown sample ([`Sample::Unknown`]) or an invalid input never leads to an action, in
//!   either direction; the reason names the source that failed and its error.
//! - The reason is one sentence, with the numbers that were compared, written for a status
//!   message or an Event note; it says what was decided and, for no action, what stood in the way.
//! - Time is a [`Timestamp`] passed in by the caller; windows, periods and cooldowns are
//!   durations. An instant `at` lies within a window `w` when `now - w < at`, and a cooldown
//!   `c` after `last` has elapsed when `now >= last + c`.

mod behavior;
mod consumers;
mod cooldown;
mod cpu;
mod decision;
mod history;
mod ladder;
mod partitions;
mod rds;
mod redis;
mod sample;

#[cfg(test)]
mod tests;

pub use k8s_openapi::jiff::Timestamp;

pub use behavior::{DEFAULT_POLICY_PERIOD, DEFAULT_SCALE_DOWN_STABILIZATION};
pub use consumers::{ConsumerInput, ConsumerStep, consumers_for_lag, decide_consumers};
pub use cooldown::{
    DATABASE_CONNECTIONS_COOLDOWN, KAFKA_LAG_COOLDOWN, REDIS_MEMORY_COOLDOWN, next_eligible_at,
};
pub use cpu::{CpuInput, TOLERANCE, decide_replicas, recommend_replicas, within_tolerance};
pub use decision::{Decision, ReplicaChange};
pub use history::{MAX_HISTORY_ENTRIES, Recommendation, ScaleEvent, ScalingHistory};
pub use ladder::{ClassChange, Ladder, ResizeAction, Rung, next_rung};
pub use partitions::{PartitionChange, PartitionInput, decide_partitions, partitions_for_lag};
pub use rds::{RdsInput, decide_rds_resize};
pub use redis::{RedisAction, RedisInput, RedisTarget, decide_redis_step};
pub use sample::{MAX_CONNECTIONS, MAX_LAG, MAX_PERCENT, Sample, num, short};
