//! The periodic launch update (`spec.notifications[].summaryEvery`): when one is due, and what it
//! says — status, key metrics, issues, next update — from the status just decided. Pure: the
//! reconcile records the schedule in `status.summaries` and sends after that write, so an update
//! goes out at most once per period, however often the policy is reconciled or the operator
//! restarts.

use std::time::Duration;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

use crate::{
    crd::{LaunchPolicySpec, LaunchPolicyStatus, Notification, SummaryStatus},
    engine::rollout::Phase,
};

/// Floor for `summaryEvery`, so a `0s` cannot turn into a flood.
const MIN_EVERY: Duration = Duration::from_secs(1);

/// What the summary schedule decided for one reconcile.
#[derive(Debug, Default, PartialEq)]
pub struct Schedule {
    /// `status.summaries` to record.
    pub entries: Vec<SummaryStatus>,
    /// Indexes into `spec.notifications` of the subscriptions to send an update to now.
    pub due: Vec<usize>,
    /// Time until the next update falls due, if any is scheduled.
    pub next_in: Option<Duration>,
}

/// The `status.summaries` key of a subscription: its Secret and key, never the URL.
pub fn webhook_key(n: &Notification) -> String {
    format!("{}/{}", n.webhook_secret_ref.name, n.webhook_secret_ref.key)
}

/// Whether the launch still warrants updates: a policy without a rollout always does; a rollout
/// stops being reported once it is `Completed` or `Aborted` (those have their own notification).
pub fn live(phase: Option<Phase>) -> bool {
    !matches!(phase, Some(Phase::Completed | Phase::Aborted))
}

/// Decides which subscriptions get an update now. The first update of a subscription goes out at
/// once; each later one `summaryEvery` after the previous (one update after a long outage, not a
/// backlog). Two subscriptions to the same webhook share one schedule (the first one's period).
pub fn schedule(
    notifications: &[Notification],
    previous: &[SummaryStatus],
    live: bool,
    now: Timestamp,
) -> Schedule {
    let mut out = Schedule::default();
    for (i, n) in notifications.iter().enumerate() {
        let Some(every) = n.summary_every.map(|d| Duration::from(d).max(MIN_EVERY)) else {
            continue;
        };
        let webhook = webhook_key(n);
        if out.entries.iter().any(|e| e.webhook == webhook) {
            continue;
        }
        let last = previous
            .iter()
            .find(|e| e.webhook == webhook)
            .map(|e| e.last_sent_at.0);
        let entry = match (live, last) {
            (false, None) => continue,
            (false, Some(last)) => SummaryStatus {
                webhook,
                last_sent_at: Time(last),
                next_at: None,
            },
            (true, Some(last)) if now < add(last, every) => {
                out.next_in = earliest(out.next_in, add(last, every), now);
                SummaryStatus {
                    webhook,
                    last_sent_at: Time(last),
                    next_at: Some(Time(add(last, every))),
                }
            }
            (true, _) => {
                out.due.push(i);
                out.next_in = earliest(out.next_in, add(now, every), now);
                SummaryStatus {
                    webhook,
                    last_sent_at: Time(now),
                    next_at: Some(Time(add(now, every))),
                }
            }
        };
        out.entries.push(entry);
    }
    out
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(t)
}

fn earliest(current: Option<Duration>, at: Timestamp, now: Timestamp) -> Option<Duration> {
    let wait = Duration::try_from(at.duration_since(now)).unwrap_or_default();
    Some(current.map_or(wait, |c| c.min(wait)))
}

/// The update's text, in the launch-update shape: status, key metrics, issues, next update.
pub fn text(spec: &LaunchPolicySpec, status: &LaunchPolicyStatus, next: Option<&Time>) -> String {
    let next = next.map_or("none scheduled".to_string(), |t| t.0.to_string());
    format!(
        "launch update\n• Status: {}\n• Key metrics: {}\n• Issues: {}\n• Next update: {next}",
        status_line(spec, status),
        metrics_line(status),
        issues_line(status),
    )
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

fn metrics_line(status: &LaunchPolicyStatus) -> String {
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
    if parts.is_empty() {
        "none configured".to_string()
    } else {
        parts.join("; ")
    }
}

fn issues_line(status: &LaunchPolicyStatus) -> String {
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
    if issues.is_empty() {
        "none".to_string()
    } else {
        issues.join("; ")
    }
}

fn condition_message(status: &LaunchPolicyStatus, type_: &str) -> Option<String> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.message.clone())
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
