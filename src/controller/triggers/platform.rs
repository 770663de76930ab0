//! The real [`TriggerIo`]: metrics from Prometheus, Kafka, PostgreSQL, Redis or the metrics API;
//! targets through `/scale`, the Kafka admin API, Strimzi and ACK objects.

use std::time::Duration;

use kube::Client;
use serde_json::json;

use super::{Current, Planned, Reading, TriggerIo};
use crate::{
    actuators::{
        objects::{DB_INSTANCE_CLASS, KAFKA_TOPIC_PARTITIONS},
        scale::ScaleApi,
    },
    controller::{lookup::KubeLookup, pools::Pools},
    crd::{PrometheusSource, ScaleTargetRef, SecretKeyRef, Trigger},
    engine::scaling::Sample,
    sources::{kafka::PartitionsOutcome, metrics_api, postgres, redact_url, redis},
};

/// Bound on one read of Kafka, PostgreSQL or Redis (Prometheus has `spec.prometheus.timeout`).
pub const SOURCE_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a policy's triggers are read from and act on.
pub struct Platform<'a> {
    pub client: &'a Client,
    pub lookup: &'a KubeLookup<'a>,
    pub pools: &'a Pools,
    pub namespace: &'a str,
    pub prometheus: Option<&'a PrometheusSource>,
}

impl TriggerIo for Platform<'_> {
    async fn read(&self, trigger: &Trigger) -> Reading {
        let (sample, current) = futures::join!(self.sample(trigger), self.current(trigger));
        let refusal = match &trigger.scale_target_ref {
            Some(target) => self.lookup.hpa_conflict(target),
            None => None,
        };
        Reading {
            sample,
            current,
            refusal,
        }
    }

    async fn apply(&self, trigger: &Trigger, action: &Planned) -> Result<String, String> {
        match action {
            Planned::Scale { from, to } => {
                let target = trigger
                    .scale_target_ref
                    .as_ref()
                    .ok_or("the trigger has no scaleTargetRef")?;
                self.scale_api(target)
                    .await?
                    .set_replicas(&target.name, *to)
                    .await
                    .map_err(|e| format!("cannot scale {} {}: {e}", target.kind, target.name))?;
                Ok(format!(
                    "scaled {} {} from {from} to {to} replicas",
                    target.kind, target.name
                ))
            }
            Planned::Partitions { from, to } => self.add_partitions(trigger, *from, *to).await,
            Planned::ResizeDatabase { from, to } => {
                let rds = trigger.rds_resize.as_ref().ok_or("no rdsResize")?;
                let ack = rds
                    .ack_db_instance_ref
                    .as_ref()
                    .ok_or("no ackDBInstanceRef")?;
                DB_INSTANCE_CLASS
                    .write(self.client, self.namespace, &ack.name, json!(to))
                    .await?;
                Ok(format!(
                    "set DBInstance {} (RDS {}) class from {from} to {to}",
                    ack.name, rds.db_instance_identifier
                ))
            }
            Planned::Recommend { from, to } => {
                let rds = trigger.rds_resize.as_ref().ok_or("no rdsResize")?;
                Ok(format!(
                    "recommended resizing RDS {} from {from} to {to} (approval Manual: a person applies it)",
                    rds.db_instance_identifier
                ))
            }
            Planned::Signal => {
                Ok("signalled high Redis memory (no scaleTargetRef, so nothing was scaled)".into())
            }
        }
    }
}

impl Platform<'_> {
    async fn sample(&self, trigger: &Trigger) -> Sample {
        let promql = trigger
            .cpu
            .as_ref()
            .and_then(|c| c.query.as_deref())
            .or(trigger
                .database_connections
                .as_ref()
                .and_then(|d| d.query.as_deref()))
            .or(trigger
                .redis_memory
                .as_ref()
                .and_then(|r| r.query.as_deref()));
        if let Some(query) = promql {
            return self.prometheus_query(query).await;
        }
        if trigger.cpu.is_some() {
            return self.metrics_api_cpu(trigger).await;
        }
        if let Some(kafka) = &trigger.kafka_lag {
            let source = format!("kafka {}", kafka.bootstrap_servers);
            let cluster = match self.kafka(trigger).await {
                Ok(c) => c,
                Err(e) => return Sample::unknown(source, e),
            };
            return match cluster
                .lag(&kafka.topic, &kafka.consumer_group, SOURCE_TIMEOUT)
                .await
            {
                Ok(lag) => Sample::Value(lag.total as f64),
                Err(e) => Sample::unknown(source, e.to_string()),
            };
        }
        if let Some(pg) = trigger
            .database_connections
            .as_ref()
            .and_then(|d| d.postgres.as_ref())
        {
            let url = match self.secret_text(&pg.connection_secret_ref).await {
                Ok(url) => url,
                Err(e) => return Sample::unknown("postgres", e),
            };
            return match postgres::connection_count(&url, SOURCE_TIMEOUT).await {
                Ok(n) => Sample::Value(n as f64),
                // The error names host:port; the connection string itself may be a libpq
                // key=value string with a password in it, so it is never shown.
                Err(e) => Sample::unknown("postgres", e.to_string()),
            };
        }
        if let Some(r) = &trigger.redis_memory
            && let Some(secret) = &r.address_secret_ref
        {
            let url = match self.secret_text(secret).await {
                Ok(url) => url,
                Err(e) => return Sample::unknown("redis", e),
            };
            return match redis::memory_percent(&url, r.max_memory_bytes, SOURCE_TIMEOUT).await {
                Ok(p) => Sample::Value(p),
                Err(e) => Sample::unknown("redis", e.to_string()),
            };
        }
        Sample::unknown("spec", "the trigger names no metric source")
    }

    async fn prometheus_query(&self, query: &str) -> Sample {
        let Some(prom) = self.prometheus else {
            return Sample::unknown("prometheus", "spec.prometheus is not set");
        };
        let source = format!("prometheus {}", redact_url(&prom.address));
        let client = match self.pools.prometheus(self.lookup, prom).await {
            Ok(c) => c,
            Err(e) => return Sample::unknown(source, e),
        };
        match client.query_value(query).await {
            Ok(v) => Sample::Value(v),
            Err(e) => Sample::unknown(source, e.to_string()),
        }
    }

    async fn metrics_api_cpu(&self, trigger: &Trigger) -> Sample {
        let source = "metrics.k8s.io";
        let Some(target) = &trigger.scale_target_ref else {
            return Sample::unknown(source, "the trigger has no scaleTargetRef");
        };
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

    async fn current(&self, trigger: &Trigger) -> Result<Current, String> {
        if let Some(target) = &trigger.scale_target_ref {
            return self.replicas(target).await.map(Current::Replicas);
        }
        if let Some(kafka) = &trigger.kafka_lag {
            if let Some(topic) = trigger
                .partitions
                .as_ref()
                .and_then(|p| p.strimzi_kafka_topic_ref.as_ref())
            {
                let value = KAFKA_TOPIC_PARTITIONS
                    .read(self.client, self.namespace, &topic.name)
                    .await?;
                return value
                    .as_i64()
                    .map(|n| Current::Partitions(n as i32))
                    .ok_or_else(|| {
                        format!("KafkaTopic {} spec.partitions is not a number", topic.name)
                    });
            }
            let cluster = self.kafka(trigger).await?;
            return cluster
                .partition_count(&kafka.topic, SOURCE_TIMEOUT)
                .await
                .map(Current::Partitions)
                .map_err(|e| e.to_string());
        }
        if let Some(rds) = &trigger.rds_resize {
            if let Some(ack) = &rds.ack_db_instance_ref {
                let value = DB_INSTANCE_CLASS
                    .read(self.client, self.namespace, &ack.name)
                    .await?;
                return value
                    .as_str()
                    .map(|c| Current::Class(c.to_owned()))
                    .ok_or_else(|| {
                        format!(
                            "DBInstance {} spec.dbInstanceClass is not a string",
                            ack.name
                        )
                    });
            }
            let class = rds
                .current_class
                .clone()
                .or_else(|| rds.class_ladder.first().cloned())
                .ok_or("rdsResize.classLadder is empty")?;
            return Ok(Current::Class(class));
        }
        Ok(Current::Nothing)
    }

    async fn replicas(&self, target: &ScaleTargetRef) -> Result<i32, String> {
        if let Some(replicas) = self.lookup.cached_replicas(target) {
            return replicas;
        }
        self.scale_api(target)
            .await?
            .replicas(&target.name)
            .await
            .map_err(|e| {
                format!(
                    "cannot read the scale of {} {}: {e}",
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

    async fn add_partitions(
        &self,
        trigger: &Trigger,
        from: i32,
        to: i32,
    ) -> Result<String, String> {
        let kafka = trigger.kafka_lag.as_ref().ok_or("no kafkaLag")?;
        if let Some(topic) = trigger
            .partitions
            .as_ref()
            .and_then(|p| p.strimzi_kafka_topic_ref.as_ref())
        {
            KAFKA_TOPIC_PARTITIONS
                .write(self.client, self.namespace, &topic.name, json!(to))
                .await?;
            return Ok(format!(
                "set KafkaTopic {} partitions from {from} to {to}",
                topic.name
            ));
        }
        let cluster = self.kafka(trigger).await?;
        match cluster
            .create_partitions(&kafka.topic, to, SOURCE_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?
        {
            PartitionsOutcome::Created { before, after } => Ok(format!(
                "raised topic {} from {before} to {after} partitions",
                kafka.topic
            )),
            PartitionsOutcome::AlreadyAtLeast { current, requested } => Ok(format!(
                "topic {} already had {current} partitions (wanted {requested}); nothing changed",
                kafka.topic
            )),
        }
    }

    async fn kafka(&self, trigger: &Trigger) -> Result<crate::sources::kafka::Cluster, String> {
        let kafka = trigger.kafka_lag.as_ref().ok_or("no kafkaLag")?;
        self.pools.kafka(self.lookup, kafka).await
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
