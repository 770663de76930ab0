//! Tests of the scaling engine, on a fixed clock: `at(s)` is `s` seconds after a fixed instant.

mod consumers;
mod cpu;
mod cpu_behavior;
mod partitions;
mod properties;
mod rds;
mod redis;
mod stabilization;

use std::time::Duration as StdDuration;

use super::*;
use crate::crd::{
    Duration, ReplicaBounds, ScalingBehavior, ScalingPolicy, ScalingPolicyKind, ScalingRules,
    SelectPolicy,
};

/// The fixed origin of test time: 2025-03-01T00:00:00Z.
const ORIGIN: i64 = 1_740_787_200;

/// `secs` seconds after the test origin.
fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(ORIGIN + secs).unwrap()
}

fn secs(s: u64) -> StdDuration {
    StdDuration::from_secs(s)
}

fn dur(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn bounds(min: i32, max: i32) -> ReplicaBounds {
    ReplicaBounds { min, max }
}

fn unknown() -> Sample {
    Sample::unknown("prometheus http://prometheus:9090", "connection refused")
}

fn pods(value: i32, period: u64) -> ScalingPolicy {
    ScalingPolicy {
        kind: ScalingPolicyKind::Pods,
        value,
        period: dur(period),
    }
}

fn percent(value: i32, period: u64) -> ScalingPolicy {
    ScalingPolicy {
        kind: ScalingPolicyKind::Percent,
        value,
        period: dur(period),
    }
}

/// Rules for one direction: a window in seconds, policies and a select policy (all optional).
fn rules(
    window: Option<u64>,
    policies: Vec<ScalingPolicy>,
    select: Option<SelectPolicy>,
) -> ScalingRules {
    ScalingRules {
        stabilization_window: window.map(dur),
        policies,
        select_policy: select,
    }
}

/// A behavior with no stabilization in either direction and the default policies.
fn no_stabilization() -> ScalingBehavior {
    ScalingBehavior {
        scale_up: Some(rules(Some(0), vec![], None)),
        scale_down: Some(rules(Some(0), vec![], None)),
    }
}

/// One decision at `now` for `current` replicas at `value` % against `target` %.
fn decide_cpu(
    current: i32,
    value: f64,
    target: i32,
    replicas: &ReplicaBounds,
    behavior: Option<&ScalingBehavior>,
    history: &mut ScalingHistory,
    now: Timestamp,
) -> Decision<ReplicaChange> {
    let sample = Sample::Value(value);
    let input = CpuInput {
        utilization: &sample,
        target,
        current_replicas: current,
        bounds: replicas,
        behavior,
    };
    decide_replicas(&input, history, now)
}
