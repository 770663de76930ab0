use serde_json::json;

use super::*;
use crate::triggers::pause::Paused;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn facts(s: i64) -> Facts {
    Facts {
        now: at(s),
        status_refresh: StdDuration::from_secs(60),
        interval: StdDuration::from_secs(15),
        hold: None,
    }
}

fn trigger(value: serde_json::Value) -> Trigger {
    serde_json::from_value(value).unwrap()
}

fn cpu() -> Trigger {
    trigger(json!({
        "name": "api-cpu",
        "cpu": {"utilization": 70, "query": "q"},
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
        "replicas": {"min": 2, "max": 10}
    }))
}

fn kafka() -> Trigger {
    trigger(json!({
        "name": "lag",
        "kafkaLag": {"bootstrapServers": "k:9092", "topic": "t", "consumerGroup": "g", "threshold": 50000},
        "partitions": {"max": 12},
        "cooldown": "10m"
    }))
}

fn rds(approval: &str) -> Trigger {
    trigger(json!({
        "name": "db",
        "databaseConnections": {"query": "q", "threshold": 700},
        "rdsResize": {"dbInstanceIdentifier": "emr-prod", "classLadder": ["small", "large"],
                      "approval": approval, "ackDBInstanceRef": {"name": "emr-prod"}}
    }))
}

fn reading(value: f64, current: Current) -> Reading {
    Reading {
        sample: Sample::Value(value),
        current: Ok(current),
        refusal: None,
    }
}

fn run(t: &Trigger, previous: Option<&TriggerStatus>, r: &Reading, f: Facts) -> TriggerPlan {
    plan(
        &t.kind().unwrap(),
        previous,
        r,
        &mut ScalingHistory::default(),
        f,
    )
}

#[test]
fn cpu_above_target_scales_with_hpa_maths_and_shows_the_value_with_its_unit() {
    let p = run(
        &cpu(),
        None,
        &reading(140.0, Current::Replicas(3)),
        facts(0),
    );
    assert_eq!(p.action, Some(Planned::Scale { from: 3, to: 6 }));
    assert_eq!(p.status.value.as_deref(), Some("140%"));
    assert_eq!(p.status.threshold, "70%");
    assert!(p.status.active);
    assert_eq!(p.status.kind, "cpu");
    assert_eq!(p.action.unwrap().label(), "ScaleUp");
}

#[test]
fn a_steady_value_is_not_rewritten_before_the_refresh_interval() {
    let t = kafka();
    let first = run(&t, None, &reading(10.0, Current::Partitions(3)), facts(0)).status;
    let second = run(
        &t,
        Some(&first),
        &reading(20.0, Current::Partitions(3)),
        facts(30),
    )
    .status;
    assert_eq!(second, first, "a new sample alone must not change status");
    let third = run(
        &t,
        Some(&second),
        &reading(30.0, Current::Partitions(3)),
        facts(60),
    )
    .status;
    assert_eq!(third.value.as_deref(), Some("30"));
    assert_eq!(third.observed_at, Some(Time(at(60))));
}

#[test]
fn crossing_the_threshold_is_written_at_once() {
    let t = kafka();
    let first = run(&t, None, &reading(10.0, Current::Partitions(3)), facts(0)).status;
    let second = run(
        &t,
        Some(&first),
        &reading(60_000.0, Current::Partitions(3)),
        facts(5),
    );
    assert!(second.status.active);
    assert_eq!(second.status.value.as_deref(), Some("60000"));
    assert_eq!(second.action, Some(Planned::Partitions { from: 3, to: 4 }));
}

#[test]
fn an_unknown_sample_never_acts_and_the_status_names_the_source_since_when() {
    let t = cpu();
    let unknown = Reading {
        sample: Sample::unknown("prometheus http://p:9090", "connection refused"),
        current: Ok(Current::Replicas(5)),
        refusal: None,
    };
    let first = run(&t, None, &unknown, facts(0));
    assert_eq!(first.action, None);
    assert_eq!(
        first.status.error.as_deref(),
        Some("prometheus http://p:9090: connection refused")
    );
    assert_eq!(first.status.value, None, "unknown is not zero");
    assert_eq!(first.status.error_since, Some(Time(at(0))));
    let later = run(&t, Some(&first.status), &unknown, facts(90));
    assert_eq!(
        later.status.error_since,
        Some(Time(at(0))),
        "since stays put"
    );
    let back = run(
        &t,
        Some(&later.status),
        &reading(50.0, Current::Replicas(5)),
        facts(95),
    );
    assert_eq!(back.status.error, None);
    assert_eq!(back.status.error_since, None);
    assert_eq!(back.status.value.as_deref(), Some("50%"));
}

#[test]
fn an_unreadable_target_is_an_error_and_no_action() {
    let r = Reading {
        sample: Sample::Value(99.0),
        current: Err("Deployment api not found".into()),
        refusal: None,
    };
    let p = run(&cpu(), None, &r, facts(0));
    assert_eq!(p.action, None);
    assert_eq!(
        p.status.error.as_deref(),
        Some("target: Deployment api not found")
    );
}

#[test]
fn a_refusal_blocks_the_action_and_says_why() {
    let mut r = reading(140.0, Current::Replicas(3));
    r.refusal = Some("HorizontalPodAutoscaler api also scales Deployment api".into());
    let p = run(&cpu(), None, &r, facts(0));
    assert_eq!(p.action, None);
    assert!(
        p.status
            .message
            .unwrap()
            .starts_with("refused: HorizontalPodAutoscaler api")
    );
}

#[test]
fn a_hold_reports_what_would_have_happened() {
    let mut f = facts(0);
    f.hold = Some(Hold::Suspended);
    let p = run(&cpu(), None, &reading(140.0, Current::Replicas(3)), f);
    assert_eq!(p.action, None);
    assert_eq!(p.refused, Some("Suspended"));
    assert!(p.reason.contains("would have acted: "), "{}", p.reason);
}

#[test]
fn a_paused_direction_holds_only_its_own_actions_and_says_which_annotation() {
    let mut paused_in = facts(0);
    paused_in.hold = Some(Hold::Paused(Paused::In));
    // 140 % on 3 replicas asks for more: scaling in is paused, not out.
    let up = run(
        &cpu(),
        None,
        &reading(140.0, Current::Replicas(3)),
        paused_in,
    );
    assert!(
        matches!(up.action, Some(Planned::Scale { from: 3, to: 6 })),
        "{up:?}"
    );
    let mut paused_out = facts(0);
    paused_out.hold = Some(Hold::Paused(Paused::Out));
    let held = run(
        &cpu(),
        None,
        &reading(140.0, Current::Replicas(3)),
        paused_out,
    );
    assert_eq!(held.action, None);
    assert_eq!(held.refused, Some("Paused"));
    assert!(
        held.reason.starts_with(
            "scaling out is paused by the annotation liftoff.dev/pause-scale-out; would have acted: "
        ),
        "{}",
        held.reason
    );
    // Not a refusal: nothing is degraded, the war room paused it.
    assert!(
        !held
            .status
            .message
            .unwrap_or_default()
            .starts_with("refused")
    );
}

#[test]
fn a_pause_set_while_a_trigger_is_hot_is_written_at_once() {
    let hot = run(
        &cpu(),
        None,
        &reading(140.0, Current::Replicas(3)),
        facts(0),
    );
    let mut after = hot.status.clone();
    after.last_action_at = None;
    let mut paused = facts(15);
    paused.hold = Some(Hold::Paused(Paused::Both));
    let held = run(
        &cpu(),
        Some(&after),
        &reading(140.0, Current::Replicas(3)),
        paused,
    );
    // Still hot, same error state, long before statusRefresh: only the hold is news.
    let message = held.status.message.unwrap();
    assert!(
        message.starts_with("scaling in and out is paused"),
        "{message}"
    );
}

#[test]
fn a_refusal_turning_into_a_hold_or_one_hold_into_another_is_written_at_once() {
    let mut r = reading(140.0, Current::Replicas(3));
    r.refusal = Some("HorizontalPodAutoscaler api also scales Deployment api".into());
    let refused = run(&cpu(), None, &r, facts(0));
    // The HPA is gone, but the policy is suspended meanwhile.
    let mut suspended = facts(15);
    suspended.hold = Some(Hold::Suspended);
    let held = run(
        &cpu(),
        Some(&refused.status),
        &reading(140.0, Current::Replicas(3)),
        suspended,
    );
    let message = held.status.message.clone().unwrap();
    assert!(message.starts_with("spec.suspend is true"), "{message}");
    // Resumed with scaling out paused: a different hold, news again.
    let mut paused = facts(30);
    paused.hold = Some(Hold::Paused(Paused::Out));
    let repaused = run(
        &cpu(),
        Some(&held.status),
        &reading(140.0, Current::Replicas(3)),
        paused,
    );
    let message = repaused.status.message.unwrap();
    assert!(message.starts_with("scaling out is paused"), "{message}");
}

fn with_fallback() -> Trigger {
    let mut t = cpu();
    t.fallback = serde_json::from_value(json!({"afterFailures": 3, "replicas": 6})).unwrap();
    t
}

fn unreadable(current: Current) -> Reading {
    Reading {
        sample: Sample::unknown("prometheus http://p:9090", "connection refused"),
        current: Ok(current),
        refusal: None,
    }
}

#[test]
fn a_fallback_raises_the_target_after_enough_failed_samples_and_never_lowers_it() {
    let t = with_fallback();
    // The first failure sets errorSince; the interval is 15 s.
    let first = run(&t, None, &unreadable(Current::Replicas(3)), facts(0));
    assert_eq!(first.action, None, "{}", first.reason);
    let second = run(
        &t,
        Some(&first.status),
        &unreadable(Current::Replicas(3)),
        facts(15),
    );
    assert_eq!(second.action, None, "{}", second.reason);
    let third = run(
        &t,
        Some(&second.status),
        &unreadable(Current::Replicas(3)),
        facts(30),
    );
    assert_eq!(third.action, Some(Planned::Scale { from: 3, to: 6 }));
    assert!(
        third.reason.starts_with(
            "prometheus http://p:9090 has failed 3 samples in a row (since 2027-01-15T08:00:00Z); \
             fallback.replicas is 6: scaling from 3 to 6"
        ),
        "{}",
        third.reason
    );
    // Already at or above the fallback: nothing is removed.
    let above = run(
        &t,
        Some(&second.status),
        &unreadable(Current::Replicas(8)),
        facts(30),
    );
    assert_eq!(above.action, None);
    assert!(
        above
            .reason
            .ends_with("8 replicas run already, so no action"),
        "{}",
        above.reason
    );
    // Without a fallback, unknown stays no action however long it lasts.
    let plain = run(
        &cpu(),
        Some(&second.status),
        &unreadable(Current::Replicas(3)),
        facts(300),
    );
    assert_eq!(plain.action, None);
    // A workload scaled to zero on purpose stays there: no pod, no sample, no outage.
    let zero = run(
        &t,
        Some(&second.status),
        &unreadable(Current::Replicas(0)),
        facts(30),
    );
    assert_eq!(zero.action, None);
    assert!(
        zero.reason.contains("scaled to zero on purpose"),
        "{}",
        zero.reason
    );
    // A pause holds the fallback like any other scale-out.
    let mut paused = facts(30);
    paused.hold = Some(Hold::Paused(Paused::Out));
    let held = run(
        &t,
        Some(&second.status),
        &unreadable(Current::Replicas(3)),
        paused,
    );
    assert_eq!((held.action, held.refused), (None, Some("Paused")));
}

#[test]
fn a_pending_action_is_re_applied_instead_of_a_new_decision() {
    let t = kafka();
    let decided = run(
        &t,
        None,
        &reading(90_000.0, Current::Partitions(3)),
        facts(0),
    );
    let mut status = decided.status.clone();
    status.pending_action = decided
        .action
        .as_ref()
        .unwrap()
        .pending(at(0))
        .map(Box::new);
    // The operator restarts, the lag is still high. Whether the crash came before the action
    // (3 partitions) or after it (already 6), the same target is applied, never a second step.
    for current in [3, 6] {
        let replay = run(
            &t,
            Some(&status),
            &reading(90_000.0, Current::Partitions(current)),
            facts(20),
        );
        assert_eq!(
            replay.action, decided.action,
            "at {current}: the same target"
        );
        assert_eq!(
            replay.status.pending_action, None,
            "the caller records it again"
        );
        assert_eq!(
            replay.decided_at,
            Some(at(0)),
            "as the same decision, not a new one"
        );
    }
}

#[test]
fn consumers_follow_partitions_and_an_interrupted_step_of_either_is_re_applied() {
    let mut t = kafka();
    t.consumers = serde_json::from_value(json!({
        "scaleTargetRef": {"kind": "Deployment", "name": "workers"},
        "lagPerReplica": 20000, "max": 10
    }))
    .unwrap();
    let at_ = |partitions, consumers| Current::Consumed {
        partitions,
        consumers,
    };
    // Lag 90,000 wants 5 consumers; with 3 partitions the partitions come first.
    let first = run(&t, None, &reading(90_000.0, at_(3, 2)), facts(0));
    assert_eq!(first.action, Some(Planned::Partitions { from: 3, to: 5 }));
    let mut status = first.status.clone();
    status.pending_action = first.action.as_ref().unwrap().pending(at(0)).map(Box::new);
    for partitions in [3, 5] {
        let replay = run(
            &t,
            Some(&status),
            &reading(90_000.0, at_(partitions, 2)),
            facts(5),
        );
        assert_eq!(
            replay.action, first.action,
            "at {partitions}: the same target"
        );
    }
    // Someone else changed the topic meanwhile: dropped, never undone.
    let moved = run(&t, Some(&status), &reading(90_000.0, at_(7, 2)), facts(5));
    assert_eq!(moved.action, None);

    // Then the consumers, at once, despite the partitions' cooldown.
    status.pending_action = None;
    status.last_action_at = Some(Time(at(1)));
    let second = run(&t, Some(&status), &reading(90_000.0, at_(5, 2)), facts(20));
    assert_eq!(second.action, Some(Planned::Scale { from: 2, to: 5 }));
    status.pending_action = second
        .action
        .as_ref()
        .unwrap()
        .pending(at(20))
        .map(Box::new);
    for consumers in [2, 5] {
        let replay = run(
            &t,
            Some(&status),
            &reading(90_000.0, at_(5, consumers)),
            facts(25),
        );
        assert_eq!(
            replay.action, second.action,
            "at {consumers}: the same target"
        );
    }
    // Held by a suspension after the consumers were scaled: recorded as applied.
    let held = run(
        &t,
        Some(&status),
        &reading(90_000.0, at_(5, 5)),
        Facts {
            hold: Some(Hold::Suspended),
            ..facts(25)
        },
    );
    assert_eq!(held.action, None);
    assert!(
        held.status
            .last_action
            .as_deref()
            .is_some_and(|a| a.starts_with("ScaleReplicas from 2 to 5")),
        "{:?}",
        held.status
    );
}

#[test]
fn a_pending_action_met_by_a_hold_waits_and_is_re_applied_as_the_same_decision() {
    let t = cpu();
    let decided = run(&t, None, &reading(140.0, Current::Replicas(3)), facts(0));
    let mut status = decided.status.clone();
    status.pending_action = decided
        .action
        .as_ref()
        .unwrap()
        .pending(at(0))
        .map(Box::new);
    // A new leader whose caches are not filled yet finds the policy not Ready.
    let mut held = facts(5);
    held.hold = Some(Hold::NotReady);
    let waiting = run(
        &t,
        Some(&status),
        &reading(140.0, Current::Replicas(3)),
        held,
    );
    assert_eq!(waiting.action, None);
    assert_eq!(waiting.status.pending_action, status.pending_action, "kept");
    let resumed = run(
        &t,
        Some(&waiting.status),
        &reading(140.0, Current::Replicas(3)),
        facts(6),
    );
    assert_eq!(resumed.action, decided.action);
    assert_eq!(resumed.decided_at, Some(at(0)));
}

#[test]
fn a_suspension_settles_an_interrupted_action_instead_of_carrying_it_over() {
    let t = kafka();
    let decided = run(
        &t,
        None,
        &reading(90_000.0, Current::Partitions(3)),
        facts(0),
    );
    let to = match decided.action {
        Some(Planned::Partitions { to, .. }) => to,
        ref other => panic!("{other:?}"),
    };
    let mut status = decided.status.clone();
    status.pending_action = decided
        .action
        .as_ref()
        .unwrap()
        .pending(at(0))
        .map(Box::new);
    let mut suspended = facts(30);
    suspended.hold = Some(Hold::Suspended);

    // Never applied (still 3 partitions): dropped, and decided afresh after the resume.
    let dropped = run(
        &t,
        Some(&status),
        &reading(90_000.0, Current::Partitions(3)),
        suspended,
    );
    assert_eq!(dropped.action, None);
    assert_eq!(dropped.status.pending_action, None);
    assert_eq!(dropped.status.last_action_at, None);
    let message = dropped.status.message.clone().unwrap();
    assert!(message.contains("never applied"), "{message}");
    let resumed = run(
        &t,
        Some(&dropped.status),
        &reading(60_000.0, Current::Partitions(3)),
        facts(3_600),
    );
    assert!(resumed.action.is_some(), "a new decision from today's lag");
    assert_eq!(resumed.decided_at, None, "not the old one");

    // Applied before the interruption: recorded as the last action, so the cooldown holds.
    let recorded = run(
        &t,
        Some(&status),
        &reading(90_000.0, Current::Partitions(to)),
        suspended,
    );
    assert_eq!(recorded.action, None);
    assert_eq!(recorded.status.pending_action, None);
    assert_eq!(recorded.status.last_action_at, Some(Time(at(0))));
    assert!(
        recorded.status.next_eligible_at.is_some(),
        "the cooldown shows"
    );
    assert!(
        recorded
            .status
            .last_action
            .as_deref()
            .is_some_and(|a| a.contains(&format!("to {to}")))
    );
    let within_cooldown = run(
        &t,
        Some(&recorded.status),
        &reading(90_000.0, Current::Partitions(to)),
        facts(60),
    );
    assert_eq!(within_cooldown.action, None, "{}", within_cooldown.reason);
}

#[test]
fn cooldown_after_the_last_action_holds() {
    let t = kafka();
    let mut status = run(&t, None, &reading(10.0, Current::Partitions(3)), facts(0)).status;
    status.last_action_at = Some(Time(at(0)));
    let p = run(
        &t,
        Some(&status),
        &reading(90_000.0, Current::Partitions(4)),
        facts(60),
    );
    assert_eq!(p.action, None);
    assert!(p.reason.contains("cooling down"), "{}", p.reason);
}

#[test]
fn rds_manual_recommends_and_automatic_resizes() {
    let r = reading(800.0, Current::Class("small".into()));
    let manual = run(&rds("Manual"), None, &r, facts(0));
    assert_eq!(
        manual.action,
        Some(Planned::Recommend {
            of: "emr-prod".into(),
            from: "small".into(),
            to: "large".into()
        })
    );
    assert_eq!(manual.action.unwrap().pending(at(0)), None);
    let auto = run(&rds("Automatic"), None, &r, facts(0));
    assert_eq!(
        auto.action,
        Some(Planned::ResizeDatabase {
            from: "small".into(),
            to: "large".into()
        })
    );
}

#[test]
fn redis_without_a_target_signals_and_with_one_steps_up() {
    let signal = trigger(json!({
        "name": "mem", "redisMemory": {"query": "q", "threshold": 80}
    }));
    let p = run(&signal, None, &reading(85.0, Current::Nothing), facts(0));
    assert_eq!(p.action, Some(Planned::Signal));
    let scale = trigger(json!({
        "name": "mem", "redisMemory": {"query": "q", "threshold": 80},
        "scaleTargetRef": {"kind": "StatefulSet", "name": "redis"}, "replicas": {"max": 5}
    }));
    let p = run(&scale, None, &reading(85.0, Current::Replicas(3)), facts(0));
    assert_eq!(p.action, Some(Planned::Scale { from: 3, to: 4 }));
}

#[test]
fn pending_actions_round_trip() {
    for action in [
        Planned::Scale { from: 3, to: 7 },
        Planned::Partitions { from: 3, to: 4 },
        Planned::ResizeDatabase {
            from: "a".into(),
            to: "b".into(),
        },
    ] {
        let pending = action.pending(at(0)).unwrap();
        assert_eq!(Planned::from_pending(&pending), Some(action));
    }
}

#[test]
fn an_interrupted_action_is_dropped_when_someone_else_moved_the_target() {
    let t = kafka();
    let decided = run(
        &t,
        None,
        &reading(90_000.0, Current::Partitions(3)),
        facts(0),
    );
    let mut status = decided.status.clone();
    status.pending_action = decided
        .action
        .as_ref()
        .unwrap()
        .pending(at(0))
        .map(Box::new);
    // Decided 3 -> 4; someone raised the topic to 8 by hand meanwhile.
    let p = run(
        &t,
        Some(&status),
        &reading(90_000.0, Current::Partitions(8)),
        facts(20),
    );
    assert_eq!(p.action, None);
    assert!(p.reason.contains("someone else changed it"), "{}", p.reason);
    assert_eq!(p.status.pending_action, None);
}

#[test]
fn an_interrupted_action_waits_while_the_target_cannot_be_read() {
    let t = kafka();
    let decided = run(
        &t,
        None,
        &reading(90_000.0, Current::Partitions(3)),
        facts(0),
    );
    let mut status = decided.status.clone();
    status.pending_action = decided
        .action
        .as_ref()
        .unwrap()
        .pending(at(0))
        .map(Box::new);
    let unreadable = Reading {
        sample: Sample::Value(90_000.0),
        current: Err("broker down".into()),
        refusal: None,
    };
    let p = run(&t, Some(&status), &unreadable, facts(20));
    assert_eq!(p.action, None);
    assert_eq!(
        p.status.pending_action, status.pending_action,
        "kept for later"
    );
}

#[test]
fn a_restarted_operator_still_honours_the_rate_policy_from_the_scales_in_status() {
    let t = trigger(json!({
        "name": "api-cpu",
        "cpu": {"utilization": 70, "query": "q"},
        "scaleTargetRef": {"kind": "Deployment", "name": "api"},
        "replicas": {"min": 2, "max": 10},
        "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "period": "10s"}]}}
    }));
    // 2 → 4 applied at t = 0 by the process that was then killed.
    let mut status = TriggerStatus::default();
    record_recent_scale(&t, &mut status, at(0), 2, 4);
    assert_eq!(status.recent_scales.len(), 1);
    // 175 % on 4 pods asks for 10; the rate policy allows no more within 10 s of that scale,
    // even to a process with an empty history.
    let early = run(
        &t,
        Some(&status),
        &reading(175.0, Current::Replicas(4)),
        facts(3),
    );
    assert_eq!(early.action, None, "{}", early.reason);
    let later = run(
        &t,
        Some(&status),
        &reading(175.0, Current::Replicas(4)),
        facts(11),
    );
    assert_eq!(later.action, Some(Planned::Scale { from: 4, to: 6 }));
}

#[test]
fn recent_scales_keep_only_the_longest_policy_period() {
    let t = cpu(); // default behaviour: 15 s periods
    let mut status = TriggerStatus::default();
    record_recent_scale(&t, &mut status, at(0), 2, 4);
    record_recent_scale(&t, &mut status, at(10), 4, 6);
    record_recent_scale(&t, &mut status, at(20), 6, 6); // no change: not recorded
    assert_eq!(
        status
            .recent_scales
            .iter()
            .map(|s| s.change)
            .collect::<Vec<_>>(),
        [2],
        "the scale at 0 is older than 15 s at 20"
    );
}

#[test]
fn a_failing_action_lasts_while_it_is_retried_and_ends_when_no_action_is_wanted() {
    let t = kafka();
    let mut failing = run(&t, None, &reading(10.0, Current::Partitions(3)), facts(0)).status;
    failing.action_failed_since = Some(Time(at(0)));
    let retried = run(
        &t,
        Some(&failing),
        &reading(60_000.0, Current::Partitions(3)),
        facts(5),
    );
    assert!(retried.action.is_some());
    assert_eq!(retried.status.action_failed_since, Some(Time(at(0))));
    let calm = run(
        &t,
        Some(&failing),
        &reading(10.0, Current::Partitions(3)),
        facts(10),
    );
    assert_eq!(calm.action, None);
    assert_eq!(
        calm.status.action_failed_since, None,
        "a later failure is news again"
    );
}
