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
//! `status.triggers[].recommendedTo`), if it is still the rung after the class running, through
//! the same `pendingAction` as an automatic resize, so a crash cannot apply it twice, and records
//! the value, who gave it and what came of it in `status.triggers[].approval`. A value given
//! while nothing is recommended is taken too, as "nothing to approve": an approval never applies
//! to a recommendation made after it. While it cannot be applied yet (a pause, a target that
//! cannot be read, no ACK object to patch), it waits: `approval.waiting` is true and its outcome
//! says why; it is retried at each sample.

use std::collections::BTreeMap;

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time},
    jiff::Timestamp,
};

use super::{
    TriggerKind,
    plan::{Current, Hold, Reading, TriggerPlan},
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

/// The approval annotation when it names no trigger of the policy (it approves nothing), for
/// the console.
pub fn unknown_name(annotations: &BTreeMap<String, String>, triggers: &[&str]) -> Option<String> {
    let value = annotations.get(APPROVE_RESIZE)?;
    let named = trigger_named(value);
    (!triggers.contains(&named)).then(|| {
        format!("{APPROVE_RESIZE}: {named:?} is no trigger of this policy, so it approves nothing")
    })
}

/// The approval the annotations give `trigger` that it has not taken yet (one that waits is
/// not taken).
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
        .is_some_and(|a| a.command == command && !a.waiting);
    (!taken).then(|| Approval {
        command,
        by: issuer(APPROVE_RESIZE, managed_fields),
    })
}

/// Whether `approval` is already recorded as waiting: it is then retried at the trigger's
/// samples, not at every reconcile.
pub fn waiting(approval: &Approval, previous: Option<&TriggerStatus>) -> bool {
    previous
        .and_then(|p| p.approval.as_ref())
        .is_some_and(|a| a.command == approval.command && a.waiting)
}

/// The size the open recommendation resizes to: `recommendedTo`, or for a recommendation stored
/// before that field existed, the end of `resize X to Y`.
pub fn open_recommendation(status: &TriggerStatus) -> Option<&str> {
    let written = status.recommendation.as_deref();
    let legacy = written
        .and_then(|r| r.rsplit_once(" to "))
        .map(|(_, to)| to);
    status.recommended_to.as_deref().or(legacy)
}

/// Takes `approval` into `plan`: the recommendation open before this sample becomes the plan's
/// action; or the approval is taken as having nothing to approve; or it waits, recorded as
/// such in `approval` with the reason.
pub fn take(
    kind: &TriggerKind<'_>,
    previous: Option<&TriggerStatus>,
    reading: &Reading,
    plan: &mut TriggerPlan,
    approval: Approval,
    hold: Option<Hold>,
    now: Timestamp,
) {
    let interrupted = previous.is_some_and(|p| p.pending_action.is_some());
    let acting = plan
        .action
        .as_ref()
        .is_some_and(|a| a.pending(now).is_some());
    if interrupted || acting {
        let why = "another action on the target is being applied first".into();
        return record(plan, previous, approval, now, Taken::Waits(why));
    }
    // Only what was recommended before the approval was read: never one made after it.
    let Some(to) = previous.and_then(open_recommendation).map(str::to_owned) else {
        let outcome = "nothing to approve: no resize is recommended".into();
        return record(plan, previous, approval, now, Taken::Done(outcome));
    };
    let from = match &reading.current {
        Ok(Current::Class(class)) => class.clone(),
        Ok(other) => {
            let outcome = format!("nothing to approve: the target's state {other:?} has no class");
            return record(plan, previous, approval, now, Taken::Done(outcome));
        }
        Err(why) => {
            let why = format!("cannot read the target: {why}");
            return record(plan, previous, approval, now, Taken::Waits(why));
        }
    };
    if kind.get().next_size(&from).as_deref() != Some(to.as_str()) {
        // Resized by hand since, or the ladder changed: applying it could skip a rung or shrink.
        plan.status.recommendation = None;
        plan.status.recommended_to = None;
        let outcome = format!(
            "nothing to approve: the recommended {to} is not the rung after {from}, the size \
             running now; the samples recommend afresh"
        );
        return record(plan, previous, approval, now, Taken::Done(outcome));
    }
    let action = match kind.get().approved(&from, &to) {
        Ok(action) => action,
        Err(why) => return record(plan, previous, approval, now, Taken::Waits(why)),
    };
    if let Some(refusal) = &reading.refusal {
        let why = format!("refused: {refusal}");
        return record(plan, previous, approval, now, Taken::Waits(why));
    }
    if let Some(hold) = hold.filter(|h| h.blocks(&action)) {
        let why = hold.explain().to_string();
        return record(plan, previous, approval, now, Taken::Waits(why));
    }
    let by = approval.by.as_deref().unwrap_or("an unknown manager");
    plan.reason = format!(
        "resize from {from} to {to} approved by {by} ({})",
        approval.command
    );
    plan.action = Some(action);
    plan.refused = None;
    plan.decided_at = None;
    plan.approved = true;
    plan.status.message = Some(plan.reason.clone());
    let outcome = format!("resize from {from} to {to}");
    record(plan, previous, approval, now, Taken::Done(outcome));
}

/// What became of an approval this sample.
enum Taken {
    /// Taken, with its outcome.
    Done(String),
    /// Not yet, and why.
    Waits(String),
}

fn record(
    plan: &mut TriggerPlan,
    previous: Option<&TriggerStatus>,
    approval: Approval,
    now: Timestamp,
    taken: Taken,
) {
    let (outcome, waits) = match taken {
        Taken::Done(outcome) => (outcome, false),
        Taken::Waits(why) => (format!("waits: {why}"), true),
    };
    // A wait already recorded keeps its time, so an unchanged wait writes nothing.
    let since = previous
        .and_then(|p| p.approval.as_ref())
        .filter(|a| waits && a.waiting && a.command == approval.command)
        .map_or(Time(now), |a| a.at.clone());
    plan.status.approval = Some(Box::new(ResizeApproval {
        command: approval.command,
        by: approval.by,
        at: since,
        outcome,
        waiting: waits,
    }));
}

/// Records how an approved resize went, once it has been applied.
pub fn settle(status: &mut TriggerStatus, result: &Result<String, String>) {
    let Some(approval) = status.approval.as_mut() else {
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
