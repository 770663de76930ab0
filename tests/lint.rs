//! `liftoff lint` gives the apiserver's verdict: every invalid-policy fixture, and the example
//! with each bounded number and string set at its bounds and just past them, is sent to a real
//! kube-apiserver (`kubectl apply --dry-run=server`, strict field validation) and to lint; the
//! two must agree on every one.

mod support;

use serde::Deserialize as _;
use serde_json::{Value, json};
use support::{control_plane, kubectl, repo_path};

fn docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_path(path)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap())
        .collect()
}

/// The CRD's schema of `spec`.
fn spec_schema() -> Value {
    let crd = docs("crds/launchpolicy.yaml").remove(0);
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

/// The example with one field changed: each bounded number at its bounds and one past, each
/// bounded string at its length bounds and one past. `(what, policy)`.
fn edges(example: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    walk(
        &example["spec"],
        &spec_schema(),
        "/spec",
        &mut |pointer, schema, value| {
            let mut variants = Vec::new();
            let is_int = schema["type"] == "integer";
            if value.is_number() {
                for (bound, step) in [("minimum", -1.0), ("maximum", 1.0)] {
                    if let Some(b) = schema[bound].as_f64() {
                        for v in [b, b + step] {
                            variants.push(match is_int {
                                true => json!(v as i64),
                                false => json!(v),
                            });
                        }
                    }
                }
            }
            if value.is_string() {
                if let Some(max) = schema["maxLength"].as_u64() {
                    variants.push(json!("a".repeat(max as usize)));
                    variants.push(json!("a".repeat(max as usize + 1)));
                }
                if let Some(min) = schema["minLength"].as_u64().filter(|m| *m > 0) {
                    variants.push(json!("a".repeat(min as usize - 1)));
                }
            }
            for v in variants {
                let mut policy = example.clone();
                *policy.pointer_mut(pointer).unwrap() = v.clone();
                out.push((format!("{pointer} = {v}"), policy));
            }
        },
    );
    out
}

/// Calls `visit` with every scalar of `value` and its schema.
fn walk(value: &Value, schema: &Value, pointer: &str, visit: &mut dyn FnMut(&str, &Value, &Value)) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let child = &schema["properties"][k];
                walk(v, child, &format!("{pointer}/{k}"), visit);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, &schema["items"], &format!("{pointer}/{i}"), visit);
            }
        }
        _ => visit(pointer, schema, value),
    }
}

#[tokio::test]
async fn lint_gives_the_apiservers_verdict_on_every_fixture_and_every_edge() {
    let cp = control_plane().await;
    let ns = cp.create_namespace("lint").await.unwrap();
    let mut cases: Vec<(String, Value)> = docs("tests/fixtures/invalid-policies.yaml")
        .into_iter()
        .filter(|d| d["kind"] == "LaunchPolicy")
        .map(|d| (format!("fixture {}", d["metadata"]["name"]), d))
        .collect();
    let mut example = docs("examples/emr-platform.yaml").remove(0);
    example["metadata"]["namespace"] = json!(ns);
    cases.push(("the example".into(), example.clone()));
    cases.extend(edges(&example));
    assert!(cases.len() > 80, "{} cases", cases.len());

    let (mut accepted, mut disagreements) = (0, Vec::new());
    for (what, mut policy) in cases {
        policy["metadata"]["namespace"] = json!(ns);
        let text = serde_json::to_string(&policy).unwrap();
        let args = ["apply", "--dry-run=server", "-f", "-"];
        let (server_ok, _, server_says) = kubectl(&cp, &args, Some(&text)).await;
        let verdict = liftoff::lint::verdict(&policy);
        let lint_ok = verdict.refusals.is_empty();
        accepted += usize::from(server_ok);
        if server_ok != lint_ok {
            disagreements.push(format!(
                "{what}: the apiserver {} ({}), lint {} ({:?})",
                if server_ok { "accepts" } else { "refuses" },
                server_says.trim(),
                if lint_ok { "accepts" } else { "refuses" },
                verdict.refusals
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert!(
        accepted > 20,
        "only {accepted} accepted cases: the edges are not exercised"
    );
}
