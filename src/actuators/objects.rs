//! Other operators' objects that Liftoff reads and patches: the ACK `DBInstance`
//! (`rds.services.k8s.aws/v1alpha1`), the ACK `ReplicationGroup`
//! (`elasticache.services.k8s.aws/v1alpha1`) and the Strimzi `KafkaTopic`
//! (`kafka.strimzi.io/v1beta2`).
//! Each is patched with a JSON merge patch of one field, so nothing else of the object is touched.

use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::FIELD_MANAGER;

/// An object kind Liftoff patches one field of.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    /// The field under `spec`.
    pub field: &'static str,
}

/// `spec.dbInstanceClass` of an ACK RDS `DBInstance`.
pub const DB_INSTANCE_CLASS: Field = Field {
    group: "rds.services.k8s.aws",
    version: "v1alpha1",
    kind: "DBInstance",
    plural: "dbinstances",
    field: "dbInstanceClass",
};

/// `spec.cacheNodeType` of an ACK ElastiCache `ReplicationGroup`.
pub const REPLICATION_GROUP_NODE_TYPE: Field = Field {
    group: "elasticache.services.k8s.aws",
    version: "v1alpha1",
    kind: "ReplicationGroup",
    plural: "replicationgroups",
    field: "cacheNodeType",
};

/// `spec.partitions` of a Strimzi `KafkaTopic`.
pub const KAFKA_TOPIC_PARTITIONS: Field = Field {
    group: "kafka.strimzi.io",
    version: "v1beta2",
    kind: "KafkaTopic",
    plural: "kafkatopics",
    field: "partitions",
};

impl Field {
    fn api(&self, client: &Client, namespace: &str) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk(self.group, self.version, self.kind);
        let ar = ApiResource::from_gvk_with_plural(&gvk, self.plural);
        Api::namespaced_with(client.clone(), namespace, &ar)
    }

    /// The field's value on object `name`, or a sentence saying why it cannot be read.
    pub async fn read(
        &self,
        client: &Client,
        namespace: &str,
        name: &str,
    ) -> Result<Value, String> {
        let object = self
            .api(client, namespace)
            .get_opt(name)
            .await
            .map_err(|e| {
                format!(
                    "cannot read {} {namespace}/{name}: {}",
                    self.kind,
                    super::api_reason(&e)
                )
            })?
            .ok_or_else(|| format!("{} {namespace}/{name} does not exist", self.kind))?;
        object
            .data
            .get("spec")
            .and_then(|spec| spec.get(self.field))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "{} {namespace}/{name} has no spec.{}",
                    self.kind, self.field
                )
            })
    }

    /// Sets the field on object `name` to `value`.
    pub async fn write(
        &self,
        client: &Client,
        namespace: &str,
        name: &str,
        value: Value,
    ) -> Result<(), String> {
        let patch = Patch::Merge(json!({ "spec": { self.field: value } }));
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        self.api(client, namespace)
            .patch(name, &params, &patch)
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "cannot patch {} {namespace}/{name}: {}",
                    self.kind,
                    super::api_reason(&e)
                )
            })
    }
}
