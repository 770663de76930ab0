//! Redis memory → one more replica within max, the next ElastiCache node type, or a signal
//! without a target; the cooldown.

use super::*;
use crate::crd::Approval;

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

#[test]
fn redis_memory_on_elasticache_climbs_the_node_type_ladder_one_rung_per_cooldown() {
    let rungs: Vec<String> = ["cache.r7g.large", "cache.r7g.xlarge", "cache.r7g.2xlarge"]
        .map(String::from)
        .to_vec();
    let ladder = |approval, ack: Option<(&'static str, &'static str)>| Ladder {
        resource: "sessions",
        rung: "node type",
        rungs: &rungs,
        approval,
        ack,
        ack_field: "ackReplicationGroupRef",
    };
    let group = Some(("ReplicationGroup", "sessions"));
    let memory = Sample::Value(91.0);
    let decide = |ladder, current, last| {
        let input = RedisInput {
            target: RedisTarget::NodeType { ladder, current },
            ..input(&memory, None, last)
        };
        decide_redis_step(&input, at(600))
    };
    let change = |from: &str, to: &str| ClassChange {
        resource: "sessions".into(),
        from: from.into(),
        to: to.into(),
    };

    let manual = decide(
        ladder(Approval::Manual, group),
        Some("cache.r7g.large"),
        None,
    );
    assert_eq!(
        manual.action,
        Some(RedisAction::Resize(ResizeAction::Recommend(change(
            "cache.r7g.large",
            "cache.r7g.xlarge"
        ))))
    );
    assert!(
        manual.reason.ends_with(
            "recommending to resize sessions from cache.r7g.large to cache.r7g.xlarge (approval \
             Manual)"
        ),
        "{}",
        manual.reason
    );
    let automatic = decide(
        ladder(Approval::Automatic, group),
        Some("cache.r7g.xlarge"),
        None,
    );
    assert_eq!(
        automatic.action,
        Some(RedisAction::Resize(ResizeAction::Apply(change(
            "cache.r7g.xlarge",
            "cache.r7g.2xlarge"
        ))))
    );
    assert!(
        automatic
            .reason
            .contains("patching ReplicationGroup sessions")
    );
    let unpatchable = decide(
        ladder(Approval::Automatic, None),
        Some("cache.r7g.large"),
        None,
    );
    assert!(matches!(
        unpatchable.action,
        Some(RedisAction::Resize(ResizeAction::Recommend(_)))
    ));
    assert!(
        unpatchable
            .reason
            .contains("no ackReplicationGroupRef to patch")
    );

    for (current, last, why) in [
        (
            Some("cache.r7g.2xlarge"),
            None,
            "already at the largest node type on the ladder",
        ),
        (
            Some("cache.m5.large"),
            None,
            "is not on the node type ladder",
        ),
        (None, None, "the current node type of sessions is unknown"),
        (Some("cache.r7g.large"), Some(at(1)), "cooldown 10m"),
    ] {
        let held = decide(ladder(Approval::Automatic, group), current, last);
        assert_eq!(held.action, None, "{why}");
        assert!(held.reason.contains(why), "{}", held.reason);
    }
}
