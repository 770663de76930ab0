//! `spec.notifications`: where launch news is sent.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::{duration::Duration, refs::SecretKeyRef};

/// A Slack-compatible incoming webhook.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Secret key holding the webhook URL (kept secret: it is never logged or shown in status).
    pub webhook_secret_ref: SecretKeyRef,
    /// Which events to send. Default: all of them.
    #[serde(default = "all_events")]
    #[schemars(length(max = 16))]
    pub events: Vec<NotificationEvent>,
    /// Also send a periodic launch update (status, key metrics, issues, next update) this often,
    /// e.g. `1h`: the first at once, then one per period while the rollout is neither `Completed`
    /// nor `Aborted` (a policy without a rollout: always). `status.summaries` records when the
    /// last one went out, so restarts neither repeat nor backlog updates. Minimum 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Duration::at_least("1s", "notifications[].summaryEvery"))]
    pub summary_every: Option<Duration>,
}

fn all_events() -> Vec<NotificationEvent> {
    use NotificationEvent::*;
    vec![
        StageAdvanced,
        GateFailed,
        ScalingAction,
        RolloutPaused,
        RolloutRolledBack,
        RolloutCompleted,
        KillSwitch,
    ]
}

/// Something worth telling the war room about.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum NotificationEvent {
    /// The rollout entered its next stage.
    StageAdvanced,
    /// A health gate failed its threshold.
    GateFailed,
    /// A scaling trigger acted or signalled.
    ScalingAction,
    /// The rollout paused (gate failure or a person).
    RolloutPaused,
    /// The rollout returned to the previous stage's users.
    RolloutRolledBack,
    /// The last stage was reached.
    RolloutCompleted,
    /// A kill switch was turned off or back on.
    KillSwitch,
}

impl NotificationEvent {
    /// The event's name, as the webhook message labels it.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationEvent::StageAdvanced => "StageAdvanced",
            NotificationEvent::GateFailed => "GateFailed",
            NotificationEvent::ScalingAction => "ScalingAction",
            NotificationEvent::RolloutPaused => "RolloutPaused",
            NotificationEvent::RolloutRolledBack => "RolloutRolledBack",
            NotificationEvent::RolloutCompleted => "RolloutCompleted",
            NotificationEvent::KillSwitch => "KillSwitch",
        }
    }
}
