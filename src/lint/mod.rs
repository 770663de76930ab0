//! `liftoff lint`: the apiserver's verdict on each LaunchPolicy of a file, offline (the crate's
//! own CRD: schema and CEL rules), and a reviewer's warnings on the ones it would accept.

pub mod admission;
pub mod review;

use serde::Deserialize as _;
use serde_json::Value;

use crate::crd::LaunchPolicy;

/// What lint says about one document.
#[derive(Debug, PartialEq)]
pub struct Verdict {
    /// `namespace/name` as written (`(unnamed)` without one).
    pub policy: String,
    /// Why the apiserver would refuse it; empty when it would accept it.
    pub refusals: Vec<String>,
    /// What a reviewer would say about a policy the apiserver accepts.
    pub warnings: Vec<String>,
}

/// Lints every YAML document of `text` (documents that are not LaunchPolicies are refused).
pub fn lint(text: &str) -> Result<Vec<Verdict>, String> {
    let mut out = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let yaml = serde_yaml::Value::deserialize(document)
            .map_err(|e| format!("document {}: not YAML: {e}", i + 1))?;
        if yaml.is_null() {
            continue;
        }
        let doc = serde_json::to_value(&yaml)
            .map_err(|e| format!("document {}: not a JSON object: {e}", i + 1))?;
        out.push(verdict(&doc));
    }
    Ok(out)
}

/// The verdict on one document.
pub fn verdict(doc: &Value) -> Verdict {
    let meta = |key: &str| {
        doc.pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_str)
    };
    let policy = match (meta("namespace"), meta("name")) {
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        (None, Some(name)) => name.to_string(),
        _ => "(unnamed)".to_string(),
    };
    let refusals = admission::refusals(doc);
    let warnings = match refusals.is_empty() {
        true => match serde_json::from_value::<LaunchPolicy>(doc.clone()) {
            Ok(policy) => review::warnings(&policy, doc),
            Err(e) => vec![format!(
                "accepted by the schema, but Liftoff cannot read it: {e}"
            )],
        },
        false => Vec::new(),
    };
    Verdict {
        policy,
        refusals,
        warnings,
    }
}
