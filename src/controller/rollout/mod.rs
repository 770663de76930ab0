//! The rollout half of a reconcile: read the operations (annotations) and, when due, the health
//! gates; step the pure state machine; and, once the new state is in status, publish the cohort.

pub mod capacity;
pub mod cohort;
pub mod commands;
pub mod display;

use std::{collections::BTreeMap, time::Duration};

use futures::future::join_all;
use k8s_openapi::jiff::Timestamp;

use super::{lookup::KubeLookup, pools::Pools};
use crate::{
    conditions::Desired,
    crd::{LaunchPolicy, PrometheusSource, RolloutSpec, RolloutStatus, WaitReason},
    engine::rollout::{self, Event, GateReading, Inputs, Phase},
    sources::{prometheus::QueryError, redact_url},
};

/// Condition type: the launch is moving (or waiting for a person's Go).
pub const ROLLOUT_PROGRESSING: &str = "RolloutProgressing";

/// What one evaluation of the rollout decided.
pub struct Evaluation {
    /// What to write to status now: `fresh`, or the stored status when only gate samples
    /// changed and they are not due for a refresh (see [`display`]).
    pub status: RolloutStatus,
    /// The freshest state, kept in memory as the working copy.
    pub fresh: RolloutStatus,
    pub events: Vec<Event>,
    pub requeue_after: Option<Duration>,
}

/// Steps the rollout of `policy` at `now`, from this process's working copy when status is
/// still what it wrote. `unpublished`: the cohort of the stage in status was never published
/// (see [`Inputs::unpublished`]).
pub async fn evaluate(
    policy: &LaunchPolicy,
    spec: &RolloutSpec,
    (pools, lookup, reuse): (&Pools, &KubeLookup<'_>, Duration),
    working: Option<&display::Working>,
    pace: display::Pace,
    now: Timestamp,
    (unpublished, capacity, ready): (
        bool,
        Vec<rollout::CapacityHold>,
        BTreeMap<String, rollout::Readiness>,
    ),
) -> Evaluation {
    let stored = policy.status.as_ref().and_then(|s| s.rollout.as_ref());
    let previous = match stored {
        Some(stored) => display::base(stored, working),
        None => Default::default(),
    };
    let (commands, problems) = commands::from_annotations(
        policy
            .metadata
            .annotations
            .as_ref()
            .unwrap_or(&BTreeMap::new()),
        policy
            .metadata
            .managed_fields
            .as_deref()
            .unwrap_or_default(),
        spec,
    );
    let mut inputs = Inputs {
        suspended: policy.spec.suspend,
        commands,
        unpublished,
        capacity,
        ready,
        ..Default::default()
    };
    if rollout::gates_due(spec, &previous, now) {
        let prometheus = policy.spec.prometheus.as_ref();
        inputs.gates = read_gates(spec, prometheus, (pools, lookup), reuse).await;
    }
    let decision = rollout::step(spec, &previous, &inputs, now);
    let mut message = decision.message;
    for problem in problems {
        message.push_str(&format!("; ignored: {problem}"));
    }
    let fresh = RolloutStatus {
        state: decision.state,
        message: Some(message),
        waiting_on: decision.waiting_on,
    };
    let threshold = spec.gates.as_ref().map_or(1, |g| {
        u32::try_from(g.failure_threshold).unwrap_or(1).max(1)
    });
    let status = match stored {
        Some(stored) if !display::must_write(stored, &fresh, threshold, pace, now) => {
            (**stored).clone()
        }
        _ => fresh.clone(),
    };
    Evaluation {
        status,
        fresh,
        events: decision.events,
        requeue_after: decision.requeue_after,
    }
}

/// Every check's reading. An answer to an identical query (another policy's gate, a trigger) is
/// shared when it is at most `reuse` old, capped by the gates' own interval.
async fn read_gates(
    spec: &RolloutSpec,
    prometheus: Option<&PrometheusSource>,
    (pools, lookup): (&Pools, &KubeLookup<'_>),
    reuse: Duration,
) -> BTreeMap<String, GateReading> {
    let Some(gates) = &spec.gates else {
        return BTreeMap::new();
    };
    let reuse = reuse.min(gates.interval.into());
    let client = match prometheus {
        None => Err("spec.prometheus is not set".to_string()),
        Some(p) => pools
            .prometheus(lookup, p)
            .await
            .map_err(|e| format!("prometheus {}: {e}", redact_url(&p.address))),
    };
    let readings = join_all(gates.checks.iter().map(|check| {
        let client = client.clone();
        async move {
            let reading = match client {
                Err(e) => GateReading::unknown(e),
                Ok(c) => match c.query_shared(&check.query, reuse).await {
                    Ok(v) => GateReading::Value(v),
                    // What no series means is the check's `onNoData`, not an outage.
                    Err(QueryError::NoSeries) => GateReading::NoData,
                    Err(e) => GateReading::unknown(format!("prometheus {}: {e}", c.address())),
                },
            };
            (check.name.clone(), reading)
        }
    }))
    .await;
    readings.into_iter().collect()
}

/// `RolloutProgressing` for a rollout status.
pub fn condition(status: &RolloutStatus) -> Desired {
    let message = status.message.clone().unwrap_or_default();
    let phase = status.state.phase;
    let progressing = matches!(
        phase,
        Phase::Pending | Phase::Baking | Phase::AwaitingApproval
    );
    match status.waiting_on.as_ref().map(|w| w.reason) {
        // Not moving, and nothing but data (or a fixed source) will move it: a hold the table
        // and alerts must show, not a healthy bake.
        Some(WaitReason::GatesUnknown) if progressing => {
            Desired::new(ROLLOUT_PROGRESSING, false, "GatesUnknown", message)
        }
        Some(WaitReason::GatesFailing) if progressing => {
            Desired::new(ROLLOUT_PROGRESSING, true, "GatesFailing", message)
        }
        // Waits for the triggers to catch up, which they are acting on.
        Some(WaitReason::Capacity) if progressing => {
            Desired::new(ROLLOUT_PROGRESSING, true, "HeldForCapacity", message)
        }
        _ => Desired::new(ROLLOUT_PROGRESSING, progressing, phase.as_str(), message),
    }
}
