//! What a launch update says, in the war room's template: a status light, H+X since the launch
//! started, users, the team's own figures (`spec.summary.metrics`), key metrics (gates and
//! triggers), issues, the actions since the last update, and the next update. Pure: composed
//! from the status just written, the figures just read and the time.
//!
//! The light (documented in docs/notifications.md):
//! - 🔴 major issue: the rollout is aborted, or held by a failing gate (paused or rolled back);
//!   the policy is not `Ready`; or a scaling action is failing.
//! - ⚠️ investigating: a gate is failing (not yet `failureThreshold` times) or cannot be read; a
//!   trigger cannot be read (`Degraded`); the rollout is held by a person or a spec edit; a kill
//!   switch is off.
//! - 🟢 all systems operational: none of the above.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use serde::Serialize;

use crate::{
    crd::{HoldCause, LaunchPolicySpec, LaunchPolicyStatus, MetricFormat, SummaryMetric},
    engine::rollout::Phase,
};

/// The status light.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Light {
    Green,
    Amber,
    Red,
}

impl Light {
    /// The light as the template writes it.
    pub fn label(self) -> &'static str {
        match self {
            Light::Green => "🟢 all systems operational",
            Light::Amber => "⚠️ investigating",
            Light::Red => "🔴 major issue",
        }
    }
}

/// A figure of `spec.summary.metrics`, as read when the update is sent.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Figure {
    pub name: String,
    /// The formatted value; `None` when the query failed or returned no series.
    pub value: Option<String>,
}

impl Figure {
    /// The figure of `metric` for a value read (or not).
    pub fn of(metric: &SummaryMetric, value: Option<f64>) -> Figure {
        let value = value.filter(|v| v.is_finite()).map(|v| {
            let number = format_value(metric.format, v);
            match &metric.unit {
                Some(unit) => format!("{number} {unit}"),
                None => number,
            }
        });
        Figure {
            name: metric.name.clone(),
            value,
        }
    }
}

/// A launch update, structured (the `Json` webhook format sends it as is).
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Update {
    pub light: Light,
    /// Whole hours since the launch started; `None` before it starts.
    pub hours: Option<u64>,
    pub status: String,
    /// Users admitted now (`All` for everyone); `None` for a policy without a rollout.
    pub users_admitted: Option<String>,
    pub figures: Vec<Figure>,
    pub key_metrics: Vec<String>,
    pub issues: Vec<String>,
    /// The actions since the previous update (or since the launch started), oldest first.
    pub actions: Vec<String>,
    pub next_update: Option<Time>,
    /// H+X of the next update.
    pub next_hours: Option<u64>,
}

/// Composes the update from the status just written. `since`: when the previous update went out.
pub fn compose(
    spec: &LaunchPolicySpec,
    status: &LaunchPolicyStatus,
    figures: Vec<Figure>,
    since: Option<Timestamp>,
    next: Option<&Time>,
    now: Timestamp,
) -> Update {
    let started = status
        .launch
        .as_ref()
        .and_then(|l| l.started_at.as_ref())
        .map(|t| t.0);
    let hours = |t: Timestamp| {
        started.map(|s| u64::try_from(t.duration_since(s).as_secs()).unwrap_or(0) / 3600)
    };
    // Since the previous update; the first one lists everything since the launch started.
    let new = |at: Timestamp| match (since, started) {
        (Some(since), _) => at > since,
        (None, Some(started)) => at >= started,
        (None, None) => true,
    };
    let actions = status
        .launch
        .iter()
        .flat_map(|l| &l.journal)
        .filter(|e| e.event.is_action() && new(e.at.0))
        .map(|e| format!("{} {}: {}", clock(e.at.0), e.event.as_str(), e.message))
        .collect();
    Update {
        light: light(status),
        hours: hours(now),
        status: status_line(spec, status),
        users_admitted: status.rollout.as_ref().map(|r| r.state.users.to_string()),
        figures,
        key_metrics: key_metrics(status),
        issues: issues(status),
        actions,
        next_update: next.cloned(),
        next_hours: next.and_then(|t| hours(t.0)),
    }
}

impl Update {
    /// The update as chat text.
    pub fn text(&self) -> String {
        let or_none = |items: &[String]| match items.is_empty() {
            true => "none".to_string(),
            false => items.join("; "),
        };
        let h = |hours: Option<u64>| hours.map_or("not started".into(), |h| format!("H+{h}"));
        let mut lines = vec![format!(
            "{} — launch update at {}",
            self.light.label(),
            h(self.hours)
        )];
        lines.push(format!("• Status: {}", self.status));
        if let Some(users) = &self.users_admitted {
            lines.push(format!("• Users: {users} admitted"));
        }
        if !self.figures.is_empty() {
            let figures: Vec<String> = self
                .figures
                .iter()
                .map(|f| format!("{} {}", f.name, f.value.as_deref().unwrap_or("no data")))
                .collect();
            lines.push(format!("• Figures: {}", figures.join("; ")));
        }
        lines.push(format!("• Key metrics: {}", or_none(&self.key_metrics)));
        lines.push(format!("• Issues: {}", or_none(&self.issues)));
        lines.push(format!(
            "• Actions since the last update: {}",
            or_none(&self.actions)
        ));
        let next = match &self.next_update {
            Some(t) => format!("{} ({})", to_second(t.0), h(self.next_hours)),
            None => "none scheduled".into(),
        };
        lines.push(format!("• Next update: {next}"));
        lines.join("\n")
    }
}

/// The light, by the rule in the module's documentation.
pub fn light(status: &LaunchPolicyStatus) -> Light {
    let condition = |type_: &str, bad: &str| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == bad)
    };
    let state = status.rollout.as_ref().map(|r| &r.state);
    let phase = state.map(|s| s.phase);
    let gate_hold = state
        .and_then(|s| s.hold.as_ref())
        .is_some_and(|h| h.cause == HoldCause::Gate);
    let action_failing = status
        .triggers
        .iter()
        .any(|t| t.action_failed_since.is_some());
    if phase == Some(Phase::Aborted)
        || (phase.is_some_and(Phase::is_held) && gate_hold)
        || condition("Ready", "False")
        || action_failing
    {
        return Light::Red;
    }
    let gates = state.map(|s| s.gates.as_slice()).unwrap_or_default();
    if gates
        .iter()
        .any(|g| g.passing == Some(false) || g.error.is_some())
        || status.triggers.iter().any(|t| t.error.is_some())
        || condition("Degraded", "True")
        || phase.is_some_and(Phase::is_held)
        || status.kill_switches.iter().any(|k| !k.enabled)
    {
        return Light::Amber;
    }
    Light::Green
}

/// A time to the second, as status writes times: `2027-01-15T08:00:00Z`.
pub fn to_second(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `HH:MMZ` of a time, for the actions list.
fn clock(t: Timestamp) -> String {
    t.strftime("%H:%MZ").to_string()
}

/// A figure's number as its format writes it.
pub fn format_value(format: MetricFormat, v: f64) -> String {
    match format {
        MetricFormat::Number => trim(format!("{v:.3}")),
        MetricFormat::Count => thousands(v.round()),
        MetricFormat::Percent => format!("{}%", trim(format!("{:.2}", v * 100.0))),
        MetricFormat::Milliseconds => format!("{} ms", thousands((v * 1000.0).round())),
    }
}

/// `1.500` → `1.5`, `2.000` → `2`.
fn trim(s: String) -> String {
    match s.contains('.') {
        true => s.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => s,
    }
}

/// A whole number with thousands separators: `1204` → `1,204`.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    match v < 0.0 {
        true => format!("-{out}"),
        false => out,
    }
}

fn status_line(spec: &LaunchPolicySpec, status: &LaunchPolicyStatus) -> String {
    let Some(rollout) = &status.rollout else {
        return condition_message(status, "ScalingActive")
            .map_or("scaling only".to_string(), |m| format!("scaling only; {m}"));
    };
    let state = &rollout.state;
    let stages = spec.rollout.as_ref().map_or(0, |r| r.stages.len());
    let position = state
        .stage
        .map(|i| format!(", stage {} of {stages}", i + 1))
        .unwrap_or_default();
    // The rollout's message names the stage, its users and why; without one, say them here.
    match &rollout.message {
        Some(why) => format!("{}{position}: {why}", state.phase),
        None => format!(
            "{}{position} {}, {} users",
            state.phase,
            state.stage_name.as_deref().unwrap_or("(none)"),
            state.users
        ),
    }
}

fn key_metrics(status: &LaunchPolicyStatus) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(rollout) = &status.rollout {
        for g in &rollout.state.gates {
            let value = g.value.map_or("unknown".to_string(), |v| v.to_string());
            let bounds = match (g.min, g.max) {
                (Some(min), Some(max)) => format!("{min}..{max}"),
                (Some(min), None) => format!("min {min}"),
                (None, Some(max)) => format!("max {max}"),
                (None, None) => "no bound".to_string(),
            };
            let verdict = match g.passing {
                Some(true) => "ok",
                Some(false) => "FAILING",
                None => "not checked",
            };
            parts.push(format!("{} {value} ({bounds}, {verdict})", g.name));
        }
    }
    for t in &status.triggers {
        let value = t.value.as_deref().unwrap_or("unknown");
        parts.push(format!("{} {value} (threshold {})", t.name, t.threshold));
    }
    parts
}

fn issues(status: &LaunchPolicyStatus) -> Vec<String> {
    let mut issues = Vec::new();
    for c in &status.conditions {
        let bad = match c.type_.as_str() {
            "Ready" => c.status == "False",
            "Degraded" => c.status == "True",
            _ => false,
        };
        if bad {
            issues.push(format!("{} {}: {}", c.type_, c.reason, c.message));
        }
    }
    if let Some(rollout) = &status.rollout {
        let phase = rollout.state.phase;
        if matches!(phase, Phase::Paused | Phase::RolledBack | Phase::Aborted) {
            issues.push(format!("the rollout is {phase} (why: see Status)"));
        }
        for g in &rollout.state.gates {
            if let Some(error) = &g.error {
                issues.push(format!("gate {} unreadable: {error}", g.name));
            }
        }
    }
    for t in &status.triggers {
        if let Some(since) = &t.action_failed_since {
            issues.push(format!(
                "trigger {} action failing since {}",
                t.name, since.0
            ));
        }
    }
    for k in status.kill_switches.iter().filter(|k| !k.enabled) {
        issues.push(format!("kill switch {} is off", k.name));
    }
    issues
}

fn condition_message(status: &LaunchPolicyStatus, type_: &str) -> Option<String> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.message.clone())
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
