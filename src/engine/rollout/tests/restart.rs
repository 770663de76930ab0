//! Restarts: the state is all there is, it survives status exactly, and evaluations are repeatable.

use k8s_openapi::jiff::SignedDuration;

use super::*;
use crate::crd::GateFailurePolicy::{Pause, Rollback};

const P95: &str = "p95-latency-seconds";

/// `at(secs)` plus some milliseconds, as a real clock would give.
fn ragged(secs: i64, millis: i64) -> k8s_openapi::jiff::Timestamp {
    at(secs)
        .checked_add(SignedDuration::from_millis(millis))
        .unwrap()
}

fn through_status(state: &RolloutState) -> RolloutState {
    serde_json::from_value(serde_json::to_value(state).unwrap()).unwrap()
}

/// A busy script: gates, an approval, failures, a rollback, a resume; (seconds, inputs).
fn script(spec: &RolloutSpec) -> Vec<(i64, Inputs)> {
    let bad = reading(spec, P95, GateReading::Value(0.9));
    let unknown = reading(spec, P95, GateReading::unknown("down"));
    let mut out = Vec::new();
    for i in 0..80 {
        let t = i * 47;
        let inputs = match i {
            20..=24 => bad.clone(),
            30..=33 => unknown.clone(),
            40 => healthy(spec).with_command(command("r1", Action::Resume)),
            _ => healthy(spec).with_command(approve("go-b", 1)),
        };
        out.push((t, inputs));
    }
    out
}

#[test]
fn the_state_survives_status_exactly_with_camel_case_keys() {
    let mut spec = gated(automatic(), 2, Rollback);
    spec.stages[1].approval = Approval::Manual;
    let mut run = Run::new(spec.clone());
    for (i, (t, inputs)) in script(&spec).into_iter().enumerate() {
        let d = step(
            &run.spec,
            &run.state,
            &inputs,
            ragged(t, 1 + (i as i64 * 137) % 998),
        );
        assert_eq!(through_status(&d.state), d.state, "step {i}");
        run.state = d.state;
    }
    let json = serde_json::to_value(&run.state).unwrap();
    for key in [
        "phase",
        "stage",
        "stageName",
        "users",
        "stageStartedAt",
        "bakeUntil",
        "gatesCheckedAt",
        "gates",
        "appliedCommands",
    ] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
    assert!(json["gates"][0].get("consecutivePasses").is_some());
    assert!(json["users"].is_string());
}

#[test]
fn an_operator_restarted_before_every_evaluation_decides_exactly_the_same() {
    let mut spec = gated(automatic(), 2, Rollback);
    spec.stages[1].approval = Approval::Manual;
    let (mut kept, mut restarted) = (RolloutState::default(), RolloutState::default());
    for (i, (t, inputs)) in script(&spec).into_iter().enumerate() {
        let now = ragged(t, (i as i64 * 311) % 1000);
        let a = step(&spec, &kept, &inputs, now);
        let b = step(&spec, &through_status(&restarted), &inputs, now);
        assert_eq!(a, b, "step {i} at {t}s");
        kept = a.state;
        restarted = b.state;
    }
}

#[test]
fn a_restart_mid_bake_keeps_the_deadline() {
    let mut run = Run::new(automatic());
    run.step(0, &Inputs::default());
    let deadline = run.state.bake_until.clone();
    for t in [1, 2 * MIN, 7 * MIN, 10 * MIN - 1] {
        let d = step(
            &run.spec,
            &through_status(&run.state),
            &Inputs::default(),
            ragged(t, 900),
        );
        assert_eq!(d.state.bake_until, deadline, "at {t}s");
        assert_eq!(d.state.stage, Some(0));
    }
    let d = step(
        &run.spec,
        &through_status(&run.state),
        &Inputs::default(),
        at(10 * MIN),
    );
    assert_eq!(d.state.stage, Some(1), "no stage repeated or skipped");
}

#[test]
fn a_stage_recorded_but_never_published_bakes_afresh_once_the_new_leader_publishes_it() {
    let mut run = Run::new(gated(automatic(), 2, Pause));
    run.step(0, &Inputs::default());
    // The operator that entered stage a died before publishing it; a new leader finds it 12
    // minutes later, past the 10m bake, with the gates' healthy window already full.
    let unpublished = Inputs {
        unpublished: true,
        ..healthy(&run.spec)
    };
    let mut found = through_status(&run.state);
    found
        .gates
        .iter_mut()
        .for_each(|g| g.consecutive_passes = 2);
    let d = step(&run.spec, &found, &unpublished, at(12 * MIN));
    assert_eq!(
        d.state.stage,
        Some(0),
        "not left before anyone was admitted"
    );
    assert_eq!(d.state.users, Users::Count(100));
    assert_eq!(d.state.bake_until.as_ref().map(|t| t.0), Some(at(22 * MIN)));
    assert!(
        d.events.is_empty(),
        "no second StageAdvanced: {:?}",
        kinds(&d)
    );
    run.state = d.state;
    // Published from then on: it advances after its own bake with healthy gates, not before.
    let d = run.healthy_until(12 * MIN, 22 * MIN - 1);
    assert_eq!(d.state.stage, Some(0));
    let d = run.healthy_until(22 * MIN, 22 * MIN);
    assert_eq!(d.state.stage, Some(1), "{}", d.message);
}

#[test]
fn evaluating_again_at_the_same_instant_changes_nothing() {
    for policy in [Pause, Rollback] {
        let mut spec = gated(automatic(), 2, policy);
        spec.stages[1].approval = Approval::Manual;
        let mut state = RolloutState::default();
        for (i, (t, inputs)) in script(&spec).into_iter().enumerate() {
            let now = ragged(t, 500);
            let first = step(&spec, &state, &inputs, now);
            let again = step(&spec, &first.state, &inputs, now);
            assert!(
                again.events.is_empty(),
                "{policy:?} step {i}: {:?}",
                again.events
            );
            assert_eq!(again.state, first.state, "{policy:?} step {i}");
            assert_eq!(again.message, first.message);
            assert_eq!(again.requeue_after, first.requeue_after);
            state = first.state;
        }
    }
}

#[test]
fn the_state_schema_keys_gates_by_name() {
    let schema = serde_json::to_value(schemars::schema_for!(RolloutState)).unwrap();
    let gates = &schema["properties"]["gates"];
    assert_eq!(gates["x-kubernetes-list-type"], "map", "{gates}");
    assert_eq!(gates["x-kubernetes-list-map-keys"][0], "name");
    assert_eq!(schema["properties"]["users"]["type"], "string");
}
