//! Properties of the engine over generated inputs, histories and behaviors (fixed clock).

use proptest::{option, prelude::*};

use super::*;
use crate::crd::{Approval, LocalObjectRef, RdsResizePolicy};

/// The instant every generated history is relative to.
fn now() -> Timestamp {
    at(10_000)
}

fn select_policy() -> impl Strategy<Value = SelectPolicy> {
    prop_oneof![
        Just(SelectPolicy::Max),
        Just(SelectPolicy::Min),
        Just(SelectPolicy::Disabled)
    ]
}

fn policy() -> impl Strategy<Value = ScalingPolicy> {
    (any::<bool>(), 1..300i32, 1..900u64).prop_map(|(is_pods, value, period)| {
        if is_pods {
            pods(value, period)
        } else {
            percent(value, period)
        }
    })
}

fn scaling_rules() -> impl Strategy<Value = ScalingRules> {
    (
        option::of(0..900u64),
        prop::collection::vec(policy(), 0..3),
        option::of(select_policy()),
    )
        .prop_map(|(window, policies, select)| rules(window, policies, select))
}

fn behavior() -> impl Strategy<Value = Option<ScalingBehavior>> {
    option::of(
        (option::of(scaling_rules()), option::of(scaling_rules())).prop_map(|(up, down)| {
            ScalingBehavior {
                scale_up: up,
                scale_down: down,
            }
        }),
    )
}

/// Past recommendations and scale events, oldest first, up to 20 minutes before [`now`].
fn history() -> impl Strategy<Value = ScalingHistory> {
    (
        prop::collection::vec((0..1200i64, 0..200i32), 0..40),
        prop::collection::vec((0..1200i64, -50..50i32), 0..10),
    )
        .prop_map(|(mut recommendations, mut events)| {
            recommendations.sort_by_key(|(age, _)| -age);
            events.sort_by_key(|(age, _)| -age);
            ScalingHistory {
                recommendations: recommendations
                    .into_iter()
                    .map(|(age, replicas)| Recommendation {
                        at: at(10_000 - age),
                        replicas,
                    })
                    .collect(),
                scale_events: events
                    .into_iter()
                    .map(|(age, change)| ScaleEvent {
                        at: at(10_000 - age),
                        change,
                    })
                    .collect(),
            }
        })
}

/// Valid replica bounds: `1 <= min <= max`.
fn replica_bounds() -> impl Strategy<Value = ReplicaBounds> {
    (1..20i32, 0..60i32).prop_map(|(min, extra)| bounds(min, min + extra))
}

fn cpu_input<'a>(
    sample: &'a Sample,
    target: i32,
    current: i32,
    replicas: &'a ReplicaBounds,
    behavior: Option<&'a ScalingBehavior>,
) -> CpuInput<'a> {
    CpuInput {
        utilization: sample,
        target,
        current_replicas: current,
        bounds: replicas,
        behavior,
    }
}

fn ladder(rungs: usize) -> RdsResizePolicy {
    RdsResizePolicy {
        db_instance_identifier: "db".into(),
        class_ladder: (0..rungs).map(|i| format!("db.class{i}")).collect(),
        ack_db_instance_ref: Some(LocalObjectRef { name: "db".into() }),
        approval: Approval::Automatic,
        current_class: None,
    }
}

proptest! {
    #[test]
    fn cpu_replicas_always_end_within_min_and_max(
        replicas in replica_bounds(),
        current in 1..120i32,
        value in 0.0..3000.0f64,
        target in 1..=100i32,
        behavior in behavior(),
        mut history in history(),
    ) {
        let sample = Sample::Value(value);
        let input = cpu_input(&sample, target, current, &replicas, behavior.as_ref());
        let decision = decide_replicas(&input, &mut history, now());
        let after = decision.action.map_or(current, |change| {
            assert_eq!(change.from, current);
            assert_ne!(change.to, current);
            change.to
        });
        prop_assert!(
            (replicas.min..=replicas.max).contains(&after),
            "{after} outside {replicas:?}: {}", decision.reason
        );
    }

    #[test]
    fn cpu_utilization_within_the_tolerance_band_changes_nothing(
        replicas in replica_bounds(),
        position in 0.0..=1.0f64,
        factor in 0.9..=1.1f64,
        target in 1..=100i32,
        behavior in behavior(),
        mut history in history(),
    ) {
        let current = replicas.min + ((replicas.max - replicas.min) as f64 * position) as i32;
        let sample = Sample::Value(f64::from(target) * factor);
        let input = cpu_input(&sample, target, current, &replicas, behavior.as_ref());
        let decision = decide_replicas(&input, &mut history, now());
        prop_assert_eq!(decision.action, None, "{}", decision.reason);
        prop_assert!(decision.reason.contains("within the 10% tolerance"), "{}", decision.reason);
    }

    #[test]
    fn an_unknown_sample_never_changes_anything(
        replicas in replica_bounds(),
        current in 0..120i32,
        behavior in behavior(),
        mut history in history(),
        last in option::of(0..100_000i64),
        class in 0..5usize,
        target in option::of((0..120i32, 1..120i32)),
    ) {
        let sample = unknown();
        let before = history.clone();
        let input = cpu_input(&sample, 70, current, &replicas, behavior.as_ref());
        prop_assert_eq!(decide_replicas(&input, &mut history, now()).action, None);
        prop_assert_eq!(&history, &before);

        let last_action_at = last.map(|ago| at(10_000 - ago));
        let partitions = PartitionInput {
            lag: &sample,
            threshold: 1,
            current_partitions: current,
            max_partitions: 1000,
            cooldown: None,
            last_action_at,
        };
        prop_assert_eq!(decide_partitions(&partitions, now()).action, None);

        let policy = ladder(4);
        let current_class = format!("db.class{class}");
        let rds = RdsInput {
            connections: &sample,
            threshold: 1,
            policy: &policy,
            current_class: Some(&current_class),
            cooldown: None,
            last_action_at,
        };
        prop_assert_eq!(decide_rds_resize(&rds, now()).action, None);

        let redis = RedisInput {
            memory_percent: &sample,
            threshold: 1,
            target: target.map_or(RedisTarget::Nothing, |(current, max)| {
                RedisTarget::Replicas { current, max }
            }),
            cooldown: None,
            last_action_at,
        };
        prop_assert_eq!(decide_redis_step(&redis, now()).action, None);
    }

    #[test]
    fn partitions_never_decrease_and_never_exceed_max(
        lag in 0.0..1e12f64,
        threshold in 1..1_000_000i64,
        current in 1..500i32,
        max in 1..500i32,
        last in option::of(0..100_000i64),
    ) {
        let lag = Sample::Value(lag);
        let input = PartitionInput {
            lag: &lag,
            threshold,
            current_partitions: current,
            max_partitions: max,
            cooldown: None,
            last_action_at: last.map(|ago| at(10_000 - ago)),
        };
        let decision = decide_partitions(&input, now());
        if let Some(change) = decision.action {
            prop_assert_eq!(change.from, current);
            prop_assert!(change.to > change.from, "{}", decision.reason);
            prop_assert!(change.to <= max, "{}", decision.reason);
        }
    }

    #[test]
    fn the_rds_recommendation_is_always_exactly_the_next_rung(
        rungs in 2..10usize,
        position in 0..12usize,
        connections in 0.0..2000.0f64,
        threshold in 1..1500i64,
        manual in any::<bool>(),
    ) {
        let mut policy = ladder(rungs);
        if manual {
            policy.approval = Approval::Manual;
        }
        let current = format!("db.class{position}");
        let connections = Sample::Value(connections);
        let input = RdsInput {
            connections: &connections,
            threshold,
            policy: &policy,
            current_class: Some(&current),
            cooldown: None,
            last_action_at: None,
        };
        let decision = decide_rds_resize(&input, now());
        if let Some(action) = &decision.action {
            let change = action.change();
            prop_assert_eq!(&change.from, &current);
            prop_assert_eq!(&change.to, &format!("db.class{}", position + 1));
            prop_assert!(position + 1 < rungs);
            prop_assert_eq!(matches!(action, ResizeAction::Recommend(_)), manual);
        } else {
            let expected_hold = connections.value().unwrap() <= threshold as f64
                || position + 1 >= rungs;
            prop_assert!(expected_hold, "{}", decision.reason);
        }
    }

    #[test]
    fn within_the_cooldown_no_trigger_acts(
        cooldown in 1..7200u64,
        elapsed_fraction in 0.0..1.0f64,
        value in 0.0..1e9f64,
        current in 1..50i32,
    ) {
        let elapsed = (cooldown as f64 * elapsed_fraction) as i64;
        let last_action_at = Some(at(10_000 - elapsed));
        let sample = Sample::Value(value);
        let cooldown = Some(dur(cooldown));
        let partitions = PartitionInput {
            lag: &sample,
            threshold: 1,
            current_partitions: current,
            max_partitions: 1000,
            cooldown,
            last_action_at,
        };
        prop_assert_eq!(decide_partitions(&partitions, now()).action, None);

        let policy = ladder(60);
        let rds = RdsInput {
            connections: &sample,
            threshold: 1,
            policy: &policy,
            current_class: Some("db.class0"),
            cooldown,
            last_action_at,
        };
        prop_assert_eq!(decide_rds_resize(&rds, now()).action, None);

        for target in [RedisTarget::Replicas { current, max: 100 }, RedisTarget::Nothing] {
            let redis = RedisInput {
                memory_percent: &sample,
                threshold: 1,
                target,
                cooldown,
                last_action_at,
            };
            prop_assert_eq!(decide_redis_step(&redis, now()).action, None);
        }
    }
}

#[test]
fn past_the_cooldown_every_trigger_acts_again() {
    // The counterpart of `within_the_cooldown_no_trigger_acts`, at exactly `last + cooldown`.
    let sample = Sample::Value(1e6);
    let last_action_at = Some(at(10_000 - 300));
    let cooldown = Some(dur(300));
    let partitions = PartitionInput {
        lag: &sample,
        threshold: 1,
        current_partitions: 3,
        max_partitions: 1000,
        cooldown,
        last_action_at,
    };
    assert!(decide_partitions(&partitions, now()).is_action());
    let policy = ladder(3);
    let rds = RdsInput {
        connections: &sample,
        threshold: 1,
        policy: &policy,
        current_class: Some("db.class0"),
        cooldown,
        last_action_at,
    };
    assert!(decide_rds_resize(&rds, now()).is_action());
    assert_eq!(
        next_eligible_at(last_action_at, secs(300)),
        Some(now()),
        "next eligible at last + cooldown"
    );
}
