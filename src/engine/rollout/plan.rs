//! The spec, checked and normalised once per evaluation: stage users parsed, bakes rounded to
//! whole seconds, gate interval and threshold clamped to usable values.
//!
//! The apiserver's CEL rules already reject what is rejected here; the engine checks again so a
//! spec that slipped through (an older CRD, a hand-edited object) holds the rollout with a clear
//! message instead of doing something surprising.

use std::{collections::BTreeSet, time::Duration};

use super::clock;
use crate::crd::{Approval, GateCheck, GateFailurePolicy, RolloutSpec, ScaleUpFirst, Users};

/// Shortest time a stage lasts, so every cohort is published before the next one replaces it.
pub const MIN_STAGE_DURATION: Duration = Duration::from_secs(1);
/// Gates are never evaluated more often than this.
pub const MIN_GATE_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) struct Plan<'a> {
    pub stages: Vec<PlannedStage<'a>>,
    pub gates: GatePlan<'a>,
    pub on_gate_failure: GateFailurePolicy,
    pub hold_while_scaling: bool,
}

pub(crate) struct PlannedStage<'a> {
    pub name: &'a str,
    pub users: Users,
    pub bake: Duration,
    pub approval: Approval,
    pub scale_up_first: &'a [ScaleUpFirst],
}

pub(crate) struct GatePlan<'a> {
    pub interval: Duration,
    pub failure_threshold: u32,
    pub checks: &'a [GateCheck],
}

impl<'a> Plan<'a> {
    pub fn from_spec(spec: &'a RolloutSpec) -> Result<Self, String> {
        if spec.stages.is_empty() {
            return Err("spec.rollout.stages is empty".into());
        }
        let mut stages = Vec::with_capacity(spec.stages.len());
        let mut names = BTreeSet::new();
        for (i, stage) in spec.stages.iter().enumerate() {
            let users = Users::from_stage_users(&stage.users)
                .map_err(|e| format!("spec.rollout.stages[{i}].users: {e}"))?;
            if !names.insert(stage.name.as_str()) {
                return Err(format!(
                    "spec.rollout.stages[{i}].name: {:?} is used twice",
                    stage.name
                ));
            }
            if let Some(prev) = stages.last().map(|s: &PlannedStage| s.users)
                && users <= prev
            {
                return Err(format!(
                    "spec.rollout.stages[{i}].users: {users} must be more than the previous stage's {prev}"
                ));
            }
            let bake = stage.bake.map(|b| b.as_std()).unwrap_or_default();
            stages.push(PlannedStage {
                name: &stage.name,
                users,
                bake: clock::ceil_seconds(bake).max(MIN_STAGE_DURATION),
                approval: stage.approval,
                scale_up_first: &stage.scale_up_first,
            });
        }
        let gates = match &spec.gates {
            Some(g) => GatePlan {
                interval: g.interval.as_std().max(MIN_GATE_INTERVAL),
                failure_threshold: u32::try_from(g.failure_threshold.max(1)).unwrap_or(1),
                checks: &g.checks,
            },
            None => GatePlan {
                interval: MIN_GATE_INTERVAL,
                failure_threshold: 1,
                checks: &[],
            },
        };
        Ok(Plan {
            stages,
            gates,
            on_gate_failure: spec.on_gate_failure,
            hold_while_scaling: spec.hold_while_scaling,
        })
    }

    pub fn len(&self) -> u32 {
        self.stages.len() as u32
    }

    pub fn stage(&self, index: u32) -> Option<&PlannedStage<'a>> {
        self.stages.get(index as usize)
    }

    /// Users admitted at a position: a stage's users, or nobody before the first stage.
    pub fn users_at(&self, position: Option<u32>) -> Users {
        position
            .and_then(|i| self.stage(i))
            .map_or(Users::NONE, |s| s.users)
    }

    pub fn position_of(&self, name: &str) -> Option<u32> {
        self.stages
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as u32)
    }

    /// `stage gradual`, or `no stage` before the first one.
    pub fn name_of(&self, position: Option<u32>) -> String {
        match position.and_then(|i| self.stage(i)) {
            Some(s) => format!("stage {}", s.name),
            None => "no stage".into(),
        }
    }

    /// `stage gradual (500 users)`, or `no stage (0 users)` before the first one.
    pub fn describe(&self, position: Option<u32>) -> String {
        match position.and_then(|i| self.stage(i)) {
            Some(s) => format!("stage {} ({} users)", s.name, s.users),
            None => "no stage (0 users)".into(),
        }
    }
}

/// The position after `position`: stage 0 when no stage has been entered yet.
pub(crate) fn next_index(position: Option<u32>) -> u32 {
    position.map_or(0, |i| i + 1)
}
