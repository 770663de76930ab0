//! The `LaunchSource` custom resource (`liftoff.dev/v1alpha1`, cluster-scoped, short name
//! `lsrc`): a Prometheus or a Kafka cluster the platform team names once, for the namespaces it
//! lists. A LaunchPolicy then names the source (`sourceRef`) instead of writing an address, so a
//! tenant never chooses what the operator connects to, nor holds its credentials.

use kube::{CustomResource, CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

/// A named metric source for LaunchPolicies: a Prometheus-compatible API or a Kafka cluster.
// The printcolumn(...) arguments repeat `type_ = "string"` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "liftoff.dev",
    version = "v1alpha1",
    kind = "LaunchSource",
    shortname = "lsrc",
    category = "liftoff",
    derive = "PartialEq",
    cel,
    doc = "LaunchSource names a Prometheus or a Kafka cluster once, for the namespaces it lists. LaunchPolicies in those namespaces use it with `sourceRef: {name: ...}` instead of an address, and never see its credentials. Cluster-scoped: only the platform team creates them. Start the operator with --require-named-sources to refuse addresses written in policies.",
    printcolumn(
        name = "Prometheus",
        type_ = "string",
        json_path = ".spec.prometheus.address",
        description = "Address of a Prometheus source"
    ),
    printcolumn(
        name = "Kafka",
        type_ = "string",
        json_path = ".spec.kafka.bootstrapServers",
        description = "Bootstrap servers of a Kafka source"
    ),
    printcolumn(
        name = "Namespaces",
        type_ = "string",
        json_path = ".spec.namespaces",
        description = "Namespaces whose policies may use this source"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.prometheus) != has(self.kafka)")
    .message("set exactly one of spec.prometheus and spec.kafka"))]
pub struct LaunchSourceSpec {
    /// Namespaces whose LaunchPolicies may use this source, by name; `*` allows every
    /// namespace. A policy elsewhere that names it gets `Ready=False SourceNotAllowed`.
    #[schemars(length(min = 1, max = 1000), inner(length(min = 1, max = 63)))]
    #[x_kube(validation = kube::core::Rule::new("self.all(n, n == '*' || n.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))")
        .message("spec.namespaces holds namespace names (lowercase letters, digits and '-') or '*' for every namespace"))]
    pub namespaces: Vec<String>,
    /// A Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusEndpoint>,
    /// A Kafka cluster, for `kafkaLag` triggers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaEndpoint>,
}

/// Where a named Prometheus is, and its credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusEndpoint {
    /// Base URL, e.g. `http://prometheus-operated.monitoring.svc:9090`. The operator's address
    /// policy still applies to it.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^https?://[^/?#@\\\\s]+([/?#].*)?$')")
        .message("spec.prometheus.address must be an http:// or https:// URL with a host, e.g. http://prometheus.monitoring.svc:9090 (credentials go in authSecretRef, not the URL)"))]
    pub address: String,
    /// Optional Secret with either a `token` key (bearer token) or `username` and `password`
    /// keys (basic auth). Policies that use the source never read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<NamespacedSecretRef>,
}

/// Where a named Kafka cluster is, and its client settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KafkaEndpoint {
    /// Comma-separated `host:port` list of brokers to bootstrap from.
    #[schemars(length(min = 1, max = 1024))]
    pub bootstrap_servers: String,
    /// Optional Secret with client settings: keys `security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `sasl.password`, `ssl.ca.pem` (librdkafka names). Policies that use
    /// the source never read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<NamespacedSecretRef>,
}

/// A Secret in a namespace the platform team chooses (usually the operator's own).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedSecretRef {
    /// Namespace of the Secret.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: String,
    /// Name of the Secret.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

/// A LaunchSource, by name: what a policy writes instead of an address.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SourceRef {
    /// Name of a LaunchSource (`kubectl get launchsources`) that lists this policy's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

impl LaunchSourceSpec {
    /// Whether a policy in `namespace` may use this source.
    pub fn allows(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|n| n == "*" || n == namespace)
    }
}

/// The LaunchSource CRD as YAML, exactly what `crds/launchsource.yaml` holds.
pub fn source_crd_yaml() -> String {
    serde_yaml::to_string(&LaunchSource::crd()).expect("the CRD serializes to YAML")
}
