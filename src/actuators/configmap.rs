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
        // Already as it would be after the apply (an operator restarted over its published
        // ConfigMaps): an apply would change nothing and still cost the apiserver a write's work.
        Some(existing) if holds(&existing, owner, &data) => return Ok(()),
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

/// Whether `existing` already is what applying `data` would make it: Liftoff's label, every key
/// of `data` with its value, no other key owned by Liftoff's field manager (an apply would
/// remove it), and no owner reference but `owner`'s. One to another policy (deleted and created
/// again under its name before the garbage collector came) is one the apply removes if Liftoff
/// set it; kept, it would have the ConfigMap collected with the old policy.
fn holds(
    existing: &ConfigMap,
    owner: Option<&OwnerReference>,
    data: &BTreeMap<String, String>,
) -> bool {
    let owners = existing
        .owner_references()
        .iter()
        .all(|r| owner.is_some_and(|o| o.uid == r.uid));
    let labelled = existing
        .labels()
        .get("app.kubernetes.io/managed-by")
        .is_some_and(|v| v == "liftoff");
    let stored = existing.data.as_ref();
    let values = data
        .iter()
        .all(|(k, v)| stored.and_then(|d| d.get(k)) == Some(v));
    labelled
        && owners
        && values
        && owned_keys(existing)
            .is_some_and(|owned| owned.into_iter().eq(data.keys().map(String::as_str)))
}

/// The data keys Liftoff's apply owns in `existing`, from its managed fields (sorted), or
/// `None` when Liftoff has never applied it.
fn owned_keys(existing: &ConfigMap) -> Option<std::collections::BTreeSet<&str>> {
    let entry = existing.managed_fields().iter().find(|e| {
        e.manager.as_deref() == Some(FIELD_MANAGER) && e.operation.as_deref() == Some("Apply")
    })?;
    let fields = entry.fields_v1.as_ref()?.0.get("f:data");
    Some(
        fields
            .and_then(|f| f.as_object())
            .into_iter()
            .flat_map(|f| f.keys())
            .filter_map(|k| k.strip_prefix("f:"))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};

    use super::*;

    fn applied(data: &[(&str, &str)], owned: &[&str]) -> ConfigMap {
        let mut fields = serde_json::Map::new();
        for key in owned {
            // Server-side apply records the map itself as ".", each key as "f:<key>".
            let field = if *key == "." {
                ".".into()
            } else {
                format!("f:{key}")
            };
            fields.insert(field, json!({}));
        }
        serde_json::from_value(json!({
            "metadata": {
                "name": "cohort",
                "labels": {"app.kubernetes.io/managed-by": "liftoff"},
                "managedFields": [serde_json::to_value(ManagedFieldsEntry {
                    manager: Some(FIELD_MANAGER.into()),
                    operation: Some("Apply".into()),
                    fields_v1: Some(FieldsV1(json!({"f:data": fields}))),
                    ..Default::default()
                }).unwrap()],
            },
            "data": data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        }))
        .unwrap()
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "liftoff.dev/v1alpha1".into(),
            kind: "LaunchPolicy".into(),
            name: "launch".into(),
            uid: uid.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_configmap_already_as_applied_needs_no_apply() {
        let existing = applied(&[("users", "100"), ("theirs", "x")], &[".", "users"]);
        assert!(holds(&existing, None, &data(&[("users", "100")])));
        let mut owned = existing.clone();
        owned.metadata.owner_references = Some(vec![owner("u1")]);
        assert!(holds(
            &owned,
            Some(&owner("u1")),
            &data(&[("users", "100")])
        ));
    }

    #[test]
    fn an_owner_reference_to_another_policy_needs_the_apply() {
        let mut existing = applied(&[("users", "100")], &["users"]);
        existing.metadata.owner_references = Some(vec![owner("old-uid")]);
        let users = data(&[("users", "100")]);
        assert!(!holds(&existing, Some(&owner("new-uid")), &users));
        assert!(!holds(&existing, None, &users));
    }

    #[test]
    fn another_value_a_new_key_or_a_key_to_remove_needs_the_apply() {
        let existing = applied(&[("users", "100"), ("stage", "beta")], &["users", "stage"]);
        assert!(!holds(
            &existing,
            None,
            &data(&[("users", "500"), ("stage", "beta")])
        ));
        assert!(!holds(
            &existing,
            None,
            &data(&[("users", "100"), ("stage", "beta"), ("new", "1")])
        ));
        assert!(
            !holds(&existing, None, &data(&[("users", "100")])),
            "stage is removed"
        );
    }

    #[test]
    fn a_configmap_liftoff_never_applied_needs_the_apply() {
        let mut existing = applied(&[("users", "100")], &["users"]);
        existing.metadata.managed_fields = None;
        assert!(!holds(&existing, None, &data(&[("users", "100")])));
        let mut unlabelled = applied(&[("users", "100")], &["users"]);
        unlabelled.metadata.labels = None;
        assert!(!holds(&unlabelled, None, &data(&[("users", "100")])));
    }
}
