//! Kafka errors, and keeping secret setting values out of their texts.

use std::time::Duration;

use rdkafka::error::KafkaError as RdError;

/// Why a Kafka read or change failed. Texts never contain client settings' secret values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KafkaError {
    #[error("invalid Kafka client settings: {reason}")]
    InvalidSettings { reason: String },
    #[error("Kafka at {bootstrap} did not answer within {timeout:?} while {doing}")]
    Timeout {
        bootstrap: String,
        timeout: Duration,
        doing: String,
    },
    #[error("topic {topic} does not exist on Kafka at {bootstrap}")]
    TopicNotFound { topic: String, bootstrap: String },
    #[error("could not read the metadata of topic {topic} from Kafka at {bootstrap}: {reason}")]
    Metadata {
        topic: String,
        bootstrap: String,
        reason: String,
    },
    #[error(
        "could not read the committed offsets of consumer group {group} on topic {topic}: {reason}"
    )]
    CommittedOffsets {
        group: String,
        topic: String,
        reason: String,
    },
    #[error("could not read the offsets of topic {topic} partition {partition}: {reason}")]
    Watermarks {
        topic: String,
        partition: i32,
        reason: String,
    },
    #[error("could not raise topic {topic} to {total} partitions: {reason}")]
    CreatePartitions {
        topic: String,
        total: i32,
        reason: String,
    },
    #[error("cannot raise topic {topic} to {total} partitions: the count must be at least 1")]
    InvalidPartitionCount { topic: String, total: i32 },
    #[error("the Kafka request for topic {topic} stopped unexpectedly: {reason}")]
    Internal { topic: String, reason: String },
}

/// `text` with every secret value replaced by `***`.
pub(super) fn scrub(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_string(), |t, secret| {
        t.replace(secret.as_str(), "***")
    })
}

/// A settings error names the property and the problem, never the value given.
pub(super) fn settings_error(err: &RdError, secrets: &[String]) -> String {
    match err {
        RdError::ClientConfig(_, description, key, value) => {
            let description = if value.is_empty() {
                description.clone()
            } else {
                description.replace(value.as_str(), "***")
            };
            format!("{key}: {}", scrub(&description, secrets))
        }
        other => scrub(&other.to_string(), secrets),
    }
}
