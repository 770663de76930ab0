//! Client-side checks of the CRD: the CEL rules, the defaults and the committed YAML.
//! The same fixtures are applied to a real apiserver by `tests/admission.rs`.

use kube::{CustomResourceExt, core::cel::Validator};
use serde::Deserialize as _;
use serde_json::Value;

use super::*;

const INVALID: &str = include_str!("../../tests/fixtures/invalid-policies.yaml");
const EXAMPLE: &str = include_str!("../../examples/emr-platform.yaml");

fn schema() -> Value {
    let crd = LaunchPolicy::crd();
    let schema = crd.spec.versions[0]
        .schema
        .clone()
        .unwrap()
        .open_api_v3_schema
        .unwrap();
    serde_json::to_value(schema).unwrap()
}

fn validate(object: &Value) -> Result<(), String> {
    let schema = schema();
    // The apiserver applies schema defaults before it evaluates CEL rules; so do we.
    let object = kube::core::cel::apply_defaults(&schema, object);
    Validator::new()
        .validate(&schema, &object, None)
        .map_err(|errs| {
            errs.into_vec()
                .into_iter()
                .map(|e| format!("{}: {}", e.field_path, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        })
}

fn fixtures() -> Vec<Value> {
    serde_yaml::Deserializer::from_str(INVALID)
        .map(|doc| serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap())
        .collect()
}

#[test]
fn every_cel_rule_fixture_is_rejected_with_its_message() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 12, "keep at least 12 invalid policies");
    for doc in fixtures {
        let annotations = &doc["metadata"]["annotations"];
        if annotations["test.liftoff.dev/rule"] != "cel" {
            continue;
        }
        let name = doc["metadata"]["name"].as_str().unwrap();
        let expect = annotations["test.liftoff.dev/expect"].as_str().unwrap();
        match validate(&doc) {
            Ok(()) => panic!("{name}: accepted, expected rejection containing {expect:?}"),
            Err(msg) => assert!(msg.contains(expect), "{name}: got {msg:?}, want {expect:?}"),
        }
    }
}

#[test]
fn the_example_policy_passes_every_rule_and_deserializes() {
    let doc: serde_yaml::Value = serde_yaml::from_str(EXAMPLE).unwrap();
    let json = serde_json::to_value(&doc).unwrap();
    validate(&json).unwrap();
    let policy: LaunchPolicy = serde_json::from_value(json).unwrap();
    let triggers = &policy.spec.scaling.as_ref().unwrap().triggers;
    assert_eq!(
        triggers.len(),
        4,
        "the example exercises all four trigger kinds"
    );
}

#[test]
fn a_minimal_policy_gets_the_seed_defaults() {
    let policy: LaunchPolicySpec = serde_json::from_value(serde_json::json!({
        "scaling": {"triggers": [{
            "name": "api-cpu", "cpu": {},
            "scaleTargetRef": {"kind": "Deployment", "name": "api"},
            "replicas": {"max": 10}
        }]},
        "rollout": {}
    }))
    .unwrap();
    let trigger = &policy.scaling.unwrap().triggers[0];
    assert_eq!(trigger.cpu.as_ref().unwrap().utilization, 70);
    assert_eq!(trigger.replicas.as_ref().unwrap().min, 1);
    assert_eq!(
        trigger.scale_target_ref.as_ref().unwrap().api_version,
        "apps/v1"
    );
    let stages = policy.rollout.unwrap().stages;
    // The seed plan: the canary bakes 2 hours, then the Go/No-Go opens the gradual rollout.
    let plan: Vec<_> = stages
        .iter()
        .map(|s| (s.bake.map(|b| b.to_string()), s.approval))
        .collect();
    assert_eq!(
        plan,
        [
            (Some("2h".to_string()), Approval::Automatic),
            (Some("168h".to_string()), Approval::Manual),
            (Some("168h".to_string()), Approval::Automatic),
            (None, Approval::Automatic),
        ]
    );
    let users: Vec<String> = stages
        .iter()
        .map(|s| match &s.users {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
        })
        .collect();
    assert_eq!(users, ["100", "500", "1500", "All"]);
}

#[test]
fn seed_thresholds_are_the_schema_defaults() {
    let yaml = crd_yaml();
    for (field, default) in [
        ("utilization", "70"),
        ("threshold", "50000"),
        ("threshold", "700"),
        ("threshold", "80"),
    ] {
        let needle = format!("default: {default}");
        assert!(
            yaml.contains(&needle),
            "{field} should default to {default} in the CRD"
        );
    }
}

#[test]
fn committed_crd_matches_the_generated_one() {
    let committed = include_str!("../../crds/launchpolicy.yaml");
    assert!(
        committed == crd_yaml(),
        "crds/launchpolicy.yaml is stale: run `cargo run -- crd launchpolicy > crds/launchpolicy.yaml`"
    );
}

#[test]
fn committed_source_crd_matches_the_generated_one() {
    let committed = include_str!("../../crds/launchsource.yaml");
    assert!(
        committed == source_crd_yaml(),
        "crds/launchsource.yaml is stale: run `cargo run -- crd launchsource > crds/launchsource.yaml`"
    );
}

#[test]
fn top_level_description_is_written_for_users() {
    let yaml = crd_yaml();
    assert!(!yaml.contains("Auto-generated derived type"));
    assert!(yaml.contains("LaunchPolicy describes one product launch"));
}

proptest::proptest! {
    /// What the operator writes is what it reads back: a gate value that came back one digit
    /// off (0.935151302994944 read as 0.9351513029949439) made status look changed and
    /// rewritten with nothing new. serde_json's default float parser is not exact; Liftoff
    /// enables `float_roundtrip`.
    #[test]
    fn a_gate_value_reads_back_exactly_as_written(value in proptest::num::f64::NORMAL) {
        let status = RolloutStatus {
            state: super::RolloutState {
                gates: vec![super::GateState {
                    name: "login-success".into(),
                    value: Some(value),
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Default::default()
        };
        let written = serde_json::to_string(&status).unwrap();
        let read: RolloutStatus = serde_json::from_str(&written).unwrap();
        proptest::prop_assert_eq!(read, status, "{}", written);
    }
}

#[test]
fn the_reported_gate_value_reads_back_exactly() {
    let value: f64 = serde_json::from_str("0.935151302994944").unwrap();
    assert_eq!(serde_json::to_string(&value).unwrap(), "0.935151302994944");
}

/// Field names that YAML 1.1 tools (kubectl, helm: sigs.k8s.io/yaml) read as booleans when
/// unquoted, which breaks the CRD for them while Rust's YAML 1.2 reader is fine.
#[test]
fn no_field_is_named_like_a_yaml_1_1_boolean() {
    fn walk(schema: &Value, path: &str, found: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                let lower = name.to_ascii_lowercase();
                if ["on", "off", "yes", "no", "y", "n", "true", "false"].contains(&lower.as_str()) {
                    found.push(format!("{path}.{name}"));
                }
                walk(sub, &format!("{path}.{name}"), found);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(items, &format!("{path}[]"), found);
        }
    }
    let mut found = Vec::new();
    for crd in [
        serde_json::to_value(LaunchPolicy::crd()).unwrap(),
        serde_json::to_value(LaunchSource::crd()).unwrap(),
    ] {
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        walk(schema, "", &mut found);
    }
    assert!(found.is_empty(), "rename these fields: {found:?}");
}
