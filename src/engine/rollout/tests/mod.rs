//! Tests of the rollout state machine: one file per concern, fixtures here.
//! Time is always `at(seconds after T0)`; nothing reads the clock.

mod commands;
mod gates;
mod progression;
mod properties;
mod restart;
mod spec_edits;

use k8s_openapi::{apimachinery::pkg::util::intstr::IntOrString, jiff::Timestamp};

use super::*;
use crate::crd::{Approval, GateCheck, GateFailurePolicy, GateSpec, RolloutSpec, Stage};

pub(super) const MIN: i64 = 60;
pub(super) const HOUR: i64 = 3600;
const T0: i64 = 1_750_000_000;

/// `T0 + secs`.
pub(super) fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).unwrap()
}

pub(super) fn stage(name: &str, users: &str, bake_secs: u64, approval: Approval) -> Stage {
    Stage {
        name: name.into(),
        users: match users.parse::<i32>() {
            Ok(n) => IntOrString::Int(n),
            Err(_) => IntOrString::String(users.into()),
        },
        bake: (bake_secs > 0).then(|| crate::crd::Duration::from_secs(bake_secs)),
        approval,
        scale_up_first: Vec::new(),
    }
}

pub(super) fn check(name: &str, min: Option<f64>, max: Option<f64>) -> GateCheck {
    GateCheck {
        name: name.into(),
        query: format!("{name}_query"),
        min,
        max,
        on_no_data: Default::default(),
    }
}

/// The seed plan: the canary 100 (2h) → the Go/No-Go, 500 (1h, Manual) → 1500 (1h) → All;
/// no gates.
pub(super) fn launch() -> RolloutSpec {
    use Approval::*;
    RolloutSpec {
        stages: vec![
            stage("internal-beta", "100", 2 * HOUR as u64, Automatic),
            stage("gradual", "500", HOUR as u64, Manual),
            stage("expanded", "1500", HOUR as u64, Automatic),
            stage("everyone", "All", 0, Automatic),
        ],
        gates: None,
        on_gate_failure: GateFailurePolicy::Pause,
        hold_while_scaling: true,
        cohort: None,
    }
}

/// The seed plan with a Go needed before the canary too (a team's choice, not the default).
pub(super) fn manual_first() -> RolloutSpec {
    let mut spec = launch();
    spec.stages[0].approval = Approval::Manual;
    spec
}

/// Automatic stages 100 (10m) → 500 (10m) → All, no gates.
pub(super) fn automatic() -> RolloutSpec {
    RolloutSpec {
        stages: vec![
            stage("a", "100", 10 * MIN as u64, Approval::Automatic),
            stage("b", "500", 10 * MIN as u64, Approval::Automatic),
            stage("c", "All", 0, Approval::Automatic),
        ],
        ..launch()
    }
}

/// `spec` with gates every minute, `threshold` failures in a row to act: p95 ≤ 0.5, login ≥ 0.99.
pub(super) fn gated(
    mut spec: RolloutSpec,
    threshold: i32,
    policy: GateFailurePolicy,
) -> RolloutSpec {
    spec.gates = Some(GateSpec {
        interval: crate::crd::Duration::from_secs(MIN as u64),
        failure_threshold: threshold,
        checks: vec![
            check("p95-latency-seconds", None, Some(0.5)),
            check("login-success", Some(0.99), None),
        ],
    });
    spec.on_gate_failure = policy;
    spec
}

/// Readings within bounds for every check of `spec`.
pub(super) fn healthy(spec: &RolloutSpec) -> Inputs {
    let mut inputs = Inputs::default();
    for c in spec.gates.iter().flat_map(|g| &g.checks) {
        let value = c.max.or(c.min).unwrap_or_default();
        inputs = inputs.with_gate(&c.name, GateReading::Value(value));
    }
    inputs
}

/// Healthy readings except `name`, which reads `value`.
pub(super) fn reading(spec: &RolloutSpec, name: &str, value: GateReading) -> Inputs {
    healthy(spec).with_gate(name, value)
}

pub(super) fn approve(id: &str, stage: u32) -> Command {
    Command::new(id, Action::Approve { stage }).by("alice")
}

pub(super) fn command(id: &str, action: Action) -> Command {
    Command::new(id, action).by("bob")
}

pub(super) fn kinds(d: &Decision) -> Vec<EventKind> {
    d.events.iter().map(|e| e.kind).collect()
}

/// A rollout driven step by step; the state is carried from one decision to the next.
pub(super) struct Run {
    pub spec: RolloutSpec,
    pub state: RolloutState,
    pub last: Option<Decision>,
}

impl Run {
    pub fn new(spec: RolloutSpec) -> Self {
        Run {
            spec,
            state: RolloutState::default(),
            last: None,
        }
    }

    pub fn step(&mut self, secs: i64, inputs: &Inputs) -> Decision {
        let d = step(&self.spec, &self.state, inputs, at(secs));
        self.state = d.state.clone();
        self.last = Some(d.clone());
        d
    }

    /// Evaluates with healthy gates every interval (60s) from `from` to `to` inclusive.
    pub fn healthy_until(&mut self, from: i64, to: i64) -> Decision {
        let inputs = healthy(&self.spec);
        let mut t = from;
        let mut d = self.step(t, &inputs);
        while t < to {
            t = (t + MIN).min(to);
            d = self.step(t, &inputs);
        }
        d
    }

    pub fn stage(&self) -> Option<u32> {
        self.state.stage
    }
}
