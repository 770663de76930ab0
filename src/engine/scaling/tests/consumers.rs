//! Kafka lag → consumers that follow the partitions: never above them, the partitions raised
//! first, scale-out at once, scale-in only when the lag is low and the cooldown has passed.

use proptest::prelude::*;

use super::*;

/// Threshold 1,000; 500 lag per consumer; 1–10 consumers; partitions.max 8; cooldown 10m.
fn input(
    lag: &Sample,
    partitions: i32,
    consumers: i32,
    last_action_at: Option<Timestamp>,
) -> ConsumerInput<'_> {
    ConsumerInput {
        lag,
        threshold: 1_000,
        partitions: (partitions, 8),
        consumers,
        lag_per_replica: 500,
        bounds: (1, 10),
        cooldown: None,
        last_action_at,
    }
}

fn partitions(from: i32, to: i32) -> Option<ConsumerStep> {
    Some(ConsumerStep::Partitions(PartitionChange { from, to }))
}

fn consumers(from: i32, to: i32) -> Option<ConsumerStep> {
    Some(ConsumerStep::Consumers(ReplicaChange { from, to }))
}

#[test]
fn consumers_follow_the_lag_within_the_partitions_and_partitions_are_raised_first() {
    let recent = Some(at(0));
    let cases = [
        (
            "more consumers than partitions: the partitions first",
            3_000.0,
            (3, 1, None),
            partitions(3, 6),
            "lag 3000 wants 6 consumers (500 per replica), more than the 3 partitions; raising \
             the partitions to 6 first, the consumers follow",
        ),
        (
            "then the consumers, at once",
            3_000.0,
            (6, 1, recent),
            consumers(1, 6),
            "lag 3000 wants 6 consumers (500 per replica); scaling the consumers from 1 to 6",
        ),
        (
            "partitions at max: the consumers stop at the partition count",
            6_000.0,
            (8, 2, None),
            consumers(2, 8),
            "lag 6000 wants 10 consumers (500 per replica) (capped by the 8 partitions, \
             partitions.max 8); scaling the consumers from 2 to 8",
        ),
        (
            "partitions in their cooldown: the consumers fill what there is",
            3_000.0,
            (4, 2, recent),
            consumers(2, 4),
            "(capped by the 4 partitions, which wait: cooling down until 2025-03-01T00:10:00Z",
        ),
        (
            "as many as wanted: nothing",
            3_000.0,
            (6, 6, None),
            None,
            "no action: lag 3000 wants 6 consumers (500 per replica); 6 run",
        ),
        (
            "fewer wanted while the lag is above the threshold: they stay",
            1_200.0,
            (6, 6, None),
            None,
            "but the lag is above the threshold 1000, so 6 consumers stay",
        ),
        (
            "fewer wanted, the lag low, within the cooldown: they stay",
            600.0,
            (6, 6, recent),
            None,
            "but cooling down until 2025-03-01T00:10:00Z",
        ),
        (
            "fewer wanted, the lag low, out of the cooldown: scale in",
            600.0,
            (6, 6, None),
            consumers(6, 2),
            "lag 600 wants 2 consumers (500 per replica); scaling the consumers in from 6 to 2",
        ),
        (
            "no lag: down to consumers.min",
            0.0,
            (6, 3, None),
            consumers(3, 1),
            "scaling the consumers in from 3 to 1",
        ),
        (
            "consumers at zero: left alone",
            3_000.0,
            (6, 0, None),
            None,
            "scaling up from zero is out of scope",
        ),
    ];
    for (name, lag, (p, c, last), expected, reason) in cases {
        let lag = Sample::Value(lag);
        let decision = decide_consumers(&input(&lag, p, c, last), at(60));
        assert_eq!(decision.action, expected, "{name}: {}", decision.reason);
        assert!(
            decision.reason.contains(reason),
            "{name}: {:?} does not contain {reason:?}",
            decision.reason
        );
    }
    // Below the threshold the partitions stay, whatever the consumers would want.
    let lag = Sample::Value(900.0);
    let modest = ConsumerInput {
        lag_per_replica: 100,
        ..input(&lag, 4, 2, None)
    };
    let decision = decide_consumers(&modest, at(60));
    assert_eq!(decision.action, consumers(2, 4), "{}", decision.reason);
    assert!(
        decision.reason.contains(
            "(capped by the 4 partitions: the lag is not above the threshold 1000, so no \
             partitions are added)"
        ),
        "{}",
        decision.reason
    );
    let unknown = unknown();
    let decision = decide_consumers(&input(&unknown, 3, 1, None), at(0));
    assert_eq!(decision.action, None);
    assert!(
        decision
            .reason
            .starts_with("no action: consumer lag is unknown"),
        "{}",
        decision.reason
    );
}

proptest! {
    /// Whatever the lag and the state: consumers are never scaled out above the partition count
    /// nor in below `min`, scale in only when the lag is calm and out of the cooldown;
    /// partitions only grow, within max, and only when the lag is above the threshold and the
    /// consumers need more than there are.
    #[test]
    fn consumers_never_exceed_the_partitions_and_partitions_lead(
        lag in 0.0..1e7f64,
        p in 1..12i32,
        max_p in 1..12i32,
        c in 0..15i32,
        per in 1..5_000i64,
        min in 1..4i32,
        extra in 0..10i32,
        cooled in any::<bool>(),
    ) {
        let lag = Sample::Value(lag);
        let input = ConsumerInput {
            lag: &lag,
            threshold: 1_000,
            partitions: (p, max_p),
            consumers: c,
            lag_per_replica: per,
            bounds: (min, min + extra),
            cooldown: None,
            last_action_at: (!cooled).then(|| at(0)),
        };
        let decision = decide_consumers(&input, at(60));
        let wanted = consumers_for_lag(lag.value().unwrap(), per, (min, min + extra));
        let hot = lag.value().unwrap() > 1_000.0;
        match decision.action {
            Some(ConsumerStep::Consumers(change)) if change.to > change.from => {
                prop_assert_eq!(change.from, c);
                prop_assert!(change.to <= p, "never more than the partitions: {}", decision.reason);
                prop_assert!(change.to <= min + extra);
                prop_assert!(c >= 1, "never from zero");
            }
            Some(ConsumerStep::Consumers(change)) => {
                prop_assert_eq!(change.from, c);
                prop_assert!(change.to >= min, "never below min by scaling in");
                prop_assert!(!hot && cooled, "in only when calm: {}", decision.reason);
            }
            Some(ConsumerStep::Partitions(change)) => {
                prop_assert_eq!(change.from, p);
                prop_assert!(change.to > p && change.to <= max_p);
                prop_assert!(wanted > p, "only when the consumers need them");
                prop_assert!(cooled && hot, "partitions wait for the cooldown and a hot lag");
            }
            None => {}
        }
    }
}
