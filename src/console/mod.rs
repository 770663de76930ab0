//! The platform team's console (`kubectl launch`, the `kubectl-launch` binary): what it shows
//! and what it decides, pure, so each view and each refusal is tested without a cluster. The
//! binary reads and patches LaunchPolicies and prints these.

use std::fmt::Write as _;

use k8s_openapi::jiff::Timestamp;

use kube::ResourceExt;

use crate::{
    crd::{LaunchPolicy, Phase, RolloutStatus},
    triggers::{approval, pause},
};

/// A rollout command the console issues as an annotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Approve,
    Pause,
    Resume,
    Retry,
    Abort,
    /// Switch kill switches off.
    Kill,
    /// Switch kill switches back on.
    Restore,
    /// Apply a trigger's recommended resize.
    ApproveResize,
}

impl Command {
    /// The annotation the operator reads for the command.
    pub fn annotation(self) -> &'static str {
        match self {
            Command::Approve => "liftoff.dev/approve",
            Command::Pause => "liftoff.dev/pause",
            Command::Resume => "liftoff.dev/resume",
            Command::Retry => "liftoff.dev/retry",
            Command::Abort => "liftoff.dev/abort",
            Command::Kill => "liftoff.dev/kill-switch",
            Command::Restore => "liftoff.dev/restore-switch",
            Command::ApproveResize => approval::APPROVE_RESIZE,
        }
    }

    /// Whether the operator records the command among the kill-switch commands (else among the
    /// rollout's).
    pub fn is_switch(self) -> bool {
        matches!(self, Command::Kill | Command::Restore)
    }

    /// Whether the command acts on the rollout (and so needs one, in a phase it fits).
    pub fn is_rollout(self) -> bool {
        !matches!(
            self,
            Command::Kill | Command::Restore | Command::ApproveResize
        )
    }

    /// Why the command does not fit the rollout's phase, if it does not.
    pub fn refusal(self, phase: Phase) -> Option<String> {
        use Phase::*;
        // As the operator's rollout engine takes them (src/engine/rollout/commands.rs): a Go is
        // kept until its stage can be entered, whatever the phase but the two final ones.
        let fits = match self {
            Command::Approve => !matches!(phase, Completed | Aborted),
            Command::Pause => matches!(phase, Pending | AwaitingApproval | Baking),
            Command::Resume => matches!(phase, Paused | RolledBack),
            Command::Retry => matches!(phase, Paused | RolledBack | Aborted),
            Command::Abort => phase != Aborted,
            Command::Kill | Command::Restore | Command::ApproveResize => true,
        };
        let hint = match (self, phase) {
            (Command::Approve | Command::Pause, Completed) => "the launch is complete",
            (_, Aborted) => "only retry starts an aborted launch over",
            (Command::Resume, _) => "resume carries on after a pause or a rollback",
            (Command::Retry, _) => "retry starts a held stage over",
            (Command::Pause, Paused) => "it is already paused",
            _ => "see `kubectl launch status`",
        };
        (!fits).then(|| format!("the rollout is {phase}: {hint}"))
    }
}

/// The annotation value of a command: `target` (a stage or switches) when given, and a token
/// unique to this call, so the operator never takes it for an earlier command.
pub fn value(target: Option<&str>, now: Timestamp) -> String {
    let token = now.as_millisecond();
    match target {
        Some(t) => format!("{t}@{token}"),
        None => token.to_string(),
    }
}

/// Whether the operator has applied (or refused) the command `annotation=value`; for a resize
/// approval, also whether it records it as waiting.
pub fn applied(policy: &LaunchPolicy, command: Command, value: &str) -> bool {
    let id = format!("{}={value}", command.annotation());
    let Some(status) = &policy.status else {
        return false;
    };
    match command {
        Command::Kill | Command::Restore => status.applied_switch_commands.contains(&id),
        Command::ApproveResize => status
            .triggers
            .iter()
            .any(|t| t.approval.as_ref().is_some_and(|a| a.command == id)),
        _ => status
            .rollout
            .as_ref()
            .is_some_and(|r| r.state.applied_commands.contains(&id)),
    }
}

/// Whether the operator used the Go `value` to enter its stage.
pub fn approval_used(policy: &LaunchPolicy, value: &str) -> bool {
    let id = format!("{}={value}", Command::Approve.annotation());
    let rollout = policy.status.as_ref().and_then(|s| s.rollout.as_ref());
    rollout
        .and_then(|r| r.state.last_approval.as_ref())
        .is_some_and(|a| a.id == id)
}

/// Why a command cannot be used on this policy as it is written, if it cannot.
pub fn unusable(policy: &LaunchPolicy, command: Command, target: Option<&str>) -> Option<String> {
    let spec = &policy.spec;
    if spec.suspend && command.is_rollout() {
        return Some("spec.suspend is true: the operator holds commands until it is lifted".into());
    }
    match command {
        Command::Kill | Command::Restore => {
            let Some(contingency) = &spec.contingency else {
                return Some("the policy has no spec.contingency: it has no kill switch".into());
            };
            let names: Vec<&str> = contingency
                .kill_switches
                .iter()
                .map(|k| k.name.as_str())
                .collect();
            let unknown: Vec<&str> = target
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|n| !names.contains(n))
                .collect();
            (!unknown.is_empty()).then(|| {
                format!(
                    "no kill switch {}; the policy has: {}",
                    unknown.join(", "),
                    names.join(", ")
                )
            })
        }
        Command::Approve => {
            let stages = spec
                .rollout
                .as_ref()
                .map(|r| r.stages.as_slice())
                .unwrap_or_default();
            let stage = target?;
            let known = stages.iter().any(|s| s.name == stage)
                || stage.parse::<usize>().is_ok_and(|i| i < stages.len());
            (!known).then(|| format!("the rollout has no stage {stage}"))
        }
        Command::ApproveResize => {
            let trigger = target.map(approval::trigger_named).unwrap_or_default();
            let status = policy.status.as_ref().map(|s| s.triggers.as_slice());
            match status
                .unwrap_or_default()
                .iter()
                .find(|t| t.name == trigger)
            {
                None => Some(format!(
                    "the policy has no trigger {trigger:?} in its status"
                )),
                Some(t) if approval::open_recommendation(t).is_none() => Some(format!(
                    "nothing to approve: trigger {trigger} recommends no resize now"
                )),
                Some(_) => None,
            }
        }
        _ => None,
    }
}

/// The stage a Go is for when none is named: the one after the current stage.
pub fn next_stage(policy: &LaunchPolicy) -> Option<String> {
    let stages = &policy.spec.rollout.as_ref()?.stages;
    let state = &policy.status.as_ref()?.rollout.as_ref()?.state;
    let next = state.stage.map_or(0, |s| s as usize + 1);
    stages.get(next).map(|s| s.name.clone())
}

/// Colours for a terminal; none when stdout is not one.
#[derive(Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    fn wrap(self, code: &str, text: &str) -> String {
        match self.0 {
            true => format!("\x1b[{code}m{text}\x1b[0m"),
            false => text.to_string(),
        }
    }
    pub fn good(self, text: &str) -> String {
        self.wrap("32", text)
    }
    pub fn bad(self, text: &str) -> String {
        self.wrap("31", text)
    }
    pub fn unknown(self, text: &str) -> String {
        self.wrap("33", text)
    }
    pub fn bold(self, text: &str) -> String {
        self.wrap("1", text)
    }
}

/// The war-room view of one policy on one screen.
pub fn status(policy: &LaunchPolicy, now: Timestamp, paint: Paint) -> String {
    let mut out = String::new();
    let ns = policy.metadata.namespace.as_deref().unwrap_or_default();
    let name = policy.metadata.name.as_deref().unwrap_or_default();
    let status = policy.status.clone().unwrap_or_default();
    let _ = writeln!(out, "{}", paint.bold(&format!("{ns}/{name}")));
    if let Some(rollout) = &status.rollout {
        rollout_lines(&mut out, policy, rollout, now, paint);
    } else {
        let _ = writeln!(out, "Rollout:   none (scaling only)");
    }
    if !status.triggers.is_empty() {
        let _ = writeln!(out, "Triggers:");
        for t in &status.triggers {
            let value = t.value.as_deref().unwrap_or("unknown");
            let mark = match (&t.error, t.active) {
                (Some(_), _) => paint.unknown("?"),
                (None, true) => paint.bad("▲"),
                (None, false) => paint.good("✓"),
            };
            let _ = writeln!(
                out,
                "  {mark} {:<24} {value} (threshold {})",
                t.name, t.threshold
            );
            if let Some(e) = &t.error {
                let _ = writeln!(out, "      unreadable: {e}");
            }
            let pauses = pause::naming(policy.annotations(), &t.name);
            if !pauses.is_empty() {
                let line = format!("paused: {}", pauses.join(", "));
                let _ = writeln!(out, "      {}", paint.unknown(&line));
            }
            if let Some(p) = &t.pending_action {
                let _ = writeln!(out, "      pending: {} {} → {}", p.kind, p.from, p.to);
            }
            if let Some(r) = &t.recommendation {
                let line = format!(
                    "recommended: {r} (to apply it: kubectl launch approve-resize {name} {})",
                    t.name
                );
                let _ = writeln!(out, "      {}", paint.unknown(&line));
            }
            if let Some(a) = &t.approval {
                let by = a.by.as_deref().unwrap_or("an unknown manager");
                let line = match a.waiting {
                    true => paint.unknown(&format!(
                        "approval by {by} {}, since {}",
                        a.outcome,
                        ago(a.at.0, now)
                    )),
                    false => format!("approved {} by {by}: {}", ago(a.at.0, now), a.outcome),
                };
                let _ = writeln!(out, "      {line}");
            }
            if let Some(a) = &t.last_action {
                let at = t
                    .last_action_at
                    .as_ref()
                    .map(|t| ago(t.0, now))
                    .unwrap_or_default();
                let _ = writeln!(out, "      last action: {a} {at}");
            }
            if let Some(until) = t.next_eligible_at.as_ref().filter(|u| u.0 > now) {
                let _ = writeln!(out, "      cooling down for {}", left(until.0, now));
            }
            if let Some(since) = &t.action_failed_since {
                let line = format!("action failing since {}", ago(since.0, now));
                let _ = writeln!(out, "      {}", paint.bad(&line));
            }
        }
    }
    let spec_triggers = policy.spec.scaling.iter().flat_map(|s| &s.triggers);
    let names: Vec<&str> = spec_triggers.map(|t| t.name.as_str()).collect();
    let unknown = pause::unknown_names(policy.annotations(), &names);
    let stray = approval::unknown_name(policy.annotations(), &names);
    for problem in unknown.into_iter().chain(stray) {
        let _ = writeln!(out, "  {}", paint.bad(&format!("! {problem}")));
    }
    if !status.kill_switches.is_empty() {
        let _ = writeln!(out, "Kill switches:");
        for k in &status.kill_switches {
            let state = match k.enabled {
                true => paint.good("on"),
                false => paint.bad("OFF"),
            };
            let why = k
                .why
                .as_deref()
                .map(|w| format!(" — {w}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {:<24} {state}{why}", k.name);
        }
    }
    let _ = writeln!(out, "Conditions:");
    for c in &status.conditions {
        let _ = writeln!(
            out,
            "  {:<20} {:<6} {}: {}",
            c.type_, c.status, c.reason, c.message
        );
    }
    let next = status
        .summaries
        .iter()
        .filter_map(|s| s.next_at.as_ref())
        .min_by_key(|t| t.0);
    if let Some(next) = next {
        let _ = writeln!(out, "Next launch update: in {}", left(next.0, now));
    }
    out
}

fn rollout_lines(
    out: &mut String,
    policy: &LaunchPolicy,
    rollout: &RolloutStatus,
    now: Timestamp,
    paint: Paint,
) {
    let state = &rollout.state;
    let stages = policy.spec.rollout.as_ref().map_or(0, |r| r.stages.len());
    let position = state
        .stage
        .map_or("before the first stage".to_string(), |i| {
            format!(
                "stage {} of {stages} ({})",
                i + 1,
                state.stage_name.as_deref().unwrap_or("?")
            )
        });
    let phase = match state.phase {
        Phase::Paused | Phase::RolledBack | Phase::Aborted => paint.bad(state.phase.as_str()),
        Phase::AwaitingApproval => paint.unknown(state.phase.as_str()),
        _ => paint.good(state.phase.as_str()),
    };
    let _ = writeln!(out, "Stage:     {position}, {} users admitted", state.users);
    let _ = writeln!(out, "Phase:     {phase}");
    if let Some(why) = &rollout.message {
        let _ = writeln!(out, "Why:       {why}");
    }
    if let Some(w) = &rollout.waiting_on {
        let _ = writeln!(out, "Waiting:   {} ({})", w.summary, w.reason.as_str());
    }
    if let Some(until) = state.bake_until.as_ref().filter(|u| u.0 > now) {
        let _ = writeln!(out, "Bake:      {} left", left(until.0, now));
    }
    if !state.gates.is_empty() {
        let _ = writeln!(out, "Gates:");
        for g in &state.gates {
            let (mark, streak) = match g.passing {
                Some(true) => (
                    paint.good("✓"),
                    format!("{} passed in a row", g.consecutive_passes),
                ),
                Some(false) => (
                    paint.bad("✗"),
                    format!("{} failed in a row", g.consecutive_failures),
                ),
                None => (paint.unknown("?"), "unknown".to_string()),
            };
            let value = g.value.map_or("unknown".to_string(), |v| v.to_string());
            let bound = match (g.min, g.max) {
                (Some(min), Some(max)) => format!("{min}..{max}"),
                (Some(min), None) => format!("≥ {min}"),
                (None, Some(max)) => format!("≤ {max}"),
                (None, None) => "no bound".into(),
            };
            let _ = writeln!(out, "  {mark} {:<24} {value} ({bound}) {streak}", g.name);
            if let Some(e) = &g.error {
                let _ = writeln!(out, "      unreadable: {e}");
            }
        }
    }
}

/// The decisions of a launch in order, from its journal.
pub fn history(policy: &LaunchPolicy) -> String {
    let mut out = String::new();
    let Some(launch) = policy.status.as_ref().and_then(|s| s.launch.as_ref()) else {
        return "no decision recorded yet\n".into();
    };
    if let Some(started) = &launch.started_at {
        let _ = writeln!(out, "{}  LaunchStarted", started.0);
    }
    if launch.journal_dropped > 0 {
        let _ = writeln!(out, "… {} earlier entries dropped", launch.journal_dropped);
    }
    for e in &launch.journal {
        let _ = writeln!(out, "{}  {:<18} {}", e.at.0, e.event.as_str(), e.message);
    }
    out
}

/// `3m ago`.
fn ago(t: Timestamp, now: Timestamp) -> String {
    format!(
        "{} ago",
        human(now.as_second().saturating_sub(t.as_second()))
    )
}

/// `1h 2m`.
fn left(t: Timestamp, now: Timestamp) -> String {
    human(t.as_second().saturating_sub(now.as_second()))
}

fn human(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        _ => format!("{}h {}m", secs / 3600, (secs % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy(status: serde_json::Value) -> LaunchPolicy {
        serde_json::from_value(json!({
            "apiVersion": "liftoff.dev/v1alpha1", "kind": "LaunchPolicy",
            "metadata": {"name": "launch", "namespace": "emr"},
            "spec": {"rollout": {"stages": [
                {"name": "internal-beta", "users": 100}, {"name": "gradual", "users": 500},
                {"name": "everyone", "users": "All"}]}},
            "status": status
        }))
        .unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn the_status_view_says_stage_phase_gates_triggers_switches_and_next_update() {
        let p = policy(json!({
            "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "ok",
                            "lastTransitionTime": "2027-01-15T08:00:00Z"}],
            "rollout": {"phase": "Baking", "stage": 0, "stageName": "internal-beta", "users": "100",
                        "bakeUntil": "2027-01-15T10:00:00Z",
                        "message": "stage internal-beta (100 users) baking 2h",
                        "gates": [{"name": "error-rate", "max": 0.001, "value": 0.0, "passing": true, "consecutivePasses": 4},
                                  {"name": "p95", "max": 0.5, "error": "prometheus: timeout"}]},
            "triggers": [{"name": "api-cpu", "kind": "cpu", "value": "92%", "threshold": "70%", "active": true,
                          "lastAction": "scaled Deployment api from 2 to 3 replicas", "lastActionAt": "2027-01-15T08:57:00Z"}],
            "killSwitches": [{"name": "reports", "enabled": false, "why": "p95 0.9 > 0.5"}],
            "summaries": [{"webhook": "war-room/url", "lastSentAt": "2027-01-15T08:00:00Z", "nextAt": "2027-01-15T09:00:00Z"}]
        }));
        let text = status(&p, at("2027-01-15T08:59:00Z"), Paint(false));
        assert_eq!(
            text,
            "emr/launch\n\
             Stage:     stage 1 of 3 (internal-beta), 100 users admitted\n\
             Phase:     Baking\n\
             Why:       stage internal-beta (100 users) baking 2h\n\
             Bake:      1h 1m left\n\
             Gates:\n  \
             ✓ error-rate               0 (≤ 0.001) 4 passed in a row\n  \
             ? p95                      unknown (≤ 0.5) unknown\n      \
             unreadable: prometheus: timeout\n\
             Triggers:\n  \
             ▲ api-cpu                  92% (threshold 70%)\n      \
             last action: scaled Deployment api from 2 to 3 replicas 2m 0s ago\n\
             Kill switches:\n  \
             reports                  OFF — p95 0.9 > 0.5\n\
             Conditions:\n  \
             Ready                True   Ready: ok\n\
             Next launch update: in 1m 0s\n"
        );
        assert!(status(&p, at("2027-01-15T08:59:00Z"), Paint(true)).contains("\x1b[32m✓\x1b[0m"));
    }

    #[test]
    fn the_status_view_shows_a_paused_trigger_and_a_pause_that_names_none() {
        let mut p = policy(json!({
            "triggers": [{"name": "api-cpu", "kind": "cpu", "value": "92%", "threshold": "70%", "active": true}]
        }));
        p.spec.scaling = serde_json::from_value(json!({"triggers": [{
            "name": "api-cpu", "cpu": {"utilization": 70},
            "scaleTargetRef": {"kind": "Deployment", "name": "api"}, "replicas": {"min": 2, "max": 10}
        }]}))
        .unwrap();
        p.metadata.annotations = Some(
            [
                (
                    "liftoff.dev/pause-scale-out".to_string(),
                    "api-cpu".to_string(),
                ),
                (
                    "liftoff.dev/pause-scaling".to_string(),
                    "api-cpy".to_string(),
                ),
                (
                    "liftoff.dev/approve-resize".to_string(),
                    "emr-db@1".to_string(),
                ),
            ]
            .into(),
        );
        let text = status(&p, at("2027-01-15T08:59:00Z"), Paint(false));
        assert!(
            text.contains(
                "  ▲ api-cpu                  92% (threshold 70%)\n      paused: liftoff.dev/pause-scale-out\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  ! liftoff.dev/pause-scaling: \"api-cpy\" is no trigger of this policy, so it pauses nothing\n"),
            "{text}"
        );
        assert!(
            text.contains("  ! liftoff.dev/approve-resize: \"emr-db\" is no trigger of this policy, so it approves nothing\n"),
            "{text}"
        );
    }

    #[test]
    fn a_recommended_resize_is_shown_with_its_command_and_approved_only_while_open() {
        let mut p = policy(json!({"triggers": [{
            "name": "emr-db", "kind": "databaseConnections", "value": "812", "threshold": "700",
            "active": true, "recommendation": "resize emr-prod to db.r6g.2xlarge",
            "recommendedTo": "db.r6g.2xlarge"
        }]}));
        let text = status(&p, at("2027-01-15T08:59:00Z"), Paint(false));
        assert!(
            text.contains(
                "      recommended: resize emr-prod to db.r6g.2xlarge (to apply it: kubectl launch \
                 approve-resize launch emr-db)\n"
            ),
            "{text}"
        );
        let approve = Command::ApproveResize;
        assert_eq!(unusable(&p, approve, Some("emr-db")), None);
        assert_eq!(
            approve.refusal(Phase::Completed),
            None,
            "not a rollout command"
        );
        assert_eq!(
            unusable(&p, approve, Some("emr-dB")).as_deref(),
            Some("the policy has no trigger \"emr-dB\" in its status")
        );

        let status_of = p.status.as_mut().unwrap();
        status_of.triggers[0].recommendation = None;
        status_of.triggers[0].recommended_to = None;
        status_of.triggers[0].approval = serde_json::from_value(json!({
            "command": "liftoff.dev/approve-resize=emr-db@1", "by": "kubectl-launch at 2027-01-15T08:57:00Z",
            "at": "2027-01-15T08:57:01Z", "outcome": "set DBInstance emr-prod class from a to b"
        }))
        .unwrap();
        assert_eq!(
            unusable(&p, approve, Some("emr-db")).as_deref(),
            Some("nothing to approve: trigger emr-db recommends no resize now")
        );
        assert!(applied(&p, approve, "emr-db@1"));
        assert!(!applied(&p, approve, "emr-db@2"));
        let text = status(&p, at("2027-01-15T08:59:00Z"), Paint(false));
        assert!(
            text.contains(
                "      approved 1m 59s ago by kubectl-launch at 2027-01-15T08:57:00Z: set \
                 DBInstance emr-prod class from a to b\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn commands_that_do_not_fit_the_phase_are_refused_with_what_to_do() {
        assert_eq!(Command::Approve.refusal(Phase::AwaitingApproval), None);
        assert_eq!(
            Command::Approve.refusal(Phase::Paused),
            None,
            "kept until it can be used"
        );
        assert_eq!(Command::Abort.refusal(Phase::Completed), None);
        assert_eq!(
            Command::Resume.refusal(Phase::Baking).as_deref(),
            Some("the rollout is Baking: resume carries on after a pause or a rollback")
        );
        assert!(Command::Abort.refusal(Phase::Aborted).is_some());
        assert_eq!(Command::Retry.refusal(Phase::Aborted), None);
        assert_eq!(Command::Kill.refusal(Phase::Completed), None);
    }

    #[test]
    fn a_command_is_applied_once_its_id_is_recorded_and_a_go_defaults_to_the_next_stage() {
        let p = policy(json!({
            "rollout": {"phase": "AwaitingApproval", "stage": 0,
                        "appliedCommands": ["liftoff.dev/approve=gradual@1"]},
            "appliedSwitchCommands": ["liftoff.dev/kill-switch=reports@2"]
        }));
        assert!(applied(&p, Command::Approve, "gradual@1"));
        assert!(!applied(&p, Command::Approve, "gradual@3"));
        assert!(applied(&p, Command::Kill, "reports@2"));
        assert_eq!(next_stage(&p).as_deref(), Some("gradual"));
        assert_eq!(
            value(Some("gradual"), Timestamp::from_millisecond(5).unwrap()),
            "gradual@5"
        );
        assert_eq!(value(None, Timestamp::from_millisecond(5).unwrap()), "5");
    }

    #[test]
    fn history_lists_the_journal_in_order() {
        let p = policy(
            json!({"launch": {"startedAt": "2027-01-15T08:00:00Z", "journal": [
            {"at": "2027-01-15T08:00:00Z", "event": "StageAdvanced", "message": "entered stage internal-beta (100 users)"},
            {"at": "2027-01-15T10:00:00Z", "event": "AwaitingApproval", "message": "waiting for approval of stage gradual"}]}}),
        );
        assert_eq!(
            history(&p),
            "2027-01-15T08:00:00Z  LaunchStarted\n\
             2027-01-15T08:00:00Z  StageAdvanced      entered stage internal-beta (100 users)\n\
             2027-01-15T10:00:00Z  AwaitingApproval   waiting for approval of stage gradual\n"
        );
    }
}
