//! Database connections → the next RDS instance class: one rung at a time, approval, cooldown.

use super::*;
use crate::crd::{Approval, LocalObjectRef, RdsResizePolicy};

const LADDER: [&str; 3] = ["db.r6g.xlarge", "db.r6g.2xlarge", "db.r6g.4xlarge"];

fn policy(approval: Approval, ack: bool) -> RdsResizePolicy {
    RdsResizePolicy {
        db_instance_identifier: "emr-prod".into(),
        class_ladder: LADDER.iter().map(|c| c.to_string()).collect(),
        ack_db_instance_ref: ack.then(|| LocalObjectRef {
            name: "emr-prod-ack".into(),
        }),
        approval,
        current_class: None,
    }
}

fn input<'a>(
    connections: &'a Sample,
    policy: &'a RdsResizePolicy,
    current_class: Option<&'a str>,
    last_action_at: Option<Timestamp>,
) -> RdsInput<'a> {
    RdsInput {
        connections,
        threshold: 700,
        policy,
        current_class,
        cooldown: None,
        last_action_at,
    }
}

fn change(from: &str, to: &str) -> ClassChange {
    ClassChange {
        resource: "emr-prod".into(),
        from: from.into(),
        to: to.into(),
    }
}

#[test]
fn connections_above_threshold_signal_exactly_the_next_class() {
    let manual = policy(Approval::Manual, true);
    let automatic = policy(Approval::Automatic, true);
    let automatic_without_ack = policy(Approval::Automatic, false);
    let cases = [
        (
            "manual approval recommends the next rung",
            812.0,
            &manual,
            Some("db.r6g.xlarge"),
            Some(ResizeAction::Recommend(change(
                "db.r6g.xlarge",
                "db.r6g.2xlarge",
            ))),
            "812 connections to emr-prod are above the threshold 700; recommending to resize \
             emr-prod from db.r6g.xlarge to db.r6g.2xlarge (approval Manual)",
        ),
        (
            "automatic approval with an ACK reference applies the next rung",
            812.0,
            &automatic,
            Some("db.r6g.2xlarge"),
            Some(ResizeAction::Apply(change(
                "db.r6g.2xlarge",
                "db.r6g.4xlarge",
            ))),
            "resizing emr-prod from db.r6g.2xlarge to db.r6g.4xlarge (approval Automatic: \
             patching DBInstance emr-prod-ack)",
        ),
        (
            "automatic approval without an ACK reference can only recommend",
            812.0,
            &automatic_without_ack,
            Some("db.r6g.xlarge"),
            Some(ResizeAction::Recommend(change(
                "db.r6g.xlarge",
                "db.r6g.2xlarge",
            ))),
            "there is no ackDBInstanceRef to patch",
        ),
        (
            "connections at the threshold do nothing",
            700.0,
            &automatic,
            Some("db.r6g.xlarge"),
            None,
            "no action: 700 connections to emr-prod are at or below the threshold 700",
        ),
        (
            "the largest class does nothing",
            5000.0,
            &automatic,
            Some("db.r6g.4xlarge"),
            None,
            "but emr-prod is already at the largest class on the ladder, db.r6g.4xlarge",
        ),
        (
            "an unknown current class does nothing",
            812.0,
            &automatic,
            None,
            None,
            "but the current class of emr-prod is unknown",
        ),
        (
            "a class off the ladder does nothing",
            812.0,
            &automatic,
            Some("db.m5.large"),
            None,
            "but its current class db.m5.large is not on the class ladder [db.r6g.xlarge, \
             db.r6g.2xlarge, db.r6g.4xlarge]",
        ),
        (
            "classes are compared exactly",
            812.0,
            &automatic,
            Some("DB.R6G.XLARGE"),
            None,
            "is not on the class ladder",
        ),
        (
            "NaN connections do nothing",
            f64::NAN,
            &automatic,
            Some("db.r6g.xlarge"),
            None,
            "no action: database connections sample NaN is not a number",
        ),
    ];
    for (name, connections, policy, current, expected, reason) in cases {
        let connections = Sample::Value(connections);
        let decision = decide_rds_resize(&input(&connections, policy, current, None), at(0));
        assert_eq!(decision.action, expected, "{name}: {}", decision.reason);
        assert!(
            decision.reason.contains(reason),
            "{name}: {:?} does not contain {reason:?}",
            decision.reason
        );
    }
}

#[test]
fn rds_resize_is_signalled_once_per_cooldown() {
    let policy = policy(Approval::Manual, false);
    let connections = Sample::Value(900.0);
    let last = Some(at(0));
    // Default cooldown 1h.
    let within = decide_rds_resize(
        &input(&connections, &policy, Some(LADDER[0]), last),
        at(3599),
    );
    assert_eq!(within.action, None);
    assert!(
        within
            .reason
            .contains("cooling down until 2025-03-01T01:00:00Z"),
        "{}",
        within.reason
    );
    let after = decide_rds_resize(
        &input(&connections, &policy, Some(LADDER[0]), last),
        at(3600),
    );
    assert!(after.is_action(), "{}", after.reason);
    let short = RdsInput {
        cooldown: Some(dur(300)),
        ..input(&connections, &policy, Some(LADDER[0]), last)
    };
    assert!(decide_rds_resize(&short, at(300)).is_action());
}

#[test]
fn unknown_connections_or_a_bad_threshold_take_no_action() {
    let policy = policy(Approval::Automatic, true);
    let unknown = unknown();
    let decision = decide_rds_resize(&input(&unknown, &policy, Some(LADDER[0]), None), at(0));
    assert_eq!(decision.action, None);
    assert!(
        decision
            .reason
            .starts_with("no action: database connections is unknown: ")
    );
    let connections = Sample::Value(900.0);
    let bad = RdsInput {
        threshold: 0,
        ..input(&connections, &policy, Some(LADDER[0]), None)
    };
    assert_eq!(decide_rds_resize(&bad, at(0)).action, None);
}

#[test]
fn next_rung_never_skips_a_class() {
    let ladder: Vec<String> = LADDER.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        next_rung(&ladder, "db.r6g.xlarge"),
        Rung::Next("db.r6g.2xlarge")
    );
    assert_eq!(
        next_rung(&ladder, "db.r6g.2xlarge"),
        Rung::Next("db.r6g.4xlarge")
    );
    assert_eq!(next_rung(&ladder, "db.r6g.4xlarge"), Rung::Largest);
    assert_eq!(next_rung(&ladder, "db.r6g.large"), Rung::NotOnLadder);
    assert_eq!(next_rung(&[], "db.r6g.large"), Rung::NotOnLadder);
}

#[test]
fn the_action_exposes_its_change_whether_applied_or_recommended() {
    let c = change("a", "b");
    assert_eq!(ResizeAction::Apply(c.clone()).change(), &c);
    assert_eq!(ResizeAction::Recommend(c.clone()).change(), &c);
}
