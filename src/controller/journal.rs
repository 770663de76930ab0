//! The launch's journal (`status.launch`): every decision the war room must hear about, gathered
//! once per reconcile from what was decided, recorded in status with the decision, and sent
//! after that write — so a message goes out at most once per decision, and the launch updates
//! and the launch report are written from status alone.
//!
//! Pure: [`news`] compares the status about to be written with the stored one and lists what is
//! new; [`record`] folds it (and the samples' peaks) into the launch record.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

use super::rollout::commands::APPROVE;
use crate::{
    crd::{
        JournalEntry, LaunchPolicyStatus, LaunchRecord, MAX_JOURNAL, NotificationEvent, Peak,
        TriggerStatus,
    },
    engine::{contingency::Flip, rollout::Event},
    triggers::Applied,
};

/// What one reconcile decided before acting, as the war room hears it.
pub struct Decided<'a> {
    /// The policy's namespace and name (for the commands a message suggests).
    pub policy: (&'a str, &'a str),
    pub rollout: &'a [Event],
    pub flips: &'a [Flip],
}

/// A journal message is cut to this many bytes (an apiserver's refusal can be long).
const MAX_MESSAGE: usize = 1024;

fn entry(event: NotificationEvent, message: String, now: Timestamp) -> JournalEntry {
    JournalEntry {
        at: Time(now),
        event,
        message: crate::conditions::truncate(&message, MAX_MESSAGE),
    }
}

/// The news of the decisions, before any action: the rollout's events, the kill switches, then
/// sources lost or found (from the stored status to `next`). Recorded with the first status write
/// of the reconcile, so a crash or a conflict on the last write loses none of it.
pub fn decided(
    decided: &Decided<'_>,
    stored: Option<&LaunchPolicyStatus>,
    next: &LaunchPolicyStatus,
    now: Timestamp,
) -> Vec<JournalEntry> {
    let entry = |event, message: String| entry(event, message, now);
    let mut out = Vec::new();
    for e in decided.rollout {
        let Some(event) = e.kind.notification() else {
            continue;
        };
        let message = match event {
            NotificationEvent::AwaitingApproval => {
                format!("{}. {}", e.message, go_command(decided, next))
            }
            _ => e.message.clone(),
        };
        out.push(entry(event, message));
    }
    for flip in decided.flips {
        out.push(entry(NotificationEvent::KillSwitch, flip.message.clone()));
    }
    out.extend(sources(stored, next, now));
    out
}

/// The news of the actions taken: each success, and each failure that is new (a retry of an
/// action already failing is not news).
pub fn acted(
    applied: &[Applied],
    stored: Option<&LaunchPolicyStatus>,
    now: Timestamp,
) -> Vec<JournalEntry> {
    let entry = |event, message: String| entry(event, message, now);
    let mut out = Vec::new();
    let stored_triggers = stored.map(|s| s.triggers.as_slice()).unwrap_or_default();
    for a in applied {
        match &a.result {
            Ok(what) => out.push(entry(
                NotificationEvent::ScalingAction,
                format!("{}: {what}, because {}", a.trigger, a.reason),
            )),
            // Once per failure: a retry of an action already failing is not news.
            Err(why) if !already_failing(stored_triggers, &a.trigger) => out.push(entry(
                NotificationEvent::ActionFailed,
                format!(
                    "{}: {} failed: {why}. Liftoff retries at each sample; see \
                     `kubectl describe lp` and the operator's log",
                    a.trigger,
                    a.action.label()
                ),
            )),
            Err(_) => {}
        }
    }
    out
}

fn already_failing(stored: &[TriggerStatus], trigger: &str) -> bool {
    stored
        .iter()
        .any(|t| t.name == trigger && t.action_failed_since.is_some())
}

/// The command that gives the Go the rollout waits for, with a unique token so that it is never
/// mistaken for an earlier Go.
fn go_command(decided: &Decided<'_>, next: &LaunchPolicyStatus) -> String {
    let (namespace, name) = decided.policy;
    let stage = next
        .rollout
        .as_ref()
        .map(|r| r.state.stage.map_or(0, |s| s + 1))
        .unwrap_or_default();
    format!(
        "To give the Go: kubectl annotate --overwrite -n {namespace} lp/{name} \
         {APPROVE}={stage}@$(date +%s)"
    )
}

/// A trigger's or a gate's source that became unreadable, or readable again.
fn sources(
    stored: Option<&LaunchPolicyStatus>,
    next: &LaunchPolicyStatus,
    now: Timestamp,
) -> Vec<JournalEntry> {
    let mut out = Vec::new();
    let mut compare = |what: String, before: Option<&String>, after: Option<&String>| {
        let (event, message) = match (before, after) {
            (None, Some(error)) => (
                NotificationEvent::SourceUnavailable,
                format!(
                    "{what} cannot be read: {error}. Liftoff takes no action on it (no \
                     scale-down, no stage advance) until it can"
                ),
            ),
            (Some(_), None) => (
                NotificationEvent::SourceRecovered,
                format!("{what} is read again"),
            ),
            _ => return,
        };
        out.push(entry(event, message, now));
    };
    let stored_triggers = stored.map(|s| s.triggers.as_slice()).unwrap_or_default();
    for t in &next.triggers {
        let before = stored_triggers.iter().find(|s| s.name == t.name);
        // A trigger seen for the first time has no "before": only its failure is news.
        let before_error = before.and_then(|b| b.error.as_ref());
        if before.is_none() && t.error.is_none() {
            continue;
        }
        compare(
            format!("trigger {}", t.name),
            before_error,
            t.error.as_ref(),
        );
    }
    let gates = |s: Option<&LaunchPolicyStatus>| {
        s.and_then(|s| s.rollout.as_ref())
            .map(|r| r.state.gates.clone())
            .unwrap_or_default()
    };
    let stored_gates = gates(stored);
    for g in gates(Some(next)) {
        let before = stored_gates.iter().find(|s| s.name == g.name);
        if before.is_none() && g.error.is_none() {
            continue;
        }
        let before_error = before.and_then(|b| b.error.as_ref());
        compare(format!("gate {}", g.name), before_error, g.error.as_ref());
    }
    out
}

/// The launch record after this reconcile: the start (set once), the news appended (at most
/// [`MAX_JOURNAL`] entries: the oldest that is not a milestone goes first), and the peaks with
/// this reconcile's samples folded in (`None`: keep the peaks as they are; `Some`: the samples
/// of every trigger and gate of the spec, whose peaks alone are kept).
pub fn record(
    stored: Option<&LaunchRecord>,
    started: bool,
    news: &[JournalEntry],
    samples: Option<&[Sample]>,
    now: Timestamp,
) -> Option<LaunchRecord> {
    let mut launch = stored.cloned().unwrap_or_default();
    if launch.started_at.is_none() && started {
        launch.started_at = Some(Time(now));
    }
    launch.journal.extend(news.iter().cloned());
    while launch.journal.len() > MAX_JOURNAL {
        let evict = launch
            .journal
            .iter()
            .position(|e| !e.event.is_milestone())
            .unwrap_or(0);
        launch.journal.remove(evict);
        launch.journal_dropped = launch.journal_dropped.saturating_add(1);
    }
    if let (Some(_), Some(samples)) = (&launch.started_at, samples) {
        launch
            .peaks
            .retain(|p| samples.iter().any(|s| s.name == p.name));
        for s in samples.iter().filter(|s| s.value.is_finite()) {
            match launch.peaks.iter_mut().find(|p| p.name == s.name) {
                Some(peak) if peak.value >= s.value => {}
                Some(peak) => {
                    peak.value = s.value;
                    peak.at = Time(now);
                }
                None => launch.peaks.push(Peak {
                    name: s.name.clone(),
                    value: s.value,
                    at: Time(now),
                }),
            }
        }
    }
    (launch != LaunchRecord::default()).then_some(launch)
}

/// One trigger or gate of the spec in this reconcile, `trigger/<name>` or `gate/<name>`, and its
/// value (NaN when it has none now).
pub struct Sample {
    pub name: String,
    pub value: f64,
}

/// The samples of a status about to be written: each trigger's reading and each gate's value.
pub fn samples<'a>(
    triggers: impl Iterator<Item = (&'a str, Option<f64>)>,
    status: &LaunchPolicyStatus,
) -> Vec<Sample> {
    let mut out: Vec<Sample> = triggers
        .map(|(name, v)| Sample {
            name: format!("trigger/{name}"),
            value: v.unwrap_or(f64::NAN),
        })
        .collect();
    let gates = status.rollout.iter().flat_map(|r| &r.state.gates);
    out.extend(gates.map(|g| Sample {
        name: format!("gate/{}", g.name),
        value: g.value.unwrap_or(f64::NAN),
    }));
    out
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
