//! A person's Go for a recommended resize. With `approval: Manual` a `databaseConnections`
//! trigger only recommends the next instance class (`status.triggers[].recommendation`); the war
//! room approves it the way it gives a stage its Go:
//!
//! ```sh
//! kubectl annotate --overwrite lp/emr-platform liftoff.dev/approve-resize=emr-db@1
//! ```
//!
//! The value is the trigger's name, optionally `@` and any id. Liftoff takes each value once: it
//! applies the recommendation open when it reads the annotation (the class in
//! `status.triggers[].recommendedTo`, or one decided in that same sample), through the same
//! `pendingAction` as an automatic resize, so a crash cannot apply it twice, and records the
//! value, who gave it and what came of it in `status.triggers[].approval`. A value given while
//! nothing is recommended is taken too, as "nothing to approve": an approval never applies to a
//! recommendation made after it. While it cannot be applied yet (a pause, a target that cannot
//! be read, no `ackDBInstanceRef` to patch), it waits and the trigger's message says why.

use std::collections::BTreeMap;

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time},
    jiff::Timestamp,
};

use super::{
    TriggerKind,
    plan::{Current, Hold, Planned, Reading, TriggerPlan},
};
use crate::{
    controller::rollout::commands::issuer,
    crd::{ResizeApproval, TriggerStatus},
};

pub const APPROVE_RESIZE: &str = "liftoff.dev/approve-resize";

/// An approval the annotations give one trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct Approval {
    /// `liftoff.dev/approve-resize=VALUE`: each is taken once.
    pub command: String,
    /// The field manager that set the annotation, and when.
    pub by: Option<String>,
}

/// The trigger an annotation value names: `emr-db` or `emr-db@2` → `emr-db`.
pub fn trigger_named(value: &str) -> &str {
    value.split_once('@').map_or(value, |(name, _)| name).trim()
}

/// The approval the annotations give `trigger` that it has not taken yet.
pub fn pending(
    annotations: &BTreeMap<String, String>,
    managed_fields: &[ManagedFieldsEntry],
    trigger: &str,
    previous: Option<&TriggerStatus>,
) -> Option<Approval> {
    let value = annotations.get(APPROVE_RESIZE)?;
    if trigger_named(value) != trigger {
        return None;
    }
    let command = format!("{APPROVE_RESIZE}={value}");
    let taken = previous
        .and_then(|p| p.approval.as_ref())
        .is_some_and(|a| a.command == command);
    (!taken).then(|| Approval {
        command,
        by: issuer(APPROVE_RESIZE, managed_fields),
    })
}

/// Takes `approval` into `plan`: the open recommendation becomes the plan's action, or the
/// approval is recorded as having nothing to approve, or it waits (the message says why).
pub fn take(
    kind: &TriggerKind<'_>,
    previous: Option<&TriggerStatus>,
    reading: &Reading,
    plan: &mut TriggerPlan,
    approval: Approval,
    hold: Option<Hold>,
    now: Timestamp,
) {
    let waits = |plan: &mut TriggerPlan, why: String| {
        plan.status.message = Some(format!("{} waits: {why}", approval.command));
    };
    let interrupted = previous.is_some_and(|p| p.pending_action.is_some());
    let acting = plan
        .action
        .as_ref()
        .is_some_and(|a| a.pending(now).is_some());
    if interrupted || acting {
        return waits(plan, "another action on the target is being applied".into());
    }
    let decided = match &plan.action {
        Some(Planned::Recommend { to, .. }) => Some(to.clone()),
        _ => None,
    };
    let Some(to) = previous.and_then(|p| p.recommended_to.clone()).or(decided) else {
        return taken(
            plan,
            approval,
            now,
            "nothing to approve: no resize is recommended".into(),
        );
    };
    let from = match &reading.current {
        Ok(Current::Class(class)) => class.clone(),
        Ok(other) => {
            let outcome = format!("nothing to approve: the target's state {other:?} has no class");
            return taken(plan, approval, now, outcome);
        }
        Err(why) => return waits(plan, format!("cannot read the target: {why}")),
    };
    if from == to {
        plan.status.recommendation = None;
        plan.status.recommended_to = None;
        let outcome = format!("nothing to approve: the class is {to} already");
        return taken(plan, approval, now, outcome);
    }
    let action = match kind.get().approved(&from, &to) {
        Ok(action) => action,
        Err(why) => return waits(plan, why),
    };
    if let Some(refusal) = &reading.refusal {
        return waits(plan, format!("refused: {refusal}"));
    }
    if let Some(hold) = hold.filter(|h| h.blocks(&action)) {
        return waits(plan, hold.explain().into());
    }
    let by = approval.by.as_deref().unwrap_or("an unknown manager");
    plan.reason = format!(
        "resize from {from} to {to} approved by {by} ({})",
        approval.command
    );
    plan.action = Some(action);
    plan.refused = None;
    plan.decided_at = None;
    plan.status.message = Some(plan.reason.clone());
    taken(plan, approval, now, format!("resize from {from} to {to}"));
}

fn taken(plan: &mut TriggerPlan, approval: Approval, now: Timestamp, outcome: String) {
    plan.status.approval = Some(ResizeApproval {
        command: approval.command,
        by: approval.by,
        at: Time(now),
        outcome,
    });
}

/// Records how an approved action taken at `now` went, once it has been applied.
pub fn settle(status: &mut TriggerStatus, now: Timestamp, result: &Result<String, String>) {
    let Some(approval) = status.approval.as_mut().filter(|a| a.at.0 == now) else {
        return;
    };
    match result {
        Ok(what) => approval.outcome = what.clone(),
        Err(why) => {
            approval.outcome = format!(
                "failed: {why}; the recommendation stays open: approve it again with a new value"
            )
        }
    }
}

#[cfg(test)]
#[path = "approval_tests.rs"]
mod tests;
