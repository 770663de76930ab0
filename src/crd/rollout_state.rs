//! `status.rollout.state`: what the rollout engine must find again after an operator restart.
//! Every time is a whole second. The engine (`src/engine/rollout`) reads and returns it.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Users;

/// Where the staged launch is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Phase {
    /// Not started: no stage entered, nobody admitted. Left at once unless the policy is
    /// suspended (or the first stage needs approval, which is `AwaitingApproval`).
    #[default]
    Pending,
    /// The current stage has baked with healthy gates (or no stage has started yet) and the next
    /// stage needs a person's Go. Gates keep being evaluated; a failure still pauses or rolls back.
    AwaitingApproval,
    /// The current stage's users are admitted and observed until its bake time has elapsed and
    /// every gate has passed `failureThreshold` checks in a row.
    Baking,
    /// Held by a person, by a failing gate (`onGateFailure: Pause`) or by a spec edit that removed
    /// the current stage. Users are held; gates are still evaluated for status but never act.
    /// Leaves on `resume` (same stage, same bake deadline) or `retry` (the stage starts over).
    Paused,
    /// A failing gate (`onGateFailure: Rollback`) returned to the previous stage's users (nobody,
    /// from the first stage). Held there until `resume` (continue from the stage rolled back to)
    /// or `retry` (re-enter the stage that failed).
    RolledBack,
    /// The last stage has baked with healthy gates. Left only if a stage is appended to the spec.
    Completed,
    /// Stopped by a person: nobody admitted. Left only by `retry`, which starts over from the first stage.
    Aborted,
}

impl Phase {
    /// Phases in which the rollout moves on by itself.
    pub fn is_progressing(self) -> bool {
        matches!(
            self,
            Phase::Pending | Phase::Baking | Phase::AwaitingApproval
        )
    }

    /// Phases in which the current stage is held until a person acts.
    pub fn is_held(self) -> bool {
        matches!(self, Phase::Paused | Phase::RolledBack)
    }
}

impl Phase {
    /// The phase as status, the cohort ConfigMap and condition reasons spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::AwaitingApproval => "AwaitingApproval",
            Phase::Baking => "Baking",
            Phase::Paused => "Paused",
            Phase::RolledBack => "RolledBack",
            Phase::Completed => "Completed",
            Phase::Aborted => "Aborted",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rollout's position, timers and gate history.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutState {
    /// Where the launch is; see each phase's description.
    #[serde(default)]
    pub phase: Phase,
    /// Index of the current stage in `spec.rollout.stages`; absent before the first stage (and
    /// after a rollback from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<u32>,
    /// Name of the current stage; used to follow it when stages are inserted or removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_name: Option<String>,
    /// Users admitted now; never more than the current stage's users.
    #[serde(default)]
    pub users: Users,
    /// When the current stage was entered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_started_at: Option<Time>,
    /// When the current stage's bake time ends. Fixed when the stage is entered; never moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake_until: Option<Time>,
    /// When the gates were last evaluated (or the stage entered); the next evaluation is one
    /// `gates.interval` later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates_checked_at: Option<Time>,
    /// One entry per gate check of the spec, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub gates: Vec<GateState>,
    /// Why the rollout is `Paused`, `RolledBack` or `Aborted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// Ids of the most recent commands applied or refused, newest last (at most
    /// `MAX_REMEMBERED_COMMANDS`), so no command is applied twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_commands: Vec<String>,
    /// The last approval used to enter a stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_approval: Option<ConsumedApproval>,
}

/// One gate check's latest result in the current stage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateState {
    /// The check's name from the spec.
    pub name: String,
    /// The lower bound the value was compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The upper bound the value was compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The last value read; absent when it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Whether the last value was within bounds; absent when unknown or not yet checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passing: Option<bool>,
    /// Why the last value could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the check was last evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Time>,
    /// Failed evaluations in a row in this stage (unknown values neither add nor reset).
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Passed evaluations in a row in this stage (unknown values neither add nor reset). While
    /// the stage bakes it is written at each `statusRefresh`; a failure resets it at once.
    #[serde(default)]
    pub consecutive_passes: u32,
    /// Since when the query has returned no series (what that means is the check's
    /// `onNoData`); absent while it returns a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data_since: Option<Time>,
}

/// Why the rollout is held.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// What held it.
    pub cause: HoldCause,
    /// The gate check's name, or the person who issued the command, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The evidence, e.g. `p95-latency-seconds 0.62 > 0.5 (3/3 checks failed)`.
    pub detail: String,
    /// For a rollback: the stage that failed and was left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_from: Option<String>,
    /// When the hold began.
    pub since: Time,
}

/// What held the rollout.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum HoldCause {
    /// A gate check failed `failureThreshold` times in a row.
    Gate,
    /// A person paused or aborted.
    Person,
    /// The spec no longer contains the current stage.
    SpecChange,
}

/// How many command ids the state remembers. The controller presents the latest command of each
/// kind, so a handful is plenty; ids no longer presented are forgotten first, oldest first.
pub const MAX_REMEMBERED_COMMANDS: usize = 16;

/// An approval that was used to enter a stage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumedApproval {
    /// Index of the approved stage.
    pub stage: u32,
    /// Name of the approved stage.
    pub stage_name: String,
    /// The approval command's id.
    pub id: String,
    /// Who approved, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When the approved stage was entered.
    pub at: Time,
}
