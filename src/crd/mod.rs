//! The `LaunchPolicy` custom resource (`liftoff.dev/v1alpha1`, short name `lp`).
//!
//! Doc comments on these types become the CRD's OpenAPI descriptions, which is what
//! `kubectl explain launchpolicy.spec...` shows: they are written for the platform engineer.

mod contingency;
mod duration;
mod notify;
mod refs;
mod rollout;
mod rollout_state;
mod scaling;
mod source;
mod status;
mod users;

use kube::{CustomResource, CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

pub use contingency::{ContingencySpec, KillSwitch};
pub use duration::Duration;
pub use notify::{
    MetricFormat, Notification, NotificationEvent, SummaryMetric, SummarySpec, WebhookFormat,
};
pub use refs::{LocalObjectRef, ScaleTargetRef, SecretKeyRef, SecretRef};
pub use rollout::{
    CohortSpec, FlagdCohort, GateCheck, GateFailurePolicy, GateSpec, NoDataPolicy, RolloutSpec,
    ScaleUpFirst, Stage, default_stages,
};
pub use rollout_state::{
    ConsumedApproval, GateState, Hold, HoldCause, MAX_REMEMBERED_COMMANDS, Phase, RolloutState,
};
pub use scaling::{
    Approval, CacheResizePolicy, ConsumerScaling, CpuTrigger, DatabaseConnectionsTrigger,
    KafkaLagTrigger, PartitionPolicy, PostgresSource, RdsResizePolicy, RedisMemoryTrigger,
    ReplicaBounds, ScalingBehavior, ScalingPolicy, ScalingPolicyKind, ScalingRules, ScalingSpec,
    SelectPolicy, Trigger,
};
pub use source::{
    KafkaEndpoint, LaunchSource, LaunchSourceSpec, NamespacedSecretRef, PrometheusEndpoint,
    SourceRef, source_crd_yaml,
};
pub use status::{
    JournalEntry, KillSwitchStatus, LaunchPolicyStatus, LaunchRecord, MAX_JOURNAL, Peak,
    PendingAction, RecentScale, ResizeApproval, RolloutStatus, SummaryStatus, TriggerStatus,
    WaitReason, WaitingOn,
};
pub use users::Users;

/// A product launch, as a platform team runs it: scaling triggers that keep the platform ahead of
/// demand, and a staged rollout by user count with health gates, approvals and rollback.
// The printcolumn(...) arguments repeat `type_ = "string"` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "liftoff.dev",
    version = "v1alpha1",
    kind = "LaunchPolicy",
    namespaced,
    shortname = "lp",
    category = "liftoff",
    status = "LaunchPolicyStatus",
    derive = "PartialEq",
    cel,
    doc = "LaunchPolicy describes one product launch: the scaling triggers that keep the platform ahead of demand (CPU, Kafka lag, database connections, Redis memory) and the staged rollout by user count (e.g. 100 → 500 → 1500 → everyone) with bake times, health gates and Go/No-Go approvals. Liftoff reports what it decided, and why, in status, events and metrics.",
    printcolumn(
        name = "Stage",
        type_ = "string",
        json_path = ".status.rollout.stageName",
        description = "Current rollout stage"
    ),
    printcolumn(
        name = "Users",
        type_ = "string",
        json_path = ".status.rollout.users",
        description = "Users admitted now"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.rollout.phase",
        description = "Rollout phase"
    ),
    printcolumn(
        name = "Waiting On",
        type_ = "string",
        json_path = ".status.rollout.waitingOn.summary",
        description = "What the rollout waits on, other than time: unknown or failing gates, a Go, a person"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the policy is usable"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        description = "Why the policy is or is not ready"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = 1,
        description = "Details"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "has(self.prometheus) || ((!has(self.scaling) || self.scaling.triggers.all(t, !(has(t.cpu) && has(t.cpu.query)) && !(has(t.databaseConnections) && has(t.databaseConnections.query)) && !(has(t.redisMemory) && has(t.redisMemory.query)))) && (!has(self.rollout) || !has(self.rollout.gates)))"
).message("spec.prometheus (an address or a sourceRef) is required when a trigger or a rollout gate uses a PromQL query"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.contingency) || self.contingency.killSwitches.all(k, !has(k.offOnGateFailure) || k.offOnGateFailure.all(g, has(self.rollout) && has(self.rollout.gates) && self.rollout.gates.checks.exists(c, c.name == g)))"
).message("spec.contingency.killSwitches[].offOnGateFailure must name gate checks of spec.rollout.gates.checks"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.rollout) || self.rollout.stages.all(s, !has(s.scaleUpFirst) || s.scaleUpFirst.all(f, has(self.scaling) && self.scaling.triggers.exists(t, t.name == f.trigger && has(t.replicas))))"
).message("spec.rollout.stages[].scaleUpFirst[].trigger must name a trigger of spec.scaling.triggers that has replicas (cpu or redisMemory)"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.contingency) || !has(self.rollout) || !has(self.rollout.cohort) || ((!has(self.rollout.cohort.configMap) || self.rollout.cohort.configMap.name != self.contingency.configMap) && (!has(self.rollout.cohort.flagd) || self.rollout.cohort.flagd.configMap != self.contingency.configMap))"
).message("spec.contingency.configMap must differ from the cohort's ConfigMaps: Liftoff writes each one whole"))]
#[x_kube(validation = kube::core::Rule::new(
    "has(self.prometheus) || !has(self.summary) || !has(self.summary.metrics) || size(self.summary.metrics) == 0"
).message("spec.prometheus (an address or a sourceRef) is required when spec.summary.metrics is set: each figure is a PromQL query"))]
pub struct LaunchPolicySpec {
    /// The Prometheus server that PromQL queries (triggers and gates) are sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSource>,
    /// When true, Liftoff observes and reports but takes no action: no scaling, no stage changes.
    #[serde(default)]
    pub suspend: bool,
    /// Displayed samples in status (trigger values, gate values) are refreshed at most this
    /// often; decisions, errors, actions and gate failures are written at once. Live values are
    /// always on `/metrics`. Default 5m: the steady-state write rate is one status write per
    /// policy per period (10,000 policies → about 33 writes/s), so keep it coarse.
    #[serde(default = "default_status_refresh")]
    #[x_kube(validation = Duration::at_least("1s", "spec.statusRefresh"))]
    pub status_refresh: Duration,
    /// Scaling triggers. To pause scaling during an incident without editing the spec, annotate
    /// the policy: `liftoff.dev/pause-scaling`, `liftoff.dev/pause-scale-in` or
    /// `liftoff.dev/pause-scale-out`, each `*` or a comma-separated list of trigger names
    /// (e.g. `kubectl annotate lp launch liftoff.dev/pause-scale-in='*'`; remove it with
    /// `liftoff.dev/pause-scale-in-`). Samples and status go on, and say what would have been done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalingSpec>,
    /// The staged rollout by user count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Box<RolloutSpec>>,
    /// Kill switches: features the war room (or a failing gate) switches off when performance
    /// degrades, published as flagd flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contingency: Option<ContingencySpec>,
    /// Webhooks told about stage changes, gate failures and scaling actions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub notifications: Vec<Notification>,
    /// What the launch updates show besides gates and triggers, and when the launch report is
    /// written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<SummarySpec>,
}

fn default_status_refresh() -> Duration {
    Duration::from_secs(300)
}

/// A Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.address) != has(self.sourceRef)")
    .message("set exactly one of spec.prometheus.address (a URL) and spec.prometheus.sourceRef (a LaunchSource's name)"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.sourceRef) || !has(self.authSecretRef)")
    .message("spec.prometheus.authSecretRef cannot be used with sourceRef: a LaunchSource holds its own credentials"))]
pub struct PrometheusSource {
    /// Base URL, e.g. `http://prometheus-operated.monitoring.svc:9090`. Set this or
    /// `sourceRef`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^https?://[^/?#@\\\\s]+([/?#].*)?$')")
        .message("prometheus.address must be an http:// or https:// URL with a host, e.g. http://prometheus.monitoring.svc:9090 (credentials go in authSecretRef, not the URL)"))]
    pub address: String,
    /// A Prometheus the platform team named for this namespace (a LaunchSource), used instead
    /// of `address`; its address and credentials are the LaunchSource's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<SourceRef>,
    /// Timeout of one query.
    #[serde(default = "default_query_timeout")]
    #[x_kube(validation = Duration::at_least("100ms", "spec.prometheus.timeout"))]
    pub timeout: Duration,
    /// Optional Secret with either a `token` key (bearer token) or `username` and `password` keys (basic auth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretRef>,
}

fn default_query_timeout() -> Duration {
    Duration::from_secs(5)
}

/// The CRD as YAML, exactly what `crds/launchpolicy.yaml` holds.
pub fn crd_yaml() -> String {
    serde_yaml::to_string(&LaunchPolicy::crd()).expect("the CRD serializes to YAML")
}

impl LaunchPolicySpec {
    /// How often the triggers are sampled (`spec.scaling.interval`); zero without scaling.
    pub fn scaling_interval(&self) -> std::time::Duration {
        self.scaling
            .as_ref()
            .map(|s| s.interval.into())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
