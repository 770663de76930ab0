//! The parts of `docs/` generated from code, so they cannot drift: the metrics table in
//! `docs/metrics.md` (from the registry) and `docs/reference/launchpolicy.md` and
//! `launchsource.md` (from the CRDs' schemas). `liftoff docs` rewrites them; a unit test fails
//! when one is out of date.

use std::{fmt::Write as _, path::Path};

use kube::CustomResourceExt;
use serde_json::Value;

use crate::{
    crd::{LaunchPolicy, LaunchSource},
    metrics::{MetricDoc, Metrics},
};

/// `docs/metrics.md`, relative to the repository.
pub const METRICS_PAGE: &str = "docs/metrics.md";
/// `docs/reference/launchpolicy.md`, relative to the repository.
pub const REFERENCE_PAGE: &str = "docs/reference/launchpolicy.md";
/// `docs/reference/launchsource.md`, relative to the repository.
pub const SOURCE_REFERENCE_PAGE: &str = "docs/reference/launchsource.md";
const BEGIN: &str = "<!-- BEGIN GENERATED: metrics (liftoff docs) -->";
const END: &str = "<!-- END GENERATED: metrics -->";

/// The markdown table of every metric the operator exports.
pub fn metrics_table(catalog: &[MetricDoc]) -> String {
    let mut out = String::from("| Metric | Type | Meaning |\n| --- | --- | --- |\n");
    for m in catalog {
        let labels = match m.labels.is_empty() {
            true => String::new(),
            false => format!("{{{}}}", m.labels.join(",")),
        };
        let _ = writeln!(
            out,
            "| `{}{labels}` | {} | {} |",
            m.name,
            m.kind,
            cell(&m.help)
        );
    }
    out
}

/// `page` with the text between the generated-table markers replaced by `table`; `None` when
/// the markers are missing.
pub fn with_metrics_table(page: &str, table: &str) -> Option<String> {
    let start = page.find(BEGIN)? + BEGIN.len();
    let end = start + page[start..].find(END)?;
    Some(format!("{}\n{table}{}", &page[..start], &page[end..]))
}

/// Every field of the LaunchPolicy, from the CRD's schema: one table per object.
pub fn crd_reference() -> String {
    let intro = "Every rule listed is enforced by the apiserver when a policy is applied.";
    reference(
        "LaunchPolicy",
        &LaunchPolicy::crd(),
        intro,
        &["spec", "status"],
    )
}

/// Every field of the LaunchSource, from the CRD's schema.
pub fn source_crd_reference() -> String {
    let intro = "A cluster-scoped source the platform team names for the namespaces it lists; \
                 see [Security](../security.md#named-sources).";
    reference("LaunchSource", &LaunchSource::crd(), intro, &["spec"])
}

fn reference(
    kind: &str,
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    intro: &str,
    parts: &[&str],
) -> String {
    let crd = serde_json::to_value(crd).unwrap_or_default();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut out = format!(
        "# {kind} reference\n\n\
         Generated from the CRD by `liftoff docs` (a test fails when it is out of date); \
         `kubectl explain {}.<field>` shows the same text. {intro}\n",
        kind.to_lowercase()
    );
    for part in parts {
        object(&mut out, &format!(".{part}"), &schema["properties"][part]);
    }
    out
}

/// The table of one object's fields, then the tables of its nested objects.
fn object(out: &mut String, path: &str, schema: &Value) {
    let Some(properties) = schema["properties"].as_object() else {
        return;
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(out, "\n## `{path}`\n");
    if let Some(description) = schema["description"].as_str() {
        let _ = writeln!(out, "{}\n", description.trim());
    }
    let object_rules = rules(schema);
    for rule in &object_rules {
        let _ = writeln!(out, "- {rule}");
    }
    if !object_rules.is_empty() {
        out.push('\n');
    }
    out.push_str("| Field | Type | Description |\n| --- | --- | --- |\n");
    let mut nested = Vec::new();
    for (name, field) in properties {
        let (type_, inner) = type_of(field);
        let mut text = field["description"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if required.contains(&name.as_str()) {
            text.push_str(" Required.");
        }
        if let Some(default) = field.get("default") {
            let _ = write!(text, " Default: `{default}`.");
        }
        for rule in bounds(field).into_iter().chain(rules(field)) {
            let _ = write!(text, " {rule}.");
        }
        let _ = writeln!(out, "| `{name}` | {type_} | {} |", cell(&text));
        if inner["properties"].is_object() {
            let suffix = if field["type"] == "array" { "[]" } else { "" };
            nested.push((format!("{path}.{name}{suffix}"), inner.clone()));
        }
    }
    for (path, schema) in nested {
        object(out, &path, &schema);
    }
}

/// The field's type as a reader wants it (`[]string`, `object`, `int or string`), and the
/// schema of what it holds (the items of an array).
fn type_of(field: &Value) -> (String, &Value) {
    if field["x-kubernetes-int-or-string"] == true {
        return ("int or string".into(), field);
    }
    match field["type"].as_str() {
        Some("array") => {
            let (inner, schema) = type_of(&field["items"]);
            (format!("[]{inner}"), schema)
        }
        Some(t) => (t.to_string(), field),
        None => ("any".into(), field),
    }
}

/// Bounds of a value: ranges, lengths, patterns, enumerations.
fn bounds(field: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let number = |key: &str| field.get(key).filter(|v| !v.is_null()).map(whole);
    match (number("minimum"), number("maximum")) {
        (Some(min), Some(max)) => out.push(format!("Range: {min}–{max}")),
        (Some(min), None) => out.push(format!("Minimum: {min}")),
        (None, Some(max)) => out.push(format!("Maximum: {max}")),
        (None, None) => {}
    }
    for (key, what) in [
        ("minLength", "Length at least"),
        ("maxLength", "Length at most"),
        ("minItems", "Items at least"),
        ("maxItems", "Items at most"),
    ] {
        if let Some(n) = number(key) {
            out.push(format!("{what} {n}"));
        }
    }
    if let Some(pattern) = field["pattern"].as_str() {
        out.push(format!("Pattern: `{pattern}`"));
    }
    if let Some(values) = field["enum"].as_array() {
        let values: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
        out.push(format!("One of: {}", values.join(", ")));
    }
    out
}

/// A number as written in a spec: `100`, not `100.0`.
fn whole(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9e18 => format!("{}", f as i64),
        _ => v.to_string(),
    }
}

/// The CEL rules on a schema node, by their messages.
fn rules(schema: &Value) -> Vec<String> {
    schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|rule| rule["message"].as_str().or(rule["rule"].as_str()))
        .map(|m| format!("Rule: {}", m.trim_end_matches('.')))
        .collect()
}

/// Text fit for one markdown table cell.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// Rewrites the generated parts of the docs under `repo`; returns the pages it changed.
pub fn write(repo: &Path) -> std::io::Result<Vec<&'static str>> {
    let mut changed = Vec::new();
    let metrics_page = repo.join(METRICS_PAGE);
    let page = std::fs::read_to_string(&metrics_page)?;
    let table = metrics_table(&Metrics::default().catalog);
    let new = with_metrics_table(&page, &table)
        .ok_or_else(|| std::io::Error::other(format!("{METRICS_PAGE} lacks the line {BEGIN}")))?;
    if new != page {
        std::fs::write(&metrics_page, new)?;
        changed.push(METRICS_PAGE);
    }
    for (page, new) in [
        (REFERENCE_PAGE, crd_reference()),
        (SOURCE_REFERENCE_PAGE, source_crd_reference()),
    ] {
        let reference = repo.join(page);
        if std::fs::read_to_string(&reference).ok().as_deref() != Some(new.as_str()) {
            if let Some(dir) = reference.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&reference, new)?;
            changed.push(page);
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn the_metrics_page_lists_every_registered_metric() {
        let page = std::fs::read_to_string(repo().join(METRICS_PAGE)).unwrap();
        let table = metrics_table(&Metrics::default().catalog);
        assert_eq!(
            with_metrics_table(&page, &table).as_deref(),
            Some(page.as_str()),
            "{METRICS_PAGE} is out of date: run `cargo run -- docs`"
        );
    }

    #[test]
    fn the_crd_references_are_the_crds() {
        for (page, generated) in [
            (REFERENCE_PAGE, crd_reference()),
            (SOURCE_REFERENCE_PAGE, source_crd_reference()),
        ] {
            let text = std::fs::read_to_string(repo().join(page)).unwrap_or_default();
            assert!(
                text == generated,
                "{page} is out of date: run `cargo run -- docs`"
            );
        }
    }

    #[test]
    fn the_reference_shows_types_bounds_defaults_and_rules() {
        let text = crd_reference();
        assert!(text.contains("## `.spec.scaling.triggers[]`"), "{text}");
        assert!(
            text.contains("| `utilization` | integer |") && text.contains("Range: 1–100"),
            "cpu.utilization with its range"
        );
        assert!(text.contains("Default: `70`"));
        assert!(text.contains(
            "set exactly one of cpu, kafkaLag, databaseConnections or redisMemory in each trigger"
        ));
    }
}
