//! `spec.scaling`: triggers that watch a metric and act when it crosses a threshold.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::{
    SourceRef,
    duration::Duration,
    refs::{LocalObjectRef, ScaleTargetRef, SecretKeyRef, SecretRef},
};

/// How and how often Liftoff samples its scaling triggers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingSpec {
    /// How often every trigger is sampled. Live values are exported as metrics on every sample;
    /// the status is only rewritten when a decision changes (see `spec.statusRefresh`).
    #[serde(default = "default_interval")]
    #[x_kube(validation = Duration::at_least("1s", "spec.scaling.interval"))]
    pub interval: Duration,
    /// The triggers. Each has a unique `name` and exactly one metric kind
    /// (`cpu`, `kafkaLag`, `databaseConnections` or `redisMemory`).
    #[serde(default)]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = kube::core::Rule::new("self.all(a, self.exists_one(b, b.name == a.name))")
            .message("trigger names must be unique within spec.scaling.triggers"),
        validation = kube::core::Rule::new("self.all(a, !has(a.scaleTargetRef) || self.filter(b, has(b.scaleTargetRef) && b.scaleTargetRef.kind == a.scaleTargetRef.kind && b.scaleTargetRef.name == a.scaleTargetRef.name).size() == 1)")
            .message("two triggers in spec.scaling.triggers scale the same scaleTargetRef; they would undo each other's changes: scale each workload from one trigger"),
    )]
    pub triggers: Vec<Trigger>,
}

fn default_interval() -> Duration {
    Duration::from_secs(15)
}

/// One scaling trigger: a metric, its threshold, and the action taken when it is crossed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("[has(self.cpu), has(self.kafkaLag), has(self.databaseConnections), has(self.redisMemory)].filter(x, x).size() == 1")
        .message("set exactly one of cpu, kafkaLag, databaseConnections or redisMemory in each trigger"),
    validation = kube::core::Rule::new("!has(self.cpu) || (has(self.scaleTargetRef) && has(self.replicas))")
        .message("a cpu trigger needs scaleTargetRef (the workload to scale) and replicas (its min and max)"),
    validation = kube::core::Rule::new("!has(self.redisMemory) || !has(self.scaleTargetRef) || has(self.replicas)")
        .message("a redisMemory trigger with a scaleTargetRef needs replicas.max"),
    validation = kube::core::Rule::new("!has(self.kafkaLag) || has(self.partitions)")
        .message("a kafkaLag trigger needs partitions (at least partitions.max)"),
    validation = kube::core::Rule::new("!has(self.databaseConnections) || has(self.rdsResize)")
        .message("a databaseConnections trigger needs rdsResize (the instance class ladder)"),
    validation = kube::core::Rule::new("!has(self.partitions) || has(self.kafkaLag)")
        .message("partitions only applies to a kafkaLag trigger"),
    validation = kube::core::Rule::new("!has(self.consumers) || has(self.kafkaLag)")
        .message("consumers only applies to a kafkaLag trigger"),
    validation = kube::core::Rule::new("!has(self.consumers) || !has(self.partitions) || self.consumers.min <= self.partitions.max")
        .message("consumers.min must be at most partitions.max: a consumer beyond the partitions reads nothing"),
    validation = kube::core::Rule::new("!has(self.rdsResize) || has(self.databaseConnections)")
        .message("rdsResize only applies to a databaseConnections trigger"),
    validation = kube::core::Rule::new("!has(self.cacheResize) || has(self.redisMemory)")
        .message("cacheResize only applies to a redisMemory trigger"),
    validation = kube::core::Rule::new("!has(self.cacheResize) || !has(self.scaleTargetRef)")
        .message("a redisMemory trigger resizes either a StatefulSet (scaleTargetRef) or an ElastiCache node type (cacheResize), not both"),
    validation = kube::core::Rule::new("!has(self.fallback) || (has(self.scaleTargetRef) && has(self.replicas) && self.fallback.replicas >= self.replicas.min && self.fallback.replicas <= self.replicas.max)")
        .message("fallback needs scaleTargetRef and replicas, and fallback.replicas between replicas.min and replicas.max"),
    validation = kube::core::Rule::new("!(has(self.scaleTargetRef) || has(self.replicas) || has(self.behavior)) || has(self.cpu) || has(self.redisMemory)")
        .message("scaleTargetRef, replicas and behavior only apply to cpu and redisMemory triggers"),
)]
pub struct Trigger {
    /// Unique name of the trigger within this policy; used in status, events and metric labels.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// CPU utilisation of a workload's ready pods, as a percentage of their CPU requests.
    /// Scales `scaleTargetRef` with HPA-compatible maths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuTrigger>,
    /// Total consumer lag of a consumer group on a Kafka topic. Adds partitions (see `partitions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_lag: Option<Box<KafkaLagTrigger>>,
    /// Open connections to a database. Signals (or applies) the next instance class (see `rdsResize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_connections: Option<Box<DatabaseConnectionsTrigger>>,
    /// Memory used by Redis as a percentage of its `maxmemory`. Scales `scaleTargetRef` up one
    /// step, or moves an ElastiCache replication group to the next node type (`cacheResize`), or
    /// only signals when neither is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_memory: Option<Box<RedisMemoryTrigger>>,

    /// The workload to scale (cpu and redisMemory triggers). It must support the `/scale` subresource.
    /// One autoscaler per workload: a HorizontalPodAutoscaler on it, or a trigger of an older
    /// LaunchPolicy that names it too, refuses this trigger's actions (`Degraded=ScalingRefused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_target_ref: Option<ScaleTargetRef>,
    /// Replica bounds for `scaleTargetRef`. Liftoff never scales outside them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicaBounds>,
    /// Scale-up and scale-down behaviour, with the same meaning as a HorizontalPodAutoscaler's
    /// `spec.behavior` (stabilization windows and rate policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<Box<ScalingBehavior>>,
    /// Partition growth for a kafkaLag trigger. Adding partitions moves keys: a key hashed to
    /// one partition before may hash to another after, so per-key ordering holds only within
    /// the messages produced after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<PartitionPolicy>,
    /// The consumer group's workload, scaled with the lag (kafkaLag only): partitions alone do
    /// not reduce lag, consumers reading them do. Never above the topic's partition count (a
    /// consumer beyond it would sit idle); when the lag needs more consumers than partitions,
    /// the partitions are raised first (within `partitions.max`), then the consumers follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<Box<ConsumerScaling>>,
    /// Instance-class ladder and approval mode for a databaseConnections trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rds_resize: Option<Box<RdsResizePolicy>>,
    /// Node-type ladder and approval mode for a redisMemory trigger on ElastiCache: a bigger node
    /// adds memory to every node, which is what relieves a non-sharded Redis (one more replica
    /// only adds a copy of the same data). Instead of `scaleTargetRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_resize: Option<Box<CacheResizePolicy>>,
    /// Opt-in: a known-safe replica count for when this trigger's source cannot be read. By
    /// default an unreadable source takes no action at all; with a fallback, once the source has
    /// failed `afterFailures` samples in a row, `scaleTargetRef` is raised to
    /// `fallback.replicas` if it runs fewer (never lowered, and never from 0 replicas). Needs
    /// `scaleTargetRef` and `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    /// Minimum time between two actions of this trigger. Defaults: kafkaLag 10m,
    /// databaseConnections 1h, redisMemory 10m (cpu uses `behavior` instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<Duration>,
}

/// CPU utilisation of the ready pods of `scaleTargetRef`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CpuTrigger {
    /// Target average utilisation, in percent of the pods' CPU requests (1–100). Above it
    /// (beyond a 10 % tolerance) Liftoff scales up; below it, down.
    #[serde(default = "default_cpu_utilization")]
    #[schemars(range(min = 1, max = 100))]
    pub utilization: i32,
    /// PromQL query returning the current average utilisation in percent (one series).
    /// When unset, Liftoff reads the Kubernetes metrics API (`metrics.k8s.io`). Needs `spec.prometheus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub query: Option<String>,
}

fn default_cpu_utilization() -> i32 {
    70
}

/// Consumer lag read from the Kafka brokers: committed offsets of the group vs the partitions' end offsets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.bootstrapServers) != has(self.sourceRef)")
    .message("set exactly one of kafkaLag.bootstrapServers (host:port list) and kafkaLag.sourceRef (a LaunchSource's name)"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.sourceRef) || !has(self.authSecretRef)")
    .message("kafkaLag.authSecretRef cannot be used with sourceRef: a LaunchSource holds its own credentials"))]
pub struct KafkaLagTrigger {
    /// Comma-separated `host:port` list of brokers to bootstrap from. Set this or `sourceRef`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 1024))]
    pub bootstrap_servers: String,
    /// A Kafka cluster the platform team named for this namespace (a LaunchSource), used
    /// instead of `bootstrapServers`; its brokers and client settings are the LaunchSource's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<SourceRef>,
    /// The topic whose lag is measured and whose partitions are added (a Kafka topic name:
    /// letters, digits, `.`, `_` and `-`).
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    #[x_kube(validation = kube::core::Rule::new("self != '.' && self != '..'")
        .message("kafkaLag.topic cannot be '.' or '..' (Kafka refuses those names)"))]
    pub topic: String,
    /// The consumer group whose committed offsets are compared with the end offsets.
    #[schemars(length(min = 1, max = 255))]
    pub consumer_group: String,
    /// Total lag across all partitions (messages) above which partitions are added
    /// (1 to 10^15).
    #[serde(default = "default_kafka_threshold")]
    #[schemars(range(min = 1, max = 1_000_000_000_000_000i64))]
    pub threshold: i64,
    /// Optional Secret with client settings: keys `security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `sasl.password`, `ssl.ca.pem` (librdkafka names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretRef>,
}

fn default_kafka_threshold() -> i64 {
    50_000
}

/// How partitions are added to the topic of a kafkaLag trigger. Partitions are never removed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PartitionPolicy {
    /// The partition count is never raised above this (> 0).
    #[schemars(range(min = 1, max = 100000))]
    pub max: i32,
    /// When set, Liftoff patches `spec.partitions` of this Strimzi `KafkaTopic` in the policy's
    /// namespace instead of calling the Kafka admin API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strimzi_kafka_topic_ref: Option<LocalObjectRef>,
}

/// The consumers of a kafkaLag trigger's consumer group: one per replica of a workload.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.min <= self.max")
    .message("consumers.min must be less than or equal to consumers.max"))]
pub struct ConsumerScaling {
    /// The workload whose replicas are the group's consumers (a Deployment or StatefulSet with
    /// the `/scale` subresource). As for any scaled workload, an HPA or another trigger on it
    /// refuses this one's actions.
    pub scale_target_ref: ScaleTargetRef,
    /// The lag one consumer is meant to work through: Liftoff wants `ceil(lag / lagPerReplica)`
    /// replicas, within `min`, `max` and the partition count (1–1,000,000,000,000).
    #[schemars(range(min = 1, max = 1_000_000_000_000i64))]
    pub lag_per_replica: i64,
    /// Fewest consumers (1–100,000; default 1; at most `partitions.max`). Scaling in happens only
    /// once the lag is at or below `kafkaLag.threshold` and the trigger's `cooldown` has passed
    /// since its last action (partitions or consumers).
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 100000))]
    pub min: i32,
    /// Most consumers (1–100,000). Scaling out is immediate, up to the partition count.
    #[schemars(range(min = 1, max = 100000))]
    pub max: i32,
}

/// Open database connections, from a PromQL query or straight from PostgreSQL.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.query) != has(self.postgres)")
    .message("set exactly one of query or postgres in databaseConnections"))]
pub struct DatabaseConnectionsTrigger {
    /// PromQL query returning the connection count as one series, e.g. from a CloudWatch exporter:
    /// `max(aws_rds_database_connections_average{dimension_DBInstanceIdentifier="emr-prod"})`.
    /// Needs `spec.prometheus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub query: Option<String>,
    /// Count the rows of `pg_stat_activity` on a PostgreSQL server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresSource>,
    /// Connection count above which the next instance class is signalled (1–1,000,000).
    #[serde(default = "default_db_threshold")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub threshold: i64,
}

fn default_db_threshold() -> i64 {
    700
}

/// A PostgreSQL server reached with a connection URL kept in a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PostgresSource {
    /// Secret key holding a `postgres://user:password@host:port/db` URL (read-only role suffices).
    pub connection_secret_ref: SecretKeyRef,
}

/// The instance-class ladder of an RDS database and whether Liftoff may climb it by itself.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.currentClass) || self.currentClass in self.classLadder")
    .message("rdsResize.currentClass must be one of rdsResize.classLadder"))]
pub struct RdsResizePolicy {
    /// The RDS instance identifier, used in events, recommendations and notifications.
    #[schemars(length(min = 1, max = 63))]
    pub db_instance_identifier: String,
    /// Instance classes from smallest to largest; the current class is one of them. Liftoff only
    /// ever recommends the next rung, never skips one.
    /// Each class may appear only once.
    #[schemars(length(min = 2, max = 16), inner(length(min = 1, max = 64)), extend("x-kubernetes-list-type" = "set"))]
    pub class_ladder: Vec<String>,
    /// The instance's class today, when there is no `ackDBInstanceRef` to read it from
    /// (default: the first rung). Update it after you resize by hand, so the next signal names
    /// the rung above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub current_class: Option<String>,
    /// Optional AWS Controllers for Kubernetes `DBInstance` (rds.services.k8s.aws) in the policy's
    /// namespace; with `approval: Automatic` Liftoff patches its `spec.dbInstanceClass`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "ackDBInstanceRef"
    )]
    pub ack_db_instance_ref: Option<LocalObjectRef>,
    /// `Manual` (default): signal (event, condition, status recommendation, notification) and
    /// wait for a person, who resizes by hand or approves the recommendation with
    /// `kubectl annotate --overwrite lp/NAME liftoff.dev/approve-resize=TRIGGER@ID` (applied once,
    /// through `ackDBInstanceRef`). `Automatic`: patch the ACK `DBInstance` without asking.
    #[serde(default)]
    pub approval: Approval,
}

/// The node-type ladder of an ElastiCache (Redis OSS or Valkey) replication group and whether
/// Liftoff may climb it by itself.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.currentNodeType) || self.currentNodeType in self.nodeTypeLadder")
    .message("cacheResize.currentNodeType must be one of cacheResize.nodeTypeLadder"))]
pub struct CacheResizePolicy {
    /// The ElastiCache replication group identifier, used in events, recommendations and
    /// notifications.
    #[schemars(length(min = 1, max = 40))]
    pub replication_group_id: String,
    /// Node types from smallest to largest (e.g. `cache.r7g.large`, `cache.r7g.xlarge`); the
    /// current one is among them. Liftoff only ever recommends the next rung, never skips one.
    /// Each node type may appear only once.
    #[schemars(length(min = 2, max = 16), inner(length(min = 1, max = 64)), extend("x-kubernetes-list-type" = "set"))]
    pub node_type_ladder: Vec<String>,
    /// The group's node type today, when there is no `ackReplicationGroupRef` to read it from
    /// (default: the first rung). Update it after you resize by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub current_node_type: Option<String>,
    /// Optional AWS Controllers for Kubernetes `ReplicationGroup` (elasticache.services.k8s.aws)
    /// in the policy's namespace: its `spec.cacheNodeType` is the current node type, and the one
    /// Liftoff patches with `approval: Automatic` or an approved recommendation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_replication_group_ref: Option<LocalObjectRef>,
    /// `Manual` (default): signal and wait for a person, who resizes by hand or approves the
    /// recommendation with `kubectl annotate --overwrite lp/NAME
    /// liftoff.dev/approve-resize=TRIGGER@ID` (applied once, through `ackReplicationGroupRef`).
    /// `Automatic`: patch the ACK `ReplicationGroup` without asking.
    #[serde(default)]
    pub approval: Approval,
}

/// Whether a step needs a human's Go.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum Approval {
    /// A person must approve before Liftoff acts.
    #[default]
    Manual,
    /// Liftoff acts on its own.
    Automatic,
}

/// Redis memory use as a percentage of `maxmemory`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.addressSecretRef) != has(self.query)")
    .message("set exactly one of addressSecretRef or query in redisMemory"))]
pub struct RedisMemoryTrigger {
    /// Secret key holding a `redis://[:password@]host:port` URL; Liftoff reads `INFO memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_secret_ref: Option<SecretKeyRef>,
    /// PromQL query returning the memory use in percent as one series (e.g. over redis_exporter).
    /// Needs `spec.prometheus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub query: Option<String>,
    /// Percentage of `maxmemory` above which Redis is scaled up (1–100).
    #[serde(default = "default_redis_threshold")]
    #[schemars(range(min = 1, max = 100))]
    pub threshold: i32,
    /// Memory limit in bytes to compare `used_memory` with instead of the server's `maxmemory`;
    /// needed when the server reports `maxmemory 0` (unset), which is otherwise reported as an
    /// error rather than guessed. At most 2^50 (1 PiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_125_899_906_842_624i64))]
    pub max_memory_bytes: Option<i64>,
}

fn default_redis_threshold() -> i32 {
    80
}

/// What to run while a trigger's source stays unreadable (`fallback`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Fallback {
    /// Samples in a row that must have failed before the fallback applies (1–1,000): with a
    /// 15s interval, 4 is about a minute without data.
    #[schemars(range(min = 1, max = 1000))]
    pub after_failures: i32,
    /// Replicas to run while the source stays unreadable, within `replicas.min`–`replicas.max`.
    /// The target is raised to it, never lowered (and never from 0, a workload scaled to zero on
    /// purpose): not knowing the load is no reason to remove capacity.
    #[schemars(range(min = 1, max = 100000))]
    pub replicas: i32,
}

/// Replica bounds of a scaled workload.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.min <= self.max")
    .message("replicas.min must be less than or equal to replicas.max"))]
pub struct ReplicaBounds {
    /// Fewest replicas Liftoff will scale to (1–100,000).
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 100000))]
    pub min: i32,
    /// Most replicas Liftoff will scale to (1–100,000).
    #[schemars(range(min = 1, max = 100000))]
    pub max: i32,
}

fn default_min_replicas() -> i32 {
    1
}

/// HPA-compatible scaling behaviour.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScalingBehavior {
    /// Rules for scaling up. Default: no stabilization; at most +100 % or +4 pods per 15s, whichever is more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<ScalingRules>,
    /// Rules for scaling down. Default: 5m stabilization; up to -100 % per 15s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScalingRules>,
}

/// Stabilization and rate limits in one direction.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRules {
    /// Recommendations over this window are considered and the most conservative one is used,
    /// which prevents flapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stabilization_window: Option<Duration>,
    /// Rate limits; which one applies is chosen by `selectPolicy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub policies: Vec<ScalingPolicy>,
    /// `Max` (default) applies the policy allowing the biggest change, `Min` the smallest,
    /// `Disabled` forbids scaling in this direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<SelectPolicy>,
}

/// One rate limit: at most `value` pods (or percent) of change per `period`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicy {
    /// `Pods` or `Percent`.
    #[serde(rename = "type")]
    pub kind: ScalingPolicyKind,
    /// Pods, or percent of the current replicas (1–100,000).
    #[schemars(range(min = 1, max = 100000))]
    pub value: i32,
    /// The window the limit applies to (e.g. 15s, 1m); at least 1s.
    #[x_kube(validation = Duration::at_least("1s", "a scaling policy's period"))]
    pub period: Duration,
}

/// Unit of a scaling policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ScalingPolicyKind {
    /// An absolute number of pods.
    Pods,
    /// A percentage of the current replica count.
    Percent,
}

/// Which rate policy wins when several are listed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum SelectPolicy {
    /// The policy that allows the largest change.
    Max,
    /// The policy that allows the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}
