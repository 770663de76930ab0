//! People's commands: pause, resume, retry, abort, approve; each id applied once.

use std::time::Duration;

use super::*;
use crate::crd::GateFailurePolicy::{Pause, Rollback};

const P95: &str = "p95-latency-seconds";

fn pause(id: &str) -> Command {
    command(id, Action::Pause)
}
fn resume(id: &str) -> Command {
    command(id, Action::Resume)
}
fn retry(id: &str) -> Command {
    command(id, Action::Retry)
}
fn abort(id: &str) -> Command {
    command(id, Action::Abort)
}
fn with(commands: &[Command]) -> Inputs {
    Inputs {
        commands: commands.to_vec(),
        ..Inputs::default()
    }
}

/// A gated run (threshold 2) rolled back from stage b to stage a at 12m.
fn rolled_back(spec: RolloutSpec) -> Run {
    let mut run = Run::new(gated(spec, 2, Rollback));
    run.healthy_until(0, 10 * MIN);
    let bad = reading(&run.spec, P95, GateReading::Value(0.9));
    run.step(11 * MIN, &bad);
    assert_eq!(run.step(12 * MIN, &bad).state.phase, Phase::RolledBack);
    run
}

#[test]
fn pause_holds_the_users_and_resume_keeps_the_bake_deadline() {
    let mut run = Run::new(automatic());
    run.step(0, &Inputs::default());
    let d = run.step(MIN, &with(&[pause("p1")]));
    assert_eq!((d.state.phase, d.users), (Phase::Paused, Users::Count(100)));
    assert_eq!(kinds(&d), [EventKind::Paused]);
    assert_eq!(
        d.message,
        "paused by bob; holding 100 users at stage a; resume to continue"
    );
    assert_eq!(d.requeue_after, None, "no gates: only a command moves it");
    let d = run.step(5 * MIN, &with(&[pause("p1"), resume("r1")]));
    assert_eq!(kinds(&d), [EventKind::Resumed]);
    assert_eq!(d.state.phase, Phase::Baking);
    assert_eq!(
        d.state.bake_until.as_ref().unwrap().0,
        at(10 * MIN),
        "the deadline never moves"
    );
    assert_eq!(d.requeue_after, Some(Duration::from_secs(5 * 60)));
}

#[test]
fn a_paused_rollout_does_not_advance_past_its_bake_until_resumed() {
    let mut run = Run::new(automatic());
    run.step(0, &Inputs::default());
    run.step(MIN, &with(&[pause("p1")]));
    let d = run.step(HOUR, &with(&[pause("p1")]));
    assert_eq!((d.state.phase, d.state.stage), (Phase::Paused, Some(0)));
    assert!(d.events.is_empty());
    let d = run.step(HOUR + 1, &with(&[pause("p1"), resume("r1")]));
    assert_eq!(kinds(&d), [EventKind::Resumed, EventKind::StageAdvanced]);
    assert_eq!(d.users, Users::Count(500));
}

#[test]
fn resume_restarts_failure_counts_so_a_gate_must_fail_again_to_act() {
    let spec = gated(automatic(), 3, Pause);
    let mut run = Run::new(spec.clone());
    run.step(0, &healthy(&spec));
    let bad = reading(&spec, P95, GateReading::Value(0.8));
    for t in [60, 120, 180] {
        run.step(t, &bad);
    }
    assert_eq!(run.state.phase, Phase::Paused);
    let d = run.step(200, &bad.clone().with_command(resume("r1")));
    assert_eq!(d.state.gates[0].consecutive_failures, 0);
    let d = run.step(240, &bad);
    assert_eq!(
        (d.state.phase, d.state.gates[0].consecutive_failures),
        (Phase::Baking, 1)
    );
}

#[test]
fn retry_after_a_pause_starts_the_stage_over() {
    let spec = gated(automatic(), 1, Pause);
    let mut run = Run::new(spec.clone());
    run.step(0, &healthy(&spec));
    run.step(60, &reading(&spec, P95, GateReading::Value(0.8)));
    let d = run.step(100, &with(&[retry("t1")]));
    assert_eq!(kinds(&d), [EventKind::Retried, EventKind::StageAdvanced]);
    assert_eq!((d.state.phase, d.state.stage), (Phase::Baking, Some(0)));
    assert_eq!(d.state.stage_started_at.as_ref().unwrap().0, at(100));
    assert_eq!(d.state.bake_until.as_ref().unwrap().0, at(100 + 10 * MIN));
    assert!(
        d.state
            .gates
            .iter()
            .all(|g| g.checked_at.is_none() && g.consecutive_failures == 0)
    );
}

#[test]
fn resume_after_a_rollback_continues_from_the_stage_rolled_back_to() {
    let mut run = rolled_back(automatic());
    let d = run.step(13 * MIN, &healthy(&run.spec).with_command(resume("r1")));
    assert_eq!(
        (d.state.phase, d.state.stage, d.users),
        (Phase::Baking, Some(0), Users::Count(100))
    );
    assert_eq!(
        d.state.bake_until.as_ref().unwrap().0,
        at(22 * MIN),
        "its bake began at the rollback"
    );
    let d = run.healthy_until(14 * MIN, 22 * MIN - 1);
    assert_eq!(d.state.stage, Some(0));
    assert_eq!(run.healthy_until(22 * MIN, 22 * MIN).state.stage, Some(1));
}

#[test]
fn retry_after_a_rollback_reenters_the_failed_stage_without_approval() {
    let mut spec = automatic();
    spec.stages[1].approval = Approval::Manual;
    let mut run = Run::new(gated(spec, 2, Rollback));
    run.healthy_until(0, 10 * MIN);
    run.step(
        10 * MIN + 30,
        &healthy(&run.spec).with_command(approve("go-b", 1)),
    );
    let bad = reading(&run.spec, P95, GateReading::Value(0.9));
    run.step(11 * MIN + 30, &bad);
    let d = run.step(12 * MIN + 30, &bad);
    assert_eq!((d.state.phase, d.state.stage), (Phase::RolledBack, Some(0)));
    let d = run.step(13 * MIN, &with(&[retry("t1")]));
    assert_eq!((d.state.stage, d.users), (Some(1), Users::Count(500)));
    assert_eq!(kinds(&d), [EventKind::Retried, EventKind::StageAdvanced]);
    assert_eq!(d.state.bake_until.as_ref().unwrap().0, at(23 * MIN));
}

#[test]
fn abort_admits_nobody_and_retry_starts_over_from_the_first_stage() {
    let mut run = Run::new(automatic());
    run.step(0, &Inputs::default());
    run.step(10 * MIN, &Inputs::default());
    let d = run.step(11 * MIN, &with(&[abort("x1")]));
    assert_eq!(
        (d.state.phase, d.users, d.state.stage),
        (Phase::Aborted, Users::NONE, Some(1))
    );
    assert_eq!(
        d.message,
        "aborted by bob at stage b: nobody is admitted; retry to start over"
    );
    assert_eq!(d.requeue_after, None);
    assert!(run.step(HOUR, &with(&[abort("x1")])).events.is_empty());
    let d = run.step(HOUR + 1, &with(&[abort("x1"), retry("t1")]));
    assert_eq!(kinds(&d), [EventKind::Retried, EventKind::StageAdvanced]);
    assert_eq!(
        (d.state.phase, d.state.stage, d.users),
        (Phase::Baking, Some(0), Users::Count(100))
    );
}

#[test]
fn a_command_id_is_applied_once_however_often_it_is_presented() {
    let mut run = Run::new(automatic());
    run.step(0, &Inputs::default());
    run.step(MIN, &with(&[pause("p1")]));
    run.step(2 * MIN, &with(&[pause("p1"), resume("r1")]));
    let d = run.step(3 * MIN, &with(&[pause("p1"), resume("r1")]));
    assert_eq!(
        d.state.phase,
        Phase::Baking,
        "the old pause is not applied again"
    );
    assert!(d.events.is_empty());
    let d = run.step(4 * MIN, &with(&[pause("p2"), resume("r1")]));
    assert_eq!(d.state.phase, Phase::Paused, "a new pause is");
}

#[test]
fn a_consumed_approval_is_never_applied_twice() {
    let mut spec = automatic();
    spec.stages[1].approval = Approval::Manual;
    let mut run = Run::new(gated(spec, 2, Rollback));
    run.healthy_until(0, 10 * MIN);
    let go = healthy(&run.spec).with_command(approve("go-b", 1));
    assert_eq!(run.step(10 * MIN + 30, &go).state.stage, Some(1));
    let bad = reading(&run.spec, P95, GateReading::Value(0.9)).with_command(approve("go-b", 1));
    run.step(11 * MIN + 30, &bad);
    assert_eq!(run.step(12 * MIN + 30, &bad).state.phase, Phase::RolledBack);
    run.step(12 * MIN + 40, &go.clone().with_command(resume("r1")));
    let mut t = 13 * MIN;
    while t <= 30 * MIN {
        let d = run.step(t, &go.clone().with_command(resume("r1")));
        assert_eq!(
            d.state.stage,
            Some(0),
            "the old approval does not re-enter b at {t}s"
        );
        t += MIN;
    }
    assert_eq!(run.state.phase, Phase::AwaitingApproval);
    let again = healthy(&run.spec).with_command(approve("go-b-again", 1));
    assert_eq!(run.step(t, &again).state.stage, Some(1));
}

#[test]
fn commands_that_do_not_fit_the_phase_are_refused_once_with_the_reason() {
    let baking = {
        let mut run = Run::new(automatic());
        run.step(0, &Inputs::default());
        run
    };
    let completed = {
        let mut run = Run::new(automatic());
        for t in [0, 10 * MIN, 20 * MIN, 20 * MIN + 1] {
            run.step(t, &Inputs::default());
        }
        run
    };
    let aborted = {
        let mut run = Run::new(automatic());
        run.step(0, &with(&[abort("x0")]));
        run
    };
    // (rollout, command, evaluated at, the refusal's first words)
    let table = [
        (
            &baking,
            resume("c"),
            MIN,
            "resume by bob ignored: the rollout is Baking at stage a (100 users), not paused or rolled back",
        ),
        (
            &baking,
            retry("c"),
            MIN,
            "retry by bob ignored: the rollout is Baking at stage a (100 users)",
        ),
        (
            &completed,
            pause("c"),
            HOUR,
            "pause by bob ignored: the rollout is Completed at stage c (All users)",
        ),
        (
            &completed,
            approve("c", 2),
            HOUR,
            "approval by alice of stage c (index 2) ignored",
        ),
        (
            &aborted,
            abort("c"),
            HOUR,
            "abort by bob ignored: the rollout is already aborted",
        ),
        (
            &aborted,
            resume("c"),
            HOUR,
            "resume by bob ignored: the rollout is Aborted",
        ),
    ];
    for (run, cmd, now, words) in table {
        let inputs = with(std::slice::from_ref(&cmd));
        let d = step(&run.spec, &run.state, &inputs, at(now));
        assert_eq!(kinds(&d), [EventKind::CommandIgnored], "{cmd:?}");
        assert!(
            d.events[0].message.starts_with(words),
            "{}",
            d.events[0].message
        );
        assert_eq!(d.state.phase, run.state.phase);
        let again = step(&run.spec, &d.state, &inputs, at(now));
        assert!(again.events.is_empty(), "{cmd:?} refused once");
    }
}

#[test]
fn a_suspended_policy_changes_nothing_and_commands_wait_until_it_is_lifted() {
    let mut run = Run::new(automatic());
    run.step(0, &Inputs::default());
    let suspended = Inputs {
        suspended: true,
        ..with(&[pause("p1")])
    };
    let d = run.step(MIN, &suspended);
    assert_eq!(
        d.message,
        "suspended (spec.suspend), nothing changes: stage a (100 users) baking 10m, until 2025-06-15T15:16:40Z"
    );
    let d = run.step(HOUR, &suspended);
    assert_eq!(
        (d.state.phase, d.state.stage),
        (Phase::Baking, Some(0)),
        "no advance while suspended"
    );
    assert!(d.events.is_empty());
    assert_eq!(
        d.requeue_after, None,
        "lifting the suspension is a spec change"
    );
    let d = run.step(HOUR + 1, &with(&[pause("p1")]));
    assert_eq!(kinds(&d), [EventKind::Paused]);
}

#[test]
fn a_command_still_presented_is_remembered_however_many_others_follow() {
    let mut run = Run::new(automatic());
    let stale = approve("approve-nothing", 9);
    let d = run.step(0, &with(std::slice::from_ref(&stale)));
    assert_eq!(
        kinds(&d),
        [EventKind::CommandIgnored, EventKind::StageAdvanced]
    );
    for i in 0..2 * MAX_REMEMBERED_COMMANDS as i64 {
        let next = if i % 2 == 0 {
            pause(&format!("p{i}"))
        } else {
            resume(&format!("r{i}"))
        };
        let d = run.step(1 + i, &with(&[stale.clone(), next]));
        assert!(
            !kinds(&d).contains(&EventKind::CommandIgnored),
            "step {i}: {:?}",
            d.events
        );
    }
    assert_eq!(run.state.applied_commands.len(), MAX_REMEMBERED_COMMANDS);
    assert!(run.state.applied_commands.contains(&stale.id));
}
