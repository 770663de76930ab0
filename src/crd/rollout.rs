//! `spec.rollout`: the staged launch by user count, its health gates and its cohort publishing.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::{duration::Duration, refs::LocalObjectRef, scaling::Approval};

/// The staged launch.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.cohort) || !has(self.cohort.flagd) || self.stages.all(s, s.users == 'All' || int(s.users) <= self.cohort.flagd.population)")
    .message("cohort.flagd.population must be at least every numeric stage's users (the flag admits users / population of the population)"))]
pub struct RolloutSpec {
    /// The stages, in order. User counts must strictly increase, and only the last stage may be
    /// `All`. Default, the seed plan: `internal-beta` 100 users baking 2h (the canary), then the
    /// Go/No-Go for `gradual` 500 (`approval: Manual`) baking 168h, `expanded` 1500 baking 168h,
    /// `everyone` All.
    #[serde(default = "default_stages")]
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(
        validation = kube::core::Rule::new("self.all(a, self.exists_one(b, b.name == a.name))")
            .message("stage names must be unique within spec.rollout.stages"),
        validation = kube::core::Rule::new("self.filter(s, s.users == 'All').size() == 0 || (self.filter(s, s.users == 'All').size() == 1 && self[size(self) - 1].users == 'All')")
            .message("only the last stage may have users: All"),
        // No string() conversions here: the apiserver's cost estimator treats them as unbounded.
        validation = kube::core::Rule::new("self.filter(s, s.users != 'All').map(s, int(s.users)).isSorted() && self.filter(s, s.users != 'All').all(a, self.filter(b, b.users != 'All' && int(b.users) == int(a.users)).size() == 1)")
            .message("stage users must strictly increase from one stage to the next (e.g. 100, 500, 1500, All)"),
    )]
    pub stages: Vec<Stage>,
    /// Health checks that must pass before a stage advances; failing ones trigger `onGateFailure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<GateSpec>,
    /// What to do when a gate fails `gates.failureThreshold` times in a row: `Pause` (default)
    /// holds the current cohort; `Rollback` returns to the previous stage's users.
    #[serde(default)]
    pub on_gate_failure: GateFailurePolicy,
    /// Where the application learns the current cohort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohort: Option<CohortSpec>,
    /// `true` (default): a stage is not entered (admitting more users) while the platform is
    /// short of capacity: a scaling trigger is beyond its threshold, cannot be read, has an
    /// action pending, or recommends a resize nobody has done. Status names each such trigger;
    /// the stage is entered once none holds. `false`: stages ignore the triggers.
    #[serde(default = "hold_while_scaling")]
    pub hold_while_scaling: bool,
}

fn hold_while_scaling() -> bool {
    true
}

/// The seed plan: a canary of 100 internal users monitored for 2 hours, then the Go/No-Go for
/// the gradual rollout (500 users for a week), 1,500 for a week, then everyone.
pub fn default_stages() -> Vec<Stage> {
    let stage = |name: &str, users: IntOrString, bake_hours: Option<u64>, approval| Stage {
        name: name.into(),
        users,
        bake: bake_hours.map(|h| Duration::from_secs(h * 3600)),
        approval,
        scale_up_first: Vec::new(),
    };
    let (automatic, manual) = (Approval::Automatic, Approval::Manual);
    vec![
        stage("internal-beta", IntOrString::Int(100), Some(2), automatic),
        stage("gradual", IntOrString::Int(500), Some(168), manual),
        stage("expanded", IntOrString::Int(1500), Some(168), automatic),
        stage(
            "everyone",
            IntOrString::String("All".into()),
            None,
            automatic,
        ),
    ]
}

/// One step of the launch.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    /// Unique name of the stage, shown in status and published to the application.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Maximum number of users admitted during this stage (a positive integer), or `All`.
    #[schemars(schema_with = "users_schema")]
    pub users: IntOrString,
    /// How long the stage must run with healthy gates before the next one may start (e.g. 2h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake: Option<Duration>,
    /// `Automatic` (default): advance into this stage as soon as the previous one has baked.
    /// `Manual`: the Go/No-Go. Once the previous stage has baked with healthy gates, wait for a
    /// person's Go (`liftoff.dev/approve=<stage>`) before entering this one. A Go given earlier,
    /// while the previous stage still bakes or its gates fail or cannot be read, is kept and
    /// shown in status; the stage is still entered only once it has baked with healthy gates.
    #[serde(default = "automatic")]
    pub approval: Approval,
    /// Capacity to have before this stage's users arrive: once the previous stage has baked,
    /// each named trigger's `replicas.min` is raised to `minReplicas` (never above its
    /// `replicas.max`), and the stage is entered only when the target reports that many ready
    /// replicas. The floor stays for this stage and the ones after it; a rollback to an earlier
    /// stage lowers it again. Triggers with `replicas` only (`cpu`, `redisMemory`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub scale_up_first: Vec<ScaleUpFirst>,
}

/// A trigger's floor for a stage.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleUpFirst {
    /// The trigger's name (`spec.scaling.triggers[].name`).
    #[schemars(length(min = 1, max = 63))]
    pub trigger: String,
    /// Ready replicas to have before the stage is entered (1–100,000).
    #[schemars(range(min = 1, max = 100000))]
    pub min_replicas: i32,
}

fn automatic() -> Approval {
    Approval::Automatic
}

fn users_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "x-kubernetes-int-or-string": true,
        "description": "Maximum number of users admitted during this stage (a positive integer), or `All`.",
        "maxLength": 12,
        "x-kubernetes-validations": [{
            "rule": "string(self) == 'All' || (string(self).matches('^[1-9][0-9]{0,9}$') && int(self) <= 2147483647)",
            "message": "users must be a positive integer (at most 2147483647) or the string All",
        }],
    })
}

/// Health gates, evaluated against Prometheus.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GateSpec {
    /// How often every check is evaluated (at least 1s).
    #[serde(default = "default_gate_interval")]
    #[x_kube(validation = Duration::at_least("1s", "spec.rollout.gates.interval"))]
    pub interval: Duration,
    /// Consecutive failed evaluations of one check before `onGateFailure` applies (≥ 1).
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1, max = 100))]
    pub failure_threshold: i32,
    /// The checks. Each has a unique name, a PromQL query and at least one of `min` and `max`.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(validation = kube::core::Rule::new("self.all(a, self.exists_one(b, b.name == a.name))")
        .message("gate check names must be unique within spec.rollout.gates.checks"))]
    pub checks: Vec<GateCheck>,
}

fn default_gate_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_failure_threshold() -> i32 {
    3
}

/// One health check: a PromQL query whose single value must stay within bounds.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("has(self.min) || has(self.max)")
        .message("a gate check needs min, max or both"),
    validation = kube::core::Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max")
        .message("a gate check's min must be less than or equal to its max"),
)]
pub struct GateCheck {
    /// Unique name of the check, e.g. `error-rate` or `p95-latency-seconds`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// PromQL query returning exactly one value.
    #[schemars(length(min = 1, max = 4096))]
    pub query: String,
    /// The check fails when the value is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The check fails when the value is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// What it means when the query returns no series (no 5xx yet, no traffic at all):
    /// `Hold` (default) treats it as unknown, so the stage neither advances nor fails and
    /// status says since when the check has had no data; `Pass` counts it as a passed check
    /// (for "no errors is good" queries); `Fail` counts it as a failed check (for "no logins
    /// means the login service is down" queries). A source that cannot be read is always
    /// unknown, whatever this says.
    #[serde(default)]
    pub on_no_data: NoDataPolicy,
}

/// What a gate check's query returning no series means.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum NoDataPolicy {
    /// Unknown: hold the stage (no advance, no failure) until data arrives.
    #[default]
    Hold,
    /// A passed check.
    Pass,
    /// A failed check.
    Fail,
}

impl NoDataPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            NoDataPolicy::Hold => "Hold",
            NoDataPolicy::Pass => "Pass",
            NoDataPolicy::Fail => "Fail",
        }
    }
}

/// Reaction to a failing gate.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum GateFailurePolicy {
    /// Hold the current cohort until a person resumes or aborts.
    #[default]
    Pause,
    /// Return to the previous stage's users, then hold.
    Rollback,
}

/// How the current cohort is published to the application.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.configMap) || !has(self.flagd) || self.configMap.name != self.flagd.configMap")
    .message("cohort.configMap.name and cohort.flagd.configMap must name different ConfigMaps: Liftoff writes each one whole, so one would erase the other's keys"))]
pub struct CohortSpec {
    /// A ConfigMap Liftoff owns and keeps up to date, with keys `maxUsers` (a number or `All`),
    /// `stage`, `stageIndex` (0-based), `phase` and `updatedAt` (when the current stage started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<LocalObjectRef>,
    /// An OpenFeature flagd flag definition, kept in a ConfigMap, whose targeting admits the cohort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagd: Option<FlagdCohort>,
}

/// A flagd flag that admits the current cohort.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FlagdCohort {
    /// Name of the ConfigMap holding the flag definition (key `flags.flagd.json`). It must not
    /// be `configMap.name`: Liftoff writes each of the two ConfigMaps whole.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub config_map: String,
    /// The boolean flag's key, e.g. `new-platform`.
    #[schemars(length(min = 1, max = 253))]
    pub flag_key: String,
    /// Total number of users the fractional split is computed from (users / population → percent),
    /// 1 to 10^10; at least the largest numeric stage's users.
    #[schemars(range(min = 1, max = 10_000_000_000i64))]
    pub population: i64,
}
