//! Stages end when baked, healthy and approved; one stage at a time; timers are exact.

use std::time::Duration;

use super::*;

#[test]
fn manual_first_stage_waits_for_approval_with_nobody_admitted() {
    let mut run = Run::new(manual_first());
    let d = run.step(0, &Inputs::default());
    assert_eq!(d.state.phase, Phase::AwaitingApproval);
    assert_eq!(d.users, Users::NONE);
    assert_eq!(d.state.stage, None);
    assert_eq!(kinds(&d), [EventKind::AwaitingApproval]);
    assert!(
        d.message
            .contains("waiting for approval of stage internal-beta (100 users)"),
        "{}",
        d.message
    );
    assert_eq!(d.requeue_after, None, "only an approval can move it on");
}

#[test]
fn approval_of_the_first_stage_admits_its_users_and_starts_its_bake() {
    let mut run = Run::new(manual_first());
    run.step(0, &Inputs::default());
    let d = run.step(10, &Inputs::default().with_command(approve("a1", 0)));
    assert_eq!(d.state.phase, Phase::Baking);
    assert_eq!(d.state.stage, Some(0));
    assert_eq!(d.users, Users::Count(100));
    assert_eq!(d.state.stage_started_at.as_ref().unwrap().0, at(10));
    assert_eq!(d.state.bake_until.as_ref().unwrap().0, at(10 + 2 * HOUR));
    assert_eq!(kinds(&d), [EventKind::StageAdvanced]);
    assert!(d.events[0].message.contains("approved by alice"));
    assert_eq!(d.state.applied_commands, ["a1"]);
    let approval = d.state.last_approval.as_ref().unwrap();
    assert_eq!(
        (approval.stage, approval.stage_name.as_str()),
        (0, "internal-beta")
    );
    assert_eq!(
        (approval.by.as_deref(), &approval.at.0),
        (Some("alice"), &at(10))
    );
    assert_eq!(d.requeue_after, Some(Duration::from_secs(2 * HOUR as u64)));
}

#[test]
fn automatic_first_stage_is_entered_on_the_first_evaluation() {
    let mut run = Run::new(automatic());
    let d = run.step(0, &Inputs::default());
    assert_eq!((d.state.phase, d.users), (Phase::Baking, Users::Count(100)));
    assert_eq!(kinds(&d), [EventKind::StageAdvanced]);
}

#[test]
fn baking_message_is_stable_while_the_requeue_counts_down_to_the_fixed_deadline() {
    let mut run = Run::new(launch());
    run.step(0, &Inputs::default());
    // (seconds after entering, expected sentence fragment, expected requeue)
    let fragment = "baking 2h, until ";
    let table = [
        (0, fragment, 7200),
        (48 * MIN, fragment, 4320),
        (2 * HOUR - 90, fragment, 90),
        (2 * HOUR - 1, fragment, 1),
    ];
    let mut messages = std::collections::BTreeSet::new();
    for (t, fragment, requeue) in table {
        let d = run.step(t, &Inputs::default());
        assert_eq!(d.state.phase, Phase::Baking, "at {t}s");
        assert!(d.message.contains(fragment), "at {t}s: {}", d.message);
        assert!(d.message.contains("stage internal-beta (100 users)"));
        assert_eq!(
            d.requeue_after,
            Some(Duration::from_secs(requeue)),
            "at {t}s"
        );
        assert!(d.events.is_empty(), "at {t}s: {:?}", d.events);
        assert_eq!(d.state.bake_until.as_ref().unwrap().0, at(2 * HOUR));
        messages.insert(d.message.clone());
    }
    assert_eq!(messages.len(), 1, "no countdown in status: {messages:?}");
}

#[test]
fn requeue_is_measured_from_the_precise_now_without_moving_stored_times() {
    let mut run = Run::new(automatic());
    run.step(0, &Inputs::default());
    let now = at(5 * MIN)
        .checked_add(k8s_openapi::jiff::SignedDuration::from_millis(250))
        .unwrap();
    let d = step(&run.spec, &run.state, &Inputs::default(), now);
    assert_eq!(
        d.requeue_after,
        Some(Duration::from_millis(5 * 60_000 - 250))
    );
    assert_eq!(d.state, run.state);
}

#[test]
fn a_baked_stage_advances_exactly_one_stage_per_evaluation() {
    let mut run = Run::new(automatic());
    run.step(0, &Inputs::default());
    // Long after every bake would have elapsed, stages are still entered one by one.
    let late = 10 * HOUR;
    let d = run.step(late, &Inputs::default());
    assert_eq!((d.state.stage, d.users), (Some(1), Users::Count(500)));
    assert_eq!(kinds(&d), [EventKind::StageAdvanced]);
    let again = run.step(late, &Inputs::default());
    assert_eq!(again.state.stage, Some(1), "a fresh bake just started");
    assert!(again.events.is_empty());
    let d = run.step(late + 10 * MIN, &Inputs::default());
    assert_eq!((d.state.stage, d.users), (Some(2), Users::All));
}

#[test]
fn a_stage_without_bake_still_lasts_one_second() {
    let mut run = Run::new(automatic());
    run.step(0, &Inputs::default());
    run.step(10 * MIN, &Inputs::default());
    let d = run.step(20 * MIN, &Inputs::default());
    assert_eq!(d.state.stage, Some(2));
    assert_eq!(d.requeue_after, Some(MIN_STAGE_DURATION));
    let d = run.step(20 * MIN + 1, &Inputs::default());
    assert_eq!(d.state.phase, Phase::Completed);
}

#[test]
fn manual_next_stage_waits_after_the_bake_and_says_for_which_stage() {
    let mut spec = automatic();
    spec.stages[1].approval = Approval::Manual;
    let mut run = Run::new(spec);
    run.step(0, &Inputs::default());
    let d = run.step(10 * MIN, &Inputs::default());
    assert_eq!(d.state.phase, Phase::AwaitingApproval);
    assert_eq!((d.state.stage, d.users), (Some(0), Users::Count(100)));
    assert_eq!(kinds(&d), [EventKind::AwaitingApproval]);
    assert!(
        d.message
            .starts_with("waiting for approval of stage b (500 users) (index 1)"),
        "{}",
        d.message
    );
    let still = run.step(HOUR, &Inputs::default());
    assert!(still.events.is_empty(), "the wait is announced once");
    let d = run.step(
        HOUR + 5,
        &Inputs::default().with_command(approve("go-b", 1)),
    );
    assert_eq!((d.state.stage, d.users), (Some(1), Users::Count(500)));
}

#[test]
fn an_approval_given_during_the_bake_is_used_when_the_bake_ends() {
    let mut spec = automatic();
    spec.stages[1].approval = Approval::Manual;
    let mut run = Run::new(spec);
    run.step(0, &Inputs::default());
    let early = Inputs::default().with_command(approve("go-b", 1));
    let d = run.step(MIN, &early);
    assert_eq!((d.state.phase, d.state.stage), (Phase::Baking, Some(0)));
    assert!(d.events.is_empty(), "kept for later, not refused");
    let d = run.step(10 * MIN, &early);
    assert_eq!(d.state.stage, Some(1));
    assert_eq!(d.state.applied_commands, ["go-b"]);
}

#[test]
fn approvals_of_a_stage_already_passed_or_of_no_stage_are_refused_once() {
    // (approved index, words in the refusal)
    let table = [
        (
            0,
            "approval by alice of stage a (index 0) ignored: the rollout is already past it",
        ),
        (
            9,
            "approval by alice of stage index 9 ignored: there is no such stage",
        ),
    ];
    for (index, words) in table {
        let mut spec = automatic();
        spec.stages[1].approval = Approval::Manual;
        let mut run = Run::new(spec);
        run.step(0, &Inputs::default());
        let inputs = Inputs::default().with_command(approve("x", index));
        let d = run.step(10 * MIN, &inputs);
        assert_eq!(d.state.phase, Phase::AwaitingApproval, "index {index}");
        assert_eq!(
            kinds(&d),
            [EventKind::CommandIgnored, EventKind::AwaitingApproval]
        );
        assert!(
            d.events[0].message.starts_with(words),
            "{}",
            d.events[0].message
        );
        assert!(
            run.step(11 * MIN, &inputs).events.is_empty(),
            "refused once"
        );
    }
}

#[test]
fn an_approval_of_a_later_stage_waits_for_that_stage() {
    let mut spec = automatic();
    spec.stages[1].approval = Approval::Manual;
    spec.stages[2].approval = Approval::Manual;
    let mut run = Run::new(spec);
    run.step(0, &Inputs::default());
    let go_c = approve("go-c", 2);
    let d = run.step(10 * MIN, &Inputs::default().with_command(go_c.clone()));
    assert_eq!(
        d.state.phase,
        Phase::AwaitingApproval,
        "c's approval does not open b"
    );
    assert!(
        d.message.starts_with("waiting for approval of stage b"),
        "{}",
        d.message
    );
    let both = Inputs::default()
        .with_command(go_c)
        .with_command(approve("go-b", 1));
    assert_eq!(run.step(11 * MIN, &both).state.stage, Some(1));
    let d = run.step(21 * MIN, &both);
    assert_eq!((d.state.stage, d.users), (Some(2), Users::All));
    assert_eq!(d.state.applied_commands, ["go-b", "go-c"]);
}

#[test]
fn the_last_stage_completes_with_everyone_admitted_and_stops_requeueing() {
    let mut run = Run::new(automatic());
    for t in [0, 10 * MIN, 20 * MIN] {
        run.step(t, &Inputs::default());
    }
    let d = run.step(20 * MIN + 1, &Inputs::default());
    assert_eq!((d.state.phase, d.users), (Phase::Completed, Users::All));
    assert_eq!(kinds(&d), [EventKind::Completed]);
    assert_eq!(d.requeue_after, None);
    assert!(
        d.message.starts_with("completed: stage c (All users)"),
        "{}",
        d.message
    );
    assert!(run.step(HOUR, &Inputs::default()).events.is_empty());
}

#[test]
fn the_seed_launch_goes_100_500_1500_everyone_in_order() {
    let mut run = Run::new(launch());
    let mut published = vec![Users::NONE];
    let mut t = 0;
    // The Go/No-Go for the gradual rollout, given once the canary has baked.
    let approval = Inputs::default().with_command(approve("go", 1));
    loop {
        let d = run.step(t, &approval);
        if published.last() != Some(&d.users) {
            published.push(d.users);
        }
        if d.state.phase == Phase::Completed {
            break;
        }
        t += d
            .requeue_after
            .expect("a timer while progressing")
            .as_secs() as i64;
    }
    use Users::*;
    assert_eq!(
        published,
        [Count(0), Count(100), Count(500), Count(1500), All]
    );
    assert_eq!(t, 4 * HOUR + 1);
}

#[test]
fn the_seed_canary_starts_at_once_and_the_go_opens_the_gradual_rollout() {
    let mut run = Run::new(launch());
    let d = run.step(0, &Inputs::default());
    assert_eq!((d.state.stage, d.users), (Some(0), Users::Count(100)));
    let d = run.step(2 * HOUR, &Inputs::default());
    assert_eq!(d.state.phase, Phase::AwaitingApproval);
    assert_eq!(
        d.message,
        "waiting for approval of stage gradual (500 users) (index 1); stage internal-beta \
         (100 users) has baked with healthy gates"
    );
    let w = d.waiting_on.unwrap();
    assert_eq!(
        (w.reason, w.summary.as_str()),
        (crate::crd::WaitReason::Approval, "Go for stage gradual")
    );
    let go = Inputs::default().with_command(approve("go", 1));
    let d = run.step(2 * HOUR + 30, &go);
    assert_eq!((d.state.stage, d.users), (Some(1), Users::Count(500)));
    assert_eq!(d.waiting_on, None, "only baking");
    assert!(d.events[0].message.contains("approved by alice"));
}

#[test]
fn a_go_given_while_a_gate_fails_is_kept_said_and_used_only_once_healthy() {
    let spec = gated(launch(), 3, crate::crd::GateFailurePolicy::Pause);
    let mut run = Run::new(spec.clone());
    run.healthy_until(0, 2 * HOUR - MIN);
    // The room gives the Go while p95 is over its bound (not yet failing 3 times in a row).
    let slow = reading(&spec, "p95-latency-seconds", GateReading::Value(0.9))
        .with_command(approve("go", 1));
    let d = run.step(2 * HOUR, &slow);
    assert_eq!((d.state.phase, d.state.stage), (Phase::Baking, Some(0)));
    assert!(d.events.is_empty(), "{:?}", d.events);
    assert!(
        d.message.ends_with(
            "; the Go for stage gradual was given by alice and applies once this stage has \
             baked with healthy gates"
        ),
        "{}",
        d.message
    );
    assert!(d.message.contains("p95-latency-seconds"), "{}", d.message);
    // Healthy again for a whole window: the Go is used, recorded with who gave it.
    let go = healthy(&spec).with_command(approve("go", 1));
    let mut t = 2 * HOUR;
    let d = loop {
        t += MIN;
        let d = run.step(t, &go);
        if d.state.stage == Some(1) {
            break d;
        }
        assert!(t < 3 * HOUR, "never advanced: {}", d.message);
    };
    assert_eq!(d.users, Users::Count(500));
    let approval = d.state.last_approval.as_ref().unwrap();
    assert_eq!(
        (approval.stage_name.as_str(), approval.by.as_deref()),
        ("gradual", Some("alice"))
    );
}

fn short_of_capacity() -> Inputs {
    Inputs {
        capacity: vec![CapacityHold {
            trigger: "api-cpu".into(),
            why: "is beyond its threshold (70%)".into(),
        }],
        ..Inputs::default()
    }
}

#[test]
fn no_stage_admits_more_users_while_the_platform_is_short_of_capacity() {
    let mut run = Run::new(automatic());
    // Not even the first stage.
    let d = run.step(0, &short_of_capacity());
    assert_eq!((d.state.phase, d.users), (Phase::Pending, Users::NONE));
    assert!(
        d.message
            .ends_with("no more users while the platform is short of capacity: trigger api-cpu is beyond its threshold (70%)"),
        "{}",
        d.message
    );
    let w = d.waiting_on.unwrap();
    assert_eq!(
        (w.reason, w.summary.as_str()),
        (crate::crd::WaitReason::Capacity, "capacity: api-cpu")
    );
    let d = run.step(10, &Inputs::default());
    assert_eq!(d.state.stage, Some(0));
    // Baked, healthy, and short of capacity: holds as long as a trigger says so, with no event.
    for t in [10 * MIN + 10, HOUR] {
        let d = run.step(t, &short_of_capacity());
        assert_eq!(
            (d.state.stage, d.state.phase),
            (Some(0), Phase::Baking),
            "at {t}"
        );
        assert!(d.events.is_empty());
        assert_eq!(d.waiting_on.unwrap().summary, "capacity: api-cpu");
    }
    let d = run.step(HOUR + 1, &Inputs::default());
    assert_eq!((d.state.stage, d.users), (Some(1), Users::Count(500)));
}

#[test]
fn capacity_holds_nothing_during_the_bake_or_when_the_policy_opts_out() {
    let mut run = Run::new(automatic());
    run.step(0, &Inputs::default());
    let d = run.step(MIN, &short_of_capacity());
    assert_eq!(d.waiting_on, None, "the bake holds it anyway");
    assert!(!d.message.contains("capacity"), "{}", d.message);

    let mut spec = automatic();
    spec.hold_while_scaling = false;
    let mut run = Run::new(spec);
    run.step(0, &short_of_capacity());
    let d = run.step(10 * MIN, &short_of_capacity());
    assert_eq!((d.state.stage, d.users), (Some(1), Users::Count(500)));
}

/// The automatic plan whose stage b needs `api-cpu` at 10 replicas first (its max is `max`).
fn scale_up_first() -> RolloutSpec {
    let mut spec = automatic();
    spec.stages[1].scale_up_first = vec![crate::crd::ScaleUpFirst {
        trigger: "api-cpu".into(),
        min_replicas: 10,
    }];
    spec
}

fn ready(n: i32, max: i32) -> Inputs {
    Inputs {
        ready: [("api-cpu".to_string(), Readiness { ready: n, max })].into(),
        ..Inputs::default()
    }
}

#[test]
fn a_stage_raises_its_floor_once_the_previous_one_has_baked_and_keeps_it() {
    let spec = scale_up_first();
    let mut run = Run::new(spec.clone());
    run.step(0, &Inputs::default());
    assert!(
        floors(&spec, &run.state, at(MIN)).is_empty(),
        "baking: not yet"
    );
    let at_bake = floors(&spec, &run.state, at(10 * MIN));
    assert_eq!(at_bake.get("api-cpu"), Some(&10), "baked: prepare stage b");
    // Not ready: held with the numbers; ready: entered, and the floor stays.
    let d = run.step(10 * MIN, &ready(3, 40));
    assert_eq!((d.state.stage, d.state.phase), (Some(0), Phase::Baking));
    assert!(
        d.message.ends_with(
            "has baked with healthy gates; scaling up before stage b: trigger api-cpu has 3 of 10 replicas ready"
        ),
        "{}",
        d.message
    );
    assert_eq!(
        d.waiting_on.unwrap().summary,
        "scale-up first: api-cpu 3/10"
    );
    let d = run.step(10 * MIN + 30, &ready(10, 40));
    assert_eq!((d.state.stage, d.users), (Some(1), Users::Count(500)));
    assert_eq!(
        floors(&spec, &d.state, at(10 * MIN + 31)).get("api-cpu"),
        Some(&10)
    );
}

#[test]
fn a_floor_above_the_triggers_max_waits_for_the_max_only() {
    let mut run = Run::new(scale_up_first());
    run.step(0, &Inputs::default());
    let d = run.step(10 * MIN, &ready(6, 6));
    assert_eq!(d.state.stage, Some(1), "6 of max 6 is all it can have");
}

#[test]
fn a_capacity_hold_that_comes_and_goes_announces_the_wait_for_a_go_once() {
    let mut spec = automatic();
    spec.stages[1].approval = Approval::Manual;
    let mut run = Run::new(spec);
    run.step(0, &Inputs::default());
    let mut announced = 0;
    for (i, t) in (10 * MIN..10 * MIN + 10).enumerate() {
        let inputs = if i % 2 == 0 {
            short_of_capacity()
        } else {
            Inputs::default()
        };
        let d = run.step(t, &inputs);
        assert_eq!(d.state.phase, Phase::AwaitingApproval, "at {t}");
        announced += d
            .events
            .iter()
            .filter(|e| e.kind == EventKind::AwaitingApproval)
            .count();
    }
    assert_eq!(announced, 1);
    // The Go while short of capacity is kept; it is used once capacity is back.
    let go = short_of_capacity().with_command(approve("go", 1));
    let d = run.step(11 * MIN, &go);
    assert_eq!((d.state.stage, d.state.phase), (Some(0), Phase::Baking));
    assert_eq!(d.waiting_on.unwrap().summary, "capacity: api-cpu");
    let d = run.step(
        11 * MIN + 1,
        &Inputs::default().with_command(approve("go", 1)),
    );
    assert_eq!((d.state.stage, d.users), (Some(1), Users::Count(500)));
}
