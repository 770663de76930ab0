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

/// Lints every LaunchPolicy of `text`: its YAML documents, and the items of a `List` (what
/// `kubectl get -o yaml` prints). Other kinds are skipped; a document that is not YAML is refused.
pub fn lint(text: &str) -> Vec<Verdict> {
    let mut out = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let unreadable = |e: String| Verdict {
            policy: format!("document {}", i + 1),
            refusals: vec![e],
            warnings: Vec::new(),
        };
        let doc = serde_yaml::Value::deserialize(document)
            .map_err(|e| format!("not YAML: {e}"))
            .and_then(|y| serde_json::to_value(&y).map_err(|e| format!("not a JSON object: {e}")));
        let doc = match doc {
            Ok(doc) => doc,
            Err(e) => {
                out.push(unreadable(e));
                // The parser cannot resume inside a broken document.
                break;
            }
        };
        let items = match doc.get("kind").and_then(Value::as_str) {
            Some(kind) if kind.ends_with("List") => {
                doc["items"].as_array().cloned().unwrap_or_default()
            }
            _ => vec![doc],
        };
        for item in items {
            if item.get("kind").and_then(Value::as_str) == Some("LaunchPolicy") {
                out.push(verdict(&item));
            }
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_expanded_other_kinds_skipped_and_broken_yaml_refused() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n\
                    apiVersion: v1\nkind: List\nitems:\n- apiVersion: liftoff.dev/v1alpha1\n  \
                    kind: LaunchPolicy\n  metadata: {name: a, namespace: emr}\n  spec: {}\n\
                    ---\nkey: [unclosed\n";
        let verdicts = lint(text);
        assert_eq!(verdicts.len(), 2, "{verdicts:?}");
        assert_eq!(verdicts[0].policy, "emr/a");
        assert_eq!(verdicts[0].refusals, Vec::<String>::new());
        assert_eq!(verdicts[1].policy, "document 3");
        assert!(verdicts[1].refusals[0].starts_with("not YAML"));
    }
}
