//! Which trigger scales a workload that triggers of several LaunchPolicies name. Two autoscalers
//! on one workload undo each other's changes, so one of them acts and the others are refused,
//! as beside a HorizontalPodAutoscaler: the oldest policy (by creation time, then name) holds
//! it, and in it the first trigger in spec order. A team adding a second policy over a workload
//! a running launch scales is refused; the running launch carries on. (Oldest is not first to
//! claim: a trigger added to an older policy takes the workload over, and a policy re-created
//! under the same name is the newest, so it loses the workload to any other policy naming it.)
//! A policy that cannot act (InvalidSpec, or being deleted) holds nothing.
//!
//! Within one policy the CRD refuses two triggers on one workload at admission; a policy stored
//! before that rule is covered here too (its first trigger holds the workload).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::jiff::Timestamp;
use kube::{ResourceExt, runtime::reflector::Store};

use crate::crd::{LaunchPolicy, ScaleTargetRef};

/// A trigger that scales a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub policy: String,
    pub trigger: String,
}

/// A workload: its namespace, API group, kind and name (the version does not matter).
type Workload = (String, String, String, String);

fn workload(namespace: &str, target: &ScaleTargetRef) -> Workload {
    let group = target.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    (
        namespace.to_owned(),
        group.to_owned(),
        target.kind.clone(),
        target.name.clone(),
    )
}

/// Whether two references name the same workload (the same API group, kind and name).
pub fn same_workload(a: &ScaleTargetRef, b: &ScaleTargetRef) -> bool {
    workload("", a) == workload("", b)
}

/// The oldest first; no timestamp (never, from the apiserver) sorts last; then by name.
type Age = (bool, Option<Timestamp>, String);

/// The first claim on every workload that `policies` scale (see the module's doc).
pub fn first_claims<'a>(
    policies: impl Iterator<Item = &'a LaunchPolicy>,
) -> HashMap<Workload, Claim> {
    let mut first: HashMap<Workload, (Age, Claim)> = HashMap::new();
    for p in policies.filter(|p| p.metadata.deletion_timestamp.is_none()) {
        let (Some(namespace), Some(scaling)) = (&p.metadata.namespace, &p.spec.scaling) else {
            continue;
        };
        // A policy reported InvalidSpec takes no action, so it holds nothing.
        if crate::triggers::kinds(&scaling.triggers).is_err() {
            continue;
        }
        let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let age: Age = (created.is_none(), created, p.name_any());
        // Triggers in spec order: within the policy, the first one on a workload holds it.
        for t in scaling.triggers.iter().rev() {
            let Some(target) = t.workload() else {
                continue;
            };
            let claim = Claim {
                policy: age.2.clone(),
                trigger: t.name.clone(),
            };
            let entry = first.entry(workload(namespace, target));
            use std::collections::hash_map::Entry;
            match entry {
                Entry::Vacant(v) => {
                    v.insert((age.clone(), claim));
                }
                Entry::Occupied(mut o) if age <= o.get().0 => {
                    o.insert((age.clone(), claim));
                }
                Entry::Occupied(_) => {}
            }
        }
    }
    first.into_iter().map(|(k, (_, c))| (k, c)).collect()
}

/// The first claim on `target` among `policies` of `namespace` (see the module's doc).
pub fn holder<'a>(
    policies: impl Iterator<Item = &'a LaunchPolicy>,
    namespace: &str,
    target: &ScaleTargetRef,
) -> Option<Claim> {
    first_claims(policies).remove(&workload(namespace, target))
}

/// How long the index of first claims is used before it is built again from the policy cache.
const INDEX_LIFETIME: Duration = Duration::from_secs(1);
/// A workload missing from the index rebuilds it, but not more often than this.
const REBUILD_ON_MISS: Duration = Duration::from_millis(50);

/// [`first_claims`] of the whole policy cache, built at most once a second instead of scanning
/// every policy for every trigger sample (10,000 policies would make that 10^8 checks per
/// round). A workload the index does not know is one a policy newer than the index claims, so
/// the index is built again then (at most every 50 ms); a holder deleted within the last second
/// still holds for that second (its rivals stay refused one sample longer).
#[derive(Clone, Default)]
pub struct Index {
    built: Arc<Mutex<Option<Built>>>,
}

/// An index of first claims and when it was built.
type Built = (Instant, HashMap<Workload, Claim>);

impl Index {
    /// The first claim on `target` in `namespace`; `policies` are read when the index is stale.
    pub fn holder(
        &self,
        policies: &Store<super::Watched>,
        namespace: &str,
        target: &ScaleTargetRef,
    ) -> Option<Claim> {
        let key = workload(namespace, target);
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, index)) = built.as_ref() {
            let age = at.elapsed();
            match index.get(&key) {
                Some(claim) if age < INDEX_LIFETIME => return Some(claim.clone()),
                None if age < REBUILD_ON_MISS => return None,
                _ => {}
            }
        }
        let state = policies.state();
        let index = first_claims(state.iter().filter_map(|p| p.0.as_ref().ok()));
        let holder = index.get(&key).cloned();
        *built = Some((Instant::now(), index));
        holder
    }
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
    fn a_policy_that_cannot_act_holds_nothing() {
        let mut invalid = policy("old", 1, &[("cpu", "api")]);
        // Two kinds in one trigger: InvalidSpec, stored under an older CRD.
        let trigger = &mut invalid.spec.scaling.as_mut().unwrap().triggers[0];
        trigger.kafka_lag = serde_json::from_value(json!({
            "bootstrapServers": "k:9092", "topic": "t", "consumerGroup": "g"
        }))
        .unwrap();
        let all = [invalid, policy("new", 2, &[("cpu", "api")])];
        assert_eq!(
            holder(all.iter(), "shop", &target("api")),
            Some(claim("new", "cpu"))
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
