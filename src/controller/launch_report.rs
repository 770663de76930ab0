//! The launch report (`spec.summary.reportAt`, e.g. `24h` after the launch start): stage history
//! with times, gate failures, every action, peak and last value per trigger and gate, kill
//! switches and sources lost — as Markdown, kept in ConfigMap `<policy>-launch-report` (key
//! `report.md`) so it can be published, and sent once as a `LaunchReport` message.
//!
//! Written from status alone (the journal and the peaks), so it says what status recorded. The
//! ConfigMap is written before status records `reportWrittenAt`, and the message is sent after
//! that write: a crash in between writes the ConfigMap again, and the message goes out at most
//! once.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use k8s_openapi::jiff::Timestamp;
use kube::{Client, ResourceExt};

use super::update;
use crate::{
    actuators::configmap,
    crd::{JournalEntry, LaunchPolicy, LaunchPolicyStatus, MAX_JOURNAL, NotificationEvent},
};

/// The ConfigMap key holding the report.
pub const KEY: &str = "report.md";

/// The ConfigMap the report of `policy` is kept in.
pub fn config_map(policy: &str) -> String {
    format!("{policy}-launch-report")
}

/// When the report falls due: `reportAt` after the launch start, unless it was written already.
pub fn due_at(policy: &LaunchPolicy, status: &LaunchPolicyStatus) -> Option<Timestamp> {
    let report_at = policy.spec.summary.as_ref()?.report_at?;
    let launch = status.launch.as_ref()?;
    if launch.report_written_at.is_some() {
        return None;
    }
    let started = launch.started_at.as_ref()?.0;
    Some(
        started
            .checked_add(Duration::from(report_at))
            .unwrap_or(started),
    )
}

/// Time until the report falls due, if it is still to be written.
pub fn next_in(
    policy: &LaunchPolicy,
    status: &LaunchPolicyStatus,
    now: Timestamp,
) -> Option<Duration> {
    let at = due_at(policy, status)?;
    Some(Duration::try_from(at.duration_since(now)).unwrap_or_default())
}

/// Writes the report to its ConfigMap, owned by the policy.
pub async fn publish(client: &Client, policy: &LaunchPolicy, markdown: &str) -> Result<(), String> {
    let namespace = policy.namespace().unwrap_or_default();
    let name = config_map(&policy.name_any());
    let owner = configmap::owned_by(policy);
    let data = BTreeMap::from([(KEY.to_string(), markdown.to_string())]);
    configmap::apply(client, &namespace, &name, owner.as_ref(), data)
        .await
        .map_err(|e| format!("cannot write the launch report to ConfigMap {name}: {e}"))
}

/// The longest report a message carries (chat tools cap a message at about 28 KB, Teams first).
const MAX_MESSAGE: usize = 20_000;

/// The report as a message: whole, or cut with a pointer to its ConfigMap.
pub fn for_chat(markdown: &str, config_map: &str) -> String {
    if markdown.len() <= MAX_MESSAGE {
        return markdown.to_string();
    }
    let mut cut = MAX_MESSAGE;
    while !markdown.is_char_boundary(cut) {
        cut -= 1;
    }
    let kept = &markdown[..cut];
    let kept = kept.rsplit_once('\n').map_or(kept, |(head, _)| head);
    format!("{kept}\n\n… (cut for chat; the whole report is in ConfigMap {config_map}, key {KEY})")
}

/// The report, in Markdown.
pub fn markdown(policy: &LaunchPolicy, status: &LaunchPolicyStatus, now: Timestamp) -> String {
    let (namespace, name) = (policy.namespace().unwrap_or_default(), policy.name_any());
    let launch = status.launch.clone().unwrap_or_default();
    let started = launch.started_at.as_ref().map(|t| t.0);
    let hours = |t: Timestamp| started.map_or(0, |s| t.duration_since(s).as_secs().max(0) / 3600);
    let light = update::light(status);
    let mut out = String::new();
    let _ = writeln!(out, "# Launch report: {namespace}/{name}\n");
    let _ = writeln!(
        out,
        "Written {} (H+{}); the launch started {}. Status: {}.\n",
        update::to_second(now),
        hours(now),
        started.map_or("(not started)".to_string(), update::to_second),
        light.label()
    );
    if let Some(rollout) = &status.rollout {
        let why = rollout.message.as_deref().unwrap_or_default();
        let _ = writeln!(
            out,
            "Now: **{}**, {} users admitted. {why}\n",
            rollout.state.phase, rollout.state.users
        );
    }
    let journal = &launch.journal;
    let section = |out: &mut String, title: &str, kinds: &[NotificationEvent]| {
        let _ = writeln!(out, "## {title}\n");
        let rows: Vec<&JournalEntry> = journal
            .iter()
            .filter(|e| kinds.contains(&e.event))
            .collect();
        if rows.is_empty() {
            let _ = writeln!(out, "None.\n");
            return;
        }
        let _ = writeln!(
            out,
            "| Time | H+ | Event | What |\n| --- | --- | --- | --- |"
        );
        for e in rows {
            let what = e.message.replace('|', "\\|").replace('\n', " ");
            let _ = writeln!(
                out,
                "| {} | H+{} | {} | {what} |",
                e.at.0,
                hours(e.at.0),
                e.event.as_str()
            );
        }
        out.push('\n');
    };
    use NotificationEvent::*;
    let stages = [
        StageAdvanced,
        AwaitingApproval,
        RolloutPaused,
        RolloutResumed,
        RolloutRolledBack,
        RolloutAborted,
        RolloutCompleted,
    ];
    section(&mut out, "Stage history", &stages);
    section(&mut out, "Gate failures", &[GateFailed]);
    section(&mut out, "Scaling actions", &[ScalingAction, ActionFailed]);
    peaks(&mut out, status, &launch.peaks);
    section(&mut out, "Kill switches", &[KillSwitch]);
    for k in &status.kill_switches {
        let state = if k.enabled { "on" } else { "**off**" };
        let why = k
            .why
            .as_deref()
            .map(|w| format!(": {w}"))
            .unwrap_or_default();
        let _ = writeln!(out, "- {}: {state}{why}", k.name);
    }
    if !status.kill_switches.is_empty() {
        out.push('\n');
    }
    section(
        &mut out,
        "Sources lost and found",
        &[SourceUnavailable, SourceRecovered],
    );
    if launch.journal_dropped > 0 {
        let _ = writeln!(
            out,
            "_{} earlier entries were dropped: status keeps the newest {MAX_JOURNAL}. The \
             operator's Events and `liftoff_*` metrics cover them._",
            launch.journal_dropped
        );
    }
    out
}

fn peaks(out: &mut String, status: &LaunchPolicyStatus, peaks: &[crate::crd::Peak]) {
    let _ = writeln!(out, "## Triggers and gates\n");
    let _ = writeln!(
        out,
        "| Name | Peak | Peak at | Last | Bound |\n| --- | --- | --- | --- | --- |"
    );
    let peak_of = |key: String| {
        peaks
            .iter()
            .find(|p| p.name == key)
            .map_or(("-".to_string(), "-".to_string()), |p| {
                (
                    update::format_value(Default::default(), p.value),
                    p.at.0.to_string(),
                )
            })
    };
    for t in &status.triggers {
        let (peak, at) = peak_of(format!("trigger/{}", t.name));
        let last = t.value.as_deref().unwrap_or("unknown");
        let _ = writeln!(
            out,
            "| trigger {} | {peak} | {at} | {last} | threshold {} |",
            t.name, t.threshold
        );
    }
    for g in status.rollout.iter().flat_map(|r| &r.state.gates) {
        let (peak, at) = peak_of(format!("gate/{}", g.name));
        let last = g.value.map_or("unknown".to_string(), |v| v.to_string());
        let bound = match (g.min, g.max) {
            (Some(min), Some(max)) => format!("{min}..{max}"),
            (Some(min), None) => format!("min {min}"),
            (None, Some(max)) => format!("max {max}"),
            (None, None) => "none".into(),
        };
        let _ = writeln!(
            out,
            "| gate {} | {peak} | {at} | {last} | {bound} |",
            g.name
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    use super::*;

    fn policy(report_at: Option<&str>) -> LaunchPolicy {
        let mut spec = json!({});
        if let Some(at) = report_at {
            spec["summary"] = json!({"reportAt": at});
        }
        let mut p = LaunchPolicy::new("emr-platform", serde_json::from_value(spec).unwrap());
        p.metadata.namespace = Some("emr".into());
        p
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn status() -> LaunchPolicyStatus {
        serde_json::from_value(json!({
            "rollout": {"phase": "Baking", "stage": 1, "users": "500",
                        "message": "stage gradual (500 users) baking",
                        "gates": [{"name": "p95", "max": 0.5, "value": 0.31}]},
            "triggers": [{"name": "api-cpu", "kind": "cpu", "value": "45%", "threshold": "70%"}],
            "killSwitches": [{"name": "reports", "enabled": false, "why": "p95 0.9 > 0.5"}],
            "launch": {
                "startedAt": "2027-01-15T08:00:00Z",
                "journal": [
                    {"at": "2027-01-15T08:00:00Z", "event": "StageAdvanced", "message": "entered stage internal-beta (100 users)"},
                    {"at": "2027-01-15T09:30:00Z", "event": "ScalingAction", "message": "api-cpu: scaled api from 2 to 4 replicas, because cpu 91% > 70%"},
                    {"at": "2027-01-15T10:00:00Z", "event": "GateFailed", "message": "gate p95 0.9 > 0.5 | spike"},
                    {"at": "2027-01-15T10:01:00Z", "event": "KillSwitch", "message": "reports switched off"},
                    {"at": "2027-01-15T10:02:00Z", "event": "StageAdvanced", "message": "entered stage gradual (500 users)"}
                ],
                "peaks": [{"name": "trigger/api-cpu", "value": 91.2, "at": "2027-01-15T09:29:00Z"},
                          {"name": "gate/p95", "value": 0.9, "at": "2027-01-15T10:00:00Z"}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_long_report_is_cut_at_a_line_for_chat_and_points_to_its_config_map() {
        let line = "| 2027-01-15T09:30:00Z | H+1 | ScalingAction | é api-cpu: scaled |\n";
        let long = line.repeat(1000);
        let message = for_chat(&long, "emr-platform-launch-report");
        assert!(message.len() < 20_200, "{}", message.len());
        assert!(message.ends_with(
            "|\n\n… (cut for chat; the whole report is in ConfigMap emr-platform-launch-report, key report.md)"
        ) || message.contains("|\n\n… (cut for chat"));
        assert_eq!(for_chat(line, "x"), line);
    }

    #[test]
    fn the_report_falls_due_once_report_at_after_the_start() {
        let (p, mut s) = (policy(Some("24h")), status());
        assert_eq!(due_at(&p, &s), Some(at("2027-01-16T08:00:00Z")));
        assert_eq!(
            next_in(&p, &s, at("2027-01-16T07:00:00Z")),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            next_in(&p, &s, at("2027-01-16T09:00:00Z")),
            Some(Duration::ZERO)
        );
        s.launch.as_mut().unwrap().report_written_at = Some(Time(at("2027-01-16T08:00:01Z")));
        assert_eq!(due_at(&p, &s), None, "written once");
        assert_eq!(due_at(&policy(None), &status()), None, "not asked for");
        assert_eq!(
            due_at(&p, &LaunchPolicyStatus::default()),
            None,
            "not started"
        );
    }

    #[test]
    fn the_report_has_history_failures_actions_peaks_and_switches() {
        let md = markdown(&policy(Some("24h")), &status(), at("2027-01-16T08:00:00Z"));
        for part in [
            "# Launch report: emr/emr-platform\n",
            "Written 2027-01-16T08:00:00Z (H+24); the launch started 2027-01-15T08:00:00Z. Status: ⚠️ investigating.",
            "Now: **Baking**, 500 users admitted. stage gradual (500 users) baking",
            "## Stage history\n\n| Time | H+ | Event | What |\n| --- | --- | --- | --- |\n\
             | 2027-01-15T08:00:00Z | H+0 | StageAdvanced | entered stage internal-beta (100 users) |\n\
             | 2027-01-15T10:02:00Z | H+2 | StageAdvanced | entered stage gradual (500 users) |\n",
            "| 2027-01-15T10:00:00Z | H+2 | GateFailed | gate p95 0.9 > 0.5 \\| spike |",
            "## Scaling actions\n\n| Time | H+ | Event | What |\n| --- | --- | --- | --- |\n\
             | 2027-01-15T09:30:00Z | H+1 | ScalingAction | api-cpu: scaled api from 2 to 4 replicas, because cpu 91% > 70% |",
            "| trigger api-cpu | 91.2 | 2027-01-15T09:29:00Z | 45% | threshold 70% |",
            "| gate p95 | 0.9 | 2027-01-15T10:00:00Z | 0.31 | max 0.5 |",
            "| 2027-01-15T10:01:00Z | H+2 | KillSwitch | reports switched off |\n\n- reports: **off**: p95 0.9 > 0.5",
            "## Sources lost and found\n\nNone.",
        ] {
            assert!(md.contains(part), "{part:?} missing from:\n{md}");
        }
    }
}
