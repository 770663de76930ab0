//! Database connections → a resize signal for the next RDS instance class on the ladder.

use k8s_openapi::jiff::Timestamp;

use super::{
    cooldown::DATABASE_CONNECTIONS_COOLDOWN,
    decision::Decision,
    ladder::{self, Ladder, ResizeAction},
    sample::{Sample, num, usable},
};
use crate::crd::{Duration, RdsResizePolicy};

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

/// Decides whether to signal (or apply) the next instance class for a databaseConnections trigger.
///
/// In order: an unknown or invalid sample → no action; connections at or below the threshold →
/// no action; the current class unknown, not on the ladder, or the largest → no action; within
/// the cooldown after the last signal → no action; otherwise [`ResizeAction::Apply`] of the next
/// rung with approval `Automatic` and an `ackDBInstanceRef`, else [`ResizeAction::Recommend`]
/// ([`ladder::step`]).
pub fn decide_rds_resize(input: &RdsInput<'_>, now: Timestamp) -> Decision<ResizeAction> {
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
    let ladder = Ladder {
        resource: instance,
        rung: "class",
        rungs: &policy.class_ladder,
        approval: policy.approval,
        ack: policy
            .ack_db_instance_ref
            .as_ref()
            .map(|r| ("DBInstance", r.name.as_str())),
        ack_field: "ackDBInstanceRef",
    };
    ladder::step(
        &above,
        &ladder,
        input.current_class,
        (input.cooldown, DATABASE_CONNECTIONS_COOLDOWN),
        input.last_action_at,
        now,
    )
}
