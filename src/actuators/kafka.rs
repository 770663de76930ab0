//! Kafka partitions raised through the admin API (CreatePartitions), on the same [`Cluster`]
//! handles that read the lag. (A Strimzi-managed topic is raised through its `KafkaTopic`
//! instead: [`super::objects::KAFKA_TOPIC_PARTITIONS`].)

use std::time::{Duration, Instant};

use rdkafka::{
    admin::{AdminOptions, NewPartitions},
    types::RDKafkaErrorCode,
};

use crate::sources::kafka::{Cluster, KafkaError};

/// What [`Cluster::create_partitions`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionsOutcome {
    /// The topic had `before` partitions and now has `after` (the requested total).
    Created { before: i32, after: i32 },
    /// The topic already had `current` ≥ the requested total partitions: nothing was changed.
    AlreadyAtLeast { current: i32, requested: i32 },
}

impl Cluster {
    /// Raises `topic` to `total` partitions (CreatePartitions). Idempotent and never
    /// decreasing: with `total` or more partitions already, nothing is sent and the outcome
    /// says so; if another client raised it concurrently, the outcome reports that too.
    pub async fn create_partitions(
        &self,
        topic: &str,
        total: i32,
        timeout: Duration,
    ) -> Result<PartitionsOutcome, KafkaError> {
        if total < 1 {
            return Err(KafkaError::InvalidPartitionCount {
                topic: topic.to_string(),
                total,
            });
        }
        let started = Instant::now();
        let before = self.partition_count(topic, timeout).await?;
        if before >= total {
            return Ok(PartitionsOutcome::AlreadyAtLeast {
                current: before,
                requested: total,
            });
        }
        let left = timeout.saturating_sub(started.elapsed());
        let options = AdminOptions::new()
            .request_timeout(Some(left))
            .operation_timeout(Some(left));
        let request = NewPartitions::new(topic, total as usize);
        let failed = |reason: String| KafkaError::CreatePartitions {
            topic: topic.to_string(),
            total,
            reason,
        };
        let results = self
            .admin()
            .create_partitions([&request], &options)
            .await
            .map_err(|e| failed(self.reason(&e, timeout)))?;
        match results.into_iter().next() {
            Some(Ok(_)) => Ok(PartitionsOutcome::Created {
                before,
                after: total,
            }),
            // Raced with another client: report what the topic has now if that is enough.
            Some(Err((_, RDKafkaErrorCode::InvalidPartitions))) => {
                let current = self.partition_count(topic, timeout).await?;
                if current >= total {
                    Ok(PartitionsOutcome::AlreadyAtLeast {
                        current,
                        requested: total,
                    })
                } else {
                    Err(failed(RDKafkaErrorCode::InvalidPartitions.to_string()))
                }
            }
            Some(Err((_, RDKafkaErrorCode::UnknownTopicOrPartition))) => {
                Err(KafkaError::TopicNotFound {
                    topic: topic.to_string(),
                    bootstrap: self.bootstrap_servers().to_string(),
                })
            }
            Some(Err((_, code))) => Err(failed(self.scrub(&code.to_string()))),
            None => Err(failed("the broker returned no result".into())),
        }
    }
}
