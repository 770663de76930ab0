//! The replay: the operator's own reconcile steps over recorded answers, one step at a time —
//! the due triggers read and planned ([`triggers::read_and_plan`]), their actions taken
//! ([`triggers::apply_all`]), the capacity holds and `scaleUpFirst` floors, then the rollout's
//! state machine ([`rollout::step`]). Only the outside world is simulated: the targets (an
//! action sets them; pods are ready at once) and the people (a Go given `--go-after` the rollout
//! asks for it). Deterministic: the same recording and options give the same replay.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    future::Future,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::recorded::{Answer, Recording, Window};
use crate::{
    controller::rollout::capacity,
    crd::{LaunchPolicy, LaunchPolicyStatus, RolloutStatus, TriggerStatus, WaitReason},
    engine::{
        rollout::{self, Action, Command, GateReading, Inputs, Phase, RolloutState, Users},
        scaling::Sample,
    },
    sources::prometheus::QueryError,
    triggers::{self, Current, Facts, Histories, Hold, Planned, Reading, TriggerIo, TriggerKind},
};

/// What the replay assumes of the world outside the recording.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// How long after the rollout asks for a Go it is given; `None`: never.
    pub go_after: Option<Duration>,
    /// Each trigger's target at the start, as written on the command line (`--start NAME=VALUE`).
    pub start: BTreeMap<String, String>,
}

/// One thing the operator would have done.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Decision {
    /// Seconds since the epoch.
    pub at: i64,
    /// The trigger's name, or `rollout`.
    pub subject: String,
    /// The action (`ScaleUp`, `AddPartitions`, …) or rollout event (`StageAdvanced`, …), as
    /// its Event reason.
    pub kind: String,
    /// What changed: `2 → 4 replicas`, a stage and its users.
    pub detail: String,
    /// Why, in the operator's words.
    pub why: String,
}

/// A trigger's or gate's values over the replay, for the plot.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Trace {
    pub name: String,
    /// `cpu`, `kafkaLag`, …, or `gate`.
    pub kind: String,
    /// A trigger's threshold; a gate's `max`.
    pub upper: Option<f64>,
    /// A gate's `min`.
    pub lower: Option<f64>,
    /// Where the values come from.
    pub origin: String,
    /// Each reading: its time and value (`None`: unknown, no series).
    pub points: Vec<(i64, Option<f64>)>,
    /// The target's state whenever it changed (replicas, partitions, class).
    pub target: Vec<(i64, String)>,
}

/// The outcome of a replay.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Replay {
    pub from: i64,
    pub to: i64,
    pub step: i64,
    pub decisions: Vec<Decision>,
    pub triggers: Vec<Trace>,
    pub gates: Vec<Trace>,
    /// The users admitted whenever they changed.
    pub users: Vec<(i64, String)>,
    /// Where the rollout ended, and why, in the operator's words.
    pub phase: Option<String>,
    pub message: Option<String>,
}

/// The targets as the replay moves them, by trigger name.
struct Simulated<'r> {
    recording: &'r Recording,
    now: i64,
    targets: Mutex<BTreeMap<String, Result<Current, String>>>,
}

impl Simulated<'_> {
    fn targets(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Result<Current, String>>> {
        self.targets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn target(&self, name: &str) -> Result<Current, String> {
        self.targets()
            .get(name)
            .cloned()
            .unwrap_or_else(|| Err("no starting state".into()))
    }
}

impl TriggerIo for Simulated<'_> {
    fn read(&self, kind: &TriggerKind<'_>) -> impl Future<Output = Reading> + Send {
        let name = &kind.trigger().name;
        let source = || format!("recorded {}", self.recording.origin(name).to_lowercase());
        let sample = match self.recording.at(name, self.now) {
            Answer::Value(v) => Sample::Value(v),
            Answer::NoSeries => Sample::unknown(source(), QueryError::NoSeries.to_string()),
            Answer::Failed(why) => Sample::unknown(source(), why),
        };
        let reading = Reading {
            sample,
            current: self.target(name),
            refusal: None,
        };
        std::future::ready(reading)
    }

    fn apply(
        &self,
        kind: &TriggerKind<'_>,
        action: &Planned,
    ) -> impl Future<Output = Result<String, String>> + Send {
        let now = self.targets().get(&kind.trigger().name).cloned();
        let next = match (action, now) {
            (Planned::Scale { to, .. }, Some(Ok(Current::Consumed { partitions, .. }))) => {
                Some(Current::Consumed {
                    partitions,
                    consumers: *to,
                })
            }
            (Planned::Partitions { to, .. }, Some(Ok(Current::Consumed { consumers, .. }))) => {
                Some(Current::Consumed {
                    partitions: *to,
                    consumers,
                })
            }
            (action, _) => match action {
                Planned::Scale { to, .. } => Some(Current::Replicas(*to)),
                Planned::Partitions { to, .. } => Some(Current::Partitions(*to)),
                Planned::ResizeDatabase { to, .. } | Planned::ResizeCache { to, .. } => {
                    Some(Current::Class(to.clone()))
                }
                Planned::Recommend { .. } | Planned::Signal => None,
            },
        };
        if let Some(next) = next {
            self.targets().insert(kind.trigger().name.clone(), Ok(next));
        }
        std::future::ready(Ok(format!("{} (simulated)", detail(action))))
    }
}

/// What an action changes, in a few words.
fn detail(action: &Planned) -> String {
    match action {
        Planned::Scale { from, to } => format!("{from} → {to} replicas"),
        Planned::Partitions { from, to } => format!("{from} → {to} partitions"),
        Planned::ResizeDatabase { from, to } | Planned::ResizeCache { from, to } => {
            format!("{from} → {to}")
        }
        Planned::Recommend { of, from, to } => format!("recommend {of}: {from} → {to}"),
        Planned::Signal => "signal".into(),
    }
}

fn shown(current: &Result<Current, String>) -> String {
    match current {
        Ok(Current::Replicas(n)) => format!("{n} replicas"),
        Ok(Current::Partitions(n)) => format!("{n} partitions"),
        Ok(Current::Consumed {
            partitions,
            consumers,
        }) => format!("{partitions} partitions, {consumers} consumers"),
        Ok(Current::Class(class)) => class.clone(),
        Ok(Current::Nothing) => "nothing to scale".into(),
        Err(why) => format!("unknown: {why}"),
    }
}

/// Each trigger's target at the start: `--start NAME=VALUE` in the target's own terms, else
/// what the kind assumes; a trigger without either cannot act in the replay, and says why.
fn starting_targets(
    kinds: &[TriggerKind<'_>],
    start: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Result<Current, String>>, String> {
    if let Some(stray) = start
        .keys()
        .find(|name| !kinds.iter().any(|k| &k.trigger().name == *name))
    {
        return Err(format!(
            "--start {stray}=…: the policy has no trigger {stray:?}"
        ));
    }
    let mut targets = BTreeMap::new();
    for kind in kinds {
        let name = &kind.trigger().name;
        let assumed = kind.get().assumed_start();
        let current = match (start.get(name), assumed) {
            (None, Some(assumed)) => Ok(assumed),
            (None, None) => Err(format!(
                "its target's state at the start is not in the spec: give --start {name}=N"
            )),
            (Some(given), Some(Current::Class(_))) => Ok(Current::Class(given.clone())),
            (Some(_), Some(Current::Nothing)) => {
                return Err(format!(
                    "--start {name}=…: the trigger has no target to scale"
                ));
            }
            (Some(given), assumed) => {
                let n: i32 = given.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    format!("--start {name}={given}: give a whole number of replicas or partitions")
                })?;
                Ok(match (assumed, &kind.trigger().consumers) {
                    (Some(Current::Replicas(_)), _) => Current::Replicas(n),
                    (_, Some(consumers)) => Current::Consumed {
                        partitions: n,
                        consumers: consumers.min,
                    },
                    _ => Current::Partitions(n),
                })
            }
        };
        targets.insert(name.clone(), current);
    }
    Ok(targets)
}

/// Replays `policy` over `window`.
pub fn replay(
    policy: &LaunchPolicy,
    recording: &Recording,
    window: Window,
    options: &Options,
) -> Result<Replay, String> {
    let all = triggers_of(policy);
    let kinds = triggers::kinds(&all)?;
    let mut sim = Simulated {
        recording,
        now: window.from,
        targets: Mutex::new(starting_targets(&kinds, &options.start)?),
    };
    let interval = policy.spec.scaling_interval();
    let spec = policy.spec.rollout.as_ref();
    let mut out = Replay {
        from: window.from,
        to: window.to,
        step: window.step,
        decisions: Vec::new(),
        triggers: traces_of_triggers(&kinds, recording),
        gates: traces_of_gates(policy, recording),
        users: Vec::new(),
        phase: None,
        message: None,
    };
    for (trace, kind) in out.triggers.iter_mut().zip(&kinds) {
        trace
            .target
            .push((window.from, shown(&sim.target(&kind.trigger().name))));
    }
    let mut memory = Histories::default();
    let mut statuses: Vec<TriggerStatus> = Vec::new();
    let mut state = RolloutState::default();
    let mut awaiting_since: Option<i64> = None;
    let mut holding: Option<WaitReason> = None;
    for now_s in window.times() {
        sim.now = now_s;
        let now = Timestamp::from_second(now_s).map_err(|e| e.to_string())?;
        // The policy as the operator would see it now: the floors `scaleUpFirst` sets.
        let mut seen = policy.clone();
        seen.status = Some(LaunchPolicyStatus {
            triggers: statuses.clone(),
            rollout: spec.map(|_| {
                Box::new(RolloutStatus {
                    state: state.clone(),
                    ..Default::default()
                })
            }),
            ..Default::default()
        });
        let seen = capacity::with_floors(Cow::Owned(seen), now).into_owned();
        let floored = triggers_of(&seen);
        let kinds = triggers::kinds(&floored)?;
        let facts = Facts {
            now,
            status_refresh: policy.spec.status_refresh.into(),
            interval,
            hold: policy.spec.suspend.then_some(Hold::Suspended),
        };
        let mut plans = futures::executor::block_on(triggers::read_and_plan(
            &kinds,
            &statuses,
            &sim,
            &mut memory,
            facts,
            triggers::Due {
                interval,
                generation: Some(1),
                urgent: false,
                annotations: policy.annotations(),
                managed_fields: &[],
            },
        ));
        let applied =
            futures::executor::block_on(triggers::apply_all(&mut plans, &sim, &mut memory, now));
        for a in applied {
            out.decisions.push(Decision {
                at: now_s,
                subject: a.trigger.clone(),
                kind: a.action.label().into(),
                detail: detail(&a.action),
                why: a.reason,
            });
        }
        for (trace, p) in out.triggers.iter_mut().zip(&plans) {
            if let Some(reading) = &p.reading {
                trace.points.push((now_s, reading.sample.value()));
            }
            let target = shown(&sim.target(&trace.name));
            if trace.target.last().is_none_or(|(_, t)| *t != target) {
                trace.target.push((now_s, target));
            }
        }
        statuses = plans.into_iter().map(|p| p.plan.status).collect();

        let Some(spec) = spec else { continue };
        let mut inputs = Inputs {
            suspended: policy.spec.suspend,
            capacity: capacity::holds(&statuses),
            ready: capacity::readiness(&seen, |t, _| match sim.target(&t.name) {
                Ok(Current::Replicas(n)) => Some(n),
                _ => None,
            }),
            ..Default::default()
        };
        // The Go is given `go_after` after the step that asked for it (a person answers a
        // message, never within the reconcile that sent it).
        if let (Some(since), Some(after)) = (awaiting_since, options.go_after) {
            let after = i64::try_from(after.as_secs()).unwrap_or(i64::MAX);
            if now_s >= since.saturating_add(after) {
                let stage = rollout::next_stage(&state);
                let go = Command::new(
                    format!("simulate-{stage}-{since}"),
                    Action::Approve { stage },
                );
                inputs.commands.push(go.by("liftoff simulate (--go-after)"));
            }
        }
        if rollout::gates_due(spec, &state, now) {
            for check in spec.gates.iter().flat_map(|g| &g.checks) {
                let reading = match recording.at(&check.name, now_s) {
                    Answer::Value(v) => GateReading::Value(v),
                    Answer::NoSeries => GateReading::NoData,
                    Answer::Failed(why) => GateReading::unknown(why),
                };
                if let Some(trace) = out.gates.iter_mut().find(|t| t.name == check.name) {
                    let value = match &reading {
                        GateReading::Value(v) => Some(*v),
                        _ => None,
                    };
                    trace.points.push((now_s, value));
                }
                inputs.gates.insert(check.name.clone(), reading);
            }
        }
        let decision = rollout::step(spec, &state, &inputs, now);
        awaiting_since = match decision.state.phase {
            Phase::AwaitingApproval => Some(awaiting_since.unwrap_or(now_s)),
            _ => None,
        };
        for event in &decision.events {
            out.decisions.push(Decision {
                at: now_s,
                subject: "rollout".into(),
                kind: event.kind.as_str().into(),
                detail: stage_detail(&decision.state),
                why: event.message.clone(),
            });
        }
        // A hold the rollout's events do not announce (they do a Go asked for, a pause): each
        // time it starts, or its cause changes.
        let held = decision.waiting_on.as_ref().filter(|w| {
            matches!(
                w.reason,
                WaitReason::GatesUnknown | WaitReason::GatesFailing | WaitReason::Capacity
            )
        });
        if held.map(|w| w.reason) != holding {
            if let Some(w) = held {
                out.decisions.push(Decision {
                    at: now_s,
                    subject: "rollout".into(),
                    kind: format!("Held{}", w.reason.as_str()),
                    detail: stage_detail(&decision.state),
                    why: w.summary.clone(),
                });
            }
            holding = held.map(|w| w.reason);
        }
        if out
            .users
            .last()
            .is_none_or(|(_, u)| *u != decision.users.to_string())
        {
            out.users.push((now_s, decision.users.to_string()));
        }
        out.phase = Some(decision.state.phase.as_str().to_string());
        out.message = Some(decision.message);
        state = decision.state;
    }
    Ok(out)
}

fn triggers_of(policy: &LaunchPolicy) -> Vec<crate::crd::Trigger> {
    policy
        .spec
        .scaling
        .as_ref()
        .map(|s| s.triggers.clone())
        .unwrap_or_default()
}

fn stage_detail(state: &RolloutState) -> String {
    let users = match state.users {
        Users::All => "all users".to_string(),
        Users::Count(n) => format!("{n} users"),
    };
    match &state.stage_name {
        Some(stage) => format!("{stage} ({users})"),
        None => users,
    }
}

fn traces_of_triggers(kinds: &[TriggerKind<'_>], recording: &Recording) -> Vec<Trace> {
    kinds
        .iter()
        .map(|k| Trace {
            name: k.trigger().name.clone(),
            kind: k.as_str().into(),
            upper: Some(k.threshold()),
            origin: recording.origin(&k.trigger().name).to_string(),
            ..Default::default()
        })
        .collect()
}

fn traces_of_gates(policy: &LaunchPolicy, recording: &Recording) -> Vec<Trace> {
    let checks = policy.spec.rollout.iter().flat_map(|r| &r.gates);
    checks
        .flat_map(|g| &g.checks)
        .map(|c| Trace {
            name: c.name.clone(),
            kind: "gate".into(),
            upper: c.max,
            lower: c.min,
            origin: recording.origin(&c.name).to_string(),
            ..Default::default()
        })
        .collect()
}
