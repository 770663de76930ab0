use serde_json::json;

use super::*;
use crate::crd::{JournalEntry, LaunchRecord, NotificationEvent};

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn status_with_everything() -> (LaunchPolicySpec, LaunchPolicyStatus) {
    let spec: LaunchPolicySpec = serde_json::from_value(json!({
        "rollout": {"stages": [
            {"name": "beta", "users": 100},
            {"name": "gradual", "users": 500},
            {"name": "everyone", "users": "All"}
        ]}
    }))
    .unwrap();
    let status: LaunchPolicyStatus = serde_json::from_value(json!({
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "AsExpected", "message": "ok",
             "lastTransitionTime": "2026-11-27T00:00:00Z"},
            {"type": "Degraded", "status": "True", "reason": "SourceUnavailable",
             "message": "no scaling in either direction for orders-lag: kafka unreachable",
             "lastTransitionTime": "2026-11-27T00:00:00Z"}
        ],
        "rollout": {
            "phase": "Paused", "stage": 1, "stageName": "gradual", "users": "500",
            "message": "paused: gate p95-latency 0.62 > 0.5 (3/3 checks failed); holding 500 users at gradual; resume to continue",
            "hold": {"cause": "Gate", "by": "p95-latency", "detail": "0.62 > 0.5", "since": "2026-11-27T03:10:00Z"},
            "gates": [
                {"name": "error-rate", "max": 0.001, "value": 0.0004, "passing": true},
                {"name": "p95-latency", "max": 0.5, "value": 0.62, "passing": false},
                {"name": "login-success", "min": 0.99, "error": "prometheus: timeout"}
            ]
        },
        "triggers": [
            {"name": "api-cpu", "kind": "cpu", "value": "45%", "threshold": "70%"},
            {"name": "orders-lag", "kind": "kafkaLag", "threshold": "50000"}
        ],
        "launch": {
            "startedAt": "2026-11-27T00:00:00Z",
            "journal": [
                {"at": "2026-11-27T00:00:00Z", "event": "StageAdvanced", "message": "entered stage beta (100 users)"},
                {"at": "2026-11-27T02:00:00Z", "event": "StageAdvanced", "message": "entered stage gradual (500 users)"},
                {"at": "2026-11-27T03:05:00Z", "event": "GateFailed", "message": "gate p95-latency 0.62 > 0.5"},
                {"at": "2026-11-27T03:10:00Z", "event": "RolloutPaused", "message": "paused at gradual"}
            ]
        }
    }))
    .unwrap();
    (spec, status)
}

#[test]
fn the_update_follows_the_war_room_template() {
    let (spec, status) = status_with_everything();
    let metric: SummaryMetric =
        serde_json::from_value(json!({"name": "tasks created", "query": "x", "format": "Count"}))
            .unwrap();
    let figures = vec![
        Figure::of(&metric, Some(1204.4)),
        Figure {
            name: "users online".into(),
            value: None,
        },
    ];
    let next = Time(at("2026-11-27T04:00:00Z"));
    let since = Some(at("2026-11-27T02:30:00Z"));
    let now = at("2026-11-27T03:30:00Z");
    let update = compose(&spec, &status, figures, since, Some(&next), now);
    assert_eq!(
        update.text(),
        "🔴 major issue — launch update at H+3\n\
         • Status: Paused, stage 2 of 3: paused: gate p95-latency 0.62 > 0.5 \
         (3/3 checks failed); holding 500 users at gradual; resume to continue\n\
         • Users: 500 admitted\n\
         • Figures: tasks created 1,204; users online no data\n\
         • Key metrics: error-rate 0.0004 (max 0.001, ok); p95-latency 0.62 (max 0.5, FAILING); \
         login-success unknown (min 0.99, not checked); api-cpu 45% (threshold 70%); \
         orders-lag unknown (threshold 50000)\n\
         • Issues: Degraded SourceUnavailable: no scaling in either direction for orders-lag: kafka unreachable; \
         the rollout is Paused (why: see Status); \
         gate login-success unreadable: prometheus: timeout\n\
         • Actions since the last update: 03:10Z RolloutPaused: paused at gradual\n\
         • Next update: 2026-11-27T04:00:00Z (H+4)"
    );
}

#[test]
fn a_healthy_scaling_only_policy_is_green_with_no_issues() {
    let spec: LaunchPolicySpec = serde_json::from_value(json!({})).unwrap();
    let status = LaunchPolicyStatus::default();
    let update = compose(
        &spec,
        &status,
        vec![],
        None,
        None,
        at("2026-11-27T00:00:00Z"),
    );
    assert_eq!(
        update.text(),
        "🟢 all systems operational — launch update at not started\n• Status: scaling only\n\
         • Key metrics: none\n• Issues: none\n• Actions since the last update: none\n\
         • Next update: none scheduled"
    );
}

#[test]
fn the_light_is_amber_for_what_needs_looking_at_and_red_for_what_hurts() {
    let (_, mut status) = status_with_everything();
    assert_eq!(light(&status), Light::Red, "held by a failing gate");
    let rollout = status.rollout.as_mut().unwrap();
    rollout.state.hold.as_mut().unwrap().cause = HoldCause::Person;
    assert_eq!(light(&status), Light::Amber, "paused by a person");
    let rollout = status.rollout.as_mut().unwrap();
    rollout.state.phase = Phase::Baking;
    rollout.state.hold = None;
    assert_eq!(
        light(&status),
        Light::Amber,
        "a gate failing, one unreadable"
    );
    for g in &mut status.rollout.as_mut().unwrap().state.gates {
        g.passing = Some(true);
        g.error = None;
    }
    assert_eq!(light(&status), Light::Amber, "Degraded");
    status.conditions.retain(|c| c.type_ != "Degraded");
    assert_eq!(light(&status), Light::Green);
    status.triggers[0].action_failed_since = Some(Time(at("2026-11-27T03:00:00Z")));
    assert_eq!(light(&status), Light::Red, "an action failing");
}

#[test]
fn the_first_update_lists_the_actions_since_the_launch_started() {
    let (spec, mut status) = status_with_everything();
    status.launch = Some(LaunchRecord {
        started_at: Some(Time(at("2026-11-27T00:00:00Z"))),
        journal: vec![
            JournalEntry {
                at: Time(at("2026-11-27T00:00:00Z")),
                event: NotificationEvent::StageAdvanced,
                message: "entered stage beta".into(),
            },
            JournalEntry {
                at: Time(at("2026-11-27T00:10:00Z")),
                event: NotificationEvent::ScalingAction,
                message: "api-cpu: scaled api from 2 to 4".into(),
            },
            JournalEntry {
                at: Time(at("2026-11-27T00:20:00Z")),
                event: NotificationEvent::SourceUnavailable,
                message: "not an action".into(),
            },
        ],
        ..Default::default()
    });
    let now = at("2026-11-27T01:00:00Z");
    let update = compose(&spec, &status, vec![], None, None, now);
    assert_eq!(
        update.actions,
        [
            "00:00Z StageAdvanced: entered stage beta",
            "00:10Z ScalingAction: api-cpu: scaled api from 2 to 4"
        ]
    );
}

#[test]
fn figures_are_written_as_their_format_says() {
    use MetricFormat::*;
    assert_eq!(format_value(Number, 2.0), "2");
    assert_eq!(format_value(Number, 0.12345), "0.123");
    assert_eq!(format_value(Count, 1234567.6), "1,234,568");
    assert_eq!(format_value(Count, -1200.0), "-1,200");
    assert_eq!(format_value(Percent, 0.0004), "0.04%");
    assert_eq!(format_value(Percent, 0.995), "99.5%");
    assert_eq!(format_value(Milliseconds, 0.31), "310 ms");
    let metric: SummaryMetric = serde_json::from_value(
        json!({"name": "users online", "query": "x", "format": "Count", "unit": "users"}),
    )
    .unwrap();
    assert_eq!(
        Figure::of(&metric, Some(312.0)).value.as_deref(),
        Some("312 users")
    );
    assert_eq!(Figure::of(&metric, Some(f64::NAN)).value, None);
}
