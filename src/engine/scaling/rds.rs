//! Database connections → a resize signal for the next RDS instance class on the ladder.

use k8s_openapi::jiff::Timestamp;

use super::{
    cooldown::{self, DATABASE_CONNECTIONS_COOLDOWN},
    decision::Decision,
    sample::{Sample, num, usable},
};
use crate::crd::{Approval, Duration, RdsResizePolicy};

/// Everything [`decide_rds_resize`] needs besides the time.
#[derive(Clone, Copy, Debug)]
pub struct RdsInput<'a> {
    /// Open connections to the database.
    pub connections: &'a Sample,
    /// `databaseConnections.threshold`: the count above which the next class is signalled.
    pub threshold: i64,
    /// `rdsResize`: the instance, its class ladder and the approval mode.
    pub policy: &'a RdsResizePolicy,
    /// The instance's class now (e.g. from the ACK `DBInstance`), `None` when it is not known.
    pub current_class: Option<&'a str>,
    /// The trigger's `cooldown` (default [`DATABASE_CONNECTIONS_COOLDOWN`]).
    pub cooldown: Option<Duration>,
    /// When this trigger last signalled or applied a resize.
    pub last_action_at: Option<Timestamp>,
}

/// A resize of one RDS instance by one rung of its ladder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassChange {
    /// `rdsResize.dbInstanceIdentifier`.
    pub db_instance_identifier: String,
    /// The class now.
    pub from: String,
    /// The next class on the ladder.
    pub to: String,
}

/// What to do with a resize.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RdsAction {
    /// Patch the ACK `DBInstance` (approval `Automatic` and an `ackDBInstanceRef` is set), and
    /// signal it (Event, status, notification).
    Apply(ClassChange),
    /// Signal it only, for a person to act on: approval `Manual`, or no `ackDBInstanceRef`.
    Recommend(ClassChange),
}

impl RdsAction {
    /// The resize, whether applied or recommended.
    pub fn change(&self) -> &ClassChange {
        match self {
            Self::Apply(change) | Self::Recommend(change) => change,
        }
    }
}

/// Where a class sits on a ladder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rung<'a> {
    /// The class right after it: the only one ever recommended.
    Next(&'a str),
    /// It is the last class of the ladder.
    Largest,
    /// It is not on the ladder (classes are compared exactly).
    NotOnLadder,
}

/// The rung after `current` on `ladder` (smallest to largest). Never skips one.
pub fn next_rung<'a>(ladder: &'a [String], current: &str) -> Rung<'a> {
    match ladder.iter().position(|class| class == current) {
        None => Rung::NotOnLadder,
        Some(i) => ladder
            .get(i + 1)
            .map_or(Rung::Largest, |next| Rung::Next(next.as_str())),
    }
}

/// Decides whether to signal (or apply) the next instance class for a databaseConnections trigger.
///
/// In order: an unknown or invalid sample → no action; connections at or below the threshold →
/// no action; the current class unknown, not on the ladder, or the largest → no action; within
/// the cooldown after the last signal → no action; otherwise [`RdsAction::Apply`] of the next
/// rung with approval `Automatic` and an `ackDBInstanceRef`, else [`RdsAction::Recommend`].
pub fn decide_rds_resize(input: &RdsInput<'_>, now: Timestamp) -> Decision<RdsAction> {
    let connections = match usable(input.connections, "database connections") {
        Ok(connections) => connections,
        Err(why) => return Decision::hold(format!("no action: {why}")),
    };
    let (threshold, policy) = (input.threshold, input.policy);
    let instance = policy.db_instance_identifier.as_str();
    if threshold < 1 {
        return Decision::hold(format!(
            "no action: databaseConnections.threshold {threshold} must be at least 1"
        ));
    }
    if connections <= threshold as f64 {
        return Decision::hold(format!(
            "no action: {} connections to {instance} are at or below the threshold {threshold}",
            num(connections)
        ));
    }
    let above = format!(
        "{} connections to {instance} are above the threshold {threshold}",
        num(connections)
    );
    let Some(current) = input.current_class else {
        return Decision::hold(format!(
            "no action: {above}, but the current instance class of {instance} is unknown, so \
             the next rung of the class ladder cannot be chosen"
        ));
    };
    let next = match next_rung(&policy.class_ladder, current) {
        Rung::Next(next) => next,
        Rung::Largest => {
            return Decision::hold(format!(
                "no action: {above}, but {instance} is already at the largest class on the \
                 ladder, {current}"
            ));
        }
        Rung::NotOnLadder => {
            return Decision::hold(format!(
                "no action: {above}, but its current class {current} is not on the class \
                 ladder [{}]",
                policy.class_ladder.join(", ")
            ));
        }
    };
    let cooldown = cooldown::or_default(input.cooldown, DATABASE_CONNECTIONS_COOLDOWN);
    if let Err(why) = cooldown::check(input.last_action_at, cooldown, now) {
        return Decision::hold(format!("no action: {above}, but {why}"));
    }

    let change = ClassChange {
        db_instance_identifier: instance.to_owned(),
        from: current.to_owned(),
        to: next.to_owned(),
    };
    let resize = format!("{instance} from {current} to {next}");
    match (policy.approval, &policy.ack_db_instance_ref) {
        (Approval::Automatic, Some(ack)) => Decision::act(
            RdsAction::Apply(change),
            format!(
                "{above}; resizing {resize} (approval Automatic: patching DBInstance {})",
                ack.name
            ),
        ),
        (Approval::Automatic, None) => Decision::act(
            RdsAction::Recommend(change),
            format!(
                "{above}; recommending to resize {resize} (approval is Automatic, but there is \
                 no ackDBInstanceRef to patch)"
            ),
        ),
        (Approval::Manual, _) => Decision::act(
            RdsAction::Recommend(change),
            format!("{above}; recommending to resize {resize} (approval Manual)"),
        ),
    }
}
