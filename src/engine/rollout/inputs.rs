//! What the controller observed for one evaluation: gate readings and people's commands.

use std::collections::BTreeMap;

use crate::crd::{GateCheck, NoDataPolicy};

/// One evaluation's inputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inputs {
    /// `spec.suspend`: observe and report, change nothing. Commands wait until it is lifted.
    pub suspended: bool,
    /// Gate readings taken for this evaluation, by check name. Pass them when [`gates_due`]
    /// says so; readings passed at other times are not counted (an `Unknown` one still holds
    /// the rollout). When an evaluation is due, a check without a reading counts as unknown.
    ///
    /// [`gates_due`]: super::gates_due
    pub gates: BTreeMap<String, GateReading>,
    /// Commands from people, oldest first. Present the latest command of each kind on every
    /// evaluation; each `id` is applied at most once.
    pub commands: Vec<Command>,
    /// The current stage is recorded in status but its cohort was never published (the
    /// operator that recorded it stopped before publishing): nobody has been admitted yet, so
    /// its bake and gate window start at this evaluation, not when it was recorded.
    pub unpublished: bool,
    /// Why the platform is short of capacity now, one entry per scaling trigger that says so
    /// (beyond its threshold, unreadable, an action pending, a resize recommended). With
    /// `holdWhileScaling`, no stage is entered while any is present. Present them on every
    /// evaluation; keep the texts free of samples so a hold reads the same from one
    /// evaluation to the next.
    pub capacity: Vec<CapacityHold>,
    /// The targets of the triggers the next stage's `scaleUpFirst` names, by trigger: ready
    /// replicas and the trigger's `replicas.max`. A trigger missing here has none ready.
    pub ready: BTreeMap<String, Readiness>,
}

/// A scale target's ready replicas, and the most its trigger may scale it to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub ready: i32,
    pub max: i32,
}

/// One scaling trigger holding the rollout for capacity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapacityHold {
    /// The trigger's name.
    pub trigger: String,
    /// Why, e.g. `is beyond its threshold`, `cannot be read`, `has an action pending`.
    pub why: String,
}

impl Inputs {
    /// Adds a gate reading.
    pub fn with_gate(mut self, name: impl Into<String>, reading: GateReading) -> Self {
        self.gates.insert(name.into(), reading);
        self
    }

    /// Adds a command.
    pub fn with_command(mut self, command: Command) -> Self {
        self.commands.push(command);
        self
    }

    /// Every one of `checks` whose reading is unknown (a query that returned no series counts
    /// as unknown when the check's `onNoData` is `Hold`), and why, in spec order.
    pub(crate) fn unknown_gates<'a>(&'a self, checks: &'a [GateCheck]) -> Vec<(&'a str, &'a str)> {
        let why = |check: &'a GateCheck| match self.gates.get(&check.name) {
            Some(GateReading::Unknown { error }) => Some(error.as_str()),
            Some(GateReading::NoData) if check.on_no_data == NoDataPolicy::Hold => {
                Some(NO_DATA_HOLDS)
            }
            _ => None,
        };
        checks
            .iter()
            .filter_map(|check| Some((check.name.as_str(), why(check)?)))
            .collect()
    }
}

/// The value of one gate check's query.
#[derive(Clone, Debug, PartialEq)]
pub enum GateReading {
    /// The query returned this value. NaN and infinities are treated as unknown.
    Value(f64),
    /// The query returned no series: what it means is the check's `onNoData`.
    NoData,
    /// The value could not be read (source down, several series...).
    Unknown { error: String },
}

/// Why a check whose query returned no series holds the rollout.
pub(crate) const NO_DATA_HOLDS: &str = "the query returned no series; onNoData: Hold";

impl GateReading {
    pub fn unknown(error: impl Into<String>) -> Self {
        GateReading::Unknown {
            error: error.into(),
        }
    }
}

/// A person's instruction, read from the policy (spec field or annotation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// Unique per issuance (e.g. the annotation value's timestamp); the same id is applied once.
    pub id: String,
    /// Who issued it, when the apiserver tells.
    pub by: Option<String>,
    pub action: Action,
}

impl Command {
    pub fn new(id: impl Into<String>, action: Action) -> Self {
        Command {
            id: id.into(),
            by: None,
            action,
        }
    }

    pub fn by(mut self, who: impl Into<String>) -> Self {
        self.by = Some(who.into());
        self
    }
}

/// What a person asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Go for the stage with this index. Valid only for the next stage; it may be given while the
    /// current stage is still baking and is used when that stage is entered.
    Approve { stage: u32 },
    /// Hold the current users.
    Pause,
    /// Leave `Paused`/`RolledBack` and carry on from the current stage with its bake deadline.
    Resume,
    /// Admit nobody and stop.
    Abort,
    /// `Paused`: start the current stage over. `RolledBack`: re-enter the stage that failed.
    /// `Aborted`: start over from the first stage.
    Retry,
}
