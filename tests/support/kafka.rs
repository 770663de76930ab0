//! Producing to and committing for a real Kafka broker, as a workload would.

use std::time::Duration;

use liftoff_testenv::Kafka;
use rdkafka::{
    Offset, TopicPartitionList,
    config::ClientConfig,
    consumer::{BaseConsumer, CommitMode, Consumer},
    producer::{BaseProducer, BaseRecord, Producer},
};

pub fn config(kafka: &Kafka) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", kafka.bootstrap());
    config
}

/// Produces `counts[p]` small messages to partition `p` of `topic` and waits for the acks.
pub async fn produce(kafka: &Kafka, topic: &str, counts: &[usize]) {
    let producer: BaseProducer = config(kafka)
        .set("linger.ms", "20")
        .create()
        .expect("producer");
    let (topic, counts) = (topic.to_string(), counts.to_vec());
    tokio::task::spawn_blocking(move || {
        for (partition, &count) in counts.iter().enumerate() {
            for i in 0..count {
                let payload = format!("task-{i}");
                let record = BaseRecord::<(), _>::to(&topic)
                    .partition(partition as i32)
                    .payload(&payload);
                let mut record = Some(record);
                while let Some(r) = record.take() {
                    if let Err((_, back)) = producer.send(r) {
                        // Local queue full: serve delivery reports, then retry.
                        producer.poll(Duration::from_millis(50));
                        record = Some(back);
                    }
                }
            }
        }
        producer
            .flush(Duration::from_secs(60))
            .expect("all messages acked");
    })
    .await
    .unwrap();
}

/// Commits `offsets` (partition → next offset to read) for `group`, as a consumer that is not a
/// group member would (the group stays empty).
pub async fn commit(kafka: &Kafka, topic: &str, group: &str, offsets: &[(i32, i64)]) {
    let consumer: BaseConsumer = config(kafka)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for &(partition, offset) in offsets {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .unwrap();
    }
    // The first commit on a fresh broker creates __consumer_offsets; until its coordinator is
    // loaded the broker answers NOT_COORDINATOR, so retry for a bounded time.
    let consumer = std::sync::Arc::new(consumer);
    super::eventually(Duration::from_secs(30), "offsets committed", || {
        let (consumer, tpl) = (consumer.clone(), tpl.clone());
        async move {
            tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
                .await
                .unwrap()
                .ok()
        }
    })
    .await;
}
