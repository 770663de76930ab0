//! Kafka lag → partitions: the proportional rule, the cap, never decreasing, the cooldown.

use super::*;

fn input(
    lag: &Sample,
    current: i32,
    max: i32,
    last_action_at: Option<Timestamp>,
) -> PartitionInput<'_> {
    PartitionInput {
        lag,
        threshold: 50_000,
        current_partitions: current,
        max_partitions: max,
        cooldown: None,
        last_action_at,
    }
}

#[test]
fn kafka_lag_above_threshold_adds_partitions_in_proportion_within_max() {
    let cases = [
        (
            "lag 2.4× the threshold multiplies the partitions by 2.4, rounded up",
            120_000.0,
            3,
            96,
            Some(8),
            "lag 120000 is above the threshold 50000; raising the partitions from 3 to 8",
        ),
        (
            "lag just above the threshold adds one partition",
            50_001.0,
            3,
            96,
            Some(4),
            "from 3 to 4",
        ),
        (
            "a big lag on many partitions still adds at least one",
            50_001.0,
            96,
            200,
            Some(97),
            "from 96 to 97",
        ),
        (
            "a huge lag is capped at max",
            10_000_000.0,
            3,
            20,
            Some(20),
            "from 3 to 20 (partitions.max 20)",
        ),
        (
            "lag at the threshold does nothing",
            50_000.0,
            3,
            96,
            None,
            "no action: lag 50000 is at or below the threshold 50000",
        ),
        (
            "no lag does nothing",
            0.0,
            3,
            96,
            None,
            "at or below the threshold",
        ),
        (
            "at max does nothing",
            500_000.0,
            96,
            96,
            None,
            "no action: at max: lag 500000 is above the threshold 50000, but the topic has 96 \
             partitions and partitions.max is 96",
        ),
        (
            "above max never removes partitions",
            500_000.0,
            100,
            96,
            None,
            "at max: lag 500000 is above the threshold 50000, but the topic has 100 partitions \
             and partitions.max is 96 (partitions are never removed)",
        ),
    ];
    for (name, lag, current, max, to, reason) in cases {
        let lag = Sample::Value(lag);
        let decision = decide_partitions(&input(&lag, current, max, None), at(0));
        let expected = to.map(|to| PartitionChange { from: current, to });
        assert_eq!(decision.action, expected, "{name}: {}", decision.reason);
        assert!(
            decision.reason.contains(reason),
            "{name}: {:?} does not contain {reason:?}",
            decision.reason
        );
    }
}

#[test]
fn kafka_lag_above_threshold_adds_partitions_once_per_cooldown() {
    let lag = Sample::Value(200_000.0);
    let last = Some(at(0));
    // Default cooldown 10m.
    let within = decide_partitions(&input(&lag, 12, 96, last), at(599));
    assert_eq!(within.action, None);
    assert_eq!(
        within.reason,
        "no action: lag 200000 is above the threshold 50000, but cooling down until \
         2025-03-01T00:10:00Z (last action at 2025-03-01T00:00:00Z, cooldown 10m)"
    );
    let after = decide_partitions(&input(&lag, 12, 96, last), at(600));
    assert_eq!(after.action, Some(PartitionChange { from: 12, to: 48 }));
    // A configured cooldown replaces the default.
    let short = PartitionInput {
        cooldown: Some(dur(60)),
        ..input(&lag, 12, 96, last)
    };
    assert!(decide_partitions(&short, at(60)).is_action());
    assert!(!decide_partitions(&short, at(59)).is_action());
}

#[test]
fn unknown_or_invalid_lag_and_bad_inputs_take_no_action() {
    let unknown = unknown();
    let decision = decide_partitions(&input(&unknown, 3, 96, None), at(0));
    assert_eq!(decision.action, None);
    assert_eq!(
        decision.reason,
        "no action: consumer lag is unknown: prometheus http://prometheus:9090 failed: \
         connection refused"
    );
    let nan = Sample::Value(f64::NAN);
    assert!(!decide_partitions(&input(&nan, 3, 96, None), at(0)).is_action());
    let lag = Sample::Value(1e9);
    for (name, bad) in [
        (
            "zero threshold",
            PartitionInput {
                threshold: 0,
                ..input(&lag, 3, 96, None)
            },
        ),
        ("zero max", input(&lag, 3, 0, None)),
        ("zero partitions", input(&lag, 0, 96, None)),
    ] {
        let decision = decide_partitions(&bad, at(0));
        assert_eq!(decision.action, None, "{name}");
        assert!(
            decision.reason.starts_with("no action: "),
            "{name}: {}",
            decision.reason
        );
    }
}

#[test]
fn partitions_for_lag_is_proportional_at_least_one_more_and_capped() {
    for (current, lag, threshold, max, expected) in [
        (3, 120_000.0, 50_000, 96, 8),
        (3, 100_000.0, 50_000, 96, 6),
        (1, 50_001.0, 50_000, 96, 2),
        (10, 10.5, 10, 96, 11),
        (3, 1e18, 1, 1000, 1000),
        (95, 1e6, 1, 96, 96),
    ] {
        assert_eq!(
            partitions_for_lag(current, lag, threshold, max),
            expected,
            "{current} × {lag} / {threshold}, max {max}"
        );
    }
}
