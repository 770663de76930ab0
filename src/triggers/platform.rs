//! The real [`TriggerIo`]: metrics from Prometheus, Kafka, PostgreSQL, Redis or the metrics API;
//! targets through `/scale`, the Kafka admin API, Strimzi and ACK objects.

use std::time::Duration;

use kube::Client;
use serde_json::json;

use super::{Planned, Reading, TriggerIo, kind::TriggerKind};
use crate::{
    actuators::{
        kafka::PartitionsOutcome,
        objects::{DB_INSTANCE_CLASS, KAFKA_TOPIC_PARTITIONS, REPLICATION_GROUP_NODE_TYPE},
        scale::ScaleApi,
    },
    controller::{claims::Claim, lookup::KubeLookup, pools::Pools},
    crd::{KafkaLagTrigger, PrometheusSource, ScaleTargetRef, SecretKeyRef},
    engine::scaling::Sample,
    sources::{metrics_api, postgres, redact_url, redis},
};

/// Bound on one read of Kafka, PostgreSQL or Redis (Prometheus has `spec.prometheus.timeout`).
pub const SOURCE_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a policy's triggers are read from and act on.
pub struct Platform<'a> {
    pub client: &'a Client,
    pub lookup: &'a KubeLookup<'a>,
    pub pools: &'a Pools,
    pub namespace: &'a str,
    /// The policy's name.
    pub policy: &'a str,
    pub prometheus: Option<&'a PrometheusSource>,
    /// How old a shared answer to an identical Prometheus query or Kafka lag read may be (see
    /// [`coalesce`](crate::sources::coalesce)): the policy's interval, capped by `--query-reuse`.
    pub reuse: std::time::Duration,
}

impl TriggerIo for Platform<'_> {
    async fn read(&self, kind: &TriggerKind<'_>) -> Reading {
        let kind_io = kind.get();
        let (sample, current) = futures::join!(kind_io.sample(self), kind_io.current(self));
        let refusal = kind.trigger().workload().and_then(|target| {
            let me = Claim {
                policy: self.policy.to_string(),
                trigger: kind.trigger().name.clone(),
            };
            self.lookup.conflict(target, &me)
        });
        Reading {
            sample,
            current,
            refusal,
        }
    }

    async fn apply(&self, kind: &TriggerKind<'_>, action: &Planned) -> Result<String, String> {
        kind.get().act(self, action).await
    }
}

/// The reads and writes the kinds are made of (see `kind.rs`).
impl Platform<'_> {
    /// Sets the replicas of `target` through its `/scale` subresource.
    pub async fn scale(
        &self,
        target: &ScaleTargetRef,
        from: i32,
        to: i32,
    ) -> Result<String, String> {
        self.scale_api(target)
            .await?
            .set_replicas(&target.name, to)
            .await
            .map_err(|e| {
                let why = crate::actuators::api_reason(&e);
                format!("cannot scale {} {}: {why}", target.kind, target.name)
            })?;
        Ok(format!(
            "scaled {} {} from {from} to {to} replicas",
            target.kind, target.name
        ))
    }

    /// The total lag of `spec`'s consumer group on its topic.
    pub async fn kafka_lag(&self, spec: &KafkaLagTrigger) -> Sample {
        let source = format!("kafka {}", spec.bootstrap_servers);
        let cluster = match self.pools.kafka(self.lookup, spec).await {
            Ok(c) => c,
            Err(e) => return Sample::unknown(source, e),
        };
        match cluster
            .lag_shared(
                &spec.topic,
                &spec.consumer_group,
                SOURCE_TIMEOUT,
                self.reuse,
            )
            .await
        {
            Ok(lag) => Sample::Value(lag.total as f64),
            Err(e) => Sample::unknown(source, e.to_string()),
        }
    }

    /// The connection count of the PostgreSQL server whose URL `url` holds.
    pub async fn postgres_connections(&self, url: &SecretKeyRef) -> Sample {
        let url = match self.secret_text(url).await {
            Ok(url) => url,
            Err(e) => return Sample::unknown("postgres", e),
        };
        let policy = self.pools.policy();
        match postgres::connection_count(&url, SOURCE_TIMEOUT, policy).await {
            Ok(n) => Sample::Value(n as f64),
            // The error names host:port; the connection string itself may be a libpq
            // key=value string with a password in it, so it is never shown.
            Err(e) => Sample::unknown("postgres", e.to_string()),
        }
    }

    /// Memory use in % of `maxmemory` (or of `max_memory_bytes`) of the Redis server whose URL
    /// `address` holds.
    pub async fn redis_memory(
        &self,
        address: &SecretKeyRef,
        max_memory_bytes: Option<i64>,
    ) -> Sample {
        let url = match self.secret_text(address).await {
            Ok(url) => url,
            Err(e) => return Sample::unknown("redis", e),
        };
        let policy = self.pools.policy();
        match redis::memory_percent(&url, max_memory_bytes, SOURCE_TIMEOUT, policy).await {
            Ok(p) => Sample::Value(p),
            Err(e) => Sample::unknown("redis", e.to_string()),
        }
    }

    /// `spec.partitions` of a Strimzi `KafkaTopic`.
    pub async fn strimzi_partitions(&self, topic: &str) -> Result<i32, String> {
        let value = KAFKA_TOPIC_PARTITIONS
            .read(self.client, self.namespace, topic)
            .await?;
        value
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| format!("KafkaTopic {topic} spec.partitions is not a partition count"))
    }

    /// Sets `spec.partitions` of a Strimzi `KafkaTopic`.
    pub async fn set_strimzi_partitions(
        &self,
        topic: &str,
        from: i32,
        to: i32,
    ) -> Result<String, String> {
        KAFKA_TOPIC_PARTITIONS
            .write(self.client, self.namespace, topic, json!(to))
            .await?;
        Ok(format!(
            "set KafkaTopic {topic} partitions from {from} to {to}"
        ))
    }

    /// The partition count of `spec`'s topic, from the brokers.
    pub async fn kafka_partitions(&self, spec: &KafkaLagTrigger) -> Result<i32, String> {
        let cluster = self.pools.kafka(self.lookup, spec).await?;
        cluster
            .partition_count(&spec.topic, SOURCE_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
    }

    /// Raises the partition count of `spec`'s topic to `to` through the Kafka admin API.
    pub async fn add_partitions(&self, spec: &KafkaLagTrigger, to: i32) -> Result<String, String> {
        let cluster = self.pools.kafka(self.lookup, spec).await?;
        match cluster
            .create_partitions(&spec.topic, to, SOURCE_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?
        {
            PartitionsOutcome::Created { before, after } => Ok(format!(
                "raised topic {} from {before} to {after} partitions",
                spec.topic
            )),
            PartitionsOutcome::AlreadyAtLeast { current, requested } => Ok(format!(
                "topic {} already had {current} partitions (wanted {requested}); nothing changed",
                spec.topic
            )),
        }
    }

    /// `spec.dbInstanceClass` of an ACK `DBInstance`.
    pub async fn db_instance_class(&self, instance: &str) -> Result<String, String> {
        let value = DB_INSTANCE_CLASS
            .read(self.client, self.namespace, instance)
            .await?;
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("DBInstance {instance} spec.dbInstanceClass is not a string"))
    }

    /// Sets `spec.dbInstanceClass` of an ACK `DBInstance`.
    pub async fn set_db_instance_class(&self, instance: &str, class: &str) -> Result<(), String> {
        DB_INSTANCE_CLASS
            .write(self.client, self.namespace, instance, json!(class))
            .await
    }

    /// `spec.cacheNodeType` of an ACK ElastiCache `ReplicationGroup`.
    pub async fn cache_node_type(&self, group: &str) -> Result<String, String> {
        let value = REPLICATION_GROUP_NODE_TYPE
            .read(self.client, self.namespace, group)
            .await?;
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("ReplicationGroup {group} spec.cacheNodeType is not a string"))
    }

    /// Sets `spec.cacheNodeType` of an ACK ElastiCache `ReplicationGroup`.
    pub async fn set_cache_node_type(&self, group: &str, node_type: &str) -> Result<(), String> {
        REPLICATION_GROUP_NODE_TYPE
            .write(self.client, self.namespace, group, json!(node_type))
            .await
    }

    pub async fn prometheus_query(&self, query: &str) -> Sample {
        let Some(prom) = self.prometheus else {
            return Sample::unknown("prometheus", "spec.prometheus is not set");
        };
        let source = format!("prometheus {}", redact_url(&prom.address));
        let client = match self.pools.prometheus(self.lookup, prom).await {
            Ok(c) => c,
            Err(e) => return Sample::unknown(source, e),
        };
        match client.query_shared(query, self.reuse).await {
            Ok(v) => Sample::Value(v),
            Err(e) => Sample::unknown(source, e.to_string()),
        }
    }

    /// The CPU utilisation of `target`'s ready pods, from the metrics API.
    pub async fn metrics_api_cpu(&self, target: &ScaleTargetRef) -> Sample {
        let source = "metrics.k8s.io";
        let Some(selector) = self.lookup.selector(target) else {
            return Sample::unknown(
                source,
                format!(
                    "the pod selector of {} {} is unknown (only Deployments and StatefulSets are \
                     supported without cpu.query)",
                    target.kind, target.name
                ),
            );
        };
        match metrics_api::cpu_utilization(self.client, self.namespace, &selector).await {
            Ok(v) => Sample::Value(v),
            Err(e) => Sample::unknown(source, e.to_string()),
        }
    }

    /// The replicas of `target` (`/scale` `spec.replicas`), from the cache when it has them.
    pub async fn replicas(&self, target: &ScaleTargetRef) -> Result<i32, String> {
        if let Some(replicas) = self.lookup.cached_replicas(target) {
            return replicas;
        }
        self.scale_api(target)
            .await?
            .replicas(&target.name)
            .await
            .map_err(|e| {
                let why = crate::actuators::api_reason(&e);
                format!(
                    "cannot read the scale of {} {}: {why}",
                    target.kind, target.name
                )
            })
    }

    async fn scale_api(&self, target: &ScaleTargetRef) -> Result<ScaleApi, String> {
        let discovered = match (target.api_version.as_str(), target.kind.as_str()) {
            ("apps/v1", "Deployment" | "StatefulSet") => None,
            _ => Some(self.lookup.api_resource(target).await?),
        };
        ScaleApi::new(self.client, self.namespace, target, discovered.as_ref())
            .ok_or_else(|| format!("{} {} is not scalable", target.kind, target.name))
    }

    async fn secret_text(&self, r: &SecretKeyRef) -> Result<String, String> {
        let secret = self
            .lookup
            .secret(&r.name)
            .await?
            .ok_or_else(|| format!("Secret {} not found", r.name))?;
        secret
            .text(&r.key)
            .ok_or_else(|| format!("Secret {} has no key {:?}", r.name, r.key))
    }
}
