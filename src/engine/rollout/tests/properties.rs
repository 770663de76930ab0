//! Property tests over random specs and random sequences of readings, commands and time steps.

use std::collections::BTreeMap;

use k8s_openapi::jiff::SignedDuration;
use proptest::prelude::*;

use super::*;
use crate::crd::GateSpec;

#[derive(Clone, Copy, Debug)]
enum R {
    Pass,
    Fail,
    Unknown,
    Absent,
}

#[derive(Clone, Debug)]
struct Op {
    /// Milliseconds since the previous evaluation (often zero: the same instant again).
    dt_ms: u64,
    /// One per check: g0 (max 1.0) and g1 (min 0.5).
    readings: [R; 2],
    /// (kind 0..5, stage to approve, re-issue the previous id of that kind)
    command: Option<(u8, u32, bool)>,
    suspended: bool,
    /// A scaling trigger says the platform is short of capacity.
    short: bool,
}

fn spec_strategy() -> impl Strategy<Value = RolloutSpec> {
    let stage = (
        1i32..400,
        prop::sample::select(vec![0u64, 30, 60, 300]),
        any::<bool>(),
    );
    let gates = prop::option::weighted(
        0.8,
        (
            1i32..=3,
            prop::sample::select(vec![30u64, 60, 90]),
            1usize..=2,
        ),
    );
    (
        prop::collection::vec(stage, 1..=4),
        any::<bool>(),
        gates,
        any::<bool>(),
    )
        .prop_map(|(stages, last_is_all, gates, rollback)| {
            let count = stages.len();
            let mut users = 0;
            let stages = stages
                .into_iter()
                .enumerate()
                .map(|(i, (step, bake, manual))| {
                    users += step;
                    let shown = if last_is_all && i + 1 == count {
                        "All".to_owned()
                    } else {
                        users.to_string()
                    };
                    let approval = if manual {
                        Approval::Manual
                    } else {
                        Approval::Automatic
                    };
                    super::stage(&format!("s{i}"), &shown, bake, approval)
                })
                .collect();
            let checks = [check("g0", None, Some(1.0)), check("g1", Some(0.5), None)];
            RolloutSpec {
                stages,
                gates: gates.map(|(threshold, interval, n)| GateSpec {
                    interval: crate::crd::Duration::from_secs(interval),
                    failure_threshold: threshold,
                    checks: checks[..n].to_vec(),
                }),
                on_gate_failure: if rollback {
                    crate::crd::GateFailurePolicy::Rollback
                } else {
                    crate::crd::GateFailurePolicy::Pause
                },
                cohort: None,
                hold_while_scaling: true,
            }
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let r = prop_oneof![6 => Just(R::Pass), 2 => Just(R::Fail), 1 => Just(R::Unknown), 1 => Just(R::Absent)];
    let dt = prop_oneof![2 => Just(0u64), 5 => 1u64..120_000, 2 => 120_000u64..900_000];
    // Mostly approvals, resumes and retries, so that random runs get far; aborts are rare.
    let kind =
        prop_oneof![8 => Just(0u8), 3 => Just(1u8), 4 => Just(2u8), 1 => Just(3u8), 4 => Just(4u8)];
    let command = prop::option::weighted(0.25, (kind, 0u32..5, prop::bool::weighted(0.3)));
    (
        dt,
        [r.clone(), r],
        command,
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(dt_ms, readings, command, suspended, short)| Op {
            dt_ms,
            readings,
            command,
            suspended,
            short,
        })
}

fn action(kind: u8, stage: u32) -> Action {
    match kind {
        0 => Action::Approve { stage },
        1 => Action::Pause,
        2 => Action::Resume,
        3 => Action::Abort,
        _ => Action::Retry,
    }
}

fn users_of(spec: &RolloutSpec, stage: Option<u32>) -> Users {
    stage.map_or(Users::NONE, |i| {
        Users::from_stage_users(&spec.stages[i as usize].users).unwrap()
    })
}

/// 0 before the first stage, i + 1 at stage i.
fn position(state: &RolloutState) -> i64 {
    state.stage.map_or(0, |i| i as i64 + 1)
}

fn has(d: &Decision, kind: EventKind) -> bool {
    d.events.iter().any(|e| e.kind == kind)
}

proptest! {
    // 400 cases of up to 60 evaluations by default; PROPTEST_CASES=n for a longer search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(400),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_launches_keep_every_rollout_invariant(
        spec in spec_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..60),
    ) {
        let checks: Vec<String> = spec.gates.iter().flat_map(|g| &g.checks).map(|c| c.name.clone()).collect();
        let mut state = RolloutState::default();
        let mut elapsed_ms = 0i64;
        let mut issued = 0u32;
        let mut presented: BTreeMap<u8, Command> = BTreeMap::new();
        for op in ops {
            elapsed_ms += op.dt_ms as i64;
            let now = at(0).checked_add(SignedDuration::from_millis(elapsed_ms)).unwrap();
            if let Some((kind, stage, reissue)) = op.command {
                let previous = presented.get(&kind).filter(|_| reissue).map(|c| c.id.clone());
                let id = previous.unwrap_or_else(|| { issued += 1; format!("c{issued}") });
                presented.insert(kind, Command::new(id, action(kind, stage)));
            }
            let mut inputs = Inputs { suspended: op.suspended, commands: presented.values().cloned().collect(), ..Inputs::default() };
            for (name, r) in checks.iter().zip(op.readings) {
                let value = match (name.as_str(), r) {
                    (_, R::Absent) => continue,
                    (_, R::Unknown) => GateReading::unknown("source down"),
                    ("g0", R::Pass) | ("g1", R::Fail) => GateReading::Value(0.2),
                    ("g0", _) => GateReading::Value(3.0),
                    _ => GateReading::Value(0.9),
                };
                inputs.gates.insert(name.clone(), value);
            }
            let any_unknown = inputs.gates.values().any(|r| matches!(r, GateReading::Unknown { .. }));
            if op.short {
                inputs.capacity.push(CapacityHold { trigger: "api-cpu".into(), why: "is beyond its threshold".into() });
            }

            let d = step(&spec, &state, &inputs, now);
            let (before, after) = (position(&state), position(&d.state));

            // Users are published as stored, and never above the current stage's users.
            prop_assert_eq!(d.users, d.state.users);
            prop_assert!(d.users <= users_of(&spec, d.state.stage), "{:?} above stage {:?}", d.users, d.state.stage);

            // The position moves by one at most: +1 advances, -1 rolls back; a retry after an
            // abort starts over (and may enter the first stage at once).
            let aborted = state.phase == Phase::Aborted || has(&d, EventKind::Aborted);
            let restarted = aborted && has(&d, EventKind::Retried);
            if restarted {
                prop_assert!(after <= 1);
            } else {
                prop_assert!((after - before).abs() <= 1, "moved from {} to {}", before, after);
            }
            prop_assert!(d.events.iter().filter(|e| e.kind == EventKind::StageAdvanced).count() <= 1);
            if after == before + 1 && !restarted {
                prop_assert!(has(&d, EventKind::StageAdvanced));
            }

            // Rollback goes to the previous stage only.
            if has(&d, EventKind::RolledBack) {
                prop_assert_eq!(after, before - 1);
                prop_assert_eq!(d.state.phase, Phase::RolledBack);
            }
            if after == before - 1 && !restarted {
                prop_assert!(has(&d, EventKind::RolledBack));
            }

            // Never advances on unknown data (a person's retry is an explicit override).
            if any_unknown && !has(&d, EventKind::Retried) {
                prop_assert!(after <= before, "advanced on unknown data");
                prop_assert!(!has(&d, EventKind::StageAdvanced) && !has(&d, EventKind::Completed));
            }

            // No stage is entered while short of capacity, unless a person retries one.
            if op.short && !has(&d, EventKind::Retried) {
                prop_assert!(!has(&d, EventKind::StageAdvanced), "advanced while short of capacity");
                prop_assert!(d.users <= state.users || state.phase.is_held(), "more users while short of capacity");
            }

            // Nothing changes while suspended.
            if op.suspended {
                prop_assert!(d.events.is_empty());
                prop_assert_eq!((d.state.phase, d.state.stage, d.users), (state.phase, state.stage, state.users));
            }

            // The bake deadline never moves while the stage stays the same.
            if d.state.stage == state.stage && d.state.stage_started_at == state.stage_started_at && state.bake_until.is_some() && d.state.phase != Phase::Aborted {
                prop_assert_eq!(&d.state.bake_until, &state.bake_until);
            }

            // The requeue is never zero, and never later than a pending timer.
            if let Some(r) = d.requeue_after {
                prop_assert!(!r.is_zero());
            }
            if let Some(until) = d.state.bake_until.as_ref().filter(|u| d.state.phase == Phase::Baking && !op.suspended && u.0 > now) {
                let left = std::time::Duration::try_from(until.0.duration_since(now)).unwrap();
                prop_assert!(d.requeue_after.is_some_and(|r| r <= left), "{:?} vs {:?} left", d.requeue_after, left);
            }

            // The state survives status exactly.
            let json = serde_json::to_value(&d.state).unwrap();
            prop_assert_eq!(&serde_json::from_value::<RolloutState>(json).unwrap(), &d.state);

            // The same inputs at the same instant are a fixed point.
            let again = step(&spec, &d.state, &inputs, now);
            prop_assert!(again.events.is_empty(), "events on re-evaluation: {:?}", again.events);
            prop_assert_eq!(&again.state, &d.state);
            prop_assert_eq!(&again.message, &d.message);

            state = d.state;
        }
    }
}
