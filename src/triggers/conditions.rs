//! The `ScalingActive` and `Degraded` conditions, from the triggers' status (which is refreshed
//! at a coarse cadence, so these conditions do not change on every sample either).

use crate::{conditions::Desired, crd::TriggerStatus};

/// Condition type: some trigger is beyond its threshold.
pub const SCALING_ACTIVE: &str = "ScalingActive";
/// Condition type: Liftoff cannot do part of its job (a source is unreadable, an action failed or
/// is refused).
pub const DEGRADED: &str = "Degraded";

/// `ScalingActive` and `Degraded` for a policy's triggers; none when it has no triggers.
pub fn scaling_conditions(statuses: &[TriggerStatus]) -> Vec<Desired> {
    if statuses.is_empty() {
        return Vec::new();
    }
    let active: Vec<String> = statuses
        .iter()
        .filter(|s| s.active)
        .map(|s| {
            format!(
                "{} {} > {}",
                s.name,
                s.value.as_deref().unwrap_or("?"),
                s.threshold
            )
        })
        .collect();
    let scaling = if active.is_empty() {
        Desired::new(
            SCALING_ACTIVE,
            false,
            "WithinThresholds",
            format!(
                "all {} trigger(s) are within their thresholds",
                statuses.len()
            ),
        )
    } else {
        Desired::new(SCALING_ACTIVE, true, "ThresholdExceeded", active.join("; "))
    };
    vec![scaling, degraded(statuses)]
}

fn degraded(statuses: &[TriggerStatus]) -> Desired {
    let failed: Vec<String> = statuses
        .iter()
        .filter_map(|s| {
            let message = s.message.as_ref()?;
            message
                .starts_with("action failed: ")
                .then(|| format!("{}: {message}", s.name))
        })
        .collect();
    if !failed.is_empty() {
        return Desired::new(DEGRADED, true, "ActionFailed", failed.join("; "));
    }
    let unreadable: Vec<String> = statuses
        .iter()
        .filter_map(|s| {
            let error = s.error.as_ref()?;
            let since = s
                .error_since
                .as_ref()
                .map(|t| format!(" (since {})", t.0))
                .unwrap_or_default();
            Some(format!("{}: {error}{since}", s.name))
        })
        .collect();
    if !unreadable.is_empty() {
        return Desired::new(
            DEGRADED,
            true,
            "SourceUnavailable",
            format!(
                "no scaling in either direction for {}",
                unreadable.join("; ")
            ),
        );
    }
    let refused: Vec<String> = statuses
        .iter()
        .filter_map(|s| {
            let message = s.message.as_ref()?;
            message
                .strip_prefix("refused: ")
                .map(|why| format!("{}: {why}", s.name))
        })
        .collect();
    if !refused.is_empty() {
        return Desired::new(DEGRADED, true, "ScalingRefused", refused.join("; "));
    }
    Desired::new(
        DEGRADED,
        false,
        "AsExpected",
        "every trigger's source is readable and no action failed",
    )
}
