//! Gate checks: counting readings, judging health, spotting a tripped check, and describing it.

use k8s_openapi::jiff::Timestamp;

use super::{
    clock,
    inputs::{GateReading, Inputs},
    plan::Plan,
};
use crate::crd::{GateCheck, GateState, NoDataPolicy, Phase, RolloutState};

/// Whether gates are evaluated in this state: a stage is admitted and the rollout is not over.
pub(crate) fn evaluated(state: &RolloutState) -> bool {
    state.stage.is_some()
        && matches!(
            state.phase,
            Phase::Baking | Phase::AwaitingApproval | Phase::Paused | Phase::RolledBack
        )
}

/// When the next evaluation is due, if gates are evaluated at all.
pub(crate) fn next_evaluation(plan: &Plan, state: &RolloutState) -> Option<Timestamp> {
    if plan.gates.checks.is_empty() || !evaluated(state) {
        return None;
    }
    let last = state.gates_checked_at.as_ref()?.0;
    Some(clock::after(last, plan.gates.interval))
}

/// Makes `state.gates` list exactly the spec's checks, in order. A check whose bounds changed
/// starts a fresh count: passes judged against other bounds say nothing about the new ones.
pub(crate) fn sync(plan: &Plan, state: &mut RolloutState) {
    let mut old = std::mem::take(&mut state.gates);
    state.gates = plan
        .gates
        .checks
        .iter()
        .map(
            |check| match old.iter().position(|g| g.name == check.name) {
                Some(i) if old[i].min == check.min && old[i].max == check.max => old.swap_remove(i),
                _ => GateState {
                    name: check.name.clone(),
                    min: check.min,
                    max: check.max,
                    ..GateState::default()
                },
            },
        )
        .collect();
}

/// Forgets every result: a new cohort starts a new window.
pub(crate) fn reset(state: &mut RolloutState) {
    for g in &mut state.gates {
        *g = GateState {
            name: std::mem::take(&mut g.name),
            min: g.min,
            max: g.max,
            ..GateState::default()
        };
    }
}

/// Counts this evaluation's readings if an evaluation is due.
pub(crate) fn record(plan: &Plan, state: &mut RolloutState, inputs: &Inputs, now: Timestamp) {
    if plan.gates.checks.is_empty() || !evaluated(state) {
        return;
    }
    match next_evaluation(plan, state) {
        // A stage without a window start (gates added mid-stage): the window starts now.
        None => {
            state.gates_checked_at = Some(clock::time(now));
            return;
        }
        Some(due) if now < due => return,
        Some(_) => {}
    }
    let missing = GateReading::unknown("no reading was taken for this evaluation");
    for (g, check) in state.gates.iter_mut().zip(plan.gates.checks) {
        let reading = inputs.gates.get(&check.name).unwrap_or(&missing);
        count(g, check, reading, now);
    }
    state.gates_checked_at = Some(clock::time(now));
}

fn count(g: &mut GateState, check: &GateCheck, reading: &GateReading, now: Timestamp) {
    g.checked_at = Some(clock::time(now));
    match reading {
        GateReading::Value(v) if v.is_finite() => {
            let pass =
                check.min.is_none_or(|min| *v >= min) && check.max.is_none_or(|max| *v <= max);
            g.value = Some(*v);
            g.no_data_since = None;
            judged(g, pass);
        }
        GateReading::Value(v) => unknown(g, format!("the query returned {v}")),
        GateReading::NoData => {
            let since = g.no_data_since.get_or_insert_with(|| clock::time(now)).0;
            g.value = None;
            match check.on_no_data {
                NoDataPolicy::Hold => unknown(
                    g,
                    format!("the query has returned no series since {since}; onNoData: Hold"),
                ),
                NoDataPolicy::Pass => judged(g, true),
                NoDataPolicy::Fail => judged(g, false),
            }
        }
        GateReading::Unknown { error } => unknown(g, error.clone()),
    }
}

/// Counts a pass or a failure.
fn judged(g: &mut GateState, pass: bool) {
    g.passing = Some(pass);
    g.error = None;
    if pass {
        g.consecutive_passes = g.consecutive_passes.saturating_add(1);
        g.consecutive_failures = 0;
    } else {
        g.consecutive_failures = g.consecutive_failures.saturating_add(1);
        g.consecutive_passes = 0;
    }
}

fn unknown(g: &mut GateState, error: String) {
    g.value = None;
    g.passing = None;
    g.error = Some(error);
}

/// Whether the gates allow the current stage to end.
#[derive(Debug, PartialEq)]
pub(crate) enum Health {
    /// Every check passed its last `failureThreshold` evaluations (or there are no checks).
    Healthy,
    /// A check is failing (its last evaluations in a row); says which.
    NotYet(String),
    /// Every gate passes, but not yet `failureThreshold` times in a row: the count so far.
    Counting(String),
    /// A check's value is unknown, now or at its last evaluation; says which and why.
    Unknown(String),
}

pub(crate) fn health(plan: &Plan, state: &RolloutState, inputs: &Inputs) -> Health {
    // An unknown reading holds even before the first stage: no advance on missing data, ever.
    let unknown = unknown_gates(plan, state, inputs);
    match unknown.as_slice() {
        [] => {}
        [(name, why)] => return Health::Unknown(format!("gate {name} is unknown ({why})")),
        many => {
            let list: Vec<String> = many.iter().map(|(n, why)| format!("{n} ({why})")).collect();
            return Health::Unknown(format!("gates {} are unknown", list.join(", ")));
        }
    }
    if state.stage.is_none() {
        return Health::Healthy;
    }
    let needed = plan.gates.failure_threshold;
    let failing_now: Vec<String> = state
        .gates
        .iter()
        .filter(|g| g.consecutive_failures > 0)
        .map(|g| failing(g, needed))
        .collect();
    if !failing_now.is_empty() {
        return Health::NotYet(failing_now.join("; "));
    }
    match state
        .gates
        .iter()
        .find(|g| g.passing != Some(true) || g.consecutive_passes < needed)
    {
        Some(g) => Health::Counting(format!(
            "gate {} has passed {}/{needed} checks in a row",
            g.name,
            g.consecutive_passes.min(needed)
        )),
        None => Health::Healthy,
    }
}

/// Every check whose value is unknown, with why: as the last evaluation recorded it once a stage
/// is entered (e.g. since when a check has had no data), and as this evaluation's readings say.
pub(crate) fn unknown_gates<'s>(
    plan: &'s Plan,
    state: &'s RolloutState,
    inputs: &'s Inputs,
) -> Vec<(&'s str, &'s str)> {
    let mut unknown: Vec<(&str, &str)> = Vec::new();
    if state.stage.is_some() {
        for g in &state.gates {
            if let Some(error) = &g.error {
                unknown.push((&g.name, error));
            }
        }
    }
    for (name, why) in inputs.unknown_gates(plan.gates.checks) {
        if !unknown.iter().any(|(n, _)| *n == name) {
            unknown.push((name, why));
        }
    }
    unknown
}

/// Every check failing now (not yet `failureThreshold` times), by name.
pub(crate) fn failing_gates(state: &RolloutState) -> Vec<&str> {
    let gates = state.gates.iter();
    gates
        .filter(|g| g.consecutive_failures > 0)
        .map(|g| g.name.as_str())
        .collect()
}

/// The first check that failed `failureThreshold` times in a row, with the evidence.
pub(crate) fn tripped<'s>(plan: &Plan, state: &'s RolloutState) -> Option<(&'s GateState, String)> {
    let threshold = plan.gates.failure_threshold;
    state
        .gates
        .iter()
        .find(|g| g.consecutive_failures >= threshold)
        .map(|g| (g, failing(g, threshold)))
}

/// `gate p95-latency-seconds 0.62 > 0.5 (3/3 checks failed)`.
pub(crate) fn failing(g: &GateState, threshold: u32) -> String {
    let comparison = match (g.value, g.min, g.max) {
        (Some(v), _, Some(max)) if v > max => format!(" {v} > {max}"),
        (Some(v), Some(min), _) if v < min => format!(" {v} < {min}"),
        (Some(v), _, _) => format!(" {v}"),
        (None, _, _) => match &g.no_data_since {
            Some(since) => format!(" has had no data since {} (onNoData: Fail)", since.0),
            None => String::new(),
        },
    };
    let failures = g.consecutive_failures.min(threshold);
    format!(
        "gate {}{comparison} ({failures}/{threshold} checks failed)",
        g.name
    )
}
