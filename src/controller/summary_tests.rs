use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::crd::RolloutStatus;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn subscription(secret: &str, every: Option<&str>) -> Notification {
    let mut n = json!({"webhookSecretRef": {"name": secret, "key": "url"}});
    if let Some(every) = every {
        n["summaryEvery"] = json!(every);
    }
    serde_json::from_value(n).unwrap()
}

/// Runs `schedule` and feeds its entries back, as the status write would.
fn reconcile_at(
    n: &[Notification],
    status: &mut Vec<SummaryStatus>,
    live: bool,
    s: i64,
) -> Schedule {
    let out = schedule(n, status, live, at(s));
    *status = out.entries.clone();
    out
}

#[test]
fn the_first_update_goes_out_at_once_and_the_next_one_period_later() {
    let n = [subscription("war-room", Some("1h"))];
    let mut status = Vec::new();
    let first = reconcile_at(&n, &mut status, true, 0);
    assert_eq!(first.due, vec![0]);
    assert_eq!(first.next_in, Some(Duration::from_secs(3600)));
    assert_eq!(
        status,
        vec![SummaryStatus {
            webhook: "war-room/url".into(),
            last_sent_at: Time(at(0)),
            next_at: Some(Time(at(3600))),
        }]
    );

    let before = reconcile_at(&n, &mut status, true, 3599);
    assert!(before.due.is_empty());
    assert_eq!(before.next_in, Some(Duration::from_secs(1)));
    assert_eq!(before.entries, first.entries, "nothing to write in between");

    let due = reconcile_at(&n, &mut status, true, 3600);
    assert_eq!(due.due, vec![0]);
    assert_eq!(status[0].last_sent_at, Time(at(3600)));
}

#[test]
fn after_an_outage_one_update_is_sent_not_the_backlog() {
    let n = [subscription("war-room", Some("1h"))];
    let mut status = Vec::new();
    reconcile_at(&n, &mut status, true, 0);
    let late = reconcile_at(&n, &mut status, true, 5 * 3600 + 17);
    assert_eq!(late.due, vec![0]);
    let again = reconcile_at(&n, &mut status, true, 5 * 3600 + 18);
    assert!(again.due.is_empty());
    assert_eq!(status[0].next_at, Some(Time(at(6 * 3600 + 17))));
}

#[test]
fn a_finished_launch_stops_the_updates_and_keeps_the_last_time() {
    let n = [subscription("war-room", Some("1h"))];
    let mut status = Vec::new();
    reconcile_at(&n, &mut status, true, 0);
    let done = reconcile_at(&n, &mut status, false, 7200);
    assert!(done.due.is_empty());
    assert_eq!(done.next_in, None);
    assert_eq!(status[0].last_sent_at, Time(at(0)));
    assert_eq!(status[0].next_at, None);
    assert!(!live(Some(Phase::Completed)) && !live(Some(Phase::Aborted)));
    assert!(live(None) && live(Some(Phase::Paused)) && live(Some(Phase::RolledBack)));

    let never_started = schedule(&n, &[], false, at(0));
    assert_eq!(never_started, Schedule::default());
}

#[test]
fn subscriptions_without_summary_every_get_no_schedule_and_one_webhook_gets_one() {
    let n = [
        subscription("events-only", None),
        subscription("war-room", Some("30m")),
        subscription("war-room", Some("5m")),
        subscription("execs", Some("4h")),
    ];
    let out = schedule(&n, &[], true, at(0));
    assert_eq!(out.due, vec![1, 3]);
    let webhooks: Vec<&str> = out.entries.iter().map(|e| e.webhook.as_str()).collect();
    assert_eq!(webhooks, ["war-room/url", "execs/url"]);
    assert_eq!(out.next_in, Some(Duration::from_secs(1800)));
}

#[test]
fn a_zero_period_is_floored_instead_of_flooding() {
    let n = [subscription("war-room", Some("0s"))];
    let mut status = Vec::new();
    reconcile_at(&n, &mut status, true, 0);
    assert!(reconcile_at(&n, &mut status, true, 0).due.is_empty());
    assert_eq!(reconcile_at(&n, &mut status, true, 1).due, vec![0]);
}

proptest! {
    /// However often (and irregularly) the policy is reconciled, updates are at least one period
    /// apart, and none is more than one reconcile late.
    #[test]
    fn updates_are_one_period_apart_whatever_the_reconcile_times(
        every in 1i64..600,
        gaps in proptest::collection::vec(0i64..900, 1..200),
    ) {
        let n = [subscription("war-room", Some(&format!("{every}s")))];
        let mut status = Vec::new();
        let (mut t, mut sent) = (0i64, Vec::new());
        for gap in gaps {
            let overdue = sent.last().is_none_or(|last| t - last >= every);
            let due = !reconcile_at(&n, &mut status, true, t).due.is_empty();
            // An update falling due between two reconciles goes out at the second one.
            prop_assert_eq!(due, overdue, "at {}s after {:?}", t, sent);
            if due {
                sent.push(t);
            }
            t += gap;
        }
        prop_assert_eq!(sent.first(), Some(&0));
        for pair in sent.windows(2) {
            prop_assert!(pair[1] - pair[0] >= every, "{:?}", sent);
        }
    }
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
            "gates": [
                {"name": "error-rate", "max": 0.001, "value": 0.0004, "passing": true},
                {"name": "p95-latency", "max": 0.5, "value": 0.62, "passing": false},
                {"name": "login-success", "min": 0.99, "error": "prometheus: timeout"}
            ]
        },
        "triggers": [
            {"name": "api-cpu", "kind": "cpu", "value": "45%", "threshold": "70%"},
            {"name": "orders-lag", "kind": "kafkaLag", "threshold": "50000"}
        ]
    }))
    .unwrap();
    (spec, status)
}

#[test]
fn the_update_says_status_key_metrics_issues_and_next_update() {
    let (spec, status) = status_with_everything();
    let next = Time("2026-11-27T04:00:00Z".parse().unwrap());
    let text = text(&spec, &status, Some(&next));
    assert_eq!(
        text,
        "launch update\n\
         • Status: Paused, stage 2 of 3: paused: gate p95-latency 0.62 > 0.5 \
         (3/3 checks failed); holding 500 users at gradual; resume to continue\n\
         • Key metrics: error-rate 0.0004 (max 0.001, ok); p95-latency 0.62 (max 0.5, FAILING); \
         login-success unknown (min 0.99, not checked); api-cpu 45% (threshold 70%); \
         orders-lag unknown (threshold 50000)\n\
         • Issues: Degraded SourceUnavailable: no scaling in either direction for orders-lag: kafka unreachable; \
         the rollout is Paused (why: see Status); \
         gate login-success unreadable: prometheus: timeout\n\
         • Next update: 2026-11-27T04:00:00Z"
    );
}

#[test]
fn a_healthy_scaling_only_policy_reports_no_issues() {
    let spec: LaunchPolicySpec = serde_json::from_value(json!({})).unwrap();
    let status = LaunchPolicyStatus {
        rollout: None::<RolloutStatus>,
        ..Default::default()
    };
    assert_eq!(
        text(&spec, &status, None),
        "launch update\n• Status: scaling only\n• Key metrics: none configured\n\
         • Issues: none\n• Next update: none scheduled"
    );
}
