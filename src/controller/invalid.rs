//! A stored LaunchPolicy the operator cannot read (stored before the schema bounded a field, or
//! written past it): reported on that policy alone — a `Ready=False` condition with reason
//! `InvalidSpec`, a Warning Event and `liftoff_invalid_policies` — while every other policy
//! keeps being reconciled. The policy waits for its next change; nothing of its status is lost.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Condition, jiff::Timestamp};
use kube::{
    Api, Resource,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
    core::error_boundary::InvalidObject,
    runtime::events::EventType,
};
use serde_json::{Value, json};
use tracing::warn;

use super::{Context, Error, events, status::READY};
use crate::{FIELD_MANAGER, conditions, crd::LaunchPolicy, triggers};

/// The `Ready` condition's reason (and the Event's) for a policy that cannot be read.
pub const INVALID_SPEC: &str = "InvalidSpec";

/// Reports `invalid` on itself. Idempotent: when `Ready` already says exactly this for the
/// current generation, nothing is written and no Event is emitted.
pub async fn report(invalid: &InvalidObject, ctx: &Context) -> Result<(), Error> {
    let namespace = invalid
        .metadata
        .namespace
        .clone()
        .ok_or(Error::NoNamespace)?;
    let name = invalid.metadata.name.clone().unwrap_or_default();
    ctx.metrics
        .invalid_policies
        .with_label_values(&[&namespace, &name])
        .set(1);
    let resource = ApiResource::erase::<LaunchPolicy>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &resource);
    let Some(raw) = api.get_opt(&name).await? else {
        return Ok(()); // deleted meanwhile
    };
    let message = conditions::truncate(&explain(&raw, &invalid.error), 1024);
    let previous: Vec<Condition> = raw
        .data
        .pointer("/status/conditions")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default();
    let generation = raw.metadata.generation;
    let unchanged = conditions::find(&previous, READY).is_some_and(|c| {
        c.status == "False"
            && c.reason == INVALID_SPEC
            && c.message == message
            && c.observed_generation == generation
    });
    if unchanged {
        return Ok(());
    }
    warn!(namespace, policy = %name, error = %message, "cannot read the LaunchPolicy; it is left alone until it changes");
    let wanted = [conditions::Desired::new(
        READY,
        false,
        INVALID_SPEC,
        message.clone(),
    )];
    let mut merged = conditions::merge(&previous, &wanted, generation, Timestamp::now());
    merged.extend(previous.iter().filter(|c| c.type_ != READY).cloned());
    // A merge patch of `conditions` alone, conditional on the version read: the rest of the
    // status (the rollout's stage, pending actions) is kept for when the policy is fixed.
    let patch = json!({
        "metadata": {"resourceVersion": raw.metadata.resource_version},
        "status": {"conditions": merged},
    });
    let turn = ctx.recorder.turns().acquire().await;
    ctx.ensure_leader()?;
    let written = api
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Merge(&patch),
        )
        .await;
    drop(turn);
    match written {
        Ok(_) => ctx.metrics.status_writes.inc(),
        // Changed since it was read: its watch event reports it again.
        Err(kube::Error::Api(e)) if e.code == 409 => return Err(Error::Stale),
        // The apiserver validates the stored spec on a status write too, and refuses it when a
        // CEL rule cannot even evaluate on the broken field: the Event and the metric remain.
        Err(kube::Error::Api(e)) if e.code == 422 => {
            warn!(namespace, policy = %name, "the apiserver refuses any status for this policy until its spec is fixed");
        }
        Err(e) => return Err(e.into()),
    }
    let event_ref = raw.object_ref(&resource);
    events::publish_ref(
        &ctx.recorder,
        &event_ref,
        EventType::Warning,
        INVALID_SPEC,
        &message,
    )
    .await;
    Ok(())
}

/// What is wrong, naming the field when the object says which, and the fix.
fn explain(raw: &DynamicObject, fallback: &str) -> String {
    let object = json!({
        "apiVersion": "liftoff.dev/v1alpha1",
        "kind": "LaunchPolicy",
        "metadata": {"name": raw.metadata.name, "namespace": raw.metadata.namespace},
        "spec": raw.data.get("spec").cloned().unwrap_or(Value::Null),
    });
    let located = |e: serde_path_to_error::Error<serde_json::Error>| {
        format!(
            "{}: {}",
            e.path(),
            conditions::truncate(&e.inner().to_string(), 300)
        )
    };
    let mut whole = object.clone();
    let spec_error = match serde_path_to_error::deserialize::<_, LaunchPolicy>(object) {
        Err(e) => Some(located(e)),
        Ok(policy) => {
            let triggers = policy.spec.scaling.map(|s| s.triggers).unwrap_or_default();
            triggers::kinds(&triggers).err()
        }
    };
    if let Some(e) = spec_error {
        return format!(
            "cannot read the policy: {e}. Fix that field (the CRD refuses such values when a \
             policy is applied) and apply the policy again; until then Liftoff takes no action \
             for this policy, and every other policy is unaffected"
        );
    }
    whole["status"] = raw.data.get("status").cloned().unwrap_or(Value::Null);
    let what = match serde_path_to_error::deserialize::<_, LaunchPolicy>(whole) {
        Err(e) => located(e),
        Ok(_) => conditions::truncate(fallback, 300),
    };
    let (namespace, name) = (
        raw.metadata.namespace.as_deref().unwrap_or_default(),
        raw.metadata.name.as_deref().unwrap_or_default(),
    );
    format!(
        "cannot read the policy's status: {what}. The spec is fine; the status was written by \
         something else (another version of Liftoff?). Liftoff takes no action for this policy \
         until the status is removed: kubectl patch lp {name} -n {namespace} --subresource=status \
         --type=merge -p '{{\"status\":null}}' (the rollout then starts over from its first stage)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Policy `n/p` as the apiserver stores it, with `rest` (its spec and status).
    fn stored(rest: Value) -> DynamicObject {
        let mut object = json!({
            "apiVersion": "liftoff.dev/v1alpha1",
            "kind": "LaunchPolicy",
            "metadata": {"name": "p", "namespace": "n"},
        });
        if let (Some(object), Some(rest)) = (object.as_object_mut(), rest.as_object()) {
            object.extend(rest.clone());
        }
        serde_json::from_value(object).unwrap()
    }

    #[test]
    fn the_message_names_the_field_and_the_fix() {
        let raw = stored(json!({
            "spec": {"scaling": {"triggers": [{
                "name": "api-cpu", "cpu": {},
                "scaleTargetRef": {"kind": "Deployment", "name": "api"},
                "replicas": {"min": 1, "max": 2147483648u64}
            }]}},
        }));
        let message = explain(&raw, "ignored");
        assert!(
            message.starts_with(
                "cannot read the policy: spec.scaling.triggers[0].replicas.max: invalid value: integer `2147483648`, expected i32."
            ),
            "{message}"
        );
        assert!(message.contains("apply the policy again"), "{message}");
    }

    #[test]
    fn a_trigger_without_a_kind_is_named_with_the_fix() {
        let raw = stored(json!({
            "spec": {"scaling": {"triggers": [
                {"name": "ok", "redisMemory": {"query": "q"}},
                {"name": "lag", "kafkaLag": {
                    "bootstrapServers": "k:9092", "topic": "t", "consumerGroup": "g"
                }, "cpu": {}}
            ]}},
        }));
        let message = explain(&raw, "ignored");
        assert!(
            message.starts_with(
                "cannot read the policy: spec.scaling.triggers[1]: trigger \"lag\": sets cpu and \
                 kafkaLag: set exactly one of cpu, kafkaLag, databaseConnections or redisMemory."
            ),
            "{message}"
        );
    }

    #[test]
    fn a_status_it_cannot_read_is_named_with_the_way_out() {
        let raw = stored(json!({
            "spec": {},
            "status": {"rollout": {"phase": "Sideways"}},
        }));
        let message = explain(&raw, "ignored");
        assert!(
            message.starts_with(
                "cannot read the policy's status: status.rollout: unknown variant `Sideways`"
            ),
            "{message}"
        );
        assert!(message.contains("--subresource=status"), "{message}");
    }

    #[test]
    fn an_overflowing_duration_is_named_too() {
        let raw = stored(json!({
            "spec": {"rollout": {"stages": [
                {"name": "a", "users": 100, "bake": "99999999999999999999h"},
                {"name": "b", "users": "All"}
            ]}},
        }));
        let message = explain(&raw, "ignored");
        assert!(
            message.contains("spec.rollout.stages[0].bake: invalid duration"),
            "{message}"
        );
    }
}
