//! CPU → replicas: the rate policies (Pods/Percent per period), selectPolicy and the defaults.

use super::*;

/// A behavior without stabilization, with these rules for scaling up and down.
fn behavior(up: Option<ScalingRules>, down: Option<ScalingRules>) -> ScalingBehavior {
    let no_window = |r: Option<ScalingRules>| {
        let mut r = r.unwrap_or_else(|| rules(None, vec![], None));
        r.stabilization_window.get_or_insert(dur(0));
        Some(r)
    };
    ScalingBehavior {
        scale_up: no_window(up),
        scale_down: no_window(down),
    }
}

fn decide(
    current: i32,
    value: f64,
    behavior: &ScalingBehavior,
    history: &mut ScalingHistory,
    now: Timestamp,
) -> Decision<ReplicaChange> {
    let sample = Sample::Value(value);
    let replicas = bounds(1, 1000);
    let input = CpuInput {
        utilization: &sample,
        target: 50,
        current_replicas: current,
        bounds: &replicas,
        behavior: Some(behavior),
    };
    decide_replicas(&input, history, now)
}

#[test]
fn rate_policies_and_select_policy_limit_each_step() {
    struct Case {
        name: &'static str,
        up: Option<ScalingRules>,
        down: Option<ScalingRules>,
        current: i32,
        value: f64,
        to: Option<i32>,
        reason: &'static str,
    }
    let cases = [
        Case {
            name: "default scale-up allows 4 pods when that beats doubling",
            up: None,
            down: None,
            current: 2,
            value: 1000.0,
            to: Some(6),
            reason: "the scale-up policies allow at most 6 replicas now",
        },
        Case {
            name: "default scale-up allows doubling when that beats 4 pods",
            up: None,
            down: None,
            current: 10,
            value: 1000.0,
            to: Some(20),
            reason: "scaling from 10 to 20 replicas",
        },
        Case {
            name: "default scale-down may remove everything down to the recommendation",
            up: None,
            down: None,
            current: 40,
            value: 5.0,
            to: Some(4),
            reason: "scaling from 40 to 4 replicas",
        },
        Case {
            name: "selectPolicy Min picks the policy allowing the smallest rise",
            up: Some(rules(
                None,
                vec![pods(4, 15), percent(100, 15)],
                Some(SelectPolicy::Min),
            )),
            down: None,
            current: 10,
            value: 1000.0,
            to: Some(14),
            reason: "allow at most 14 replicas now",
        },
        Case {
            name: "a Percent rise rounds up so that it always adds a replica",
            up: Some(rules(None, vec![percent(10, 60)], None)),
            down: None,
            current: 3,
            value: 1000.0,
            to: Some(4),
            reason: "allow at most 4 replicas now",
        },
        Case {
            name: "a Percent fall rounds down",
            up: None,
            down: Some(rules(None, vec![percent(15, 60)], None)),
            current: 10,
            value: 5.0,
            to: Some(8),
            reason: "allow no fewer than 8 replicas now",
        },
        Case {
            name: "selectPolicy Max on scale-down picks the policy removing the most",
            up: None,
            down: Some(rules(None, vec![pods(1, 60), percent(50, 60)], None)),
            current: 10,
            value: 5.0,
            to: Some(5),
            reason: "allow no fewer than 5 replicas now",
        },
        Case {
            name: "selectPolicy Min on scale-down picks the policy removing the least",
            up: None,
            down: Some(rules(
                None,
                vec![pods(1, 60), percent(50, 60)],
                Some(SelectPolicy::Min),
            )),
            current: 10,
            value: 5.0,
            to: Some(9),
            reason: "allow no fewer than 9 replicas now",
        },
        Case {
            name: "selectPolicy Disabled forbids scaling up",
            up: Some(rules(None, vec![], Some(SelectPolicy::Disabled))),
            down: None,
            current: 4,
            value: 500.0,
            to: None,
            reason: "scale-up is disabled (behavior.scaleUp.selectPolicy: Disabled); keeping 4",
        },
        Case {
            name: "selectPolicy Disabled forbids scaling down",
            up: None,
            down: Some(rules(None, vec![], Some(SelectPolicy::Disabled))),
            current: 4,
            value: 5.0,
            to: None,
            reason: "scale-down is disabled (behavior.scaleDown.selectPolicy: Disabled)",
        },
        Case {
            name: "disabling one direction leaves the other alone",
            up: None,
            down: Some(rules(None, vec![], Some(SelectPolicy::Disabled))),
            current: 4,
            value: 100.0,
            to: Some(8),
            reason: "scaling from 4 to 8 replicas",
        },
    ];
    for case in cases {
        let behavior = behavior(case.up, case.down);
        let mut history = ScalingHistory::default();
        let decision = decide(case.current, case.value, &behavior, &mut history, at(0));
        let expected = case.to.map(|to| ReplicaChange {
            from: case.current,
            to,
        });
        assert_eq!(
            decision.action, expected,
            "{}: {}",
            case.name, decision.reason
        );
        assert!(
            decision.reason.contains(case.reason),
            "{}: {:?} does not contain {:?}",
            case.name,
            decision.reason,
            case.reason
        );
    }
}

#[test]
fn scale_events_within_a_period_use_up_its_allowance() {
    let behavior = behavior(Some(rules(None, vec![pods(2, 60)], None)), None);
    let mut history = ScalingHistory::default();

    let first = decide(4, 150.0, &behavior, &mut history, at(0));
    assert_eq!(
        first.action,
        Some(ReplicaChange { from: 4, to: 6 }),
        "{}",
        first.reason
    );
    history.record_scale(at(0), 4, 6);

    let within = decide(6, 150.0, &behavior, &mut history, at(30));
    assert_eq!(within.action, None);
    assert!(
        within
            .reason
            .contains("the scale-up policies allow at most 6 replicas now; keeping 6"),
        "{}",
        within.reason
    );

    let next_period = decide(6, 150.0, &behavior, &mut history, at(60));
    assert_eq!(
        next_period.action,
        Some(ReplicaChange { from: 6, to: 8 }),
        "{}",
        next_period.reason
    );
}

#[test]
fn a_failed_update_that_is_not_recorded_does_not_use_up_the_allowance() {
    let behavior = behavior(Some(rules(None, vec![pods(2, 60)], None)), None);
    let mut history = ScalingHistory::default();
    let first = decide(4, 150.0, &behavior, &mut history, at(0));
    assert_eq!(first.action, Some(ReplicaChange { from: 4, to: 6 }));
    // The `/scale` update failed: nothing recorded, the same change is decided again.
    let retry = decide(4, 150.0, &behavior, &mut history, at(15));
    assert_eq!(
        retry.action,
        Some(ReplicaChange { from: 4, to: 6 }),
        "{}",
        retry.reason
    );
}

#[test]
fn a_recent_scale_down_counts_towards_the_start_of_a_scale_up_period() {
    // As in the HPA: the period started at 10 replicas (6 now, 4 removed within it), so
    // +2 pods allows 12.
    let behavior = behavior(Some(rules(None, vec![pods(2, 60)], None)), None);
    let mut history = ScalingHistory::default();
    history.record_scale(at(0), 10, 6);
    let decision = decide(6, 500.0, &behavior, &mut history, at(10));
    assert_eq!(
        decision.action,
        Some(ReplicaChange { from: 6, to: 12 }),
        "{}",
        decision.reason
    );
}

#[test]
fn unset_rule_fields_keep_their_hpa_defaults() {
    // Only the window is set: the default scale-down policy (-100 % per 15s) still applies.
    let behavior = ScalingBehavior {
        scale_up: None,
        scale_down: Some(rules(Some(60), vec![], None)),
    };
    let replicas = bounds(1, 40);
    let sample = Sample::Value(10.0);
    let mut history = ScalingHistory::default();
    let mut decide_at = |t: i64| {
        let input = CpuInput {
            utilization: &sample,
            target: 50,
            current_replicas: 20,
            bounds: &replicas,
            behavior: Some(&behavior),
        };
        decide_replicas(&input, &mut history, at(t))
    };
    assert_eq!(decide_at(0).action, None);
    assert_eq!(decide_at(59).action, None);
    let decision = decide_at(60);
    assert_eq!(
        decision.action,
        Some(ReplicaChange { from: 20, to: 4 }),
        "{}",
        decision.reason
    );
}

#[test]
fn scale_events_older_than_the_longest_period_are_pruned() {
    let behavior = behavior(
        Some(rules(None, vec![pods(2, 60), pods(10, 600)], None)),
        Some(rules(None, vec![pods(1, 120)], None)),
    );
    let mut history = ScalingHistory::default();
    history.record_scale(at(0), 4, 6);
    history.record_scale(at(100), 6, 8);
    decide(8, 50.0, &behavior, &mut history, at(650));
    assert_eq!(
        history.scale_events,
        vec![ScaleEvent {
            at: at(100),
            change: 2
        }]
    );
}
