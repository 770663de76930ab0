//! Which trigger scales a workload that triggers of several LaunchPolicies name. Two autoscalers
//! on one workload undo each other's changes, so one of them acts and the others are refused,
//! as beside a HorizontalPodAutoscaler: the first claim, that is the oldest policy (then the
//! first by name), and in it the first trigger in spec order. A team adding a second policy over
//! a workload a running launch scales is refused; the running launch carries on.
//!
//! Within one policy the CRD refuses two triggers on one workload at admission; a policy stored
//! before that rule is covered here too (its first trigger holds the workload).

use kube::ResourceExt;

use crate::crd::{LaunchPolicy, ScaleTargetRef};

/// A trigger that scales a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub policy: String,
    pub trigger: String,
}

/// Whether two references name the same workload (the same API group, kind and name).
pub fn same_workload(a: &ScaleTargetRef, b: &ScaleTargetRef) -> bool {
    let group = |api_version: &str| api_version.rsplit_once('/').map(|(g, _)| g.to_owned());
    a.kind == b.kind && a.name == b.name && group(&a.api_version) == group(&b.api_version)
}

/// The first claim on `target` among `policies` of `namespace` (see the module's doc).
pub fn holder<'a>(
    policies: impl Iterator<Item = &'a LaunchPolicy>,
    namespace: &str,
    target: &ScaleTargetRef,
) -> Option<Claim> {
    policies
        .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let triggers = p.spec.scaling.as_ref()?.triggers.iter();
            let trigger = triggers
                .filter(|t| {
                    t.scale_target_ref
                        .as_ref()
                        .is_some_and(|r| same_workload(r, target))
                })
                .map(|t| t.name.clone())
                .next()?;
            // The oldest first; no timestamp (never, from the apiserver) sorts last.
            let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            Some(((created.is_none(), created, p.name_any()), trigger))
        })
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|((_, _, policy), trigger)| Claim { policy, trigger })
}

/// Why `me` may not scale `target`: another trigger claimed it first. Described for a status
/// message, naming both.
pub fn conflict(holder: Option<Claim>, me: &Claim, target: &ScaleTargetRef) -> Option<String> {
    let holder = holder.filter(|h| h != me)?;
    let other = match holder.policy == me.policy {
        true => format!("trigger {} of this policy", holder.trigger),
        false => format!(
            "LaunchPolicy {} (trigger {})",
            holder.policy, holder.trigger
        ),
    };
    Some(format!(
        "{other} also scales {} {} and claimed it first; remove one of the two triggers, two \
         autoscalers on one workload fight each other",
        target.kind, target.name
    ))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    use super::*;

    fn policy(name: &str, created: i64, triggers: &[(&str, &str)]) -> LaunchPolicy {
        let triggers: Vec<_> = triggers
            .iter()
            .map(|(trigger, target)| {
                json!({
                    "name": trigger,
                    "cpu": {"utilization": 70},
                    "scaleTargetRef": {"kind": "Deployment", "name": target},
                    "replicas": {"min": 1, "max": 5}
                })
            })
            .collect();
        let mut p: LaunchPolicy = serde_json::from_value(json!({
            "apiVersion": "liftoff.dev/v1alpha1",
            "kind": "LaunchPolicy",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"scaling": {"triggers": triggers}}
        }))
        .unwrap();
        p.metadata.creation_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(created).unwrap(),
        ));
        p
    }

    fn target(name: &str) -> ScaleTargetRef {
        serde_json::from_value(json!({"kind": "Deployment", "name": name})).unwrap()
    }

    fn claim(policy: &str, trigger: &str) -> Claim {
        Claim {
            policy: policy.into(),
            trigger: trigger.into(),
        }
    }

    #[test]
    fn the_oldest_policy_holds_the_workload_and_the_other_is_told_who() {
        let newer = policy("checkout", 2_000, &[("cpu", "api")]);
        let older = policy("launch", 1_000, &[("api-cpu", "api"), ("web", "web")]);
        let all = [newer, older];
        let api = holder(all.iter(), "shop", &target("api"));
        assert_eq!(api, Some(claim("launch", "api-cpu")));
        assert_eq!(
            conflict(api.clone(), &claim("launch", "api-cpu"), &target("api")),
            None
        );
        let refused = conflict(api, &claim("checkout", "cpu"), &target("api")).unwrap();
        assert!(
            refused.starts_with(
                "LaunchPolicy launch (trigger api-cpu) also scales Deployment api and claimed it first"
            ),
            "{refused}"
        );
        // A workload only one policy names is not contested.
        assert_eq!(
            holder(all.iter(), "shop", &target("web")),
            Some(claim("launch", "web"))
        );
    }

    #[test]
    fn ties_go_by_name_and_other_namespaces_and_deleted_policies_do_not_count() {
        let mut other_ns = policy("a", 1, &[("cpu", "api")]);
        other_ns.metadata.namespace = Some("billing".into());
        let mut deleted = policy("b", 1, &[("cpu", "api")]);
        deleted.metadata.deletion_timestamp = deleted.metadata.creation_timestamp.clone();
        let all = [
            other_ns,
            deleted,
            policy("d", 5, &[("cpu", "api")]),
            policy("c", 5, &[("cpu", "api")]),
        ];
        assert_eq!(
            holder(all.iter(), "shop", &target("api")),
            Some(claim("c", "cpu"))
        );
    }

    #[test]
    fn within_one_policy_the_first_trigger_holds_it() {
        let p = policy("launch", 1, &[("first", "api"), ("second", "api")]);
        let api = holder([&p].into_iter(), "shop", &target("api"));
        let refused = conflict(api, &claim("launch", "second"), &target("api")).unwrap();
        assert!(
            refused.starts_with("trigger first of this policy also scales"),
            "{refused}"
        );
    }

    #[test]
    fn a_group_is_the_same_workload_whatever_its_version() {
        let mut a = target("api");
        a.api_version = "apps/v1beta2".into();
        assert!(same_workload(&a, &target("api")));
        a.api_version = "example.com/v1".into();
        assert!(!same_workload(&a, &target("api")));
    }
}
