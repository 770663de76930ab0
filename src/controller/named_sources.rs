//! Named sources: a policy's `sourceRef` replaced by the LaunchSource it names, before anything
//! else reads the spec. The platform team creates LaunchSources (cluster-scoped) for the
//! namespaces they list; with `--require-named-sources` an address written in a policy is
//! refused, so tenants only reach what the platform team chose.

use std::{borrow::Cow, sync::Arc};

use kube::runtime::reflector::{ObjectRef, Store};

use super::{references::Problem, synced::Synced};
use crate::crd::{
    LaunchPolicy, LaunchPolicySpec, LaunchSource, NamespacedSecretRef, SecretRef, SourceRef,
};

/// The LaunchSources the operator knows, and whether policies must use them.
#[derive(Clone, Default)]
pub struct NamedSources {
    /// `None` when the operator could not list LaunchSources at start (no CRD, or no RBAC):
    /// every `sourceRef` then fails, saying why.
    pub store: Option<Store<LaunchSource>>,
    /// Whether the store has listed (`None` without the CRD).
    pub synced: Option<Synced>,
    /// Refuse addresses written in policies (`--require-named-sources`).
    pub required: bool,
}

impl NamedSources {
    /// Waits until the LaunchSources have been listed: before that, a source may only not be
    /// listed yet. `false` if the watch task has stopped.
    pub async fn wait_synced(&self) -> bool {
        match &self.synced {
            Some(synced) => synced.wait().await,
            None => true,
        }
    }

    fn get(&self, name: &str) -> Lookup {
        match &self.store {
            None => Lookup::NotInstalled,
            Some(store) => match store.get(&ObjectRef::new(name)) {
                Some(source) => Lookup::Found(source),
                None => Lookup::Missing,
            },
        }
    }

    /// `policy` with every `sourceRef` filled in from its LaunchSource (borrowed unchanged when
    /// it names none), and what is wrong with its sources. A reference that cannot be used is
    /// left unresolved: with no address, its samples are unknown and the policy is not Ready.
    pub fn resolve<'p>(&self, policy: &'p LaunchPolicy) -> (Cow<'p, LaunchPolicy>, Vec<Problem>) {
        let namespace = policy.metadata.namespace.as_deref().unwrap_or_default();
        let mut problems = Vec::new();
        if self.required {
            problems.extend(written_addresses(&policy.spec).into_iter().map(|at| Problem {
                reason: "AddressDenied",
                message: format!(
                    "{at}: this operator only accepts named sources; use the sourceRef of a \
                     LaunchSource the platform team created for this namespace \
                     (`kubectl get launchsources`)"
                ),
            }));
        }
        if problems.is_empty() && !names_a_source(&policy.spec) {
            return (Cow::Borrowed(policy), problems);
        }
        let mut resolved = policy.clone();
        let spec = &mut resolved.spec;
        if self.required {
            // Never contacted: with no address, their samples are unknown.
            forget_written_addresses(spec);
        }
        if let Some(prometheus) = spec.prometheus.as_mut()
            && let Some(r) = &prometheus.source_ref
        {
            let at = "spec.prometheus.sourceRef";
            match self.usable(r, namespace, at) {
                Ok(source) => match &source.spec.prometheus {
                    Some(endpoint) => {
                        prometheus.address = endpoint.address.clone();
                        prometheus.auth_secret_ref =
                            endpoint.auth_secret_ref.as_ref().map(platform_secret);
                    }
                    None => problems.push(mismatch(at, r, "Prometheus")),
                },
                Err(problem) => problems.push(problem),
            }
        }
        let triggers = spec.scaling.iter_mut().flat_map(|s| s.triggers.iter_mut());
        for (i, trigger) in triggers.enumerate() {
            let Some(lag) = trigger.kafka_lag.as_mut() else {
                continue;
            };
            let Some(r) = &lag.source_ref else { continue };
            let at = format!("spec.scaling.triggers[{i}].kafkaLag.sourceRef");
            match self.usable(r, namespace, &at) {
                Ok(source) => match &source.spec.kafka {
                    Some(endpoint) => {
                        lag.bootstrap_servers = endpoint.bootstrap_servers.clone();
                        lag.auth_secret_ref =
                            endpoint.auth_secret_ref.as_ref().map(platform_secret);
                    }
                    None => problems.push(mismatch(&at, r, "Kafka")),
                },
                Err(problem) => problems.push(problem),
            }
        }
        (Cow::Owned(resolved), problems)
    }

    /// The LaunchSource `r` names, if a policy in `namespace` may use it.
    fn usable(
        &self,
        r: &SourceRef,
        namespace: &str,
        at: &str,
    ) -> Result<Arc<LaunchSource>, Problem> {
        let name = &r.name;
        let problem = |reason, message: String| Problem {
            reason,
            message: format!("{at}: {message}"),
        };
        let source = match self.get(name) {
            Lookup::Found(source) => source,
            Lookup::Missing => {
                return Err(problem(
                    "SourceNotFound",
                    format!(
                        "LaunchSource {name} does not exist; `kubectl get launchsources` lists \
                         the sources the platform team created"
                    ),
                ));
            }
            Lookup::NotInstalled => {
                return Err(problem(
                    "SourceNotFound",
                    format!(
                        "LaunchSource {name} cannot be read: the operator could not list \
                         LaunchSources when it started (is their CRD installed, and may it list \
                         them? `liftoff crd | kubectl apply -f -`, then restart the operator)"
                    ),
                ));
            }
        };
        if !source.spec.allows(namespace) {
            return Err(problem(
                "SourceNotAllowed",
                format!(
                    "LaunchSource {name} does not list namespace {namespace}; ask the platform \
                     team to add it to the source's spec.namespaces"
                ),
            ));
        }
        Ok(source)
    }
}

enum Lookup {
    Found(Arc<LaunchSource>),
    Missing,
    NotInstalled,
}

/// A LaunchSource of the other kind.
fn mismatch(at: &str, r: &SourceRef, want: &str) -> Problem {
    Problem {
        reason: "SourceMismatch",
        message: format!("{at}: LaunchSource {} is not a {want} source", r.name),
    }
}

/// A LaunchSource's Secret, read from the namespace the platform team named.
fn platform_secret(s: &NamespacedSecretRef) -> SecretRef {
    SecretRef {
        name: s.name.clone(),
        namespace: Some(s.namespace.clone()),
    }
}

/// The LaunchSources the spec names.
pub fn names(spec: &LaunchPolicySpec) -> impl Iterator<Item = &str> {
    let prometheus = spec.prometheus.iter().filter_map(|p| p.source_ref.as_ref());
    let kafka = spec
        .scaling
        .iter()
        .flat_map(|s| s.triggers.iter())
        .filter_map(|t| t.kafka_lag.as_ref()?.source_ref.as_ref());
    prometheus.chain(kafka).map(|r| r.name.as_str())
}

/// Whether the spec names any LaunchSource.
fn names_a_source(spec: &LaunchPolicySpec) -> bool {
    names(spec).next().is_some()
}

/// Removes the Prometheus and Kafka addresses written in the spec (not from a LaunchSource).
fn forget_written_addresses(spec: &mut LaunchPolicySpec) {
    if let Some(p) = spec.prometheus.as_mut().filter(|p| p.source_ref.is_none()) {
        p.address.clear();
    }
    let triggers = spec.scaling.iter_mut().flat_map(|s| s.triggers.iter_mut());
    for lag in triggers.filter_map(|t| t.kafka_lag.as_mut()) {
        if lag.source_ref.is_none() {
            lag.bootstrap_servers.clear();
        }
    }
}

/// The fields where the spec writes a source address itself rather than naming a LaunchSource.
/// Redis and PostgreSQL addresses are in Secrets of the namespace and are governed by the
/// address policy alone.
fn written_addresses(spec: &LaunchPolicySpec) -> Vec<String> {
    let mut fields = Vec::new();
    if spec.prometheus.iter().any(|p| p.source_ref.is_none()) {
        fields.push("spec.prometheus.address".to_string());
    }
    let triggers = spec.scaling.iter().flat_map(|s| s.triggers.iter());
    for (i, trigger) in triggers.enumerate() {
        if trigger
            .kafka_lag
            .as_ref()
            .is_some_and(|k| k.source_ref.is_none())
        {
            fields.push(format!(
                "spec.scaling.triggers[{i}].kafkaLag.bootstrapServers"
            ));
        }
    }
    fields
}

#[cfg(test)]
mod tests;
