//! `status`: what Liftoff decided and why. Written by the operator only.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a LaunchPolicy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LaunchPolicyStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the spec is usable (references resolve). `ScalingActive`, `RolloutProgressing`
    /// and `Degraded` describe the two halves of the job. Each has a reason and a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Where the staged launch is, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Box<RolloutStatus>>,
    /// One entry per scaling trigger: its last displayed value against its threshold, and its actions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerStatus>,
    /// Periodic launch updates (`spec.notifications[].summaryEvery`), one entry per webhook: when
    /// the last one was sent and when the next one is due.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["webhook"]))]
    pub summaries: Vec<SummaryStatus>,
    /// Each kill switch of `spec.contingency`: on or off, and who flipped it, when and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub kill_switches: Vec<KillSwitchStatus>,
    /// The kill-switch commands (`annotation=value`) already applied, so each is applied once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_switch_commands: Vec<String>,
    /// The launch's record: when it started, what was decided (the journal the launch updates
    /// and the launch report are written from), the peaks seen, and when the report was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<LaunchRecord>,
}

/// The launch's record.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LaunchRecord {
    /// When the launch started: the first stage entered (a policy without a rollout: its first
    /// reconcile). Launch updates count H+X from here; `summaryAt` and `reportAt` are offsets
    /// from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// What was decided and told, oldest first: stage moves, Go requests, gate failures, scaling
    /// actions and failures, sources lost and found, kill switches. At most 100 entries; past
    /// that, the oldest scaling and source entries go first, then the oldest of the rest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journal: Vec<JournalEntry>,
    /// Entries dropped from the front of the journal to keep it bounded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub journal_dropped: u32,
    /// The highest value of each trigger and gate of the spec since the launch started, from the
    /// samples of the reconciles that write status for a decision, an error or a refresh.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peaks: Vec<Peak>,
    /// When the launch report was written (`spec.summary.reportAt`); it is written once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_written_at: Option<Time>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How many journal entries status keeps.
pub const MAX_JOURNAL: usize = 100;

/// One decision, as the war room was told it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// When it was decided.
    pub at: Time,
    /// What kind of news it is (the notification event).
    pub event: super::NotificationEvent,
    /// What happened, in one sentence.
    pub message: String,
}

/// The highest value a trigger or gate reached.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Peak {
    /// `trigger/<name>` or `gate/<name>`.
    pub name: String,
    /// The highest value (a gate's raw value; a trigger's value in its unit: %, messages, …).
    pub value: f64,
    /// When it was sampled.
    pub at: Time,
}

/// The schedule of one webhook's periodic launch update.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryStatus {
    /// The webhook's Secret and key, as `secretName/key` (the URL itself is never shown).
    pub webhook: String,
    /// When the last update was sent. Recorded just before sending, so an update goes out at
    /// most once per period, even across operator restarts.
    pub last_sent_at: Time,
    /// When the next update is due; absent once the launch is `Completed` or `Aborted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<Time>,
    /// The `summaryAt` offsets already sent (or skipped after an outage), e.g. `["0s", "4h"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub offsets_sent: Vec<super::Duration>,
}

fn conditions_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = g.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

/// A kill switch as it stands, and the last flip: who, when, why.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KillSwitchStatus {
    /// The switch's name from the spec.
    pub name: String,
    /// `true` while the feature may run; `false` once switched off. (Not named `on`: YAML 1.1
    /// tools read that key as a boolean.)
    pub enabled: bool,
    /// When it was last flipped (absent while it has never been).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
    /// Who flipped it: the field manager and time of the annotation, or `liftoff` for a gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Why, e.g. `gate p95-latency-seconds 0.9 > 0.5 (3/3 checks failed)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// The staged launch's position, its timers and gate results (which survive operator restarts),
/// and why it is where it is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The state the rollout engine works from.
    #[serde(flatten)]
    pub state: super::RolloutState,
    /// Why the rollout is where it is, in one sentence, e.g.
    /// `Paused at gradual (500 users): gate p95-latency-seconds 0.62 > 0.5 (3/3 checks failed)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the rollout waits on, other than time, before it can move on; absent while it is
    /// only baking. The `Waiting On` column of `kubectl get lp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_on: Option<WaitingOn>,
}

/// What holds the rollout, in a few words.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitingOn {
    /// `GatesUnknown` (a gate cannot be read or has no data: the stage cannot end),
    /// `GatesFailing` (a gate is out of bounds, not yet `failureThreshold` times),
    /// `Capacity` (baked with healthy gates, but a scaling trigger says the platform is short of
    /// capacity: see `holdWhileScaling`), `Approval` (a person's Go), `Person` (paused, rolled
    /// back, aborted or suspended: a command or a spec change moves it on).
    pub reason: WaitReason,
    /// E.g. `gates unknown: error-rate, login-success`, `Go for stage gradual`,
    /// `resume or retry: gate p95-latency-seconds 0.62 > 0.5 (3/3 checks failed)`.
    pub summary: String,
}

/// Why the rollout waits.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum WaitReason {
    GatesUnknown,
    GatesFailing,
    Capacity,
    Approval,
    Person,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::GatesUnknown => "GatesUnknown",
            WaitReason::GatesFailing => "GatesFailing",
            WaitReason::Capacity => "Capacity",
            WaitReason::Approval => "Approval",
            WaitReason::Person => "Person",
        }
    }
}

/// A scaling trigger's state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerStatus {
    /// The trigger's name from the spec.
    pub name: String,
    /// The metric kind: `cpu`, `kafkaLag`, `databaseConnections` or `redisMemory`.
    pub kind: String,
    /// Last displayed value (refreshed on a decision, an error change or every `spec.statusRefresh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The threshold the value is compared with.
    pub threshold: String,
    /// Whether the value is beyond the threshold.
    #[serde(default)]
    pub active: bool,
    /// What the trigger decided at that time, and why (e.g. `no action: cooling down until …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `value` was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<Time>,
    /// The last action taken, e.g. `scaled api from 3 to 5 replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action: Option<String>,
    /// When the last action was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action_at: Option<Time>,
    /// The trigger will not act again before this time (cooldown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_eligible_at: Option<Time>,
    /// An action Liftoff decided and is applying. It is written before the action is taken and
    /// cleared once it succeeded, so an operator restarted in between re-applies the same target
    /// (never a second, bigger step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_action: Option<Box<PendingAction>>,
    /// A recommendation awaiting a person, e.g. `resize emr-prod to db.r6g.2xlarge`. Approve it
    /// with `kubectl annotate lp/NAME liftoff.dev/approve-resize=TRIGGER@ID` (see `approval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<String>,
    /// The instance class the open `recommendation` resizes to: what an approval applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_to: Option<String>,
    /// The last `liftoff.dev/approve-resize` annotation value Liftoff took for this trigger,
    /// who gave it and what came of it. Each value is taken once: to approve a later
    /// recommendation, give a new value (`TRIGGER@2`, `TRIGGER@$(date +%s)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Box<ResizeApproval>>,
    /// Scales this trigger applied within its longest rate-policy period (a cpu or redisMemory
    /// trigger), so `behavior` policies still hold right after an operator restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_scales: Vec<RecentScale>,
    /// Why the metric could not be read; while set, the trigger takes no action in either direction
    /// (a `fallback` may raise replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Since when the metric has been unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_since: Option<Time>,
    /// Since when the trigger's action has been failing: set by a failure, kept while the action
    /// is retried or the metric stays beyond its threshold, cleared by a success or by a sample
    /// within the threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_failed_since: Option<Time>,
}

/// A resize a person approved with the `liftoff.dev/approve-resize` annotation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResizeApproval {
    /// The command as given: `liftoff.dev/approve-resize=VALUE`.
    pub command: String,
    /// Who gave it: the field manager that set the annotation and when (from
    /// `metadata.managedFields`; the apiserver records no user on the object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When Liftoff took it (or, while it waits, since when).
    pub at: Time,
    /// What came of it, e.g. `set DBInstance emr-prod … class from db.r6g.xlarge to
    /// db.r6g.2xlarge`, `nothing to approve: no resize is recommended`, or while it waits,
    /// `waits: …` with the reason.
    pub outcome: String,
    /// True while the approval waits to be applied (a pause, a target that cannot be read, no
    /// ACK object to patch): it is retried at each sample, and taken once it can be.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waiting: bool,
}

/// One scale applied by a trigger.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecentScale {
    /// When it was applied.
    pub at: Time,
    /// Replicas added (positive) or removed (negative).
    pub change: i32,
}

/// An action decided but not yet confirmed as applied.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingAction {
    /// `ScaleReplicas`, `AddPartitions`, `ResizeDatabase` or `ResizeCache`.
    pub kind: String,
    /// The value before the action (replicas, partitions or instance class).
    pub from: String,
    /// The value the action sets. Applying it twice is harmless: it is a target, not a step.
    pub to: String,
    /// When the decision was made.
    pub decided_at: Time,
}
