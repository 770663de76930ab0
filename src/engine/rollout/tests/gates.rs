//! Gate checks: the healthy window, failures in a row, unknown values, and the two policies.

use std::time::Duration;

use super::*;
use crate::crd::GateFailurePolicy::{Pause, Rollback};

const P95: &str = "p95-latency-seconds";
const LOGIN: &str = "login-success";

fn no_bakes(mut spec: RolloutSpec) -> RolloutSpec {
    for s in &mut spec.stages {
        s.bake = None;
    }
    spec
}

fn failures(d: &Decision, name: &str) -> u32 {
    d.state
        .gates
        .iter()
        .find(|g| g.name == name)
        .unwrap()
        .consecutive_failures
}

#[test]
fn the_first_gate_evaluation_is_one_interval_after_entering_a_stage() {
    let spec = gated(automatic(), 3, Pause);
    let mut run = Run::new(spec.clone());
    let d = run.step(0, &healthy(&spec));
    assert_eq!(d.state.gates_checked_at.as_ref().unwrap().0, at(0));
    for (t, due) in [(0, false), (59, false), (60, true), (61, true)] {
        assert_eq!(gates_due(&spec, &run.state, at(t)), due, "at {t}s");
    }
    assert!(
        d.state.gates.iter().all(|g| g.checked_at.is_none()),
        "readings at entry are about the old cohort"
    );
}

#[test]
fn a_baked_stage_waits_for_failure_threshold_passes_in_a_row() {
    let spec = gated(no_bakes(automatic()), 3, Pause);
    let mut run = Run::new(spec.clone());
    run.step(0, &healthy(&spec));
    let d = run.step(1, &healthy(&spec));
    assert_eq!((d.state.phase, d.state.stage), (Phase::Baking, Some(0)));
    assert!(
        d.message.contains("has baked; waiting for healthy gates: gate p95-latency-seconds has passed 0/3 checks in a row"),
        "{}",
        d.message
    );
    assert_eq!(
        d.requeue_after,
        Some(Duration::from_secs(59)),
        "the next evaluation, not polling"
    );
    for (t, passes) in [(60, 1), (120, 2)] {
        let d = run.step(t, &healthy(&spec));
        assert_eq!(d.state.stage, Some(0), "at {t}s");
        assert_eq!(d.state.gates[0].consecutive_passes, passes);
    }
    let d = run.step(180, &healthy(&spec));
    assert_eq!((d.state.stage, d.users), (Some(1), Users::Count(500)));
}

/// While a stage bakes, its deadline holds it: the count of passes in a row is not told (it
/// would change the status message at every evaluation), a failing gate is.
#[test]
fn a_baking_stage_tells_its_deadline_not_the_pass_count_and_tells_a_failure() {
    let spec = gated(automatic(), 3, Pause);
    let mut run = Run::new(spec.clone());
    for t in [0, 1, 60, 120] {
        let d = run.step(t, &healthy(&spec));
        assert_eq!(d.state.phase, Phase::Baking);
        assert!(d.message.contains("baking 10m, until"), "{}", d.message);
        assert!(
            !d.message.contains("checks in a row"),
            "at {t}s: {}",
            d.message
        );
    }
    let d = run.step(180, &reading(&spec, P95, GateReading::Value(0.9)));
    assert!(d.message.contains("baking 10m, until"), "{}", d.message);
    assert!(
        d.message.contains(P95),
        "a failing gate is told: {}",
        d.message
    );
}

#[test]
fn readings_between_due_evaluations_are_not_counted() {
    let spec = gated(automatic(), 3, Pause);
    let mut run = Run::new(spec.clone());
    run.step(0, &healthy(&spec));
    let bad = reading(&spec, P95, GateReading::Value(0.9));
    for t in [60, 60, 61, 119] {
        assert_eq!(failures(&run.step(t, &bad), P95), 1, "at {t}s");
    }
    assert_eq!(failures(&run.step(120, &bad), P95), 2);
}

#[test]
fn failures_in_a_row_pause_with_the_failing_value_in_the_message() {
    // (check, value, how the message shows it)
    let table = [
        (
            P95,
            0.62,
            "gate p95-latency-seconds 0.62 > 0.5 (3/3 checks failed)",
        ),
        (
            LOGIN,
            0.97,
            "gate login-success 0.97 < 0.99 (3/3 checks failed)",
        ),
    ];
    for (name, value, shown) in table {
        let spec = gated(automatic(), 3, Pause);
        let mut run = Run::new(spec.clone());
        run.healthy_until(0, 120);
        let bad = reading(&spec, name, GateReading::Value(value));
        for t in [180, 240] {
            let d = run.step(t, &bad);
            assert_eq!(
                d.state.phase,
                Phase::Baking,
                "{name} at {t}s: below the threshold"
            );
            assert!(d.events.is_empty());
        }
        let d = run.step(300, &bad);
        assert_eq!(d.state.phase, Phase::Paused);
        assert_eq!(d.users, Users::Count(100), "Pause holds the users");
        assert_eq!(kinds(&d), [EventKind::GateFailed, EventKind::Paused]);
        assert!(
            d.events[0].message.starts_with(shown),
            "{}",
            d.events[0].message
        );
        assert!(
            d.message
                .starts_with(&format!("paused: {shown}; holding 100 users at stage a")),
            "{}",
            d.message
        );
        let hold = d.state.hold.as_ref().unwrap();
        assert_eq!(
            (hold.cause, hold.by.as_deref()),
            (HoldCause::Gate, Some(name))
        );
    }
}

#[test]
fn a_pass_resets_the_failure_count_and_failures_block_advancing() {
    let spec = gated(no_bakes(automatic()), 3, Pause);
    let mut run = Run::new(spec.clone());
    run.step(0, &healthy(&spec));
    let bad = reading(&spec, P95, GateReading::Value(0.7));
    run.step(60, &bad);
    run.step(120, &bad);
    let d = run.step(180, &healthy(&spec));
    assert_eq!(failures(&d, P95), 0);
    assert_eq!(d.state.stage, Some(0), "one pass is not a healthy window");
    let d = run.step(240, &bad);
    assert!(
        d.message
            .contains("gate p95-latency-seconds 0.7 > 0.5 (1/3 checks failed)"),
        "{}",
        d.message
    );
    assert_eq!(d.state.phase, Phase::Baking);
}

#[test]
fn an_unknown_value_holds_without_counting_as_a_failure_and_names_the_gate() {
    for error in [
        "prometheus: connection refused",
        "query returned 3 series, want 1",
    ] {
        let spec = gated(automatic(), 1, Rollback);
        let mut run = Run::new(spec.clone());
        run.healthy_until(0, 9 * MIN);
        let unknown = reading(&spec, LOGIN, GateReading::unknown(error));
        for t in [10 * MIN, 11 * MIN, 12 * MIN] {
            let d = run.step(t, &unknown);
            assert_eq!(
                (d.state.phase, d.state.stage),
                (Phase::Baking, Some(0)),
                "{error} at {t}s"
            );
            assert_eq!(d.users, Users::Count(100), "no advance, no rollback");
            assert!(d.events.is_empty());
            assert_eq!(failures(&d, LOGIN), 0);
            assert!(
                d.message.contains(&format!(
                    "gate login-success is unknown ({error}), so it cannot advance"
                )),
                "{}",
                d.message
            );
        }
        let d = run.step(13 * MIN, &healthy(&spec));
        assert_eq!(
            d.state.stage,
            Some(1),
            "the passes before the outage still count"
        );
    }
}

#[test]
fn an_unknown_reading_outside_the_schedule_still_holds_the_stage() {
    let mut spec = gated(automatic(), 3, Pause);
    spec.stages[0].bake = Some(crate::crd::Duration::from_secs(630));
    let mut run = Run::new(spec.clone());
    run.healthy_until(0, 10 * MIN);
    let unknown = reading(&spec, P95, GateReading::unknown("timeout"));
    assert!(!gates_due(&spec, &run.state, at(630)));
    let d = run.step(630, &unknown);
    assert_eq!(d.state.stage, Some(0));
    assert!(
        d.message
            .contains("gate p95-latency-seconds is unknown (timeout)"),
        "{}",
        d.message
    );
    assert_eq!(run.step(630, &healthy(&spec)).state.stage, Some(1));
}

#[test]
fn an_unknown_value_between_failures_does_not_break_the_streak() {
    let spec = gated(automatic(), 3, Pause);
    let mut run = Run::new(spec.clone());
    run.step(0, &healthy(&spec));
    let bad = reading(&spec, P95, GateReading::Value(2.0));
    run.step(60, &bad);
    run.step(120, &bad);
    let d = run.step(
        180,
        &reading(&spec, P95, GateReading::unknown("scrape failed")),
    );
    assert_eq!((d.state.phase, failures(&d, P95)), (Phase::Baking, 2));
    assert_eq!(run.step(240, &bad).state.phase, Phase::Paused);
}

#[test]
fn missing_or_non_finite_readings_count_as_unknown() {
    let spec = gated(automatic(), 3, Pause);
    // (inputs at the first due evaluation, the error shown for p95)
    let table = [
        (
            Inputs::default().with_gate(LOGIN, GateReading::Value(1.0)),
            "no reading was taken for this evaluation",
        ),
        (
            reading(&spec, P95, GateReading::Value(f64::NAN)),
            "the query returned NaN",
        ),
        (
            reading(&spec, P95, GateReading::Value(f64::INFINITY)),
            "the query returned inf",
        ),
    ];
    for (inputs, error) in table {
        let mut run = Run::new(spec.clone());
        run.step(0, &healthy(&spec));
        let d = run.step(60, &inputs);
        let g = &d.state.gates[0];
        assert_eq!(
            (g.value, g.passing, g.error.as_deref()),
            (None, None, Some(error))
        );
        assert_eq!(g.consecutive_failures, 0);
    }
}

#[test]
fn real_failures_of_one_check_act_even_while_another_is_unknown() {
    let spec = gated(automatic(), 2, Pause);
    let mut run = Run::new(spec.clone());
    run.step(0, &healthy(&spec));
    let inputs =
        reading(&spec, P95, GateReading::Value(0.8)).with_gate(LOGIN, GateReading::unknown("down"));
    run.step(60, &inputs);
    let d = run.step(120, &inputs);
    assert_eq!(d.state.phase, Phase::Paused);
    assert_eq!(d.state.hold.unwrap().by.as_deref(), Some(P95));
}

#[test]
fn rollback_returns_to_the_previous_stages_users_with_a_fresh_bake() {
    let spec = gated(automatic(), 2, Rollback);
    let mut run = Run::new(spec.clone());
    run.healthy_until(0, 10 * MIN);
    assert_eq!(run.stage(), Some(1));
    let bad = reading(&spec, P95, GateReading::Value(0.62));
    run.step(11 * MIN, &bad);
    let d = run.step(12 * MIN, &bad);
    assert_eq!(d.state.phase, Phase::RolledBack);
    assert_eq!((d.state.stage, d.users), (Some(0), Users::Count(100)));
    assert_eq!(kinds(&d), [EventKind::GateFailed, EventKind::RolledBack]);
    assert_eq!(d.state.bake_until.as_ref().unwrap().0, at(22 * MIN));
    assert!(
        d.message.starts_with("rolled back from stage b to stage a (100 users): gate p95-latency-seconds 0.62 > 0.5 (2/2 checks failed); holding 100 users; resume to continue from here, or retry stage b"),
        "{}",
        d.message
    );
    assert_eq!(
        d.requeue_after,
        Some(Duration::from_secs(60)),
        "gates are still shown while held"
    );
    let later = run.step(HOUR, &healthy(&spec));
    assert_eq!(
        (later.state.phase, later.state.stage),
        (Phase::RolledBack, Some(0)),
        "held until a person acts"
    );
}

#[test]
fn rollback_from_the_first_stage_admits_nobody() {
    let spec = gated(automatic(), 2, Rollback);
    let mut run = Run::new(spec.clone());
    run.step(0, &healthy(&spec));
    let bad = reading(&spec, LOGIN, GateReading::Value(0.5));
    run.step(60, &bad);
    let d = run.step(120, &bad);
    assert_eq!(
        (d.state.phase, d.state.stage, d.users),
        (Phase::RolledBack, None, Users::NONE)
    );
    assert!(
        d.message
            .starts_with("rolled back from stage a to no stage (0 users)"),
        "{}",
        d.message
    );
    assert_eq!(d.requeue_after, None, "nobody admitted, nothing to observe");
}

#[test]
fn a_failing_gate_while_awaiting_approval_still_pauses() {
    let mut spec = gated(automatic(), 3, Pause);
    spec.stages[1].approval = Approval::Manual;
    let mut run = Run::new(spec.clone());
    let d = run.healthy_until(0, 10 * MIN);
    assert_eq!(d.state.phase, Phase::AwaitingApproval);
    let bad = reading(&spec, P95, GateReading::Value(1.0));
    run.step(11 * MIN, &bad);
    run.step(12 * MIN, &bad);
    assert_eq!(run.step(13 * MIN, &bad).state.phase, Phase::Paused);
}

#[test]
fn gates_keep_reporting_while_paused_but_never_act_again() {
    let spec = gated(automatic(), 1, Pause);
    let mut run = Run::new(spec.clone());
    run.step(0, &healthy(&spec));
    let bad = reading(&spec, P95, GateReading::Value(0.9));
    assert_eq!(run.step(60, &bad).state.phase, Phase::Paused);
    let d = run.step(120, &reading(&spec, P95, GateReading::Value(0.95)));
    assert!(d.events.is_empty());
    assert_eq!(d.state.gates[0].value, Some(0.95));
    assert_eq!(d.state.gates[0].checked_at.as_ref().unwrap().0, at(120));
    assert!(
        d.message.contains("0.9 > 0.5 (1/1 checks failed)"),
        "the cause stays: {}",
        d.message
    );
}

#[test]
fn changed_bounds_restart_a_checks_count() {
    let spec = gated(automatic(), 3, Pause);
    let mut run = Run::new(spec.clone());
    run.step(0, &healthy(&spec));
    let slow = reading(&spec, P95, GateReading::Value(0.62));
    run.step(60, &slow);
    run.step(120, &slow);
    run.spec.gates.as_mut().unwrap().checks[0].max = Some(0.7);
    let d = run.step(180, &slow);
    let g = &d.state.gates[0];
    assert_eq!(
        (
            g.max,
            g.passing,
            g.consecutive_failures,
            g.consecutive_passes
        ),
        (Some(0.7), Some(true), 0, 1)
    );
}

#[test]
fn an_unknown_reading_keeps_even_the_first_stage_from_starting() {
    let spec = gated(automatic(), 2, Pause);
    let mut run = Run::new(spec.clone());
    let d = run.step(
        0,
        &reading(&spec, P95, GateReading::unknown("prometheus is down")),
    );
    assert_eq!((d.state.phase, d.users), (Phase::Pending, Users::NONE));
    assert_eq!(
        d.message,
        "not started: gate p95-latency-seconds is unknown (prometheus is down), so stage a (100 users) is not entered yet"
    );
    assert_eq!(
        d.requeue_after,
        Some(Duration::from_secs(60)),
        "look again, do not wait forever"
    );
    assert_eq!(run.step(1, &healthy(&spec)).users, Users::Count(100));
}

/// `spec` whose login check (a `min` check) treats no series as `policy`.
fn on_no_data(mut spec: RolloutSpec, policy: crate::crd::NoDataPolicy) -> RolloutSpec {
    for c in spec.gates.iter_mut().flat_map(|g| &mut g.checks) {
        if c.name == LOGIN {
            c.on_no_data = policy;
        }
    }
    spec
}

#[test]
fn no_data_holds_by_default_and_status_says_since_when() {
    let spec = no_bakes(gated(automatic(), 2, Pause));
    let mut run = Run::new(spec.clone());
    run.step(0, &healthy(&spec));
    let quiet = reading(&spec, LOGIN, GateReading::NoData);
    for t in [MIN, 2 * MIN, 30 * MIN] {
        let d = run.step(t, &quiet);
        assert_eq!((d.state.phase, d.state.stage), (Phase::Baking, Some(0)));
        assert!(d.events.is_empty(), "neither advances nor fails");
        let g = d.state.gates.iter().find(|g| g.name == LOGIN).unwrap();
        assert_eq!(
            g.no_data_since.as_ref().unwrap().0,
            at(MIN),
            "since the first"
        );
        assert_eq!((g.passing, g.consecutive_failures), (None, 0));
    }
    let d = run.last.clone().unwrap();
    assert!(
        d.message.contains(&format!(
            "gate login-success is unknown (the query has returned no series since {}; onNoData: Hold)",
            at(MIN)
        )),
        "{}",
        d.message
    );
    // Data again: the no-data clock stops.
    let d = run.step(31 * MIN, &healthy(&spec));
    let g = d.state.gates.iter().find(|g| g.name == LOGIN).unwrap();
    assert_eq!(g.no_data_since, None);
}

#[test]
fn no_data_can_pass_so_a_quiet_healthy_launch_advances() {
    let spec = no_bakes(on_no_data(
        gated(automatic(), 2, Pause),
        crate::crd::NoDataPolicy::Pass,
    ));
    let mut run = Run::new(spec.clone());
    run.step(0, &healthy(&spec));
    let quiet = reading(&spec, LOGIN, GateReading::NoData);
    run.step(MIN, &quiet);
    let d = run.step(2 * MIN, &quiet);
    assert_eq!((d.state.stage, d.users), (Some(1), Users::Count(500)));
}

#[test]
fn no_data_can_fail_and_trip_the_gate_saying_so() {
    let spec = on_no_data(gated(automatic(), 2, Pause), crate::crd::NoDataPolicy::Fail);
    let mut run = Run::new(spec.clone());
    run.step(0, &healthy(&spec));
    let quiet = reading(&spec, LOGIN, GateReading::NoData);
    run.step(MIN, &quiet);
    let d = run.step(2 * MIN, &quiet);
    assert_eq!(d.state.phase, Phase::Paused);
    assert_eq!(kinds(&d), [EventKind::GateFailed, EventKind::Paused]);
    assert!(
        d.events[0].message.starts_with(&format!(
            "gate login-success has had no data since {} (onNoData: Fail) (2/2 checks failed)",
            at(MIN)
        )),
        "{}",
        d.events[0].message
    );
}

#[test]
fn an_unreadable_source_is_unknown_whatever_on_no_data_says() {
    for policy in [
        crate::crd::NoDataPolicy::Pass,
        crate::crd::NoDataPolicy::Fail,
    ] {
        let spec = no_bakes(on_no_data(gated(automatic(), 2, Pause), policy));
        let mut run = Run::new(spec.clone());
        run.step(0, &healthy(&spec));
        let down = reading(
            &spec,
            LOGIN,
            GateReading::unknown("Prometheus is unreachable"),
        );
        for t in [MIN, 2 * MIN, 3 * MIN] {
            let d = run.step(t, &down);
            assert_eq!(
                (d.state.phase, d.state.stage),
                (Phase::Baking, Some(0)),
                "{policy:?}"
            );
            assert!(d.events.is_empty(), "{policy:?}");
        }
    }
}

#[test]
fn waiting_on_names_every_gate_that_holds_the_stage_and_why() {
    use crate::crd::WaitReason::*;
    let spec = no_bakes(gated(automatic(), 3, Pause));
    let mut run = Run::new(spec.clone());
    run.step(0, &healthy(&spec));
    let both_unknown = healthy(&spec)
        .with_gate(P95, GateReading::unknown("timeout"))
        .with_gate(LOGIN, GateReading::NoData);
    let d = run.step(MIN, &both_unknown);
    let w = d.waiting_on.clone().unwrap();
    assert_eq!(
        (w.reason, w.summary.as_str()),
        (
            GatesUnknown,
            "gates unknown: p95-latency-seconds, login-success"
        )
    );
    assert!(
        d.message
            .contains("gates p95-latency-seconds (timeout), login-success ("),
        "{}",
        d.message
    );
    let slow = reading(&spec, P95, GateReading::Value(0.9));
    let d = run.step(2 * MIN, &slow);
    let w = d.waiting_on.unwrap();
    assert_eq!(
        (w.reason, w.summary.as_str()),
        (GatesFailing, "gates failing: p95-latency-seconds")
    );
    run.step(3 * MIN, &slow);
    let d = run.step(4 * MIN, &slow);
    assert_eq!(d.state.phase, Phase::Paused);
    let w = d.waiting_on.unwrap();
    assert_eq!(w.reason, Person);
    assert!(
        w.summary
            .starts_with("resume or retry: gate p95-latency-seconds 0.9 > 0.5"),
        "{}",
        w.summary
    );
}
