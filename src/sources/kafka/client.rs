//! The librdkafka handles behind [`Cluster`] and the blocking calls made with them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::error::{KafkaError, scrub, settings_error};
use super::lag::{Lag, topic_lag};
use crate::sources::coalesce::{self, Coalescer};

/// One Kafka cluster, as reached with one set of client settings. Clone it freely: clones share
/// the handles (and their connections).
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    bootstrap: String,
    /// Consumer-side configuration (no `group.id`); group handles add it.
    consumer_config: ClientConfig,
    /// Values of settings whose key looks secret, to scrub from error texts.
    secrets: Vec<String>,
    /// Metadata and watermarks (no group).
    plain: BaseConsumer,
    admin: AdminClient<DefaultClientContext>,
    /// One handle per consumer group, created on first use, for OffsetFetch; with its last use.
    groups: Mutex<HashMap<String, (Arc<BaseConsumer>, Instant)>>,
    /// Bounds the blocking calls in flight to this cluster (see [`MAX_CALLS_IN_FLIGHT`]).
    calls: tokio::sync::Semaphore,
    /// Identical lag reads in flight and their recent answers ([`Cluster::lag_shared`]).
    lags: Coalescer<Result<Lag, KafkaError>>,
}

/// Blocking librdkafka calls in flight per cluster. Each holds a thread of tokio's blocking pool
/// until it answers or times out; without a bound, an unreachable cluster sampled by hundreds of
/// policies held hundreds of threads (docs/benchmarks.md). Further calls wait their turn, within
/// their own timeout.
pub const MAX_CALLS_IN_FLIGHT: usize = 4;

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("bootstrap", &self.inner.bootstrap)
            .finish_non_exhaustive()
    }
}

/// Settings Liftoff decides itself; the user's values for these keys are ignored.
const RESERVED: [&str; 2] = ["bootstrap.servers", "group.id"];

/// A setting whose key contains one of these holds (or points at) secret material.
const SECRET_KEY_PARTS: [&str; 7] = [
    "password",
    "secret",
    "token",
    "key",
    "jaas",
    "sasl.username",
    "oauthbearer",
];

impl Cluster {
    /// Builds the client handles for `bootstrap_servers` (`host:port[,host:port…]`) with the
    /// librdkafka `settings`. Validates the settings; does not contact the brokers.
    pub fn connect(
        bootstrap_servers: &str,
        settings: &BTreeMap<String, String>,
    ) -> Result<Cluster, KafkaError> {
        Cluster::connect_counted(bootstrap_servers, settings, None)
    }

    /// [`Cluster::connect`], counting the answers of [`Cluster::lag_shared`] in `lag_reads`
    /// (label `answer`: `sent` or `shared`).
    pub fn connect_counted(
        bootstrap_servers: &str,
        settings: &BTreeMap<String, String>,
        lag_reads: Option<prometheus::IntCounterVec>,
    ) -> Result<Cluster, KafkaError> {
        let secrets: Vec<String> = settings
            .iter()
            .filter(|(k, v)| !v.is_empty() && SECRET_KEY_PARTS.iter().any(|p| k.contains(p)))
            .map(|(_, v)| v.clone())
            .collect();
        let mut base = ClientConfig::new();
        base.set("bootstrap.servers", bootstrap_servers)
            .set("client.id", "liftoff");
        for (key, value) in settings {
            if !RESERVED.contains(&key.as_str()) {
                base.set(key, value);
            }
        }
        let mut consumer_config = base.clone();
        consumer_config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("allow.auto.create.topics", "false");
        let invalid = |e: RdError| KafkaError::InvalidSettings {
            reason: settings_error(&e, &secrets),
        };
        let plain: BaseConsumer = consumer_config.create().map_err(invalid)?;
        let admin: AdminClient<DefaultClientContext> = base.create().map_err(invalid)?;
        Ok(Cluster {
            inner: Arc::new(Inner {
                bootstrap: bootstrap_servers.to_string(),
                consumer_config,
                secrets,
                plain,
                admin,
                groups: Mutex::new(HashMap::new()),
                calls: tokio::sync::Semaphore::new(MAX_CALLS_IN_FLIGHT),
                lags: match lag_reads {
                    Some(counter) => Coalescer::counted(counter),
                    None => Coalescer::default(),
                },
            }),
        })
    }

    /// The bootstrap servers this cluster was built with, for messages.
    pub fn bootstrap_servers(&self) -> &str {
        &self.inner.bootstrap
    }

    /// Closes the handles of consumer groups whose lag was not read for `idle` (a deleted
    /// trigger's group, a renamed one); returns how many group handles remain open.
    pub fn forget_idle_groups(&self, idle: Duration) -> usize {
        self.inner.prune_groups(idle)
    }

    /// Lag of consumer group `group` on `topic`, summed over all the topic's partitions.
    pub async fn lag(
        &self,
        topic: &str,
        group: &str,
        timeout: Duration,
    ) -> Result<Lag, KafkaError> {
        let (inner, topic_owned, group) =
            (self.inner.clone(), topic.to_string(), group.to_string());
        self.blocking(topic, timeout, "reading consumer lag", move || {
            inner.lag(&topic_owned, &group, timeout)
        })
        .await
    }

    /// [`Cluster::lag`], answered by an identical read (same topic, group and timeout) of this
    /// cluster that is in flight or was sent at most `reuse` ago, if there is one (see
    /// [`coalesce`](crate::sources::coalesce)): policies watching one consumer group share
    /// one read per interval instead of each sending its own.
    pub async fn lag_shared(
        &self,
        topic: &str,
        group: &str,
        timeout: Duration,
        reuse: Duration,
    ) -> Result<Lag, KafkaError> {
        let key = coalesce::key_of((topic, group, timeout));
        self.inner
            .lags
            .answer(key, reuse, self.lag(topic, group, timeout))
            .await
    }

    /// The number of partitions `topic` has now, from broker metadata.
    pub async fn partition_count(&self, topic: &str, timeout: Duration) -> Result<i32, KafkaError> {
        let (inner, topic_owned) = (self.inner.clone(), topic.to_string());
        self.blocking(topic, timeout, "reading topic metadata", move || {
            let deadline = Deadline::new(timeout);
            Ok(inner.partitions(&topic_owned, &deadline)?.len() as i32)
        })
        .await
    }

    /// The admin handle, for the writes in [`crate::actuators::kafka`].
    pub(crate) fn admin(&self) -> &AdminClient<DefaultClientContext> {
        &self.inner.admin
    }

    /// An error's text for a message, scrubbed of secret setting values.
    pub(crate) fn reason(&self, err: &RdError, timeout: Duration) -> String {
        self.inner.reason(err, timeout)
    }

    /// `text` scrubbed of secret setting values.
    pub(crate) fn scrub(&self, text: &str) -> String {
        self.inner.scrub(text)
    }

    /// Runs `work` on the blocking pool (librdkafka calls block their thread), once one of the
    /// cluster's [`MAX_CALLS_IN_FLIGHT`] slots is free; waiting longer than `timeout` for a slot
    /// is a timeout like any other.
    async fn blocking<T: Send + 'static>(
        &self,
        topic: &str,
        timeout: Duration,
        doing: &str,
        work: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
    ) -> Result<T, KafkaError> {
        let busy = || KafkaError::Timeout {
            bootstrap: self.inner.bootstrap.clone(),
            timeout,
            doing: format!("{doing} (waiting behind {MAX_CALLS_IN_FLIGHT} calls to this cluster)"),
        };
        let _slot = tokio::time::timeout(timeout, self.inner.calls.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| KafkaError::Internal {
                topic: topic.to_string(),
                reason: e.to_string(),
            })?
    }
}

/// One time budget shared by the requests of a call.
struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    fn new(timeout: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + timeout,
            timeout,
        }
    }

    /// Time left, or a timeout error naming what was being done.
    fn left(&self, bootstrap: &str, doing: &str) -> Result<Duration, KafkaError> {
        match self.at.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(left),
            _ => Err(KafkaError::Timeout {
                bootstrap: bootstrap.to_string(),
                timeout: self.timeout,
                doing: doing.to_string(),
            }),
        }
    }
}

impl Inner {
    fn lag(&self, topic: &str, group: &str, timeout: Duration) -> Result<Lag, KafkaError> {
        let deadline = Deadline::new(timeout);
        let partitions = self.partitions(topic, &deadline)?;
        let consumer = self.group_consumer(group, topic)?;
        let mut request = TopicPartitionList::new();
        for &p in &partitions {
            request.add_partition(topic, p);
        }
        let doing = format!("reading the committed offsets of consumer group {group}");
        let left = deadline.left(&self.bootstrap, &doing)?;
        let committed_failed = |reason| KafkaError::CommittedOffsets {
            group: group.to_string(),
            topic: topic.to_string(),
            reason,
        };
        let committed = consumer
            .committed_offsets(request, left)
            .map_err(|e| self.timeout_or(&e, timeout, &doing, committed_failed))?;
        let mut offsets = Vec::with_capacity(partitions.len());
        for &partition in &partitions {
            let elem = committed.find_partition(topic, partition);
            let committed_offset = match elem.as_ref().map(|e| (e.offset(), e.error())) {
                Some((_, Err(e))) => return Err(committed_failed(self.reason(&e, timeout))),
                Some((Offset::Offset(n), _)) if n >= 0 => Some(n),
                _ => None,
            };
            let doing = format!("reading the offsets of {topic} partition {partition}");
            let left = deadline.left(&self.bootstrap, &doing)?;
            let (low, high) = self
                .plain
                .fetch_watermarks(topic, partition, left)
                .map_err(|e| {
                    self.timeout_or(&e, timeout, &doing, |reason| KafkaError::Watermarks {
                        topic: topic.to_string(),
                        partition,
                        reason,
                    })
                })?;
            offsets.push((partition, committed_offset, low, high));
        }
        // Serve queued events (errors, statistics) so they do not pile up between samples.
        let _ = consumer.poll(Duration::ZERO);
        let _ = self.plain.poll(Duration::ZERO);
        Ok(topic_lag(offsets))
    }

    /// The topic's partition ids from a fresh Metadata request.
    fn partitions(&self, topic: &str, deadline: &Deadline) -> Result<Vec<i32>, KafkaError> {
        let doing = format!("reading the metadata of topic {topic}");
        let left = deadline.left(&self.bootstrap, &doing)?;
        let failed = |reason| KafkaError::Metadata {
            topic: topic.to_string(),
            bootstrap: self.bootstrap.clone(),
            reason,
        };
        let metadata = self
            .plain
            .fetch_metadata(Some(topic), left)
            .map_err(|e| self.timeout_or(&e, deadline.timeout, &doing, failed))?;
        let not_found = || KafkaError::TopicNotFound {
            topic: topic.to_string(),
            bootstrap: self.bootstrap.clone(),
        };
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(not_found());
        };
        match found.error().map(RDKafkaErrorCode::from) {
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                Err(not_found())
            }
            Some(code) => Err(failed(self.scrub(&code.to_string()))),
            None if found.partitions().is_empty() => Err(not_found()),
            None => Ok(found.partitions().iter().map(|p| p.id()).collect()),
        }
    }

    fn group_consumer(&self, group: &str, topic: &str) -> Result<Arc<BaseConsumer>, KafkaError> {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((consumer, used)) = groups.get_mut(group) {
            *used = Instant::now();
            return Ok(consumer.clone());
        }
        let mut config = self.consumer_config.clone();
        config.set("group.id", group);
        let consumer: BaseConsumer = config.create().map_err(|e| KafkaError::CommittedOffsets {
            group: group.to_string(),
            topic: topic.to_string(),
            reason: settings_error(&e, &self.secrets),
        })?;
        let consumer = Arc::new(consumer);
        groups.insert(group.to_string(), (consumer.clone(), Instant::now()));
        Ok(consumer)
    }

    /// Closes the handles of consumer groups not asked about for `idle` (each holds broker
    /// connections and a few threads); returns how many remain.
    fn prune_groups(&self, idle: Duration) -> usize {
        let (closing, left): (Vec<_>, usize) = {
            let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
            let idle_groups: Vec<String> = groups
                .iter()
                .filter(|(_, (_, used))| used.elapsed() >= idle)
                .map(|(g, _)| g.clone())
                .collect();
            let closing = idle_groups
                .iter()
                .filter_map(|g| groups.remove(g))
                .collect();
            (closing, groups.len())
        };
        // Closing blocks until librdkafka's threads stop: not while holding the lock.
        drop(closing);
        left
    }

    /// A timeout error if librdkafka timed out, else `other` with the error's text.
    fn timeout_or(
        &self,
        err: &RdError,
        timeout: Duration,
        doing: &str,
        other: impl FnOnce(String) -> KafkaError,
    ) -> KafkaError {
        match err.rdkafka_error_code() {
            Some(RDKafkaErrorCode::OperationTimedOut | RDKafkaErrorCode::RequestTimedOut) => {
                KafkaError::Timeout {
                    bootstrap: self.bootstrap.clone(),
                    timeout,
                    doing: doing.to_string(),
                }
            }
            _ => other(self.reason(err, timeout)),
        }
    }

    /// The error's text for a message, scrubbed of secret setting values.
    /// librdkafka's own description of the error code (e.g. "Local: Broker transport failure",
    /// "Broker: Group authorization failed"), rather than the wrapper's Rust-flavoured text.
    fn reason(&self, err: &RdError, timeout: Duration) -> String {
        match err.rdkafka_error_code() {
            Some(RDKafkaErrorCode::OperationTimedOut | RDKafkaErrorCode::RequestTimedOut) => {
                format!("no answer within {timeout:?}")
            }
            Some(code) => self.scrub(&code.to_string()),
            None => self.scrub(&err.to_string()),
        }
    }

    fn scrub(&self, text: &str) -> String {
        scrub(text, &self.secrets)
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
