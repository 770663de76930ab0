use std::time::Duration as StdDuration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, Time};
use serde_json::json;

use super::*;
use crate::{
    crd::Trigger,
    engine::scaling::{Sample, ScalingHistory},
    triggers::{
        pause::Paused,
        plan::{Facts, Planned, plan},
    },
};

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn facts(s: i64, hold: Option<Hold>) -> Facts {
    Facts {
        now: at(s),
        status_refresh: StdDuration::from_secs(60),
        interval: StdDuration::from_secs(15),
        hold,
    }
}

fn rds(ack: bool) -> Trigger {
    let mut t = json!({
        "name": "db",
        "databaseConnections": {"query": "q", "threshold": 700},
        "rdsResize": {"dbInstanceIdentifier": "emr-prod", "classLadder": ["small", "large", "huge"],
                      "approval": "Manual", "ackDBInstanceRef": {"name": "emr-prod"}},
        "cooldown": "1h"
    });
    if !ack {
        t["rdsResize"]
            .as_object_mut()
            .unwrap()
            .remove("ackDBInstanceRef");
    }
    serde_json::from_value(t).unwrap()
}

fn reading(value: f64, class: &str) -> Reading {
    Reading {
        sample: Sample::Value(value),
        current: Ok(Current::Class(class.into())),
        refusal: None,
    }
}

fn annotations(value: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(APPROVE_RESIZE.to_string(), value.to_string())])
}

fn managed_by(manager: &str) -> Vec<ManagedFieldsEntry> {
    vec![ManagedFieldsEntry {
        manager: Some(manager.into()),
        time: Some(Time(at(5))),
        fields_v1: Some(FieldsV1(json!({
            "f:metadata": {"f:annotations": {"f:liftoff.dev/approve-resize": {}}}
        }))),
        ..Default::default()
    }]
}

/// The status after a Manual trigger recommended `small → large` at 0 (as `apply_all` records it).
fn recommended() -> TriggerStatus {
    let trigger = rds(true);
    let mut p = plan(
        &trigger.kind().unwrap(),
        None,
        &reading(800.0, "small"),
        &mut ScalingHistory::default(),
        facts(0, None),
    );
    assert!(matches!(p.action, Some(Planned::Recommend { .. })));
    p.status.recommendation = Some("resize emr-prod to large".into());
    p.status.recommended_to = Some("large".into());
    p.status.last_action_at = Some(Time(at(0)));
    p.status
}

/// Plans trigger `t` at `s` with the approval `value`, as `read_and_plan` does.
fn approve(
    t: &Trigger,
    previous: Option<&TriggerStatus>,
    r: &Reading,
    value: &str,
    s: i64,
    hold: Option<Hold>,
) -> TriggerPlan {
    let kind = t.kind().unwrap();
    let f = facts(s, hold);
    let mut p = plan(&kind, previous, r, &mut ScalingHistory::default(), f);
    let given = pending(
        &annotations(value),
        &managed_by("kubectl-annotate"),
        "db",
        previous,
    );
    take(&kind, previous, r, &mut p, given.unwrap(), hold, f.now);
    p
}

#[test]
fn an_approval_names_its_trigger_and_each_value_is_taken_once() {
    let fields = managed_by("kubectl-annotate");
    let given = pending(&annotations("db@1"), &fields, "db", None).unwrap();
    assert_eq!(given.command, "liftoff.dev/approve-resize=db@1");
    assert_eq!(
        given.by.as_deref(),
        Some("kubectl-annotate at 2027-01-15T08:00:05Z")
    );
    assert_eq!(
        pending(&annotations("db"), &fields, "db", None)
            .unwrap()
            .command,
        "liftoff.dev/approve-resize=db"
    );
    assert_eq!(pending(&annotations("cache@1"), &fields, "db", None), None);
    assert_eq!(pending(&BTreeMap::new(), &fields, "db", None), None);

    let mut status = recommended();
    status.approval = Some(Box::new(ResizeApproval {
        command: "liftoff.dev/approve-resize=db@1".into(),
        by: None,
        at: Time(at(1)),
        outcome: "resize from small to large".into(),
        waiting: false,
    }));
    assert_eq!(
        pending(&annotations("db@1"), &fields, "db", Some(&status)),
        None,
        "taken"
    );
    assert!(pending(&annotations("db@2"), &fields, "db", Some(&status)).is_some());
}

#[test]
fn an_approval_applies_the_open_recommendation_through_a_pending_action() {
    let trigger = rds(true);
    let before = recommended();
    // Within the cooldown the trigger itself decides nothing; the approval acts.
    let p = approve(
        &trigger,
        Some(&before),
        &reading(800.0, "small"),
        "db@1",
        60,
        None,
    );
    let action = Planned::ResizeDatabase {
        from: "small".into(),
        to: "large".into(),
    };
    assert!(action.pending(at(60)).is_some(), "written as intent first");
    assert_eq!(p.action, Some(action));
    assert!(
        p.reason.contains("approved by kubectl-annotate at"),
        "{}",
        p.reason
    );
    let approval = p.status.approval.as_ref().unwrap();
    assert_eq!(approval.command, "liftoff.dev/approve-resize=db@1");
    assert_eq!(approval.outcome, "resize from small to large");
    assert_eq!(approval.at, Time(at(60)));

    // Once recorded, the same value never acts again, even with the recommendation open.
    let fields = managed_by("kubectl-annotate");
    assert_eq!(
        pending(&annotations("db@1"), &fields, "db", Some(&p.status)),
        None
    );
}

#[test]
fn an_approval_given_with_nothing_recommended_is_taken_as_nothing_to_approve() {
    let trigger = rds(true);
    let p = approve(&trigger, None, &reading(100.0, "small"), "db", 0, None);
    assert_eq!(p.action, None);
    assert_eq!(
        p.status.approval.as_ref().map(|a| a.outcome.as_str()),
        Some("nothing to approve: no resize is recommended")
    );
    // A recommendation made later needs a Go of its own.
    let fields = managed_by("kubectl-annotate");
    assert_eq!(
        pending(&annotations("db"), &fields, "db", Some(&p.status)),
        None
    );

    // The class was changed by hand since (to the recommended one, or past it): applying the
    // recommendation now would do nothing or shrink the database. Nothing to approve.
    for running in ["large", "huge"] {
        let p = approve(
            &trigger,
            Some(&recommended()),
            &reading(800.0, running),
            "db",
            60,
            None,
        );
        assert_eq!(p.action, None, "at {running}");
        assert_eq!(p.status.recommendation, None);
        assert_eq!(
            p.status.approval.unwrap().outcome,
            format!(
                "nothing to approve: the recommended large is not the rung after {running}, the \
                 size running now; the samples recommend afresh"
            )
        );
    }

    // A recommendation decided in the very sample that reads the approval is not approved by it.
    let p = approve(&trigger, None, &reading(800.0, "small"), "db", 0, None);
    assert!(matches!(p.action, Some(Planned::Recommend { .. })));
    assert!(!p.approved);
    assert_eq!(
        p.status.approval.map(|a| a.outcome),
        Some("nothing to approve: no resize is recommended".into())
    );
}

#[test]
fn a_recommendation_stored_before_recommended_to_existed_can_be_approved() {
    let mut before = recommended();
    before.recommended_to = None;
    let p = approve(
        &rds(true),
        Some(&before),
        &reading(800.0, "small"),
        "db",
        60,
        None,
    );
    assert_eq!(
        p.action,
        Some(Planned::ResizeDatabase {
            from: "small".into(),
            to: "large".into()
        })
    );
}

#[test]
fn an_approval_waits_for_a_pause_and_for_a_dbinstance_to_patch() {
    let before = recommended();
    let r = reading(800.0, "small");
    let paused = Some(Hold::Paused(Paused::Out));
    let p = approve(&rds(true), Some(&before), &r, "db@1", 60, paused);
    assert_eq!(p.action, None);
    let waits = p.status.approval.clone().unwrap();
    assert!(
        waits.waiting,
        "not taken: it applies once the pause is lifted"
    );
    assert_eq!(
        waits.outcome,
        "waits: scaling out is paused by the annotation liftoff.dev/pause-scale-out"
    );
    assert!(
        !p.status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("waits"),
        "the trigger's own message is left alone"
    );
    let fields = managed_by("kubectl-annotate");
    assert!(pending(&annotations("db@1"), &fields, "db", Some(&p.status)).is_some());
    assert!(waiting(
        &pending(&annotations("db@1"), &fields, "db", Some(&p.status)).unwrap(),
        Some(&p.status)
    ));
    // Still paused a sample later: the same record, so nothing new to write.
    let again = approve(&rds(true), Some(&p.status), &r, "db@1", 75, paused);
    assert_eq!(again.status.approval, p.status.approval);
    // Lifted: taken.
    let lifted = approve(&rds(true), Some(&p.status), &r, "db@1", 90, None);
    assert!(lifted.action.is_some());
    assert!(!lifted.status.approval.unwrap().waiting);
    // A pause of scale-in does not hold a bigger class.
    let p = approve(
        &rds(true),
        Some(&before),
        &r,
        "db@1",
        60,
        Some(Hold::Paused(Paused::In)),
    );
    assert!(p.action.is_some());

    let p = approve(&rds(false), Some(&before), &r, "db@1", 60, None);
    assert_eq!(p.action, None);
    let waits = p.status.approval.unwrap();
    assert!(
        waits.waiting
            && waits
                .outcome
                .contains("rdsResize.ackDBInstanceRef is not set")
    );

    let unreadable = Reading {
        current: Err("DBInstance emr-prod not found".into()),
        ..r.clone()
    };
    let p = approve(&rds(true), Some(&before), &unreadable, "db@1", 60, None);
    assert_eq!(p.action, None);
    assert!(
        p.status
            .approval
            .unwrap()
            .outcome
            .starts_with("waits: cannot read the target")
    );
}

#[test]
fn an_interrupted_action_is_finished_before_an_approval_is_taken() {
    let mut before = recommended();
    before.pending_action = Some(Box::new(crate::crd::PendingAction {
        kind: "ResizeDatabase".into(),
        from: "small".into(),
        to: "large".into(),
        decided_at: Time(at(30)),
    }));
    let p = approve(
        &rds(true),
        Some(&before),
        &reading(800.0, "small"),
        "db@2",
        60,
        None,
    );
    assert_eq!(
        p.action,
        Some(Planned::ResizeDatabase {
            from: "small".into(),
            to: "large".into()
        }),
        "the interrupted resize, re-applied"
    );
    assert_eq!(
        p.decided_at,
        Some(at(30)),
        "the same decision, not the approval's"
    );
    assert!(p.status.approval.unwrap().waiting);
}

#[test]
fn the_outcome_of_an_approved_resize_is_recorded_when_it_was_applied() {
    let mut p = approve(
        &rds(true),
        Some(&recommended()),
        &reading(800.0, "small"),
        "db",
        60,
        None,
    );
    assert!(
        p.approved,
        "apply_all settles the outcome of this plan's action"
    );
    settle(&mut p.status, &Err("DBInstance is immutable".into()));
    assert_eq!(
        p.status.approval.as_ref().unwrap().outcome,
        "failed: DBInstance is immutable; the recommendation stays open: approve it again with a \
         new value"
    );
    // Nothing to approve: no action of the approval's, so nothing to settle.
    let nothing = approve(&rds(true), None, &reading(100.0, "small"), "db", 0, None);
    assert!(!nothing.approved);
}
