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
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hashbrown::hash_table::{Entry, HashTable};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::Store;

use super::cached::CachedPolicy;
use crate::crd::ScaleTargetRef;

/// A trigger that scales a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub policy: String,
    pub trigger: String,
}

/// A workload: its namespace, API group, kind and name (the version does not matter).
type Workload<'a> = (&'a str, &'a str, &'a str, &'a str);

fn workload<'a>(namespace: &'a str, target: &'a ScaleTargetRef) -> Workload<'a> {
    let group = target.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    (namespace, group, &target.kind, &target.name)
}

/// Whether two references name the same workload (the same API group, kind and name).
pub fn same_workload(a: &ScaleTargetRef, b: &ScaleTargetRef) -> bool {
    workload("", a) == workload("", b)
}

/// The oldest first; no timestamp (never, from the apiserver) sorts last; then by name.
type Age<'a> = (bool, Option<Timestamp>, &'a str);

fn age(policy: &CachedPolicy) -> Age<'_> {
    let created = policy.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let name = policy.metadata.name.as_deref().unwrap_or_default();
    (created.is_none(), created, name)
}

/// The first claim on every workload that a snapshot of the policy cache scales (see the
/// module's doc). It holds the policies and, per workload, where its holder is among them (the
/// policy and the trigger), so building it copies no string: at 10,000 policies it is built
/// once a second.
pub struct Claims {
    policies: Vec<Arc<CachedPolicy>>,
    /// (policy, trigger): `policies[policy]`'s outline's `scales[trigger]`.
    first: HashTable<(usize, usize)>,
    hasher: RandomState,
}

impl Claims {
    pub fn new(policies: Vec<Arc<CachedPolicy>>) -> Self {
        let mut claims = Claims {
            first: HashTable::with_capacity(policies.len()),
            policies,
            hasher: RandomState::new(),
        };
        let Claims {
            policies,
            first,
            hasher,
        } = &mut claims;
        let at = |(p, t): (usize, usize)| -> Option<(Workload<'_>, Age<'_>)> {
            Some((workload_at(policies, p, t)?, age(&policies[p])))
        };
        let hash = |w: &Workload<'_>| hasher.hash_one(w);
        for (p, policy) in policies.iter().enumerate() {
            // A policy that cannot be read, is reported InvalidSpec, or is being deleted takes
            // no action, so it holds nothing.
            let Some(outline) = policy.outline().filter(|o| o.acts) else {
                continue;
            };
            if policy.metadata.deletion_timestamp.is_some() {
                continue;
            }
            // Triggers in spec order: within the policy, the first one on a workload holds it.
            for t in (0..outline.scales.len()).rev() {
                let Some((mine, my_age)) = at((p, t)) else {
                    continue;
                };
                let entry = first.entry(
                    hash(&mine),
                    |&other| at(other).is_some_and(|(w, _)| w == mine),
                    |&other| at(other).map_or(0, |(w, _)| hash(&w)),
                );
                match entry {
                    Entry::Vacant(v) => {
                        v.insert((p, t));
                    }
                    Entry::Occupied(mut o) => {
                        if at(*o.get()).is_none_or(|(_, held)| my_age <= held) {
                            *o.get_mut() = (p, t);
                        }
                    }
                }
            }
        }
        claims
    }

    /// The first claim on `target` in `namespace`.
    pub fn holder(&self, namespace: &str, target: &ScaleTargetRef) -> Option<Claim> {
        let wanted = workload(namespace, target);
        let &(p, t) = self.first.find(self.hasher.hash_one(wanted), |&(p, t)| {
            workload_at(&self.policies, p, t) == Some(wanted)
        })?;
        let policy = &self.policies[p];
        let (trigger, _) = policy.outline()?.scales.get(t)?;
        Some(Claim {
            policy: policy.metadata.name.clone().unwrap_or_default(),
            trigger: trigger.clone(),
        })
    }
}

/// The workload that trigger `t` of `policies[p]` scales.
fn workload_at(policies: &[Arc<CachedPolicy>], p: usize, t: usize) -> Option<Workload<'_>> {
    let policy = policies.get(p)?;
    let namespace = policy.metadata.namespace.as_deref()?;
    let (_, target) = policy.outline()?.scales.get(t)?;
    Some(workload(namespace, target))
}

/// How long the index of first claims is used before it is built again from the policy cache.
const INDEX_LIFETIME: Duration = Duration::from_secs(1);
/// A workload missing from the index rebuilds it, but not more often than this.
const REBUILD_ON_MISS: Duration = Duration::from_millis(50);

/// [`Claims`] of the whole policy cache, built at most once a second instead of scanning
/// every policy for every trigger sample (10,000 policies would make that 10^8 checks per
/// round). A workload the index does not know is one a policy newer than the index claims, so
/// the index is built again then (at most every 50 ms); a holder deleted within the last second
/// still holds for that second (its rivals stay refused one sample longer).
#[derive(Clone, Default)]
pub struct Index {
    built: Arc<Mutex<Option<(Instant, Claims)>>>,
}

impl Index {
    /// The first claim on `target` in `namespace`; `policies` are read when the index is stale.
    pub fn holder(
        &self,
        policies: &Store<super::Watched>,
        namespace: &str,
        target: &ScaleTargetRef,
    ) -> Option<Claim> {
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, claims)) = built.as_ref() {
            let age = at.elapsed();
            match claims.holder(namespace, target) {
                Some(claim) if age < INDEX_LIFETIME => return Some(claim),
                None if age < REBUILD_ON_MISS => return None,
                _ => {}
            }
        }
        let claims = Claims::new(policies.state());
        let holder = claims.holder(namespace, target);
        *built = Some((Instant::now(), claims));
        holder
    }

    /// Drops an index past its lifetime: it holds the policies of its snapshot, which the cache
    /// may have replaced or deleted since, and nothing asked for a holder to replace it.
    pub fn expire(&self) {
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if built
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() >= INDEX_LIFETIME)
        {
            *built = None;
        }
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
    use crate::crd::LaunchPolicy;

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

    /// The holder of `target` in the namespace "shop" among `policies`.
    fn holder<const N: usize>(
        policies: [LaunchPolicy; N],
        target: &ScaleTargetRef,
    ) -> Option<Claim> {
        let cached = policies.map(|p| Arc::new(CachedPolicy::new(p)));
        Claims::new(cached.to_vec()).holder("shop", target)
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
        let api = holder([newer.clone(), older.clone()], &target("api"));
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
            holder([newer, older], &target("web")),
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
        assert_eq!(holder(all, &target("api")), Some(claim("c", "cpu")));
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
        assert_eq!(holder(all, &target("api")), Some(claim("new", "cpu")));
    }

    #[test]
    fn within_one_policy_the_first_trigger_holds_it() {
        let p = policy("launch", 1, &[("first", "api"), ("second", "api")]);
        let api = holder([p], &target("api"));
        let refused = conflict(api, &claim("launch", "second"), &target("api")).unwrap();
        assert!(
            refused.starts_with("trigger first of this policy also scales"),
            "{refused}"
        );
    }

    #[test]
    fn every_workload_of_a_large_cache_has_its_own_holder() {
        // More workloads than the index was sized for: it grows, rehashing what it holds.
        let policies: Vec<_> = (0..300)
            .map(|i| {
                let own = format!("w{i}");
                let p = policy(
                    &format!("p{i}"),
                    1_000 - i,
                    &[("own", &own), ("shared", "db")],
                );
                Arc::new(CachedPolicy::new(p))
            })
            .collect();
        let claims = Claims::new(policies);
        for i in 0..300 {
            let claim = claims.holder("shop", &target(&format!("w{i}")));
            assert_eq!(claim, Some(self::claim(&format!("p{i}"), "own")));
        }
        // The oldest (created first) holds the workload they all name.
        assert_eq!(
            claims.holder("shop", &target("db")),
            Some(claim("p299", "shared"))
        );
        assert_eq!(claims.holder("shop", &target("unknown")), None);
        assert_eq!(claims.holder("billing", &target("w1")), None);
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
