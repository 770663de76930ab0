//! `stages[].scaleUpFirst`: capacity raised before a stage's users arrive. A trigger's floor is
//! the largest `minReplicas` of the stages entered so far and, once the current stage has
//! baked (or before the first stage), of the next one; the next stage is entered only when each
//! of its targets reports that many ready replicas.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use super::{
    inputs::Inputs,
    plan::{Plan, next_index},
};
use crate::crd::{RolloutSpec, RolloutState};

/// The floor of each trigger that has one now: `replicas.min` is raised to it. Pure: from the
/// spec, the state in status and `now`, so a restarted operator applies the same floors.
pub fn floors(spec: &RolloutSpec, state: &RolloutState, now: Timestamp) -> BTreeMap<String, i32> {
    let Ok(plan) = Plan::from_spec(spec) else {
        return BTreeMap::new();
    };
    let entered = state.stage.map_or(0, |i| i as usize + 1);
    let baked = state.bake_until.as_ref().is_none_or(|until| now >= until.0);
    let preparing = state.phase.is_progressing() && baked;
    let last = match preparing {
        true => entered + 1,
        false => entered,
    };
    let mut floors = BTreeMap::new();
    for stage in plan.stages.iter().take(last) {
        for f in stage.scale_up_first {
            let floor = floors.entry(f.trigger.clone()).or_insert(0);
            *floor = (*floor).max(f.min_replicas);
        }
    }
    floors
}

/// The `scaleUpFirst` entries of stage `index` whose targets do not report enough ready
/// replicas yet: `(trigger, ready, wanted)`; `wanted` is capped at the trigger's `replicas.max`.
pub(crate) fn unready(plan: &Plan<'_>, index: u32, inputs: &Inputs) -> Vec<(String, i32, i32)> {
    let Some(stage) = plan.stage(index) else {
        return Vec::new();
    };
    stage
        .scale_up_first
        .iter()
        .filter_map(|f| {
            let (ready, wanted) = match inputs.ready.get(&f.trigger) {
                Some(r) => (r.ready, f.min_replicas.min(r.max)),
                None => (0, f.min_replicas),
            };
            (ready < wanted).then(|| (f.trigger.clone(), ready, wanted))
        })
        .collect()
}

/// The next stage, for the controller to report its targets' ready replicas.
pub fn next_stage(state: &RolloutState) -> u32 {
    next_index(state.stage)
}
