//! Operations on a rollout, as annotations a team can be granted with narrow RBAC (`patch` on
//! LaunchPolicies, no access to status):
//!
//! | Annotation | Value | Does |
//! | --- | --- | --- |
//! | `liftoff.dev/approve` | a stage name or index, optionally `@token` (`gradual`, `1@2nd-try`) | Go for that stage |
//! | `liftoff.dev/pause` | any token, e.g. `$(date +%s)` | hold the current users |
//! | `liftoff.dev/resume` | any token | carry on after a pause or rollback |
//! | `liftoff.dev/abort` | any token | admit nobody and stop |
//! | `liftoff.dev/retry` | any token | start the held stage over (see docs/rollout.md) |
//!
//! A command's id is `annotation=value`, so each value is applied once; to repeat a command, set a
//! new value (`kubectl annotate --overwrite lp/NAME liftoff.dev/pause=$(date +%s)`). Who issued it is
//! taken from `metadata.managedFields`: the field manager that owns the annotation and when it
//! set it (the apiserver does not record the user on the object).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

use crate::{
    crd::RolloutSpec,
    engine::rollout::{Action, Command},
};

pub const APPROVE: &str = "liftoff.dev/approve";
pub const PAUSE: &str = "liftoff.dev/pause";
pub const RESUME: &str = "liftoff.dev/resume";
pub const ABORT: &str = "liftoff.dev/abort";
pub const RETRY: &str = "liftoff.dev/retry";

/// The commands the annotations carry, and a sentence for each annotation that cannot be used.
pub fn from_annotations(
    annotations: &BTreeMap<String, String>,
    managed_fields: &[ManagedFieldsEntry],
    spec: &RolloutSpec,
) -> (Vec<Command>, Vec<String>) {
    let mut commands = Vec::new();
    let mut problems = Vec::new();
    for (key, value) in annotations {
        let action = match key.as_str() {
            APPROVE => match stage_index(value, spec) {
                Ok(stage) => Action::Approve { stage },
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            },
            PAUSE => Action::Pause,
            RESUME => Action::Resume,
            ABORT => Action::Abort,
            RETRY => Action::Retry,
            _ => continue,
        };
        let mut command = Command::new(format!("{key}={value}"), action);
        if let Some(by) = issuer(key, managed_fields) {
            command = command.by(by);
        }
        commands.push(command);
    }
    (commands, problems)
}

/// `gradual`, `1`, `gradual@2` or `1@x` → the stage's index.
fn stage_index(value: &str, spec: &RolloutSpec) -> Result<u32, String> {
    let stage = value
        .split_once('@')
        .map_or(value, |(stage, _)| stage)
        .trim();
    if let Some(i) = spec.stages.iter().position(|s| s.name == stage) {
        return Ok(i as u32);
    }
    match stage.parse::<u32>() {
        Ok(i) if (i as usize) < spec.stages.len() => Ok(i),
        _ => Err(format!(
            "{APPROVE}={value:?} names no stage; use a stage name ({}) or index, optionally with @token",
            spec.stages
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// `manager at time` for the field manager that owns annotation `key`.
pub(crate) fn issuer(key: &str, managed_fields: &[ManagedFieldsEntry]) -> Option<String> {
    let field = format!("f:{key}");
    managed_fields
        .iter()
        .filter(|m| {
            m.fields_v1.as_ref().is_some_and(|f| {
                f.0.get("f:metadata")
                    .and_then(|m| m.get("f:annotations"))
                    .is_some_and(|a| a.get(&field).is_some())
            })
        })
        .max_by_key(|m| m.time.as_ref().map(|t| t.0))
        .map(|m| {
            let manager = m.manager.clone().unwrap_or_else(|| "unknown".into());
            match &m.time {
                Some(t) => format!("{manager} at {}", t.0),
                None => manager,
            }
        })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, Time};
    use serde_json::json;

    use super::*;

    fn spec() -> RolloutSpec {
        serde_json::from_value(json!({"stages": [
            {"name": "beta", "users": 100}, {"name": "gradual", "users": 500}, {"name": "all", "users": "All"}
        ]}))
        .unwrap()
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn approvals_name_a_stage_by_name_or_index_and_each_value_is_its_own_id() {
        let (commands, problems) = from_annotations(
            &annotations(&[
                (APPROVE, "gradual@2"),
                (PAUSE, "1700000000"),
                ("other", "x"),
            ]),
            &[],
            &spec(),
        );
        assert!(problems.is_empty());
        assert_eq!(
            commands,
            vec![
                Command::new(
                    "liftoff.dev/approve=gradual@2",
                    Action::Approve { stage: 1 }
                ),
                Command::new("liftoff.dev/pause=1700000000", Action::Pause),
            ]
        );
        let (by_index, _) = from_annotations(&annotations(&[(APPROVE, "2")]), &[], &spec());
        assert_eq!(by_index[0].action, Action::Approve { stage: 2 });
    }

    #[test]
    fn an_unknown_stage_is_a_problem_naming_the_choices() {
        let (commands, problems) =
            from_annotations(&annotations(&[(APPROVE, "everyone")]), &[], &spec());
        assert!(commands.is_empty());
        assert!(problems[0].contains("names no stage"), "{}", problems[0]);
        assert!(
            problems[0].contains("beta, gradual, all"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn the_issuer_is_the_field_manager_that_set_the_annotation() {
        let at = k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let managed = vec![ManagedFieldsEntry {
            manager: Some("kubectl-annotate".into()),
            time: Some(Time(at)),
            fields_v1: Some(FieldsV1(
                json!({"f:metadata": {"f:annotations": {"f:liftoff.dev/pause": {}}}}),
            )),
            ..Default::default()
        }];
        let (commands, _) = from_annotations(&annotations(&[(PAUSE, "1")]), &managed, &spec());
        assert_eq!(
            commands[0].by.as_deref(),
            Some("kubectl-annotate at 2027-01-15T08:00:00Z")
        );
    }
}
