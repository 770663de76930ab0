//! Computing and writing status: the whole status replaced in one JSON patch, conditional on the
//! version it was decided from, and no write at all when nothing changed.

use k8s_openapi::jiff::Timestamp;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;

use super::references::Problem;
use crate::{
    FIELD_MANAGER,
    conditions::{self, Desired},
    crd::{LaunchPolicy, LaunchPolicyStatus},
};

/// Condition type: the spec is usable (every reference resolves).
pub const READY: &str = "Ready";

/// The `Ready` condition for a set of reference problems.
pub fn ready_condition(problems: &[Problem], suspended: bool) -> Desired {
    match problems {
        [] if suspended => Desired::new(
            READY,
            true,
            "Suspended",
            "all references resolve; spec.suspend is true, so Liftoff observes and takes no action",
        ),
        [] => Desired::new(READY, true, "Ready", "all references resolve"),
        [first, rest @ ..] => {
            let mut message = first.message.clone();
            if !rest.is_empty() {
                message.push_str(&format!(" (and {} more problem(s): ", rest.len()));
                message.push_str(
                    &rest
                        .iter()
                        .map(|p| p.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                );
                message.push(')');
            }
            Desired::new(READY, false, first.reason, message)
        }
    }
}

/// The status Liftoff wants, built from the previous one so untouched parts and timestamps carry over.
pub fn desired(
    policy: &LaunchPolicy,
    conditions_wanted: &[Desired],
    now: Timestamp,
) -> LaunchPolicyStatus {
    let previous = policy.status.clone().unwrap_or_default();
    LaunchPolicyStatus {
        observed_generation: policy.metadata.generation,
        conditions: conditions::merge(
            &previous.conditions,
            conditions_wanted,
            policy.metadata.generation,
            now,
        ),
        ..previous
    }
}

/// Writes `status` unless it equals `stored`, what the apiserver has. Returns the object's new
/// `resourceVersion` when it wrote.
///
/// The write is conditional on `resource_version`, the version the status was decided from: if
/// the policy changed since (another writer, or a cache that had not caught up with this
/// process's own last write), the apiserver answers 409 Conflict and nothing is written — a
/// decision is never recorded on top of a state it did not see.
///
/// The status is replaced whole with a JSON patch rather than server-side applied: Liftoff is its
/// only writer, and an apply costs the apiserver more than a create (field ownership is worked
/// out member by member), which made the first status of 10,000 stored policies the slowest
/// part of a start (see docs/benchmarks.md).
pub async fn write_if_changed(
    api: &Api<LaunchPolicy>,
    name: &str,
    resource_version: Option<&str>,
    stored: Option<&LaunchPolicyStatus>,
    status: &LaunchPolicyStatus,
) -> kube::Result<Option<String>> {
    if stored == Some(status) {
        return Ok(None);
    }
    let patch = replace_patch(resource_version, status)?;
    let written = api
        .patch_status(
            name,
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PatchParams::default()
            },
            &Patch::<()>::Json(patch),
        )
        .await?;
    Ok(Some(written.metadata.resource_version.unwrap_or_default()))
}

/// What a status write changes, as the JSON pointers of the members that differ (`/triggers/0/value`,
/// `/rollout/gates/2/checkedAt`), for a debug log: why a policy wrote. No value is named.
pub fn changed_paths(stored: Option<&LaunchPolicyStatus>, status: &LaunchPolicyStatus) -> String {
    let Some(stored) = stored else {
        return "/ (the first status)".into();
    };
    let (Ok(before), Ok(after)) = (serde_json::to_value(stored), serde_json::to_value(status))
    else {
        return String::new();
    };
    let paths: Vec<String> = json_patch::diff(&before, &after)
        .iter()
        .map(|op| op.path().to_string())
        .collect();
    paths.join(" ")
}

/// The JSON patch of a status write: `resourceVersion` set to the version decided from (the
/// apiserver refuses the write with 409 when the stored object is at another), then the status
/// replaced (`add` replaces a member that exists).
fn replace_patch(
    resource_version: Option<&str>,
    status: &LaunchPolicyStatus,
) -> kube::Result<json_patch::Patch> {
    let mut ops = Vec::new();
    if let Some(version) = resource_version {
        ops.push(json!({"op": "replace", "path": "/metadata/resourceVersion", "value": version}));
    }
    ops.push(json!({"op": "add", "path": "/status", "value": status}));
    serde_json::from_value(serde_json::Value::Array(ops)).map_err(kube::Error::SerdeError)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(reason: &'static str, message: &str) -> Problem {
        Problem {
            reason,
            message: message.into(),
        }
    }

    #[test]
    fn ready_names_the_first_problem_and_counts_the_rest() {
        let c = ready_condition(
            &[
                problem("TargetNotFound", "a"),
                problem("SecretNotFound", "b"),
            ],
            false,
        );
        assert!(!c.status);
        assert_eq!(c.reason, "TargetNotFound");
        assert_eq!(c.message, "a (and 1 more problem(s): b)");
    }

    #[test]
    fn changed_paths_name_the_members_a_write_changes() {
        let before = LaunchPolicyStatus {
            observed_generation: Some(1),
            ..Default::default()
        };
        let after = LaunchPolicyStatus {
            observed_generation: Some(2),
            ..before.clone()
        };
        assert_eq!(changed_paths(Some(&before), &after), "/observedGeneration");
        assert_eq!(changed_paths(None, &after), "/ (the first status)");
    }

    #[test]
    fn no_problems_is_ready() {
        assert!(ready_condition(&[], false).status);
        assert_eq!(ready_condition(&[], true).reason, "Suspended");
    }

    #[test]
    fn recomputing_an_unchanged_policy_yields_the_stored_status() {
        let mut policy = LaunchPolicy::new("p", serde_json::from_value(json!({})).unwrap());
        policy.metadata.generation = Some(4);
        let wanted = [ready_condition(&[], false)];
        let first = desired(&policy, &wanted, Timestamp::from_second(10).unwrap());
        policy.status = Some(first.clone());
        let again = desired(&policy, &wanted, Timestamp::from_second(99).unwrap());
        assert_eq!(again, first, "a resync must not produce a different status");
    }
}
