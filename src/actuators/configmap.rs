//! ConfigMaps Liftoff publishes (the rollout's cohort): written whole with server-side apply under
//! Liftoff's field manager. A ConfigMap Liftoff creates is owned by its LaunchPolicy, so deleting
//! the policy has the cluster's garbage collector delete it too; one that existed before (a Helm
//! release's, a flagd file shared with other flags) is updated but never owned, so deleting a
//! policy never deletes what it did not create.

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::ConfigMap, apimachinery::pkg::apis::meta::v1::OwnerReference};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::FIELD_MANAGER;

/// The owner reference a published ConfigMap carries: its policy, as a plain owner (not its
/// controller), so a ConfigMap that another controller already manages can still be named.
pub fn owned_by<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    let meta = owner.meta();
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        controller: None,
        block_owner_deletion: None,
    })
}

/// Sets the data of ConfigMap `name` in `namespace` to `data` (keys Liftoff wrote before and no
/// longer writes are removed; keys others wrote are kept). `owner` is set only on a ConfigMap
/// Liftoff creates now or already owns.
pub async fn apply(
    client: &Client,
    namespace: &str,
    name: &str,
    owner: Option<&OwnerReference>,
    data: BTreeMap<String, String>,
) -> Result<(), kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let owner = match api.get_opt(name).await? {
        None => owner,
        Some(existing) => {
            owner.filter(|o| existing.owner_references().iter().any(|r| r.uid == o.uid))
        }
    };
    let object = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": "liftoff"},
            "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
        },
        "data": data,
    });
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map(|_| ())
}
