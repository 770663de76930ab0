//! Replicas through the `/scale` subresource, which works the same for Deployments, StatefulSets
//! and any custom resource that declares it.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
};
use serde_json::json;

use crate::{FIELD_MANAGER, crd::ScaleTargetRef};

/// Where a scale target lives: the typed APIs for apps/v1, discovery for everything else.
pub enum ScaleApi {
    Deployment(Api<Deployment>),
    StatefulSet(Api<StatefulSet>),
    Other(Api<DynamicObject>),
}

impl ScaleApi {
    /// The API of `target` in `namespace`; `discovered` resolves kinds outside apps/v1.
    pub fn new(
        client: &Client,
        namespace: &str,
        target: &ScaleTargetRef,
        discovered: Option<&ApiResource>,
    ) -> Option<Self> {
        match (
            target.api_version.as_str(),
            target.kind.as_str(),
            discovered,
        ) {
            ("apps/v1", "Deployment", _) => {
                Some(Self::Deployment(Api::namespaced(client.clone(), namespace)))
            }
            ("apps/v1", "StatefulSet", _) => Some(Self::StatefulSet(Api::namespaced(
                client.clone(),
                namespace,
            ))),
            (_, _, Some(ar)) => Some(Self::Other(Api::namespaced_with(
                client.clone(),
                namespace,
                ar,
            ))),
            _ => None,
        }
    }

    /// `spec.replicas` of the target's `/scale`.
    pub async fn replicas(&self, name: &str) -> kube::Result<i32> {
        let scale = match self {
            Self::Deployment(api) => api.get_scale(name).await?,
            Self::StatefulSet(api) => api.get_scale(name).await?,
            Self::Other(api) => api.get_scale(name).await?,
        };
        Ok(scale.spec.and_then(|s| s.replicas).unwrap_or(0))
    }

    /// Sets `spec.replicas` of the target's `/scale` to `to`.
    pub async fn set_replicas(&self, name: &str, to: i32) -> kube::Result<()> {
        let patch = Patch::Merge(json!({ "spec": { "replicas": to } }));
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match self {
            Self::Deployment(api) => api.patch_scale(name, &params, &patch).await?,
            Self::StatefulSet(api) => api.patch_scale(name, &params, &patch).await?,
            Self::Other(api) => api.patch_scale(name, &params, &patch).await?,
        };
        Ok(())
    }
}
