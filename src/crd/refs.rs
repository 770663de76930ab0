//! References from a LaunchPolicy to other objects in its namespace.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A workload in the policy's namespace that exposes the `/scale` subresource
/// (a Deployment, a StatefulSet, or any custom resource that supports scaling).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTargetRef {
    /// API group and version of the workload, e.g. `apps/v1`.
    #[serde(default = "default_apps_v1")]
    #[schemars(length(min = 1, max = 253))]
    pub api_version: String,
    /// Kind of the workload, e.g. `Deployment` or `StatefulSet`.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// Name of the workload in the policy's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

fn default_apps_v1() -> String {
    "apps/v1".into()
}

/// A key of a Secret in the policy's namespace. The operator reads it when it needs it and never
/// copies its value into logs, events, status or metrics.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret in the policy's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Key inside the Secret's `data` (letters, digits, `-`, `_` and `.`).
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// A Secret in the policy's namespace, used as a whole (each key has a documented meaning).
// A plain JsonSchema: KubeSchema's schema-only copy would carry the skipped field unread.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret in the policy's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    // Not part of the CRD: set only when the reference comes from a LaunchSource, whose Secret
    // lives in the namespace the platform team chose rather than the policy's.
    #[serde(skip)]
    pub namespace: Option<String>,
}

/// An object in the policy's namespace, by name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    /// Name of the object in the policy's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}
