//! Objects the scaling tests and the benchmark create: workloads to scale and LaunchPolicies.

use kube::{Api, Client, api::PostParams};
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
