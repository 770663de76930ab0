use super::*;

fn held_by(holder: &str, secs: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(holder.into()),
        lease_duration_seconds: Some(secs),
        lease_transitions: Some(3),
        acquire_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
        renew_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
        ..Default::default()
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn a_missing_or_unheld_lease_is_acquired() {
    assert_eq!(next_step(None, "a", Duration::ZERO), Step::Acquire);
    let free = LeaseSpec::default();
    assert_eq!(next_step(Some(&free), "a", Duration::ZERO), Step::Acquire);
    let released = held_by("", 15);
    assert_eq!(
        next_step(Some(&released), "a", Duration::ZERO),
        Step::Acquire
    );
}

#[test]
fn the_holder_renews_its_own_lease_even_after_a_restart() {
    assert_eq!(
        next_step(Some(&held_by("a", 15)), "a", Duration::ZERO),
        Step::Renew
    );
    assert_eq!(
        next_step(Some(&held_by("a", 15)), "a", 60 * SECOND),
        Step::Renew
    );
}

#[test]
fn a_valid_lease_of_another_is_followed_until_it_was_unchanged_for_its_duration() {
    let lease = held_by("b", 15);
    assert_eq!(
        next_step(Some(&lease), "a", 14 * SECOND),
        Step::Follow("b".into())
    );
    assert_eq!(next_step(Some(&lease), "a", 15 * SECOND), Step::Acquire);
}

#[test]
fn the_lease_duration_is_the_holders_not_the_candidates() {
    let lease = held_by("b", 60);
    assert_eq!(
        next_step(Some(&lease), "a", 30 * SECOND),
        Step::Follow("b".into())
    );
}

#[test]
fn taking_over_counts_a_transition_and_restarts_acquire_time() {
    let now = Timestamp::from_second(1_000).unwrap();
    let settings = LeaseSettings::from_duration(15 * SECOND);
    let spec = claimed(held_by("b", 15), "a", &settings, now);
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_transitions, Some(4));
    assert_eq!(spec.acquire_time, Some(MicroTime(now)));
    assert_eq!(spec.renew_time, Some(MicroTime(now)));
    assert_eq!(spec.lease_duration_seconds, Some(15));
}

#[test]
fn renewing_moves_only_the_renew_time() {
    let now = Timestamp::from_second(1_000).unwrap();
    let settings = LeaseSettings::from_duration(15 * SECOND);
    let before = held_by("a", 15);
    let spec = claimed(before.clone(), "a", &settings, now);
    assert_eq!(spec.lease_transitions, before.lease_transitions);
    assert_eq!(spec.acquire_time, before.acquire_time);
    assert_eq!(spec.renew_time, Some(MicroTime(now)));
}

#[test]
fn the_first_holder_of_a_new_lease_is_transition_zero() {
    let now = Timestamp::from_second(1_000).unwrap();
    let settings = LeaseSettings::from_duration(15 * SECOND);
    let spec = claimed(LeaseSpec::default(), "a", &settings, now);
    assert_eq!(spec.lease_transitions, Some(0));
}

#[test]
fn releasing_clears_the_holder_so_a_peer_acquires_at_once() {
    let now = Timestamp::from_second(1_000).unwrap();
    let spec = released(held_by("a", 15), now);
    assert_eq!(spec.holder_identity, None);
    assert_eq!(spec.lease_transitions, Some(3));
    assert_eq!(next_step(Some(&spec), "b", Duration::ZERO), Step::Acquire);
}

#[test]
fn settings_follow_client_go_proportions() {
    let s = LeaseSettings::from_duration(15 * SECOND);
    assert_eq!(s.renew_every, 5 * SECOND);
    assert_eq!(s.retry_every, 2 * SECOND);
    assert_eq!(s.renew_deadline(), 10 * SECOND);
    assert!(s.renew_every < s.renew_deadline() && s.renew_deadline() < s.duration);
}

#[tokio::test]
async fn state_reports_leadership_and_its_loss() {
    let state = State::default();
    assert_eq!(state.role(), Role::Starting);
    assert!(!state.is_leader());
    let waiter = tokio::spawn({
        let state = state.clone();
        async move { state.wait_until_leader().await }
    });
    state.set(Role::Follower);
    state.set(Role::Leader);
    waiter.await.unwrap();
    assert!(state.is_leader());
    let lost = tokio::spawn({
        let state = state.clone();
        async move { state.wait_until_not_leader().await }
    });
    state.set(Role::Follower);
    lost.await.unwrap();
}
