use serde_json::json;

use super::*;

fn spec() -> ContingencySpec {
    serde_json::from_value(json!({
        "configMap": "emr-kill-switches",
        "killSwitches": [
            {"name": "report-export", "description": "PDF export of reports",
             "offOnGateFailure": ["p95-latency-seconds"]},
            {"name": "live-dashboard", "offAtMax": ["api-cpu"]}
        ]
    }))
    .unwrap()
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn command(id: &str, off: bool, names: &[&str]) -> SwitchCommand {
    SwitchCommand {
        id: id.into(),
        by: Some("kubectl-annotate at 2027-01-15T09:00:00Z".into()),
        off,
        names: names.iter().map(|n| n.to_string()).collect(),
    }
}

fn on(d: &Decision) -> Vec<bool> {
    d.switches.iter().map(|s| s.enabled).collect()
}

#[test]
fn every_switch_starts_on_and_nothing_flips_without_a_reason() {
    let d = decide(&spec(), &[], &[], &[], &[], at(0));
    assert_eq!(on(&d), [true, true]);
    assert!(d.flips.is_empty() && d.problems.is_empty());
    assert_eq!(d.switches[0].since, None);
}

#[test]
fn a_person_switches_off_and_back_on_once_per_command_recording_who() {
    let off = command(
        "liftoff.dev/kill-switch=report-export,live-dashboard",
        true,
        &["report-export", "live-dashboard"],
    );
    let d = decide(&spec(), &[], &[], std::slice::from_ref(&off), &[], at(5));
    assert_eq!(on(&d), [false, false]);
    assert_eq!(
        d.flips[0].message,
        "kill switch report-export turned off (PDF export of reports) by kubectl-annotate at 2027-01-15T09:00:00Z"
    );
    let s = &d.switches[0];
    assert_eq!(s.since.as_ref().unwrap().0, at(5));
    assert_eq!(
        s.by.as_deref(),
        Some("kubectl-annotate at 2027-01-15T09:00:00Z")
    );
    // Presented again: nothing more.
    let again = decide(
        &spec(),
        &d.switches,
        &d.applied,
        std::slice::from_ref(&off),
        &[],
        at(6),
    );
    assert!(again.flips.is_empty());
    assert_eq!(again.switches, d.switches);
    // Restored by another command.
    let restore = command(
        "liftoff.dev/restore-switch=report-export",
        false,
        &["report-export"],
    );
    let d = decide(
        &spec(),
        &again.switches,
        &again.applied,
        &[off, restore],
        &[],
        at(7),
    );
    assert_eq!(on(&d), [true, false]);
    assert_eq!(d.flips.len(), 1);
    assert!(
        d.flips[0]
            .message
            .starts_with("kill switch report-export turned back on by ")
    );
}

#[test]
fn a_tripped_gate_switches_off_what_lists_it_and_only_a_person_restores_it() {
    let tripped = [Tripped::Gate {
        gate: "p95-latency-seconds",
        evidence: "gate p95-latency-seconds 0.9 > 0.5 (3/3 checks failed)",
    }];
    let d = decide(&spec(), &[], &[], &[], &tripped, at(10));
    assert_eq!(on(&d), [false, true]);
    assert_eq!(
        d.flips[0].message,
        "kill switch report-export turned off (PDF export of reports): gate p95-latency-seconds 0.9 > 0.5 (3/3 checks failed)"
    );
    assert_eq!(d.switches[0].by.as_deref(), Some("liftoff"));
    // The gate recovering changes nothing; a person does.
    let later = decide(&spec(), &d.switches, &d.applied, &[], &[], at(20));
    assert_eq!(on(&later), [false, true]);
    let restore = command(
        "liftoff.dev/restore-switch=report-export@1",
        false,
        &["report-export"],
    );
    let d = decide(
        &spec(),
        &later.switches,
        &later.applied,
        &[restore],
        &[],
        at(30),
    );
    assert_eq!(on(&d), [true, true]);
}

#[test]
fn a_command_naming_no_switch_is_reported_once() {
    let typo = command("liftoff.dev/kill-switch=reports", true, &["reports"]);
    let d = decide(&spec(), &[], &[], std::slice::from_ref(&typo), &[], at(0));
    assert_eq!(on(&d), [true, true]);
    assert_eq!(
        d.problems,
        [
            "liftoff.dev/kill-switch=reports names no kill switch \"reports\"; the switches are report-export, live-dashboard"
        ]
    );
    let again = decide(&spec(), &d.switches, &d.applied, &[typo], &[], at(1));
    assert!(again.problems.is_empty());
}

#[test]
fn switches_follow_the_spec_by_name() {
    let off = command(
        "liftoff.dev/kill-switch=live-dashboard",
        true,
        &["live-dashboard"],
    );
    let d = decide(&spec(), &[], &[], &[off], &[], at(0));
    let mut edited = spec();
    edited.kill_switches.reverse();
    let d = decide(&edited, &d.switches, &d.applied, &[], &[], at(1));
    let names: Vec<(&str, bool)> = d
        .switches
        .iter()
        .map(|s| (s.name.as_str(), s.enabled))
        .collect();
    assert_eq!(names, [("live-dashboard", false), ("report-export", true)]);
}

#[test]
fn a_trigger_at_its_maximum_switches_off_what_lists_it() {
    let tripped = [Tripped::AtMax {
        trigger: "api-cpu",
        evidence: "trigger api-cpu is beyond its threshold (70%) at replicas.max 40".into(),
    }];
    let d = decide(&spec(), &[], &[], &[], &tripped, at(0));
    assert_eq!(on(&d), [true, false]);
    assert_eq!(
        d.flips[0].message,
        "kill switch live-dashboard turned off: trigger api-cpu is beyond its threshold (70%) at replicas.max 40"
    );
    // Still at max next time: nothing more.
    let again = decide(&spec(), &d.switches, &d.applied, &[], &tripped, at(1));
    assert!(again.flips.is_empty());
}
