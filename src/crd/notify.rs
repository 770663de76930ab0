//! `spec.notifications` (where launch news is sent) and `spec.summary` (what the launch updates
//! and the launch report contain).

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::{duration::Duration, refs::SecretKeyRef};

/// A webhook the war room reads: Slack, Google Chat, Microsoft Teams, or any JSON consumer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Secret key holding the webhook URL (kept secret: it is never logged or shown in status).
    pub webhook_secret_ref: SecretKeyRef,
    /// The body's shape: `Slack` (`{"text": …}`, also Mattermost and Rocket.Chat; the default),
    /// `GoogleChat` (`{"text": …}` for a Google Chat space webhook), `Teams` (an Adaptive Card,
    /// for a Microsoft Teams Workflows webhook) or `Json` (the structured message: event, policy,
    /// text, and for launch updates every field of the update; for status pages and mail relays).
    #[serde(default)]
    pub format: WebhookFormat,
    /// Which events to send. Default: all of them.
    #[serde(default = "all_events")]
    #[schemars(length(max = 32))]
    pub events: Vec<NotificationEvent>,
    /// Also send a periodic launch update (status light, H+X, users, key metrics, issues, actions
    /// since the last update, next update) this often, e.g. `1h`: the first at once, then one per
    /// period while the rollout is neither `Completed` nor `Aborted` (a policy without a rollout:
    /// always). `status.summaries` records when the last one went out, so restarts neither repeat
    /// nor backlog updates. Minimum 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Duration::at_least("1s", "notifications[].summaryEvery"))]
    pub summary_every: Option<Duration>,
    /// Also send a launch update at these offsets from the launch start
    /// (`status.launch.startedAt`), e.g. `[0h, 4h, 8h, 12h, 24h]` for the external updates at
    /// H+0, H+4, H+8, H+12 and H+24. Each is sent once, recorded in `status.summaries` before it
    /// is sent; after an outage only the latest one that fell due is sent. At most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub summary_at: Vec<Duration>,
}

/// The shape of a webhook's body.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum WebhookFormat {
    /// `{"text": "[namespace/policy] Event: message"}`.
    #[default]
    Slack,
    /// `{"text": …}`, as a Google Chat space webhook takes it.
    GoogleChat,
    /// A message with one Adaptive Card, as a Microsoft Teams Workflows webhook takes it.
    Teams,
    /// The structured message, for status pages, mail relays and scripts.
    Json,
}

fn all_events() -> Vec<NotificationEvent> {
    NotificationEvent::ALL.to_vec()
}

/// Something worth telling the war room about.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum NotificationEvent {
    /// The rollout entered its next stage.
    StageAdvanced,
    /// A stage has baked with healthy gates and the next one needs a Go; the message carries the
    /// exact `kubectl annotate` command.
    AwaitingApproval,
    /// A health gate failed its threshold.
    GateFailed,
    /// A scaling trigger acted or signalled.
    ScalingAction,
    /// A scaling action failed (once per failure, not once per retry).
    ActionFailed,
    /// A trigger's or gate's source became unreadable (once, until it is read again).
    SourceUnavailable,
    /// An unreadable source is read again.
    SourceRecovered,
    /// The rollout paused (gate failure, a person or a spec edit).
    RolloutPaused,
    /// A person resumed or retried the rollout.
    RolloutResumed,
    /// The rollout returned to the previous stage's users.
    RolloutRolledBack,
    /// A person aborted the rollout: nobody is admitted.
    RolloutAborted,
    /// The last stage was reached.
    RolloutCompleted,
    /// A kill switch was turned off or back on.
    KillSwitch,
    /// The launch report (`spec.summary.reportAt`) was written.
    LaunchReport,
}

impl NotificationEvent {
    /// Every event, in the order the docs list them.
    pub const ALL: [NotificationEvent; 14] = [
        NotificationEvent::StageAdvanced,
        NotificationEvent::AwaitingApproval,
        NotificationEvent::GateFailed,
        NotificationEvent::ScalingAction,
        NotificationEvent::ActionFailed,
        NotificationEvent::SourceUnavailable,
        NotificationEvent::SourceRecovered,
        NotificationEvent::RolloutPaused,
        NotificationEvent::RolloutResumed,
        NotificationEvent::RolloutRolledBack,
        NotificationEvent::RolloutAborted,
        NotificationEvent::RolloutCompleted,
        NotificationEvent::KillSwitch,
        NotificationEvent::LaunchReport,
    ];

    /// The event's name, as the webhook message labels it.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationEvent::StageAdvanced => "StageAdvanced",
            NotificationEvent::AwaitingApproval => "AwaitingApproval",
            NotificationEvent::GateFailed => "GateFailed",
            NotificationEvent::ScalingAction => "ScalingAction",
            NotificationEvent::ActionFailed => "ActionFailed",
            NotificationEvent::SourceUnavailable => "SourceUnavailable",
            NotificationEvent::SourceRecovered => "SourceRecovered",
            NotificationEvent::RolloutPaused => "RolloutPaused",
            NotificationEvent::RolloutResumed => "RolloutResumed",
            NotificationEvent::RolloutRolledBack => "RolloutRolledBack",
            NotificationEvent::RolloutAborted => "RolloutAborted",
            NotificationEvent::RolloutCompleted => "RolloutCompleted",
            NotificationEvent::KillSwitch => "KillSwitch",
            NotificationEvent::LaunchReport => "LaunchReport",
        }
    }

    /// Whether the event is a milestone of the launch (a stage move, a Go, a gate failure, a
    /// kill switch): the journal drops other entries first when it is full.
    pub fn is_milestone(self) -> bool {
        !matches!(
            self,
            NotificationEvent::ScalingAction
                | NotificationEvent::ActionFailed
                | NotificationEvent::SourceUnavailable
                | NotificationEvent::SourceRecovered
                | NotificationEvent::LaunchReport
        )
    }

    /// Whether the event is an action taken or attempted (the update's "actions since the last
    /// update" and the report's action list), rather than news about health or a person.
    pub fn is_action(self) -> bool {
        matches!(
            self,
            NotificationEvent::StageAdvanced
                | NotificationEvent::ScalingAction
                | NotificationEvent::ActionFailed
                | NotificationEvent::RolloutPaused
                | NotificationEvent::RolloutResumed
                | NotificationEvent::RolloutRolledBack
                | NotificationEvent::RolloutAborted
                | NotificationEvent::RolloutCompleted
                | NotificationEvent::KillSwitch
        )
    }
}

/// What the launch updates and the launch report add to what status already knows.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SummarySpec {
    /// Figures a launch update shows besides the gates and triggers, e.g. users online and tasks
    /// created. Each is a PromQL query sent to `spec.prometheus` when an update is sent (never
    /// stored in status). At most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub metrics: Vec<SummaryMetric>,
    /// Write the launch report this long after the launch start, e.g. `24h`: stage history with
    /// times, gate failures, every action, peak and last value per trigger and gate, kill switches
    /// used. It is kept in ConfigMap `<policy>-launch-report` (key `report.md`, Markdown) and sent
    /// once as a `LaunchReport` message. At least 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Duration::at_least("1s", "spec.summary.reportAt"))]
    pub report_at: Option<Duration>,
}

/// One figure of the launch update.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SummaryMetric {
    /// What the update calls it, e.g. `users online`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// A PromQL instant query returning one number, e.g.
    /// `sum(emr_active_sessions)`. No series reads as `no data`.
    #[schemars(length(min = 1, max = 4096))]
    pub query: String,
    /// How the number is written: `Number` (up to 3 decimals; the default), `Count` (rounded, with
    /// thousands separators), `Percent` (a ratio ×100: 0.0004 → `0.04%`) or `Milliseconds`
    /// (seconds ×1000: 0.31 → `310 ms`).
    #[serde(default)]
    pub format: MetricFormat,
    /// Written after the number, e.g. `tasks`. At most 16 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub unit: Option<String>,
}

/// How a summary figure is written.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum MetricFormat {
    #[default]
    Number,
    Count,
    Percent,
    Milliseconds,
}
