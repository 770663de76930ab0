//! The scaling engine: a trigger's sample, its spec, the history the caller keeps and `now` in;
//! a [`Decision`] and the reason for it out. Pure: no client, no I/O, no wall clock.
//!
//! One function per trigger kind:
//! - [`decide_partitions`]: Kafka consumer lag → a higher partition count, never lower, capped;
//!
//! Rules every decision follows:
//! - An unknown sample ([`Sample::Unknown`]) or an invalid input never leads to an action, in
//!   either direction; the reason names the source that failed and its error.
//! - The reason is one sentence, with the numbers that were compared, written for a status
//!   message or an Event note; it says what was decided and, for no action, what stood in the way.
//! - Time is a [`Timestamp`] passed in by the caller; windows, periods and cooldowns are
//!   durations. An instant `at` lies within a window `w` when `now - w < at`, and a cooldown
//!   `c` after `last` has elapsed when `now >= last + c`.

mod cooldown;
mod decision;
mod partitions;
mod sample;

#[cfg(test)]
mod tests;

pub use k8s_openapi::jiff::Timestamp;

pub use cooldown::{
    DATABASE_CONNECTIONS_COOLDOWN, KAFKA_LAG_COOLDOWN, REDIS_MEMORY_COOLDOWN, next_eligible_at,
};
pub use decision::{Decision, ReplicaChange};
pub use partitions::{PartitionChange, PartitionInput, decide_partitions, partitions_for_lag};
pub use sample::Sample;
