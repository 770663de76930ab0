//! What of the rollout's state is written to status, and when: every decision at once, gate
//! samples at most every `spec.statusRefresh`.
//!
//! Each gate evaluation changes the state (values, times, a pass count). Writing all of that on
//! every evaluation would cost one status write per policy per `gates.interval` — with thousands
//! of policies, the apiserver's whole write budget. So the controller keeps the freshest state in
//! memory (a *working* copy) and writes it only when something that matters for a decision
//! changed (phase, stage, users, timers, holds, commands, a check's pass/fail, its failure count,
//! an error; once the stage's bake is over, also its pass count up to `failureThreshold`), when
//! the message changed, or when the displayed samples are `statusRefresh` old. While every write
//! turn is taken, a first pass during the bake waits too ([`Pace::writes_busy`]).
//!
//! Losing the working copy (a restart, another leader) is safe: the next evaluation starts from
//! status, whose decision-relevant parts are always current; at worst a gate is evaluated once
//! early and passes not yet written are counted again from the written count (which can only
//! delay an advance).

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    time::Duration,
};

use k8s_openapi::jiff::Timestamp;

use crate::{
    crd::RolloutStatus,
    engine::rollout::{Phase, RolloutState},
};

/// What this process last wrote for a policy's rollout, and the freshest state it computed since.
#[derive(Clone, Debug, PartialEq)]
pub struct Working {
    /// The [`fingerprint`] of the rollout status last written (or found) in status. A copy of
    /// it would cost ~2 KiB more per policy with a dozen gates; the cache already holds it.
    written: u64,
    /// The state after the latest evaluation (may be ahead of `written` by gate samples only).
    pub latest: RolloutState,
}

impl Working {
    /// The working copy after `written` was written (or found) in status and `latest` computed.
    pub fn new(written: &RolloutStatus, latest: RolloutState) -> Working {
        Working {
            written: fingerprint(written),
            latest,
        }
    }
}

/// A fingerprint of a rollout status (its JSON, hashed): two statuses with the same one are the
/// same, but for a 64-bit collision.
fn fingerprint(status: &RolloutStatus) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_vec(status)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// The state to evaluate from: the working copy if status is still what this process wrote,
/// else (restart, or someone else wrote) status itself.
pub fn base(stored: &RolloutStatus, working: Option<&Working>) -> RolloutState {
    match working {
        Some(w) if w.written == fingerprint(stored) => w.latest.clone(),
        _ => stored.state.clone(),
    }
}

/// How samples are paced besides the states themselves.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// `spec.statusRefresh`: samples are written at most this often.
    pub refresh: Duration,
    /// Every write turn is taken (see `events::WRITES_IN_FLIGHT`): a fleet is starting, or
    /// many policies are deciding at once. A gate's first passing verdict during a bake then
    /// waits like a sample, for a reconcile that finds a free turn or for the refresh, so that
    /// the writes that make policies Ready and record decisions go first.
    pub writes_busy: bool,
}

/// Whether `fresh` must be written now over `stored`, or can wait for the next refresh.
pub fn must_write(
    stored: &RolloutStatus,
    fresh: &RolloutStatus,
    failure_threshold: u32,
    pace: Pace,
    now: Timestamp,
) -> bool {
    let decisive = |s: &RolloutState| decisive(s, failure_threshold, pace.writes_busy, now);
    if stored.message != fresh.message
        || stored.waiting_on != fresh.waiting_on
        || decisive(&stored.state) != decisive(&fresh.state)
    {
        return true;
    }
    let shown_at = stored.state.gates_checked_at.as_ref().map(|t| t.0);
    let changed = stored.state != fresh.state;
    changed && shown_at.is_none_or(|at| at.checked_add(pace.refresh).is_ok_and(|due| now >= due))
}

/// The state without its samples: what decisions depend on.
///
/// Passes in a row count towards `failureThreshold` only once the stage's bake is over: until
/// its deadline the bake holds the stage whatever the count, so a count that rises at every
/// evaluation is a sample there (written at the refresh), not a decision. A restart during the
/// bake recounts from the written count, which can only delay an advance, never hasten it.
/// A check's verdict (its first pass, a failure) and unreadable gates are decisive at once: the
/// first verdict puts each gate's value in status, which the war room's launch updates and the
/// console read. While every write turn is taken (`writes_busy`), a pass during the bake is a
/// sample too (the bake holds the stage whatever it says); a failure, a recovery from one and
/// an unreadable gate stay decisive.
fn decisive(
    state: &RolloutState,
    failure_threshold: u32,
    writes_busy: bool,
    now: Timestamp,
) -> RolloutState {
    let mut s = state.clone();
    let baking = state.phase == Phase::Baking
        && state.bake_until.as_ref().is_some_and(|until| until.0 > now);
    s.gates_checked_at = None;
    for g in &mut s.gates {
        g.value = None;
        g.checked_at = None;
        if baking {
            g.consecutive_passes = 0;
            if writes_busy && g.passing == Some(true) {
                g.passing = None;
            }
        } else {
            g.consecutive_passes = g.consecutive_passes.min(failure_threshold);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::engine::rollout::GateState;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    /// A Baking rollout whose one gate passed `passes` times, last checked at `checked`.
    fn baking(passes: u32, value: f64, checked: i64) -> RolloutStatus {
        RolloutStatus {
            state: RolloutState {
                phase: Phase::Baking,
                stage: Some(0),
                gates_checked_at: Some(Time(at(checked))),
                gates: vec![GateState {
                    name: "p95".into(),
                    max: Some(0.5),
                    value: Some(value),
                    passing: Some(true),
                    checked_at: Some(Time(at(checked))),
                    consecutive_passes: passes,
                    ..Default::default()
                }],
                ..Default::default()
            },
            message: Some("stage beta (100 users) baking 2h, until …".into()),
            waiting_on: None,
        }
    }

    const REFRESH: Pace = Pace {
        refresh: Duration::from_secs(300),
        writes_busy: false,
    };
    const BUSY: Pace = Pace {
        writes_busy: true,
        ..REFRESH
    };

    #[test]
    fn samples_past_the_threshold_wait_for_the_refresh() {
        let stored = baking(3, 0.2, 0);
        let fresh = baking(4, 0.25, 60);
        assert!(!must_write(&stored, &fresh, 3, REFRESH, at(60)));
        assert!(!must_write(&stored, &fresh, 3, REFRESH, at(299)));
        assert!(must_write(&stored, &fresh, 3, REFRESH, at(300)));
    }

    #[test]
    fn progress_towards_the_threshold_and_any_failure_are_written_at_once() {
        let stored = baking(1, 0.2, 0);
        assert!(must_write(&stored, &baking(2, 0.2, 60), 3, REFRESH, at(60)));
        let mut failing = baking(0, 0.7, 60);
        failing.state.gates[0].passing = Some(false);
        failing.state.gates[0].consecutive_failures = 1;
        assert!(must_write(&baking(5, 0.2, 0), &failing, 3, REFRESH, at(60)));
        let mut unknown = baking(5, 0.2, 60);
        unknown.state.gates[0].error = Some("prometheus: timeout".into());
        assert!(must_write(&baking(5, 0.2, 0), &unknown, 3, REFRESH, at(60)));
    }

    #[test]
    fn progress_during_the_bake_waits_for_the_refresh_and_a_failure_does_not() {
        let bake = |mut s: RolloutStatus| {
            s.state.bake_until = Some(Time(at(7_200)));
            s
        };
        let stored = bake(baking(0, 0.2, 0));
        let progress = bake(baking(1, 0.2, 60));
        assert!(!must_write(&stored, &progress, 3, REFRESH, at(60)));
        assert!(must_write(&stored, &progress, 3, REFRESH, at(300)));
        // The first verdict after the stage's entry is written: it puts the value in status.
        let mut entered = bake(baking(0, 0.2, 0));
        entered.state.gates[0].passing = None;
        entered.state.gates[0].value = None;
        assert!(must_write(&entered, &progress, 3, REFRESH, at(60)));
        // … unless every write turn is taken: then it waits like a sample, for a free turn or
        // for the refresh.
        assert!(!must_write(&entered, &progress, 3, BUSY, at(60)));
        assert!(must_write(&entered, &progress, 3, BUSY, at(300)));
        let mut failing = bake(baking(0, 0.7, 60));
        failing.state.gates[0].passing = Some(false);
        failing.state.gates[0].consecutive_failures = 1;
        assert!(must_write(&stored, &failing, 3, REFRESH, at(60)));
        // A failure is decisive however busy the writes are, and so is a recovery from one.
        assert!(must_write(&entered, &failing, 3, BUSY, at(60)));
        assert!(must_write(&failing, &progress, 3, BUSY, at(120)));
        // Once the bake is over, the count is what holds the stage: written at once.
        let stored = bake(baking(1, 0.2, 7_200));
        let progress = bake(baking(2, 0.2, 7_260));
        assert!(must_write(&stored, &progress, 3, REFRESH, at(7_260)));
    }

    #[test]
    fn a_new_message_or_phase_is_written_at_once_and_nothing_unchanged_ever() {
        let stored = baking(5, 0.2, 0);
        let mut baked = baking(6, 0.2, 60);
        baked.message = Some("stage beta (100 users) has baked with healthy gates".into());
        assert!(must_write(&stored, &baked, 3, REFRESH, at(60)));
        let mut advanced = baking(6, 0.2, 60);
        advanced.state.stage = Some(1);
        assert!(must_write(&stored, &advanced, 3, REFRESH, at(60)));
        assert!(!must_write(
            &stored,
            &stored.clone(),
            3,
            REFRESH,
            at(10_000)
        ));
    }

    #[test]
    fn the_working_copy_is_used_only_while_status_is_what_was_written() {
        let written = baking(3, 0.2, 0);
        let working = Working::new(&written, baking(9, 0.3, 480).state);
        assert_eq!(base(&written, Some(&working)), working.latest);
        let someone_else = baking(4, 0.2, 30);
        assert_eq!(base(&someone_else, Some(&working)), someone_else.state);
        assert_eq!(base(&written, None), written.state);
    }
}
