//! What the operator keeps of each Deployment and StatefulSet it watches: the replicas, the pod
//! selector and the ready count, nothing else. Watch events are read straight into this shape,
//! so a workload's pod template, conditions and labels are never held: with 10,000 workloads
//! cached, the full `Deployment` type cost about 2.5 KiB each before a single string.

use std::{borrow::Cow, marker::PhantomData};

use k8s_openapi::{
    NamespaceResourceScope,
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta},
};
use kube::Resource;
use serde::Deserialize;

/// An apps/v1 workload of kind `K` (`Deployment` or `StatefulSet`), as cached.
#[derive(Deserialize, Debug)]
#[serde(bound = "")]
pub struct Workload<K> {
    pub metadata: ObjectMeta,
    pub spec: Option<WorkloadSpec>,
    pub status: Option<WorkloadStatus>,
    #[serde(skip)]
    kind: PhantomData<fn() -> K>,
}

// By hand: derived, these would need `K: Clone`.
impl<K> Clone for Workload<K> {
    fn clone(&self) -> Self {
        Self {
            metadata: self.metadata.clone(),
            spec: self.spec.clone(),
            status: self.status.clone(),
            kind: PhantomData,
        }
    }
}

/// The part of a workload's `spec` Liftoff reads.
#[derive(Deserialize, Clone, Debug, Default)]
pub struct WorkloadSpec {
    /// `spec.replicas`; absent means 1.
    pub replicas: Option<i32>,
    #[serde(default)]
    pub selector: LabelSelector,
}

/// The part of a workload's `status` Liftoff reads.
#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    pub ready_replicas: Option<i32>,
}

impl<K> Resource for Workload<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_deployment_is_read_into_what_liftoff_uses_and_nothing_more() {
        let d: Workload<Deployment> = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop", "generation": 3},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"spec": {"containers": [{"name": "api", "image": "api:1"}]}}},
            "status": {"readyReplicas": 3, "conditions": [{"type": "Available", "status": "True"}]}
        }))
        .unwrap();
        assert_eq!(d.spec.as_ref().unwrap().replicas, Some(4));
        let labels = d.spec.as_ref().unwrap().selector.match_labels.clone();
        assert_eq!(labels.unwrap()["app"], "api");
        assert_eq!(d.status.unwrap().ready_replicas, Some(3));
        assert_eq!(Workload::<Deployment>::plural(&()), "deployments");
        assert_eq!(Workload::<Deployment>::api_version(&()), "apps/v1");
        // The point of it: a fraction of the full type, before any string.
        assert!(
            std::mem::size_of::<Workload<Deployment>>() * 4 < std::mem::size_of::<Deployment>()
        );
    }
}
