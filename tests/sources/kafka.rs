//! `sources::kafka` against a real KRaft broker: exact lag under each rule, partition changes
//! seen in broker metadata, and errors (never 0) for a missing topic or a stopped broker.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::kafka::{commit, config, produce};
use liftoff::actuators::kafka::PartitionsOutcome;
use liftoff::sources::kafka::{Cluster, KafkaError, PartitionLag};
use liftoff_testenv::Kafka;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(20);

/// Deletes the records of `topic` before `offsets` (partition → new low watermark), as
/// retention would.
async fn delete_records(kafka: &Kafka, topic: &str, offsets: &[(i32, i64)]) {
    let admin: AdminClient<DefaultClientContext> = config(kafka).create().expect("admin");
    let mut tpl = TopicPartitionList::new();
    for &(partition, offset) in offsets {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .unwrap();
    }
    let result = admin
        .delete_records(&tpl, &AdminOptions::new())
        .await
        .expect("delete records");
    for elem in result.elements() {
        elem.error().expect("partition's records deleted");
    }
}

fn partition(
    partition: i32,
    committed: Option<i64>,
    low: i64,
    high: i64,
    lag: i64,
) -> PartitionLag {
    PartitionLag {
        partition,
        committed,
        low,
        high,
        lag,
    }
}

#[tokio::test]
async fn kafka_lag_is_exact_for_committed_uncommitted_and_retention_deleted_partitions() {
    let kafka = Kafka::start().await.expect("kafka starts");
    kafka.create_topic("task-events", 3).await.unwrap();
    // 60,000 messages: more than the default 50,000 threshold.
    produce(&kafka, "task-events", &[30_000, 20_000, 10_000]).await;
    // Partition 0 is behind, 1 has no committed offset, 2 is committed past its end (as a
    // transaction marker or compaction can leave it).
    commit(
        &kafka,
        "task-events",
        "task-workers",
        &[(0, 5_000), (2, 12_000)],
    )
    .await;

    let cluster = Cluster::connect(&kafka.bootstrap(), &BTreeMap::new()).unwrap();
    let lag = cluster
        .lag("task-events", "task-workers", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        lag.partitions,
        [
            partition(0, Some(5_000), 0, 30_000, 25_000),
            partition(1, None, 0, 20_000, 20_000),
            partition(2, Some(12_000), 0, 10_000, 0),
        ]
    );
    assert_eq!(lag.total, 45_000);

    // Retention deletes messages: on partition 0 past the committed offset (clamped to the low
    // watermark), on partition 1 (no commit: only retained messages count).
    delete_records(&kafka, "task-events", &[(0, 8_000), (1, 5_000)]).await;
    let lag = cluster
        .lag("task-events", "task-workers", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        lag.partitions,
        [
            partition(0, Some(5_000), 8_000, 30_000, 22_000),
            partition(1, None, 5_000, 20_000, 15_000),
            partition(2, Some(12_000), 0, 10_000, 0),
        ]
    );
    assert_eq!(lag.total, 37_000);

    // A group that never committed anything (and has no members) is readable: all retained
    // messages are its lag.
    let fresh = cluster
        .lag("task-events", "new-group", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(fresh.total, 22_000 + 15_000 + 10_000);
    assert!(fresh.partitions.iter().all(|p| p.committed.is_none()));

    let missing = cluster
        .lag("no-such-topic", "task-workers", TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(
        missing.to_string(),
        format!(
            "topic no-such-topic does not exist on Kafka at {}",
            kafka.bootstrap()
        )
    );
    kafka.stop().await;
}

#[tokio::test]
async fn kafka_create_partitions_raises_the_count_once_and_never_lowers_it() {
    let kafka = Kafka::start().await.expect("kafka starts");
    kafka.create_topic("orders", 3).await.unwrap();
    let cluster = Cluster::connect(&kafka.bootstrap(), &BTreeMap::new()).unwrap();
    assert_eq!(cluster.partition_count("orders", TIMEOUT).await, Ok(3));

    let raised = cluster.create_partitions("orders", 6, TIMEOUT).await;
    assert_eq!(
        raised,
        Ok(PartitionsOutcome::Created {
            before: 3,
            after: 6
        })
    );
    // The broker's own tool sees the new count.
    let seen = super::eventually(TIMEOUT, "6 partitions in metadata", || async {
        kafka.partitions("orders").await.ok().filter(|n| *n == 6)
    })
    .await;
    assert_eq!(seen, 6);

    let again = cluster.create_partitions("orders", 6, TIMEOUT).await;
    assert_eq!(
        again,
        Ok(PartitionsOutcome::AlreadyAtLeast {
            current: 6,
            requested: 6
        })
    );
    let lower = cluster.create_partitions("orders", 4, TIMEOUT).await;
    assert_eq!(
        lower,
        Ok(PartitionsOutcome::AlreadyAtLeast {
            current: 6,
            requested: 4
        })
    );
    assert_eq!(kafka.partitions("orders").await.unwrap(), 6);
    assert_eq!(cluster.partition_count("orders", TIMEOUT).await, Ok(6));

    let missing = cluster.create_partitions("no-such-topic", 3, TIMEOUT).await;
    assert!(
        matches!(missing, Err(KafkaError::TopicNotFound { .. })),
        "{missing:?}"
    );

    // A stopped broker is an error within the timeout, not a lag of 0.
    let bootstrap = kafka.bootstrap();
    kafka.stop().await;
    let started = std::time::Instant::now();
    let down = cluster
        .lag("orders", "g", Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            &down,
            KafkaError::Timeout { .. } | KafkaError::Metadata { .. }
        ),
        "{down:?}"
    );
    assert!(down.to_string().contains(&bootstrap), "{down}");
    eprintln!("kafka stopped: {down} (after {:?})", started.elapsed());
}
