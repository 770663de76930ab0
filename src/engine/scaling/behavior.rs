//! A CPU trigger's `behavior` with the HorizontalPodAutoscaler's defaults filled in, and the
//! rate limits its policies impose given the recent scale events.

use std::time::Duration as StdDuration;

use k8s_openapi::jiff::Timestamp;

use super::history::ScalingHistory;
use crate::crd::{
    Duration, ScalingBehavior, ScalingPolicy, ScalingPolicyKind, ScalingRules, SelectPolicy,
};

/// Scale-down stabilization window when `behavior.scaleDown.stabilizationWindow` is unset.
/// (Scale-up has none by default.)
pub const DEFAULT_SCALE_DOWN_STABILIZATION: StdDuration = StdDuration::from_secs(300);
/// Period of the default rate policies: up by max(+100 %, +4 pods), down by up to -100 %.
pub const DEFAULT_POLICY_PERIOD: StdDuration = StdDuration::from_secs(15);

/// The direction a set of rules applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Up,
    Down,
}

impl Direction {
    pub(crate) fn field(self) -> &'static str {
        match self {
            Self::Up => "scaleUp",
            Self::Down => "scaleDown",
        }
    }
}

/// The rules of one direction, every field resolved. An unset field takes the HPA default of
/// its direction on its own, so `scaleDown: {stabilizationWindow: 10m}` keeps the default policies.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rules {
    pub direction: Direction,
    pub window: StdDuration,
    pub policies: Vec<ScalingPolicy>,
    pub select: SelectPolicy,
}

impl Rules {
    pub(crate) fn resolve(behavior: Option<&ScalingBehavior>, direction: Direction) -> Self {
        let rules: Option<&ScalingRules> = behavior.and_then(|b| match direction {
            Direction::Up => b.scale_up.as_ref(),
            Direction::Down => b.scale_down.as_ref(),
        });
        let default_window = match direction {
            Direction::Up => StdDuration::ZERO,
            Direction::Down => DEFAULT_SCALE_DOWN_STABILIZATION,
        };
        let policies = match rules {
            Some(r) if !r.policies.is_empty() => r.policies.clone(),
            _ => default_policies(direction),
        };
        Self {
            direction,
            window: rules
                .and_then(|r| r.stabilization_window)
                .map_or(default_window, |w| w.as_std()),
            policies,
            select: rules
                .and_then(|r| r.select_policy)
                .unwrap_or(SelectPolicy::Max),
        }
    }

    /// The longest policy period: older scale events no longer limit anything.
    pub(crate) fn longest_period(&self) -> StdDuration {
        self.policies
            .iter()
            .map(|p| p.period.as_std())
            .max()
            .unwrap_or(StdDuration::ZERO)
    }

    /// The replica count the policies allow right now, starting from `current`: at least
    /// `current` when scaling up, at most `current` when scaling down (`current` itself when
    /// the direction is `Disabled`).
    ///
    /// Each policy looks at its own period: the replicas at the start of the period are
    /// `current` minus the net change of the scale events within it, and the policy allows that
    /// start plus (or minus) `value` pods, or `value` percent of it (rounded up when adding,
    /// down when removing). `selectPolicy: Max` takes the policy allowing the biggest change,
    /// `Min` the smallest.
    pub(crate) fn limit(&self, current: i32, history: &ScalingHistory, now: Timestamp) -> i32 {
        if self.select == SelectPolicy::Disabled {
            return current;
        }
        let proposals = self.policies.iter().map(|p| {
            let start = i64::from(current) - history.change_within(p.period.as_std(), now);
            let value = i64::from(p.value.max(0));
            match (self.direction, p.kind) {
                (Direction::Up, ScalingPolicyKind::Pods) => start.saturating_add(value),
                (Direction::Up, ScalingPolicyKind::Percent) => {
                    ceil_div(start.saturating_mul(100 + value), 100)
                }
                (Direction::Down, ScalingPolicyKind::Pods) => start.saturating_sub(value),
                (Direction::Down, ScalingPolicyKind::Percent) => {
                    start.saturating_mul(100 - value).div_euclid(100)
                }
            }
        });
        // The biggest change is the highest count going up and the lowest going down.
        let highest = matches!(
            (self.direction, self.select),
            (Direction::Up, SelectPolicy::Max) | (Direction::Down, SelectPolicy::Min)
        );
        let chosen = if highest {
            proposals.max()
        } else {
            proposals.min()
        };
        let chosen = chosen.unwrap_or(i64::from(current));
        let bounded = match self.direction {
            Direction::Up => chosen.max(i64::from(current)),
            Direction::Down => chosen.min(i64::from(current)),
        };
        bounded.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    }
}

fn default_policies(direction: Direction) -> Vec<ScalingPolicy> {
    let period = Duration::from(DEFAULT_POLICY_PERIOD);
    match direction {
        Direction::Up => vec![
            ScalingPolicy {
                kind: ScalingPolicyKind::Pods,
                value: 4,
                period,
            },
            ScalingPolicy {
                kind: ScalingPolicyKind::Percent,
                value: 100,
                period,
            },
        ],
        Direction::Down => vec![ScalingPolicy {
            kind: ScalingPolicyKind::Percent,
            value: 100,
            period,
        }],
    }
}

/// `a / b` rounded towards positive infinity, for `b > 0`.
fn ceil_div(a: i64, b: i64) -> i64 {
    let quotient = a.div_euclid(b);
    if a.rem_euclid(b) == 0 {
        quotient
    } else {
        quotient + 1
    }
}
