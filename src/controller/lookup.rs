//! The kube-backed [`Lookup`]: Deployments and StatefulSets come from watched metadata caches,
//! other scalable kinds from a GET through discovery, Secrets from a GET (keys only are used).

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::Secret,
};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, PartialObjectMeta},
    runtime::reflector::{ObjectRef, Store},
};

use super::references::Lookup;
use crate::crd::ScaleTargetRef;

/// Caches shared by all reconciles.
#[derive(Clone)]
pub struct Caches {
    pub deployments: Store<PartialObjectMeta<Deployment>>,
    pub statefulsets: Store<PartialObjectMeta<StatefulSet>>,
    /// Discovery results for other scalable kinds, by `apiVersion/kind`.
    pub discovered: Arc<Mutex<HashMap<String, ApiResource>>>,
}

/// Looks references up in one namespace.
pub struct KubeLookup<'a> {
    pub client: &'a Client,
    pub caches: &'a Caches,
    pub namespace: &'a str,
}

impl Lookup for KubeLookup<'_> {
    async fn workload_exists(&self, target: &ScaleTargetRef) -> Result<bool, String> {
        match (target.api_version.as_str(), target.kind.as_str()) {
            ("apps/v1", "Deployment") => Ok(self
                .caches
                .deployments
                .get(&ObjectRef::new(&target.name).within(self.namespace))
                .is_some()),
            ("apps/v1", "StatefulSet") => Ok(self
                .caches
                .statefulsets
                .get(&ObjectRef::new(&target.name).within(self.namespace))
                .is_some()),
            _ => {
                let ar = self.api_resource(target).await?;
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), self.namespace, &ar);
                api.get_metadata_opt(&target.name)
                    .await
                    .map(|o| o.is_some())
                    .map_err(|e| e.to_string())
            }
        }
    }

    async fn secret_keys(&self, name: &str) -> Result<Option<BTreeSet<String>>, String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), self.namespace);
        let secret = api.get_opt(name).await.map_err(|e| e.to_string())?;
        Ok(secret.map(|s| {
            let data = s.data.unwrap_or_default().into_keys();
            let string_data = s.string_data.unwrap_or_default().into_keys();
            data.chain(string_data).collect()
        }))
    }
}

impl KubeLookup<'_> {
    async fn api_resource(&self, target: &ScaleTargetRef) -> Result<ApiResource, String> {
        let key = format!("{}/{}", target.api_version, target.kind);
        if let Some(ar) = self.caches.discovered.lock().unwrap().get(&key) {
            return Ok(ar.clone());
        }
        let (group, version) = match target.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", target.api_version.as_str()),
        };
        let gvk = GroupVersionKind::gvk(group, version, &target.kind);
        let (ar, _caps) = kube::discovery::pinned_kind(self.client, &gvk)
            .await
            .map_err(|e| format!("the apiserver does not serve {key}: {e}"))?;
        self.caches
            .discovered
            .lock()
            .unwrap()
            .insert(key, ar.clone());
        Ok(ar)
    }
}
