//! Kafka: consumer-group lag on a topic and partition counts (raising them is a write:
//! [`crate::actuators::kafka`]).
//!
//! Lag is read from the broker, not from the consumers: the group's **committed offsets**
//! (OffsetFetch, through a librdkafka handle whose `group.id` is the group; it never joins the
//! group, so the group may have no members at all) against each partition's **watermarks**
//! (ListOffsets). Per partition, with `high` the high watermark and `low` the first retained
//! offset (rules in [`partition_lag`], reasons and KEDA comparison in `docs/triggers/kafka-lag.md`):
//!
//! | partition state | lag |
//! | --- | --- |
//! | committed offset `c` with `low ≤ c ≤ high` | `high − c` |
//! | no committed offset | `high − low`: every message still retained |
//! | `c < low` (retention deleted unread messages) | `high − low` |
//! | `c > high` (transaction markers, compaction, truncation) | `0`, never negative |
//!
//! The total is the sum over **all** partitions of the topic as the broker lists them now. A
//! missing topic is an error ([`KafkaError::TopicNotFound`]), never a lag of 0.
//!
//! High watermarks are read with `isolation.level=read_committed` (librdkafka's default), so
//! they are the *last stable offset*: messages of open transactions are not lag yet, and
//! aborted ones below it are counted (a consumer still has to skip over them).
//!
//! ## Connections and settings
//!
//! [`Cluster::connect`] builds the librdkafka handles without contacting the broker; the first
//! query connects. A `Cluster` is cheap to clone and meant to be kept, one per
//! (bootstrap servers, settings), so connections are reused between samples. It holds one
//! handle for metadata and watermarks, one admin handle, and one handle per consumer group
//! asked about (each with its own broker connections; a policy has a handful of groups).
//!
//! `settings` are librdkafka client properties (`security.protocol`, `sasl.mechanism`,
//! `sasl.username`, `sasl.password`, `ssl.ca.pem`, …), typically from a Secret. They are never
//! logged, and error texts are scrubbed of the values of secret-looking properties.
//! `bootstrap.servers` and `group.id` in them are ignored (they come from the trigger). This
//! build supports PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL with PLAIN, SCRAM-SHA-256/512 and
//! OAUTHBEARER (static tokens); not GSSAPI (Kerberos) nor OIDC token fetching.
//!
//! librdkafka calls block, so they run on tokio's blocking pool (`spawn_blocking`), bounded
//! by the `timeout` each method takes (one deadline for all the requests of the call).

mod client;
mod error;
mod lag;

pub use client::Cluster;
pub use error::KafkaError;
pub use lag::{Lag, PartitionLag, partition_lag, topic_lag};
