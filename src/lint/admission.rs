//! The apiserver's verdict on a LaunchPolicy, offline: the structural schema of the crate's own
//! CRD (types, bounds, patterns, enums, required fields, unknown fields as `kubectl apply`'s
//! strict validation refuses them, list-set uniqueness), then its CEL rules after the schema's
//! defaults are applied, as the apiserver evaluates them.

use std::sync::LazyLock;

use kube::{CustomResourceExt, core::cel::Validator};
use serde_json::{Map, Value};

use crate::crd::LaunchPolicy;

/// The CRD's OpenAPI schema, as the apiserver holds it.
static SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    let crd = LaunchPolicy::crd();
    let schema = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.clone())
        .and_then(|s| s.open_api_v3_schema);
    serde_json::to_value(schema).unwrap_or_default()
});

/// The structural checks as JSON Schema (draft 4, which OpenAPI v3 schemas follow).
static STRUCTURAL: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(|| {
    let mut schema = as_json_schema(&SCHEMA);
    // The fields every object has besides its schema's own.
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        props.insert("apiVersion".into(), serde_json::json!({"type": "string"}));
        props.insert("kind".into(), serde_json::json!({"type": "string"}));
        props.insert("metadata".into(), serde_json::json!({"type": "object"}));
    }
    jsonschema::draft4::new(&schema).map_err(|e| e.to_string())
});

/// Why the apiserver would refuse `doc`, one line per problem naming the field; empty when it
/// would accept it.
pub fn refusals(doc: &Value) -> Vec<String> {
    let doc = &as_sent(doc);
    let mut out = Vec::new();
    if doc.get("apiVersion").and_then(Value::as_str) != Some("liftoff.dev/v1alpha1")
        || doc.get("kind").and_then(Value::as_str) != Some("LaunchPolicy")
    {
        out.push("apiVersion and kind must be liftoff.dev/v1alpha1 LaunchPolicy".to_string());
        return out;
    }
    match doc.pointer("/metadata/name").and_then(Value::as_str) {
        None | Some("") => out.push("metadata.name: Required value: name is required".into()),
        Some(name) if !dns_subdomain(name) => out.push(format!(
            "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist \
             of lower case alphanumeric characters, '-' or '.', and must start and end with an \
             alphanumeric character"
        )),
        Some(_) => {}
    }
    if let Some(ns) = doc.pointer("/metadata/namespace").and_then(Value::as_str)
        && (ns.len() > 63 || !dns_subdomain(ns) || ns.contains('.'))
    {
        out.push(format!(
            "metadata.namespace: Invalid value: {ns:?}: not a DNS label"
        ));
    }
    match &*STRUCTURAL {
        Ok(validator) => {
            for e in validator.iter_errors(doc) {
                out.push(format!("{}: {}", dotted(&e.instance_path().to_string()), e));
            }
        }
        Err(e) => out.push(format!("the CRD's schema cannot be compiled: {e}")),
    }
    if !out.is_empty() {
        // The CEL rules are typed by the schema: only a well-formed object gets to them.
        return out;
    }
    let object = kube::core::cel::apply_defaults(&SCHEMA, doc);
    // A CEL library that panics on an input (a duration past its range) must not take lint
    // down: the apiserver refuses such a value.
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Validator::new().validate(&SCHEMA, &object, None)
    }));
    match checked {
        Ok(Ok(())) => {}
        Ok(Err(errors)) => {
            for e in errors.into_vec() {
                out.push(format!("{}: Invalid value: {}", e.field_path, e.message));
            }
        }
        Err(_) => {
            out.push("a CEL rule cannot evaluate a value of this policy (out of range)".into())
        }
    }
    out
}

/// The object as kubectl sends it and the apiserver reads it: whole numbers written as `3.0`
/// are integers, null fields are dropped (pruned or defaulted), and `status` is ignored on a
/// write of the object.
fn as_sent(doc: &Value) -> Value {
    fn normalise(v: &Value) -> Option<Value> {
        match v {
            Value::Null => None,
            Value::Number(n) => Some(match n.as_f64() {
                Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    Value::from(f as i64)
                }
                _ => v.clone(),
            }),
            Value::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .map(|i| normalise(i).unwrap_or(Value::Null))
                    .collect(),
            )),
            Value::Object(map) => Some(Value::Object(
                map.iter()
                    .filter_map(|(k, v)| normalise(v).map(|v| (k.clone(), v)))
                    .collect(),
            )),
            _ => Some(v.clone()),
        }
    }
    let mut out = normalise(doc).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut out {
        map.remove("status");
    }
    out
}

/// A lowercase RFC 1123 subdomain, as Kubernetes names objects.
fn dns_subdomain(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.len() <= 253
        && s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars().all(|c| alnum(c) || c == '-' || c == '.')
}

/// `/spec/scaling/triggers/0/cpu` → `spec.scaling.triggers[0].cpu`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').filter(|p| !p.is_empty()) {
        match part.parse::<usize>() {
            Ok(i) => out.push_str(&format!("[{i}]")),
            Err(_) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&part.replace("~1", "/").replace("~0", "~"));
            }
        }
    }
    if out.is_empty() { "(root)".into() } else { out }
}

/// The CRD's schema as plain JSON Schema: Kubernetes' extensions turned into their meaning
/// (`nullable`, int-or-string, list sets), CEL rules left to the CEL validator, and objects
/// closed to unknown fields.
fn as_json_schema(schema: &Value) -> Value {
    let Value::Object(node) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in node {
        match key.as_str() {
            "properties" => {
                let props = value.as_object().cloned().unwrap_or_default();
                let converted = props
                    .into_iter()
                    .map(|(k, v)| (k, as_json_schema(&v)))
                    .collect::<Map<_, _>>();
                out.insert(key.clone(), Value::Object(converted));
            }
            "items" | "additionalProperties" if value.is_object() => {
                out.insert(key.clone(), as_json_schema(value));
            }
            "x-kubernetes-list-type" if value == "set" => {
                out.insert("uniqueItems".into(), Value::Bool(true));
            }
            "x-kubernetes-int-or-string" if value == true => {
                out.insert("type".into(), serde_json::json!(["integer", "string"]));
            }
            k if k.starts_with("x-kubernetes-") => {}
            "nullable" | "format" | "description" | "default" => {}
            _ => {
                out.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }
    if node.get("nullable") == Some(&Value::Bool(true))
        && let Some(Value::String(t)) = out.get("type").cloned()
    {
        out.insert("type".into(), serde_json::json!([t, "null"]));
    }
    let open = node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if node.contains_key("properties") && !open && !out.contains_key("additionalProperties") {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize as _;
    use serde_json::json;

    use super::*;

    const INVALID: &str = include_str!("../../tests/fixtures/invalid-policies.yaml");
    const EXAMPLE: &str = include_str!("../../examples/emr-platform.yaml");

    fn docs(text: &str) -> Vec<Value> {
        serde_yaml::Deserializer::from_str(text)
            .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn the_example_is_accepted() {
        for doc in docs(EXAMPLE) {
            assert_eq!(refusals(&doc), Vec::<String>::new());
        }
    }

    #[test]
    fn every_invalid_fixture_is_refused_with_its_message() {
        for doc in docs(INVALID) {
            if doc["kind"] != "LaunchPolicy" {
                continue;
            }
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let refused = refusals(&doc);
            assert!(!refused.is_empty(), "{name}: accepted");
            if doc["metadata"]["annotations"]["test.liftoff.dev/rule"] == "cel" {
                let expect = doc["metadata"]["annotations"]["test.liftoff.dev/expect"]
                    .as_str()
                    .unwrap();
                assert!(
                    refused.iter().any(|r| r.contains(expect)),
                    "{name}: {refused:?} does not say {expect:?}"
                );
            }
        }
    }

    #[test]
    fn unknown_fields_wrong_types_and_bounds_name_the_field() {
        let mut doc = docs(EXAMPLE).remove(0);
        doc["spec"]["scaling"]["triggers"][0]["cpu"]["utilisation"] = json!(70);
        doc["spec"]["rollout"]["gates"]["failureThreshold"] = json!("three");
        doc["spec"]["scaling"]["triggers"][0]["replicas"]["max"] = json!(100_001);
        let refused = refusals(&doc).join("\n");
        for part in [
            "spec.scaling.triggers[0].cpu: Additional properties are not allowed ('utilisation'",
            "spec.rollout.gates.failureThreshold: \"three\" is not of type \"integer\"",
            "spec.scaling.triggers[0].replicas.max: 100001 is greater than the maximum",
        ] {
            assert!(refused.contains(part), "{part:?} missing from\n{refused}");
        }
        assert_eq!(dotted(""), "(root)");
    }

    #[test]
    fn what_kubectl_would_send_is_judged_and_a_panicking_rule_refuses() {
        let mut doc = docs(EXAMPLE).remove(0);
        doc["spec"]["rollout"]["gates"]["failureThreshold"] = json!(3.0);
        doc["spec"]["rollout"]["onGateFailure"] = Value::Null;
        doc["status"] = json!({"anything": true});
        assert_eq!(refusals(&doc), Vec::<String>::new());
        doc["metadata"]["name"] = json!("Emr_Platform");
        assert!(refusals(&doc)[0].starts_with("metadata.name: Invalid value"));
        let mut huge = docs(EXAMPLE).remove(0);
        huge["spec"]["rollout"]["stages"][0]["bake"] = json!("9999999999h1h");
        assert!(!refusals(&huge).is_empty());
    }
}
