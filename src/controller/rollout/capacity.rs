//! What the scaling triggers say about capacity, for the rollout's `holdWhileScaling`: a stage
//! that would admit more users waits while any trigger is beyond its threshold, cannot be read,
//! has an action pending, or recommends a resize nobody has done.

use std::{borrow::Cow, collections::BTreeMap};

use k8s_openapi::jiff::Timestamp;

use crate::{
    crd::{LaunchPolicy, ScaleTargetRef, Trigger, TriggerStatus},
    engine::rollout::{self, CapacityHold, Readiness},
};

/// `policy` with each trigger's `replicas.min` raised to the floor its rollout's
/// `scaleUpFirst` sets now (never above `replicas.max`); borrowed unchanged when none does.
pub fn with_floors(policy: Cow<'_, LaunchPolicy>, now: Timestamp) -> Cow<'_, LaunchPolicy> {
    let (Some(spec), Some(status)) = (
        policy.spec.rollout.as_ref(),
        policy.status.as_ref().and_then(|s| s.rollout.as_ref()),
    ) else {
        return policy;
    };
    let floors = rollout::floors(spec, &status.state, now);
    let raises = |p: &LaunchPolicy| {
        p.spec.scaling.iter().flat_map(|s| &s.triggers).any(|t| {
            let floor = floors.get(&t.name).copied().unwrap_or(0);
            t.replicas
                .as_ref()
                .is_some_and(|r| r.min < floor.min(r.max))
        })
    };
    if !raises(&policy) {
        return policy;
    }
    let mut raised = policy.into_owned();
    for t in raised.spec.scaling.iter_mut().flat_map(|s| &mut s.triggers) {
        if let (Some(floor), Some(r)) = (floors.get(&t.name), t.replicas.as_mut()) {
            r.min = r.min.max((*floor).min(r.max));
        }
    }
    Cow::Owned(raised)
}

/// The ready replicas of the targets the next stage's `scaleUpFirst` names, by trigger.
/// `ready_replicas` reads a trigger's target (the workload caches; a replay's simulated targets).
pub fn readiness(
    policy: &LaunchPolicy,
    ready_replicas: impl Fn(&Trigger, &ScaleTargetRef) -> Option<i32>,
) -> BTreeMap<String, Readiness> {
    let (Some(spec), state) = (
        policy.spec.rollout.as_ref(),
        policy
            .status
            .as_ref()
            .and_then(|s| s.rollout.as_ref())
            .map(|r| &r.state),
    ) else {
        return BTreeMap::new();
    };
    let next = state.map_or(0, rollout::next_stage) as usize;
    let Some(stage) = spec.stages.get(next) else {
        return BTreeMap::new();
    };
    let triggers = policy.spec.scaling.iter().flat_map(|s| &s.triggers);
    let triggers: Vec<_> = triggers.collect();
    stage
        .scale_up_first
        .iter()
        .filter_map(|f| {
            let t = triggers.iter().find(|t| t.name == f.trigger)?;
            let target = t.scale_target_ref.as_ref()?;
            let max = t.replicas.as_ref()?.max;
            let ready = ready_replicas(t, target)?;
            Some((f.trigger.clone(), Readiness { ready, max }))
        })
        .collect()
}

/// One hold per trigger that says the platform is short of capacity, in spec order. The texts
/// carry no samples, so a hold reads the same from one evaluation to the next.
pub fn holds<'a>(triggers: impl IntoIterator<Item = &'a TriggerStatus>) -> Vec<CapacityHold> {
    triggers
        .into_iter()
        .filter_map(|t| {
            let why = if t.error.is_some() {
                "cannot be read, so the capacity it guards is unknown".to_string()
            } else if let Some(p) = &t.pending_action {
                format!("has an action pending ({} {} to {})", p.kind, p.from, p.to)
            } else if !t.active {
                // A recommendation (kept in status until Liftoff itself resizes) holds only
                // while the trigger is still beyond its threshold: a person may have resized.
                return None;
            } else if let Some(r) = &t.recommendation {
                format!("recommends a change nobody has made yet ({r})")
            } else {
                format!("is beyond its threshold ({})", t.threshold)
            };
            Some(CapacityHold {
                trigger: t.name.clone(),
                why,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

    use super::*;
    use crate::crd::PendingAction;

    fn trigger(name: &str) -> TriggerStatus {
        TriggerStatus {
            name: name.into(),
            kind: "cpu".into(),
            threshold: "70%".into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_sign_of_missing_capacity_holds_naming_the_trigger() {
        let calm = trigger("calm");
        let hot = TriggerStatus {
            active: true,
            value: Some("92%".into()),
            ..trigger("api-cpu")
        };
        let blind = TriggerStatus {
            error: Some("metrics.k8s.io: timeout".into()),
            ..trigger("lag")
        };
        let acting = TriggerStatus {
            pending_action: Some(Box::new(PendingAction {
                kind: "scale".into(),
                from: "3".into(),
                to: "5".into(),
                decided_at: Time(Timestamp::UNIX_EPOCH),
            })),
            ..trigger("workers")
        };
        let advised = TriggerStatus {
            active: true,
            recommendation: Some("resize emr-prod to db.r6g.2xlarge".into()),
            ..trigger("db")
        };
        // Resized by a person since, and back under its threshold: no hold.
        let resized = TriggerStatus {
            recommendation: Some("resize emr-prod to db.r6g.2xlarge".into()),
            ..trigger("db-done")
        };
        let held = holds([&calm, &hot, &blind, &acting, &advised, &resized]);
        let text: Vec<String> = held
            .iter()
            .map(|h| format!("{} {}", h.trigger, h.why))
            .collect();
        assert_eq!(
            text,
            [
                "api-cpu is beyond its threshold (70%)",
                "lag cannot be read, so the capacity it guards is unknown",
                "workers has an action pending (scale 3 to 5)",
                "db recommends a change nobody has made yet (resize emr-prod to db.r6g.2xlarge)",
            ]
        );
        assert!(!text.iter().any(|t| t.contains("92")), "no samples");
    }
}
