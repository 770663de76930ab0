//! Redis memory → one more replica within max, or a signal without a target; the cooldown.

use super::*;

fn input(
    memory: &Sample,
    target: Option<(i32, i32)>,
    last_action_at: Option<Timestamp>,
) -> RedisInput<'_> {
    RedisInput {
        memory_percent: memory,
        threshold: 80,
        target: target.map_or(RedisTarget::Nothing, |(current, max)| {
            RedisTarget::Replicas { current, max }
        }),
        cooldown: None,
        last_action_at,
    }
}

#[test]
fn redis_memory_above_threshold_scales_up_one_step_within_max() {
    let step = |from, to| Some(RedisAction::ScaleUp(ReplicaChange { from, to }));
    let cases = [
        (
            "above the threshold adds one replica",
            86.5,
            Some((3, 9)),
            step(3, 4),
            "Redis memory 86.5% of maxmemory is above the threshold 80%; scaling up one step \
             from 3 to 4 replicas",
        ),
        (
            "one below max adds the last one",
            99.0,
            Some((8, 9)),
            step(8, 9),
            "from 8 to 9 replicas",
        ),
        (
            "at max does nothing",
            99.0,
            Some((9, 9)),
            None,
            "no action: Redis memory 99% of maxmemory is above the threshold 80%, but the \
             target is at max: 9 replicas, replicas.max 9",
        ),
        (
            "above max does nothing",
            99.0,
            Some((12, 9)),
            None,
            "the target is at max: 12 replicas, replicas.max 9",
        ),
        (
            "zero replicas does nothing",
            99.0,
            Some((0, 9)),
            None,
            "scaling up from zero is out of scope",
        ),
        (
            "at the threshold does nothing",
            80.0,
            Some((3, 9)),
            None,
            "no action: Redis memory 80% of maxmemory is at or below the threshold 80%",
        ),
        (
            "without a target it only signals",
            91.0,
            None,
            Some(RedisAction::Signal),
            "above the threshold 80%; no scaleTargetRef or cacheResize is set, so this is a signal only",
        ),
    ];
    for (name, memory, target, expected, reason) in cases {
        let memory = Sample::Value(memory);
        let decision = decide_redis_step(&input(&memory, target, None), at(0));
        assert_eq!(decision.action, expected, "{name}: {}", decision.reason);
        assert!(
            decision.reason.contains(reason),
            "{name}: {:?} does not contain {reason:?}",
            decision.reason
        );
    }
}

#[test]
fn redis_memory_scales_and_signals_once_per_cooldown() {
    let memory = Sample::Value(95.0);
    for target in [Some((3, 9)), None] {
        let last = Some(at(0));
        let within = decide_redis_step(&input(&memory, target, last), at(599));
        assert_eq!(within.action, None);
        assert!(within.reason.contains("cooldown 10m"), "{}", within.reason);
        assert!(decide_redis_step(&input(&memory, target, last), at(600)).is_action());
    }
}

#[test]
fn unknown_memory_or_a_bad_threshold_take_no_action() {
    let unknown = unknown();
    for target in [Some((3, 9)), None] {
        let decision = decide_redis_step(&input(&unknown, target, None), at(0));
        assert_eq!(decision.action, None);
        assert!(
            decision
                .reason
                .starts_with("no action: Redis memory is unknown: ")
        );
    }
    let memory = Sample::Value(95.0);
    let bad = RedisInput {
        threshold: 0,
        ..input(&memory, Some((3, 9)), None)
    };
    assert_eq!(decide_redis_step(&bad, at(0)).action, None);
}
