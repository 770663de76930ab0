//! CPU → replicas: the ratio, the tolerance, the bounds and the guards.

use super::*;

#[test]
fn replicas_follow_the_ratio_of_utilization_to_target_within_tolerance_and_bounds() {
    struct Case {
        name: &'static str,
        current: i32,
        value: f64,
        target: i32,
        bounds: (i32, i32),
        to: Option<i32>,
        reason: &'static str,
    }
    let cases = [
        Case {
            name: "double the target doubles the replicas",
            current: 5,
            value: 140.0,
            target: 70,
            bounds: (1, 40),
            to: Some(10),
            reason: "CPU 140% against a 70% target asks for 10 replicas; scaling from 5 to 10",
        },
        Case {
            name: "10 % above the target is within tolerance",
            current: 5,
            value: 77.0,
            target: 70,
            bounds: (1, 40),
            to: None,
            reason: "CPU 77% is within the 10% tolerance of the 70% target; keeping 5 replicas",
        },
        Case {
            name: "10 % below the target is within tolerance",
            current: 5,
            value: 63.0,
            target: 70,
            bounds: (1, 40),
            to: None,
            reason: "within the 10% tolerance",
        },
        Case {
            name: "just outside the tolerance rounds up",
            current: 10,
            value: 78.0,
            target: 70,
            bounds: (1, 40),
            to: Some(12),
            reason: "asks for 12 replicas",
        },
        Case {
            name: "an exact product does not gain a replica from float noise",
            current: 10,
            value: 84.0,
            target: 70,
            bounds: (1, 40),
            to: Some(12),
            reason: "asks for 12 replicas",
        },
        Case {
            name: "half the target halves the replicas",
            current: 10,
            value: 35.0,
            target: 70,
            bounds: (1, 40),
            to: Some(5),
            reason: "scaling from 10 to 5 replicas",
        },
        Case {
            name: "a rise is capped at max",
            current: 5,
            value: 700.0,
            target: 70,
            bounds: (1, 8),
            to: Some(8),
            reason: "limited by replicas.max 8; scaling from 5 to 8",
        },
        Case {
            name: "at max a rise keeps the replicas",
            current: 8,
            value: 140.0,
            target: 70,
            bounds: (1, 8),
            to: None,
            reason: "already at replicas.max 8; keeping 8 replicas",
        },
        Case {
            name: "a fall stops at min",
            current: 4,
            value: 7.0,
            target: 70,
            bounds: (3, 8),
            to: Some(3),
            reason: "asks for 1 replica; limited by replicas.min 3",
        },
        Case {
            name: "no load at all falls to min",
            current: 4,
            value: 0.0,
            target: 70,
            bounds: (2, 8),
            to: Some(2),
            reason: "CPU 0% against a 70% target asks for 0 replicas",
        },
        Case {
            name: "a small fall that still rounds up to the current count keeps it",
            current: 1,
            value: 50.0,
            target: 70,
            bounds: (1, 8),
            to: None,
            reason: "asks for 1 replica; keeping 1 replica",
        },
    ];
    for case in cases {
        let replicas = bounds(case.bounds.0, case.bounds.1);
        let behavior = no_stabilization();
        let mut history = ScalingHistory::default();
        let decision = decide_cpu(
            case.current,
            case.value,
            case.target,
            &replicas,
            Some(&behavior),
            &mut history,
            at(0),
        );
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
fn unknown_utilization_takes_no_action_in_either_direction_and_keeps_the_history() {
    let replicas = bounds(1, 10);
    let sample = unknown();
    for current in [0, 3, 50] {
        let mut history = ScalingHistory::default();
        history.record_scale(at(-5), 2, 3);
        let before = history.clone();
        let input = CpuInput {
            utilization: &sample,
            target: 70,
            current_replicas: current,
            bounds: &replicas,
            behavior: None,
        };
        let decision = decide_replicas(&input, &mut history, at(0));
        assert_eq!(decision.action, None);
        assert_eq!(
            decision.reason,
            "no scaling in either direction: CPU utilisation is unknown: \
             prometheus http://prometheus:9090 failed: connection refused"
        );
        assert_eq!(history, before);
    }
}

#[test]
fn unusable_samples_and_inputs_take_no_action() {
    let cases = [
        ("NaN", f64::NAN, 70, (1, 10), 3, "is not a number"),
        ("negative", -5.0, 70, (1, 10), 3, "is negative"),
        (
            "zero target",
            50.0,
            0,
            (1, 10),
            3,
            "cpu.utilization 0 must be at least 1",
        ),
        (
            "min above max",
            50.0,
            70,
            (5, 2),
            3,
            "replicas.min 5 is greater than",
        ),
        (
            "min zero",
            50.0,
            70,
            (0, 2),
            1,
            "replicas.min 0 must be at least 1",
        ),
        (
            "negative replicas",
            50.0,
            70,
            (1, 2),
            -1,
            "reports -1 replicas",
        ),
    ];
    for (name, value, target, (min, max), current, reason) in cases {
        let mut history = ScalingHistory::default();
        let decision = decide_cpu(
            current,
            value,
            target,
            &bounds(min, max),
            None,
            &mut history,
            at(0),
        );
        assert_eq!(decision.action, None, "{name}");
        assert!(
            decision.reason.contains(reason),
            "{name}: {}",
            decision.reason
        );
        assert_eq!(history, ScalingHistory::default(), "{name}");
    }
}

#[test]
fn zero_replicas_takes_no_action_because_scaling_from_zero_is_out_of_scope() {
    let mut history = ScalingHistory::default();
    let decision = decide_cpu(0, 500.0, 70, &bounds(1, 10), None, &mut history, at(0));
    assert_eq!(decision.action, None);
    assert!(
        decision.reason.contains("0 replicas"),
        "{}",
        decision.reason
    );
    assert!(
        decision.reason.contains("out of scope"),
        "{}",
        decision.reason
    );
}

#[test]
fn replicas_outside_the_bounds_go_straight_back_to_the_nearest_bound() {
    let mut history = ScalingHistory::default();
    // The 5m scale-down window and the rate policies do not delay this.
    let down = decide_cpu(50, 70.0, 70, &bounds(3, 40), None, &mut history, at(0));
    assert_eq!(down.action, Some(ReplicaChange { from: 50, to: 40 }));
    assert_eq!(
        down.reason,
        "the target has 50 replicas, above replicas.max 40; scaling down to 40"
    );
    let up = decide_cpu(1, 10.0, 70, &bounds(3, 40), None, &mut history, at(0));
    assert_eq!(up.action, Some(ReplicaChange { from: 1, to: 3 }));
    assert!(up.reason.contains("below replicas.min 3"), "{}", up.reason);
}

#[test]
fn recommend_replicas_is_the_hpa_ratio_rounded_up() {
    for (current, value, target, expected) in [
        (5, 140.0, 70.0, 10),
        (3, 100.0, 70.0, 5),
        (3, 72.0, 70.0, 3),
        (10, 84.0, 70.0, 12),
        (7, 0.0, 70.0, 0),
        (1, 1e300, 1.0, i32::MAX),
    ] {
        assert_eq!(
            recommend_replicas(current, value, target),
            expected,
            "{current} × {value} / {target}"
        );
    }
}
