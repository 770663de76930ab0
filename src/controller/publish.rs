//! Publishing the rollout's cohort to the application once status records it, exactly once per
//! change, and noticing after a start or a takeover that the stage in status never reached it.

use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::{Context, Error, events, memory::PolicyMemory, rollout};
use crate::crd::{LaunchPolicy, RolloutStatus};

/// Whether the stage that status records was never published: checked only until this process
/// has published the policy's cohort itself (i.e. after a start or a takeover), by reading the
/// cohort's ConfigMaps. The operator that recorded the stage may have died before publishing
/// it; within one process the cohort is published right after the status write.
pub async fn never_published(
    ctx: &Context,
    policy: &LaunchPolicy,
    namespace: &str,
    memory: &PolicyMemory,
) -> Result<bool, Error> {
    let Some(state) = policy.status.as_ref().and_then(|s| s.rollout.as_ref()) else {
        return Ok(false);
    };
    let Some(spec) = policy.spec.rollout.as_ref().and_then(|r| r.cohort.as_ref()) else {
        return Ok(false);
    };
    if memory.published_cohort.is_some() || state.state.stage.is_none() {
        return Ok(false);
    }
    match rollout::cohort::is_published(&ctx.client, namespace, spec, &state.state).await {
        Ok(published) => {
            if !published {
                warn!(stage = ?state.state.stage_name, "the stage in status was never published; it is published now and bakes from now");
            }
            Ok(!published)
        }
        // Neither guess is safe (advancing could skip a cohort, re-entering restarts a bake):
        // retry the reconcile instead.
        Err(e) => {
            warn!(error = %e, "cannot read the published cohort; the reconcile is retried");
            Err(Error::CohortUnreadable(e.to_string()))
        }
    }
}

/// Publishes the cohort that status now records, unless this process already published it.
/// A failure is an Event (`CohortNotPublished`) and is retried on the next reconcile.
pub async fn cohort(
    ctx: &Context,
    policy: &LaunchPolicy,
    memory: &mut PolicyMemory,
    status: &RolloutStatus,
) {
    let Some(spec) = policy.spec.rollout.as_ref().and_then(|r| r.cohort.as_ref()) else {
        return;
    };
    let data = rollout::cohort::cohort_data(&status.state);
    let signature = serde_json::to_string(&(data, spec)).unwrap_or_default();
    if memory.published_cohort.as_deref() == Some(signature.as_str()) {
        return;
    }
    match rollout::cohort::publish(&ctx.client, policy, spec, &status.state).await {
        Ok(()) => {
            info!(users = %status.state.users, "cohort published");
            memory.published_cohort = Some(signature);
        }
        Err(e) => {
            warn!(error = %e, "cohort not published");
            let warning = EventType::Warning;
            events::publish(&ctx.recorder, policy, warning, "CohortNotPublished", &e).await;
        }
    }
}
