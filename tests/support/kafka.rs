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

/// A consumer group whose members follow a workload's replica count, as its pods would: one
/// member per replica, each subscribed to the topic in the group, reading but committing
/// nothing (so the lag stays what the test made it). Stops when dropped.
pub struct ConsumerFleet {
    wanted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    follower: tokio::task::JoinHandle<()>,
}

impl ConsumerFleet {
    /// Members of `group` on `topic`, as many as `replicas()` says, re-read every 200 ms.
    pub fn follow<F, Fut>(kafka: &Kafka, topic: &str, group: &str, replicas: F) -> ConsumerFleet
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = i32> + Send,
    {
        use std::sync::{
            Arc,
            atomic::{AtomicBool, AtomicUsize, Ordering},
        };
        let wanted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut config = config(kafka);
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500");
        let (topic, members_wanted, stopped) = (topic.to_string(), wanted.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut members: Vec<BaseConsumer> = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let n = members_wanted.load(Ordering::Relaxed);
                while members.len() < n {
                    let member: BaseConsumer = config.create().expect("consumer");
                    member.subscribe(&[&topic]).expect("subscribed");
                    members.push(member);
                }
                members.truncate(n);
                for member in &members {
                    // Joins, rebalances and fetches happen on poll; the messages are dropped.
                    let _ = member.poll(Duration::from_millis(10));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let target = wanted.clone();
        let follower = tokio::spawn(async move {
            loop {
                let n = replicas().await.max(0) as usize;
                target.store(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        ConsumerFleet {
            wanted,
            stop,
            follower,
        }
    }

    /// How many members the fleet runs now.
    pub fn wanted(&self) -> usize {
        self.wanted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for ConsumerFleet {
    fn drop(&mut self) {
        self.follower.abort();
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The members of consumer group `group`, as the broker lists them.
pub async fn group_members(kafka: &Kafka, group: &str) -> Option<usize> {
    let client: BaseConsumer = config(kafka).create().ok()?;
    let group = group.to_string();
    tokio::task::spawn_blocking(move || {
        let list = client
            .fetch_group_list(Some(&group), Duration::from_secs(5))
            .ok()?;
        let found = list.groups().iter().find(|g| g.name() == group)?;
        Some(found.members().len())
    })
    .await
    .ok()?
}
