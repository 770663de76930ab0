//! What the LaunchPolicy cache keeps of each object's metadata: what a reconcile reads, without
//! the bulk it never does. At 10,000 policies the cache is most of the operator's memory.
//!
//! - `managedFields`: only the entries that own a `liftoff.dev/` annotation (they name who gave
//!   a command: an approval, a pause, a kill switch), each cut down to those annotations.
//! - the `kubectl.kubernetes.io/last-applied-configuration` annotation, a second copy of the
//!   whole object that `kubectl apply` keeps, is dropped.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ObjectMeta};
use serde_json::{Map, Value};

/// The annotation `kubectl apply` keeps its last input in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Commands are annotations with this prefix; their managers are who issued them.
const COMMANDS: &str = "f:liftoff.dev/";

/// Drops from `meta` what no reconcile reads (see the module's doc).
pub fn slim(meta: &mut ObjectMeta) {
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
    let Some(entries) = meta.managed_fields.take() else {
        return;
    };
    let kept: Vec<_> = entries
        .into_iter()
        .filter_map(|mut entry| {
            let commands = entry
                .fields_v1
                .as_ref()
                .and_then(|f| commands_owned(&f.0))?;
            entry.fields_v1 = Some(FieldsV1(commands));
            entry.api_version = None;
            entry.fields_type = None;
            entry.subresource = None;
            Some(entry)
        })
        .collect();
    meta.managed_fields = (!kept.is_empty()).then_some(kept);
}

/// `{"f:metadata": {"f:annotations": {…}}}` with only the `liftoff.dev/` annotations of
/// `fields`, or `None` when it owns none.
fn commands_owned(fields: &Value) -> Option<Value> {
    let annotations = fields
        .get("f:metadata")?
        .get("f:annotations")?
        .as_object()?;
    let commands: Map<String, Value> = annotations
        .iter()
        .filter(|(key, _)| key.starts_with(COMMANDS))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if commands.is_empty() {
        return None;
    }
    let mut metadata = Map::new();
    metadata.insert("f:annotations".into(), Value::Object(commands));
    let mut out = Map::new();
    out.insert("f:metadata".into(), Value::Object(metadata));
    Some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
    use serde_json::json;

    use super::*;
    use crate::controller::rollout::commands::issuer;

    fn entry(manager: &str, at: i64, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            api_version: Some("liftoff.dev/v1alpha1".into()),
            fields_type: Some("FieldsV1".into()),
            time: Some(Time(k8s_openapi::jiff::Timestamp::from_second(at).unwrap())),
            fields_v1: Some(FieldsV1(fields)),
            subresource: None,
        }
    }

    #[test]
    fn only_who_gave_each_command_is_kept() {
        let spec = json!({"f:spec": {"f:scaling": {".": {}, "f:triggers": {}}},
                          "f:metadata": {"f:annotations": {
                              ".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}}});
        let approve = json!({"f:metadata": {"f:annotations": {
            "f:liftoff.dev/approve": {}, "f:team.example/owner": {}}}});
        let status = json!({"f:status": {"f:triggers": {}}});
        let mut meta = ObjectMeta {
            annotations: Some(
                [
                    (LAST_APPLIED.to_string(), "{\"huge\": true}".to_string()),
                    ("liftoff.dev/approve".to_string(), "gradual@1".to_string()),
                ]
                .into(),
            ),
            managed_fields: Some(vec![
                entry("kubectl-client-side-apply", 1_800_000_000, spec),
                entry("kubectl-launch", 1_800_000_100, approve),
                entry("liftoff", 1_800_000_200, status),
            ]),
            ..Default::default()
        };
        let before = issuer(
            "liftoff.dev/approve",
            meta.managed_fields.as_deref().unwrap(),
        );
        slim(&mut meta);
        let annotations = meta.annotations.as_ref().unwrap();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            ["liftoff.dev/approve"]
        );
        let kept = meta.managed_fields.as_deref().unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            kept[0].fields_v1.as_ref().unwrap().0,
            json!({"f:metadata": {"f:annotations": {"f:liftoff.dev/approve": {}}}})
        );
        assert_eq!(issuer("liftoff.dev/approve", kept), before);
        assert!(before.unwrap().starts_with("kubectl-launch at "));
    }

    #[test]
    fn a_policy_without_commands_keeps_no_managed_fields() {
        let mut meta = ObjectMeta {
            managed_fields: Some(vec![entry("kubectl", 1, json!({"f:spec": {}}))]),
            ..Default::default()
        };
        slim(&mut meta);
        assert_eq!(meta.managed_fields, None);
        slim(&mut meta);
        assert_eq!(meta, ObjectMeta::default());
    }
}
