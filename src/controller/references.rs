//! Checks that what a policy references exists: workloads to scale, Secrets and their keys.
//! Problems become a `Ready=False` condition with a reason a runbook can key on.

use std::collections::BTreeSet;

use crate::{
    crd::{LaunchPolicySpec, ScaleTargetRef, SecretKeyRef},
    sources::address::{AddressPolicy, Denied, Destination},
};

/// Reads what references point to. The kube implementation lives in `lookup.rs`; tests use plain values.
pub trait Lookup {
    /// Whether the workload exists (`Ok(false)` when the apiserver says NotFound).
    fn workload_exists(
        &self,
        target: &ScaleTargetRef,
    ) -> impl Future<Output = Result<bool, String>> + Send;
    /// The keys of a Secret, or `None` when it does not exist. Values are never read here.
    fn secret_keys(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<BTreeSet<String>>, String>> + Send;
}

/// One thing wrong with a policy's references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Stable PascalCase reason: `TargetNotFound`, `SecretNotFound`, `SecretKeyMissing`, `LookupFailed`.
    pub reason: &'static str,
    pub message: String,
}

/// A workload the spec points to, and the field that points to it.
pub struct WorkloadUse {
    pub at: String,
    pub target: ScaleTargetRef,
}

/// A Secret the spec points to (and the key it needs, if any), and the field that points to it.
pub struct SecretUse {
    pub at: String,
    pub name: String,
    pub key: Option<String>,
}

/// Every workload and Secret the spec points to, in spec order.
pub fn referenced(spec: &LaunchPolicySpec) -> (Vec<WorkloadUse>, Vec<SecretUse>) {
    let mut workloads = Vec::new();
    let mut secrets = Vec::new();
    let whole = |at: String, name: &str| SecretUse {
        at,
        name: name.to_string(),
        key: None,
    };
    let keyed = |at: String, r: &SecretKeyRef| SecretUse {
        at,
        name: r.name.clone(),
        key: Some(r.key.clone()),
    };
    // A LaunchSource's Secret (with its own namespace) is the platform team's: not the
    // tenant's to create, and read only when the source is used.
    if let Some(p) = spec
        .prometheus
        .as_ref()
        .and_then(|p| p.auth_secret_ref.as_ref())
        .filter(|r| r.namespace.is_none())
    {
        secrets.push(whole("spec.prometheus.authSecretRef".into(), &p.name));
    }
    for (i, t) in spec
        .scaling
        .iter()
        .flat_map(|s| s.triggers.iter())
        .enumerate()
    {
        let at = format!("spec.scaling.triggers[{i}]");
        if let Some(target) = &t.scale_target_ref {
            workloads.push(WorkloadUse {
                at: format!("{at}.scaleTargetRef"),
                target: target.clone(),
            });
        }
        if let Some(consumers) = &t.consumers {
            workloads.push(WorkloadUse {
                at: format!("{at}.consumers.scaleTargetRef"),
                target: consumers.scale_target_ref.clone(),
            });
        }
        // A trigger without a usable kind never gets here: the policy is reported as
        // `InvalidSpec` before its references are looked at.
        for used in t.kind().iter().flat_map(|k| k.get().secrets()) {
            let at = format!("{at}.{}", used.field);
            secrets.push(SecretUse {
                at,
                name: used.name.to_string(),
                key: used.key.map(str::to_string),
            });
        }
    }
    for (i, n) in spec.notifications.iter().enumerate() {
        secrets.push(keyed(
            format!("spec.notifications[{i}].webhookSecretRef"),
            &n.webhook_secret_ref,
        ));
    }
    (workloads, secrets)
}

/// Checks every reference; returns the problems found, in spec order.
pub async fn check(spec: &LaunchPolicySpec, lookup: &impl Lookup) -> Vec<Problem> {
    let (workloads, secrets) = referenced(spec);
    let mut problems = Vec::new();
    for WorkloadUse { at, target } in workloads {
        match lookup.workload_exists(&target).await {
            Ok(true) => {}
            Ok(false) => problems.push(Problem {
                reason: "TargetNotFound",
                message: format!(
                    "{at}: {} {} not found in this namespace; create it or fix the reference",
                    target.kind, target.name
                ),
            }),
            Err(e) => problems.push(Problem {
                reason: "LookupFailed",
                message: format!("{at}: could not read {} {}: {e}", target.kind, target.name),
            }),
        }
    }
    for SecretUse { at, name, key } in secrets {
        match lookup.secret_keys(&name).await {
            Ok(None) => problems.push(Problem {
                reason: "SecretNotFound",
                message: format!("{at}: Secret {name} not found in this namespace"),
            }),
            Ok(Some(keys)) => {
                if let Some(key) = key.filter(|k| !keys.contains(k)) {
                    problems.push(Problem {
                        reason: "SecretKeyMissing",
                        message: format!("{at}: Secret {name} has no key {key:?}"),
                    });
                }
            }
            Err(e) => problems.push(Problem {
                reason: "LookupFailed",
                message: format!("{at}: could not read Secret {name}: {e}"),
            }),
        }
    }
    problems
}

/// The addresses written in the spec that the operator's address policy refuses outright (an
/// IP, a metadata host name): `AddressDenied`, naming the field, before anything is contacted.
/// Names are checked again once resolved, on every connection.
pub fn refused_addresses(spec: &LaunchPolicySpec, policy: &AddressPolicy) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut refuse = |at: String, checked: Result<(), Denied>| {
        if let Err(denied) = checked {
            problems.push(Problem {
                reason: "AddressDenied",
                message: format!(
                    "{at}: {denied}; ask the platform team which addresses policies may use"
                ),
            });
        }
    };
    if let Some(prometheus) = &spec.prometheus {
        let checked = policy.check_url_as_written(Destination::Prometheus, &prometheus.address);
        let field = match prometheus.source_ref {
            Some(_) => "spec.prometheus.sourceRef",
            None => "spec.prometheus.address",
        };
        refuse(field.into(), checked);
    }
    let triggers = spec.scaling.iter().flat_map(|s| s.triggers.iter());
    for (i, trigger) in triggers.enumerate() {
        // A trigger without a usable kind never gets here (InvalidSpec first).
        for used in trigger.kind().iter().flat_map(|k| k.get().addresses()) {
            let at = format!("spec.scaling.triggers[{i}].{}", used.field);
            refuse(
                at,
                policy.check_host(used.destination, used.host, used.port),
            );
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed {
        workloads: Vec<&'static str>,
        secrets: Vec<(&'static str, Vec<&'static str>)>,
    }

    impl Lookup for Fixed {
        async fn workload_exists(&self, target: &ScaleTargetRef) -> Result<bool, String> {
            Ok(self.workloads.contains(&target.name.as_str()))
        }
        async fn secret_keys(&self, name: &str) -> Result<Option<BTreeSet<String>>, String> {
            Ok(self
                .secrets
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, keys)| keys.iter().map(|k| k.to_string()).collect()))
        }
    }

    fn example() -> LaunchPolicySpec {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(include_str!("../../examples/emr-platform.yaml")).unwrap();
        serde_yaml::from_value(doc["spec"].clone()).unwrap()
    }

    #[tokio::test]
    async fn everything_present_means_no_problems() {
        let lookup = Fixed {
            workloads: vec!["api", "redis", "task-workers"],
            secrets: vec![
                ("redis", vec!["url"]),
                (
                    "war-room",
                    vec!["url", "stakeholders", "executives", "status-page"],
                ),
            ],
        };
        assert_eq!(check(&example(), &lookup).await, vec![]);
    }

    #[tokio::test]
    async fn missing_things_are_named_with_their_field() {
        let lookup = Fixed {
            workloads: vec!["redis"],
            secrets: vec![("redis", vec!["password"])],
        };
        let problems = check(&example(), &lookup).await;
        let reasons: Vec<_> = problems.iter().map(|p| p.reason).collect();
        // One per field that names the missing Secret: each webhook of the example.
        assert_eq!(
            reasons,
            [
                "TargetNotFound",
                "TargetNotFound",
                "SecretKeyMissing",
                "SecretNotFound",
                "SecretNotFound",
                "SecretNotFound",
                "SecretNotFound"
            ]
        );
        assert!(
            problems[0]
                .message
                .starts_with("spec.scaling.triggers[0].scaleTargetRef: Deployment api not found")
        );
        assert!(problems[1].message.starts_with(
            "spec.scaling.triggers[1].consumers.scaleTargetRef: Deployment task-workers not found"
        ));
        assert!(problems[2].message.contains("has no key \"url\""));
        assert!(
            problems[3]
                .message
                .contains("spec.notifications[0].webhookSecretRef")
        );
    }
}
