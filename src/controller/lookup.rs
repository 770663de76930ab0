//! The kube-backed [`Lookup`] and what the trigger platform reads from the watch caches:
//! Deployments, StatefulSets and HorizontalPodAutoscalers come from watched caches (stripped of
//! pod templates), other scalable kinds from a GET through discovery, Secrets from a short-lived
//! cache of GETs.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, StatefulSet},
        autoscaling::v2::HorizontalPodAutoscaler,
    },
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind},
    runtime::reflector::{ObjectRef, Store},
};

use super::{
    claims::{self, Claim},
    references::Lookup,
    secrets::{SecretData, Secrets},
    synced::Synced,
    workload::{Workload, WorkloadSpec},
};
use crate::crd::ScaleTargetRef;

/// Caches shared by all reconciles.
#[derive(Clone)]
pub struct Caches {
    pub deployments: Store<Workload<Deployment>>,
    pub statefulsets: Store<Workload<StatefulSet>>,
    pub hpas: Store<HorizontalPodAutoscaler>,
    /// The LaunchPolicies, to see which trigger claimed a workload first ([`super::claims`]).
    pub policies: Store<super::Watched>,
    /// The first claim on each workload, indexed from `policies`.
    pub claims: claims::Index,
    /// Discovery results for other scalable kinds, by `apiVersion/kind`.
    pub discovered: Arc<Mutex<HashMap<String, ApiResource>>>,
    /// Whether each of the three workload caches has finished its first list.
    pub synced: [Synced; 3],
}

impl Caches {
    /// Waits until every workload cache has finished its first list: before that, a missing
    /// Deployment or HPA may only not be listed yet. `false` if a cache's task has stopped.
    pub async fn wait_synced(&self) -> bool {
        let [d, s, h] = &self.synced;
        let (d, s, h) = futures::join!(d.wait(), s.wait(), h.wait());
        d && s && h
    }
}

/// Looks references up in one namespace.
pub struct KubeLookup<'a> {
    pub client: &'a Client,
    pub caches: &'a Caches,
    pub secrets: &'a Secrets,
    pub namespace: &'a str,
}

impl Lookup for KubeLookup<'_> {
    async fn workload_exists(&self, target: &ScaleTargetRef) -> Result<bool, String> {
        match (target.api_version.as_str(), target.kind.as_str()) {
            ("apps/v1", "Deployment" | "StatefulSet") => Ok(self.cached(target).is_some()),
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
        let secret = self.secret(name).await?;
        Ok(secret.map(|s| s.keys().cloned().collect()))
    }
}

/// What the caches know of an apps/v1 workload.
struct Cached {
    replicas: i32,
    selector: LabelSelector,
}

impl KubeLookup<'_> {
    fn key<K: kube::Resource<DynamicType = ()>>(&self, target: &ScaleTargetRef) -> ObjectRef<K> {
        ObjectRef::new(&target.name).within(self.namespace)
    }

    fn cached(&self, target: &ScaleTargetRef) -> Option<Cached> {
        let spec = |spec: Option<&WorkloadSpec>| {
            let spec = spec.cloned().unwrap_or_default();
            Cached {
                replicas: spec.replicas.unwrap_or(1),
                selector: spec.selector,
            }
        };
        match (target.api_version.as_str(), target.kind.as_str()) {
            ("apps/v1", "Deployment") => {
                let d = self.caches.deployments.get(&self.key(target))?;
                Some(spec(d.spec.as_ref()))
            }
            ("apps/v1", "StatefulSet") => {
                let s = self.caches.statefulsets.get(&self.key(target))?;
                Some(spec(s.spec.as_ref()))
            }
            _ => None,
        }
    }

    /// `spec.replicas` from the cache, for Deployments and StatefulSets; `None` for other kinds
    /// (read their `/scale` instead).
    pub fn cached_replicas(&self, target: &ScaleTargetRef) -> Option<Result<i32, String>> {
        match (target.api_version.as_str(), target.kind.as_str()) {
            ("apps/v1", "Deployment" | "StatefulSet") => Some(
                self.cached(target)
                    .map(|c| c.replicas)
                    .ok_or_else(|| format!("{} {} not found", target.kind, target.name)),
            ),
            _ => None,
        }
    }

    /// `status.readyReplicas` of a Deployment or StatefulSet from the cache (0 while none is
    /// reported); `None` for other kinds or a workload not cached.
    pub fn ready_replicas(&self, target: &ScaleTargetRef) -> Option<i32> {
        let ready = match (target.api_version.as_str(), target.kind.as_str()) {
            ("apps/v1", "Deployment") => {
                let d = self.caches.deployments.get(&self.key(target))?;
                d.status.as_ref().and_then(|s| s.ready_replicas)
            }
            ("apps/v1", "StatefulSet") => {
                let s = self.caches.statefulsets.get(&self.key(target))?;
                s.status.as_ref().and_then(|s| s.ready_replicas)
            }
            _ => return None,
        };
        Some(ready.unwrap_or(0))
    }

    /// The pod selector of a Deployment or StatefulSet.
    pub fn selector(&self, target: &ScaleTargetRef) -> Option<LabelSelector> {
        self.cached(target).map(|c| c.selector)
    }

    /// Why the trigger `me` may not scale `target`: a HorizontalPodAutoscaler in the namespace
    /// scales it too, or a trigger of another LaunchPolicy claimed it first. Described for a
    /// status message. Two autoscalers on one target fight; Liftoff refuses instead.
    pub fn conflict(&self, target: &ScaleTargetRef, me: &Claim) -> Option<String> {
        let hpa = self.caches.hpas.state().iter().find_map(|hpa| {
            let r = &hpa.spec.as_ref()?.scale_target_ref;
            let scales = ScaleTargetRef {
                api_version: r.api_version.clone().unwrap_or_default(),
                kind: r.kind.clone(),
                name: r.name.clone(),
            };
            let ours = hpa.metadata.namespace.as_deref() == Some(self.namespace)
                && claims::same_workload(&scales, target);
            ours.then(|| {
                format!(
                    "HorizontalPodAutoscaler {} also scales {} {}; remove it or this trigger, \
                     two autoscalers on one workload fight each other",
                    hpa.metadata.name.as_deref().unwrap_or_default(),
                    target.kind,
                    target.name
                )
            })
        });
        hpa.or_else(|| {
            let caches = &self.caches;
            let holder = caches
                .claims
                .holder(&caches.policies, self.namespace, target);
            claims::conflict(holder, me, target)
        })
    }

    /// A Secret of the namespace (cached for a short while), `None` when it does not exist.
    pub async fn secret(&self, name: &str) -> Result<Option<Arc<SecretData>>, String> {
        self.secrets.get(self.namespace, name).await
    }

    /// The API resource of a scalable kind outside apps/v1, through discovery (cached).
    pub async fn api_resource(&self, target: &ScaleTargetRef) -> Result<ApiResource, String> {
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
