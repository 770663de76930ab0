//! CPU utilisation → replicas, computed the way a HorizontalPodAutoscaler computes them.

use std::cmp::Ordering;

use k8s_openapi::jiff::Timestamp;

use super::{
    behavior::{Direction, Rules},
    decision::{Decision, ReplicaChange},
    history::ScalingHistory,
    sample::{Sample, num, usable},
};
use crate::crd::{Duration, ReplicaBounds, ScalingBehavior, SelectPolicy};

/// No change while `|utilisation / target - 1| <= TOLERANCE` (10 %, the HPA default).
pub const TOLERANCE: f64 = 0.1;

/// Floating-point slack: a ratio this close to the tolerance counts as inside it, and a replica
/// count this close to an integer counts as that integer, so rounding noise never adds a replica.
const SLACK: f64 = 1e-9;

/// Everything [`decide_replicas`] needs besides the history and the time.
#[derive(Clone, Copy, Debug)]
pub struct CpuInput<'a> {
    /// Average CPU utilisation of the target's ready pods, in percent of their requests.
    pub utilization: &'a Sample,
    /// The target utilisation in percent (`cpu.utilization`).
    pub target: i32,
    /// The target's replicas now (`spec.replicas` of its `/scale` subresource).
    pub current_replicas: i32,
    /// `replicas` of the trigger.
    pub bounds: &'a ReplicaBounds,
    /// `behavior` of the trigger; unset fields take the HPA defaults.
    pub behavior: Option<&'a ScalingBehavior>,
}

/// The replicas a utilisation asks for, before stabilization, rate limits and bounds:
/// `ceil(current × utilization / target)`, or `current` when the ratio is within [`TOLERANCE`].
/// Expects `current >= 0`, a finite `utilization >= 0` and `target > 0`.
pub fn recommend_replicas(current: i32, utilization: f64, target: f64) -> i32 {
    if within_tolerance(utilization, target) {
        return current;
    }
    let exact = f64::from(current) * utilization / target;
    let nearest = exact.round();
    let replicas = if (exact - nearest).abs() <= SLACK * exact.max(1.0) {
        nearest
    } else {
        exact.ceil()
    };
    replicas.clamp(0.0, f64::from(i32::MAX)) as i32
}

pub fn within_tolerance(utilization: f64, target: f64) -> bool {
    (utilization / target - 1.0).abs() <= TOLERANCE + SLACK
}

/// Decides the replicas of a CPU trigger's target, HPA-compatible:
///
/// 1. an unknown or invalid sample, invalid bounds or a target at 0 replicas → no scaling;
/// 2. replicas outside `[min, max]` → straight back to the nearest bound (no policies apply);
/// 3. otherwise the recommendation ([`recommend_replicas`]) is recorded in `history`, then
///    stabilized: it may not go below the lowest recommendation within the scale-up window nor
///    above the highest within the scale-down window (default 0s and 5m);
/// 4. the result is limited by the rate policies of its direction, given the scale events in
///    `history` (defaults: up by max(+4 pods, +100 %) per 15s, down by up to 100 % per 15s), and
///    by `[min, max]`.
///
/// The caller keeps `history` and calls [`ScalingHistory::record_scale`] once it applied a change.
pub fn decide_replicas(
    input: &CpuInput<'_>,
    history: &mut ScalingHistory,
    now: Timestamp,
) -> Decision<ReplicaChange> {
    let value = match usable(input.utilization, "CPU utilisation") {
        Ok(value) => value,
        Err(why) => return Decision::hold(format!("no scaling in either direction: {why}")),
    };
    let (current, min, max) = (input.current_replicas, input.bounds.min, input.bounds.max);
    if let Some(why) = invalid(input) {
        return Decision::hold(format!("no scaling: {why}"));
    }
    if current == 0 {
        return Decision::hold(
            "no scaling: the target has 0 replicas and scaling up from zero is out of scope \
             (scale it to at least 1 replica to enable autoscaling)",
        );
    }
    if current > max {
        let change = ReplicaChange {
            from: current,
            to: max,
        };
        let why = format!(
            "the target has {}, above replicas.max {max}; scaling down to {max}",
            replicas(current)
        );
        return Decision::act(change, why);
    }
    if current < min {
        let change = ReplicaChange {
            from: current,
            to: min,
        };
        let why = format!(
            "the target has {}, below replicas.min {min}; scaling up to {min}",
            replicas(current)
        );
        return Decision::act(change, why);
    }

    let target = f64::from(input.target);
    let raw = recommend_replicas(current, value, target);
    let up = Rules::resolve(input.behavior, Direction::Up);
    let down = Rules::resolve(input.behavior, Direction::Down);
    let keep = up.window.max(down.window);
    let keep_events = up.longest_period().max(down.longest_period());
    history.observe(now, current, raw, keep, keep_events);

    let mut steps = vec![if within_tolerance(value, target) {
        format!(
            "CPU {}% is within the {}% tolerance of the {}% target",
            num(value),
            num(TOLERANCE * 100.0),
            input.target
        )
    } else {
        format!(
            "CPU {}% against a {}% target asks for {}",
            num(value),
            input.target,
            replicas(raw)
        )
    }];

    let up_floor = history
        .recommended_within(up.window, now)
        .fold(raw, i32::min);
    let down_ceiling = history
        .recommended_within(down.window, now)
        .fold(raw, i32::max);
    let stabilized = current.max(up_floor).min(down_ceiling);
    if stabilized < raw {
        steps.push(format!(
            "the lowest recommendation in the {} scale-up stabilization window is {up_floor}, \
             so it is held at {stabilized}",
            Duration::from(up.window)
        ));
    } else if stabilized > raw {
        steps.push(format!(
            "the highest recommendation in the {} scale-down stabilization window is \
             {down_ceiling}, so it is held at {stabilized}",
            Duration::from(down.window)
        ));
    }

    let to = match stabilized.cmp(&current) {
        Ordering::Greater => {
            let limit = up.limit(current, history, now);
            let to = stabilized.min(limit).min(max);
            if to < stabilized {
                steps.push(limit_note(&up, limit, max, current));
            }
            to
        }
        Ordering::Less => {
            let limit = down.limit(current, history, now);
            let to = stabilized.max(limit).max(min);
            if to > stabilized {
                steps.push(limit_note(&down, limit, min, current));
            }
            to
        }
        Ordering::Equal => current,
    };

    let steps = steps.join("; ");
    if to == current {
        Decision::hold(format!("{steps}; keeping {}", replicas(current)))
    } else {
        let change = ReplicaChange { from: current, to };
        Decision::act(
            change,
            format!("{steps}; scaling from {current} to {}", replicas(to)),
        )
    }
}

/// Why an input cannot be acted upon, if it cannot.
fn invalid(input: &CpuInput<'_>) -> Option<String> {
    let (min, max) = (input.bounds.min, input.bounds.max);
    if input.target < 1 {
        Some(format!(
            "cpu.utilization {} must be at least 1",
            input.target
        ))
    } else if min < 1 {
        Some(format!("replicas.min {min} must be at least 1"))
    } else if max < min {
        Some(format!(
            "replicas.min {min} is greater than replicas.max {max}"
        ))
    } else if input.current_replicas < 0 {
        Some(format!(
            "the target reports {}",
            replicas(input.current_replicas)
        ))
    } else {
        None
    }
}

/// Why the change stopped short of the stabilized recommendation: the direction is disabled,
/// the rate policies bind, or the bound (`max` going up, `min` going down) does.
fn limit_note(rules: &Rules, limit: i32, bound: i32, current: i32) -> String {
    let field = rules.direction.field();
    let (verb, bound_field) = match rules.direction {
        Direction::Up => ("up", "replicas.max"),
        Direction::Down => ("down", "replicas.min"),
    };
    let policies_bind = match rules.direction {
        Direction::Up => limit < bound,
        Direction::Down => limit > bound,
    };
    if rules.select == SelectPolicy::Disabled {
        format!("scale-{verb} is disabled (behavior.{field}.selectPolicy: Disabled)")
    } else if policies_bind && rules.direction == Direction::Up {
        format!(
            "the scale-up policies allow at most {} now",
            replicas(limit)
        )
    } else if policies_bind {
        format!(
            "the scale-down policies allow no fewer than {} now",
            replicas(limit)
        )
    } else if current == bound {
        format!("already at {bound_field} {bound}")
    } else {
        format!("limited by {bound_field} {bound}")
    }
}

/// `1 replica`, `3 replicas`.
fn replicas(n: i32) -> String {
    if n == 1 {
        "1 replica".into()
    } else {
        format!("{n} replicas")
    }
}
