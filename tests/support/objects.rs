//! Objects the tests and the benchmark create: workloads to scale, LaunchPolicies and their
//! rollout specs, other operators' CRDs and objects (ACK); and a workload's replicas as its
//! `/scale` subresource reports them.

use std::time::Duration;

use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, PostParams},
};
use liftoff_testenv::ControlPlane;
use serde_json::{Value, json};

/// Creates `value` (a whole object as JSON) in `ns`.
pub async fn create<K>(client: &Client, ns: &str, value: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).expect("valid object");
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &object)
        .await
        .expect("object created")
}

/// A Deployment or StatefulSet `name` of pause containers, labelled `app: name`.
pub fn workload(kind: &str, name: &str, replicas: i32) -> Value {
    let labels = json!({"app": name});
    json!({
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}
        }
    })
}

/// A LaunchPolicy `name` with `spec`.
pub fn policy(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "liftoff.dev/v1alpha1", "kind": "LaunchPolicy",
           "metadata": {"name": name}, "spec": spec})
}

/// `spec.replicas` of `name`'s `/scale` subresource.
pub async fn replicas<K>(client: &Client, ns: &str, name: &str) -> i32
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let scale = Api::<K>::namespaced(client.clone(), ns)
        .get_scale(name)
        .await
        .expect("scale readable");
    scale.spec.and_then(|s| s.replicas).unwrap_or(0)
}

/// A policy spec with a staged rollout: `stages`, gates on a healthy service's `error_rate` and
/// `p95_latency_seconds` read from `prometheus` every second (two checks in a row must pass),
/// and the cohort published to the ConfigMaps `launch-cohort` and `launch-flags`.
pub fn rollout_spec(prometheus: &str, stages: Value, on_failure: &str) -> Value {
    json!({
        "prometheus": {"address": prometheus, "timeout": "2s"},
        "rollout": {
            "stages": stages,
            "gates": {"interval": "1s", "failureThreshold": 2, "checks": [
                {"name": "error-rate", "query": "max(error_rate)", "max": 0.001},
                {"name": "p95-latency-seconds", "query": "max(p95_latency_seconds)", "max": 0.5}
            ]},
            "onGateFailure": on_failure,
            "cohort": {"configMap": {"name": "launch-cohort"},
                       "flagd": {"configMap": "launch-flags", "flagKey": "new-platform", "population": 20000}}
        }
    })
}

/// The four stages 100 → 500 → 1500 → All, each baking `bake`; the second needs `second_approval`.
pub fn stages(bake: &str, second_approval: &str) -> Value {
    json!([
        {"name": "internal-beta", "users": 100, "bake": bake},
        {"name": "gradual", "users": 500, "bake": bake, "approval": second_approval},
        {"name": "expanded", "users": 1500, "bake": bake},
        {"name": "everyone", "users": "All"}
    ])
}

/// `(status, reason, message)` of a policy's Ready condition, once there is one.
pub async fn ready(
    api: &Api<liftoff::crd::LaunchPolicy>,
    name: &str,
) -> Option<(String, String, String)> {
    let p = api.get_opt(name).await.ok()??;
    let c = p
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status, c.reason, c.message))
}

/// A ValidatingAdmissionPolicy refusing to scale any Deployment of `ns` above `max` replicas
/// through `/scale`: a real apiserver refusal for an action to fail on.
pub async fn cap_replicas(cp: &liftoff_testenv::ControlPlane, ns: &str, max: i32) {
    let name = format!("api-at-most-{max}");
    let cap = format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: [apps]
        apiVersions: [v1]
        operations: [UPDATE]
        resources: [deployments/scale]
  validations:
    - expression: "object.spec.replicas <= {max}"
      message: "the api may run at most {max} replicas (quota)"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {ns}}}
"#
    );
    let (ok, _, err) = super::kubectl(cp, &["apply", "-f", "-"], Some(&cap)).await;
    assert!(ok, "{err}");
}

/// Applies the CRD in `fixture` (a path in the repository) and waits until `plural` is served.
pub async fn install_crd(cp: &ControlPlane, fixture: &str, plural: &str) {
    let path = super::repo_path(fixture);
    let (ok, _, err) = super::kubectl(cp, &["apply", "-f", path.to_str().unwrap()], None).await;
    assert!(ok, "{err}");
    super::eventually(
        Duration::from_secs(60),
        &format!("{plural} served"),
        || async {
            super::kubectl(cp, &["get", plural, "-n", "default"], None)
                .await
                .0
                .then_some(())
        },
    )
    .await;
}

/// Creates `object` (metadata and spec) of the ACK kind `(group, kind, plural)`, version
/// v1alpha1; the API of that kind.
pub async fn ack_object(
    cp: &ControlPlane,
    client: &Client,
    ns: &str,
    (group, kind, plural): (&str, &str, &str),
    mut object: Value,
) -> Api<DynamicObject> {
    object["apiVersion"] = json!(format!("{group}/v1alpha1"));
    object["kind"] = json!(kind);
    let manifest = object.to_string();
    let (ok, _, err) = super::kubectl(cp, &["-n", ns, "apply", "-f", "-"], Some(&manifest)).await;
    assert!(ok, "{err}");
    let gvk = GroupVersionKind::gvk(group, "v1alpha1", kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(client.clone(), ns, &resource)
}
