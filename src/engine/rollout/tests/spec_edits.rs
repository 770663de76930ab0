//! Spec edits mid-rollout: stages added, users changed, stages removed, unusable specs.

use super::*;
use crate::crd::GateFailurePolicy::Pause;

/// The seed launch, approved, driven by its own timers until it is at stage `index`.
fn launch_at(index: u32) -> Run {
    let mut run = Run::new(launch());
    let go = Inputs::default().with_command(approve("go", 1));
    let mut t = 0;
    run.step(t, &go);
    while run.stage() != Some(index) || run.state.phase == Phase::AwaitingApproval {
        t += run.last.as_ref().unwrap().requeue_after.unwrap().as_secs() as i64;
        run.step(t, &go);
    }
    run
}

fn now_of(run: &Run) -> i64 {
    run.state.stage_started_at.as_ref().unwrap().0.as_second() - at(0).as_second()
}

#[test]
fn a_stage_appended_after_the_current_one_is_rolled_out_too() {
    let mut run = Run::new(automatic());
    run.spec.stages.truncate(2);
    run.step(0, &Inputs::default());
    run.spec
        .stages
        .push(stage("more", "900", 60, Approval::Automatic));
    run.step(10 * MIN, &Inputs::default());
    let d = run.step(20 * MIN, &Inputs::default());
    assert_eq!((d.state.stage, d.users), (Some(2), Users::Count(900)));
}

#[test]
fn a_completed_rollout_continues_when_a_stage_is_appended() {
    let mut run = Run::new(gated(automatic(), 2, Pause));
    run.spec.stages.truncate(2);
    let d = run.healthy_until(0, 20 * MIN);
    assert_eq!(d.state.phase, Phase::Completed);
    assert_eq!(d.requeue_after, None);
    run.spec
        .stages
        .push(stage("more", "900", 0, Approval::Automatic));
    let d = run.step(HOUR, &healthy(&run.spec));
    assert_eq!(
        (d.state.phase, d.state.stage),
        (Phase::Baking, Some(1)),
        "observe b again first"
    );
    assert!(d.events.is_empty());
    assert_eq!(d.requeue_after, Some(std::time::Duration::from_secs(60)));
    let d = run.healthy_until(HOUR + MIN, HOUR + 2 * MIN);
    assert_eq!((d.state.stage, d.users), (Some(2), Users::Count(900)));
}

#[test]
fn changed_users_of_the_current_stage_are_published_safely() {
    // (pause first?, new users for stage a, users published, then after resume)
    let table = [
        (false, "150", 150, 150),
        (false, "50", 50, 50),
        (true, "150", 100, 150),
        (true, "50", 50, 50),
    ];
    for (paused, users, published, resumed) in table {
        let mut run = Run::new(automatic());
        run.step(0, &Inputs::default());
        if paused {
            run.step(
                MIN,
                &Inputs::default().with_command(command("p", Action::Pause)),
            );
        }
        run.spec.stages[0] = stage("a", users, 10 * MIN as u64, Approval::Automatic);
        let d = run.step(2 * MIN, &Inputs::default());
        assert_eq!(
            d.users,
            Users::Count(published),
            "paused={paused} users={users}"
        );
        assert_eq!(d.state.bake_until.as_ref().unwrap().0, at(10 * MIN));
        if published != 100 {
            assert_eq!(kinds(&d), [EventKind::UsersChanged]);
            assert!(
                d.events[0]
                    .message
                    .starts_with(&format!("now admitting {published} users (was 100)"))
            );
        } else {
            assert!(
                d.message
                    .contains("holding 100 users (the spec now says 150; applied on resume)"),
                "{}",
                d.message
            );
        }
        let d = run.step(
            3 * MIN,
            &Inputs::default().with_command(command("r", Action::Resume)),
        );
        assert_eq!(
            d.users,
            Users::Count(resumed),
            "after resume: paused={paused} users={users}"
        );
    }
}

#[test]
fn a_stage_inserted_before_the_current_one_does_not_disturb_it() {
    let mut run = launch_at(1);
    let before = run.state.clone();
    run.spec
        .stages
        .insert(1, stage("friends", "300", 60, Approval::Manual));
    let d = run.step(now_of(&run) + 60, &Inputs::default());
    assert_eq!((d.state.stage, d.users), (Some(2), Users::Count(500)));
    assert_eq!(d.state.stage_name.as_deref(), Some("gradual"));
    assert_eq!(d.state.bake_until, before.bake_until);
    assert!(d.events.is_empty());
}

#[test]
fn a_removed_current_stage_falls_back_to_the_last_stage_at_or_below_its_users_and_pauses() {
    // (stage reached, edit, index after, users after, stage named in the message)
    type Edit = fn(&mut Vec<Stage>);
    let table: [(u32, Edit, Option<u32>, Users, &str); 4] = [
        (
            2,
            |s| drop(s.remove(2)),
            Some(1),
            Users::Count(500),
            "expanded",
        ),
        (
            2,
            |s| s[2].name = "wider".into(),
            Some(2),
            Users::Count(1500),
            "expanded",
        ),
        (0, |s| drop(s.remove(0)), None, Users::NONE, "internal-beta"),
        (
            3,
            |s| drop(s.remove(3)),
            Some(2),
            Users::Count(1500),
            "everyone",
        ),
    ];
    for (reached, edit, index, users, gone) in table {
        let mut run = launch_at(reached);
        edit(&mut run.spec.stages);
        let t = now_of(&run) + 30;
        let d = run.step(t, &Inputs::default());
        assert_eq!(
            (d.state.phase, d.state.stage, d.users),
            (Phase::Paused, index, users),
            "{gone}"
        );
        assert_eq!(kinds(&d), [EventKind::Paused]);
        let hold = d.state.hold.as_ref().unwrap();
        assert_eq!(hold.cause, HoldCause::SpecChange);
        assert!(
            d.message.starts_with(&format!("paused: stage {gone} is no longer in spec.rollout.stages; holding {users} users at ")),
            "{}",
            d.message
        );
        assert!(
            run.step(t, &Inputs::default()).events.is_empty(),
            "paused once"
        );
    }
}

#[test]
fn an_edited_bake_applies_to_later_stages_not_the_running_deadline() {
    let mut run = Run::new(automatic());
    run.step(0, &Inputs::default());
    run.spec.stages[0].bake = Some(crate::crd::Duration::from_secs(HOUR as u64));
    run.spec.stages[1].bake = Some(crate::crd::Duration::from_secs(HOUR as u64));
    let d = run.step(5 * MIN, &Inputs::default());
    assert_eq!(d.state.bake_until.as_ref().unwrap().0, at(10 * MIN));
    let d = run.step(10 * MIN, &Inputs::default());
    assert_eq!(d.state.stage, Some(1));
    assert_eq!(d.state.bake_until.as_ref().unwrap().0, at(10 * MIN + HOUR));
}

#[test]
fn an_aborted_rollout_whose_stage_is_removed_stays_aborted() {
    let mut run = launch_at(1);
    run.step(
        now_of(&run) + 1,
        &Inputs::default().with_command(command("x", Action::Abort)),
    );
    run.spec.stages.remove(1);
    let d = run.step(now_of(&run) + 2, &Inputs::default());
    assert_eq!(
        (d.state.phase, d.state.stage, d.users),
        (Phase::Aborted, None, Users::NONE)
    );
    assert!(d.events.is_empty());
}

#[test]
fn an_unusable_spec_holds_everything_and_says_what_is_wrong() {
    type Edit = fn(&mut RolloutSpec);
    let table: [(Edit, &str); 5] = [
        (|s| s.stages.clear(), "spec.rollout.stages is empty"),
        (
            |s| s.stages[1].users = IntOrString::String("lots".into()),
            "spec.rollout.stages[1].users: \"lots\" is not a positive number or All",
        ),
        (
            |s| s.stages[1].users = IntOrString::Int(50),
            "spec.rollout.stages[1].users: 50 must be more than the previous stage's 100",
        ),
        (
            |s| {
                s.stages
                    .push(stage("after-all", "9", 0, Approval::Automatic))
            },
            "spec.rollout.stages[3].users: 9 must be more than the previous stage's All",
        ),
        (
            |s| s.stages[2].name = "a".into(),
            "spec.rollout.stages[2].name: \"a\" is used twice",
        ),
    ];
    for (edit, problem) in table {
        let mut run = Run::new(automatic());
        run.step(0, &Inputs::default());
        edit(&mut run.spec);
        let before = run.state.clone();
        let d = run.step(
            HOUR,
            &Inputs::default().with_command(command("p", Action::Pause)),
        );
        assert_eq!(d.state, before, "{problem}");
        assert!(d.events.is_empty());
        assert_eq!(d.requeue_after, None);
        assert_eq!(
            d.message,
            format!(
                "spec.rollout cannot be used ({problem}); holding 100 users, nothing changes until it is fixed"
            )
        );
    }
}
