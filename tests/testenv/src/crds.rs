//! Installing CustomResourceDefinitions from a directory of YAML files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde::Deserialize as _;

/// How long one CRD may take to become `Established`.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// The `*.yaml` / `*.yml` files directly in `dir`, sorted by name.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let is_yaml = path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml");
        if is_yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Every CRD document in `path` (multi-document files are fine; other kinds are skipped).
fn crds_in_file(path: &Path) -> Result<Vec<CustomResourceDefinition>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut crds = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let ctx = || format!("{} (document {})", path.display(), i + 1);
        let value = serde_yaml::Value::deserialize(doc).with_context(ctx)?;
        if value.is_null() {
            continue; // empty document, e.g. a leading or trailing `---`
        }
        let json = serde_json::to_value(&value).with_context(ctx)?;
        if json.get("kind").and_then(|k| k.as_str()) != Some("CustomResourceDefinition") {
            tracing::warn!("skipping non-CRD document {}", ctx());
            continue;
        }
        crds.push(serde_json::from_value(json).with_context(ctx)?);
    }
    Ok(crds)
}

/// Creates (or replaces, if it exists) every CRD found in `dir`, then waits until each is
/// `Established`, so that custom resources can be created right after this returns.
pub async fn apply_crds(client: kube::Client, dir: &Path) -> Result<()> {
    let files = yaml_files(dir)?;
    if files.is_empty() {
        bail!("no *.yaml files in {}", dir.display());
    }
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let params = PostParams::default();
    let mut names = Vec::new();
    for file in &files {
        for mut crd in crds_in_file(file)? {
            let name = crd
                .metadata
                .name
                .clone()
                .with_context(|| format!("a CRD in {} has no metadata.name", file.display()))?;
            match api.create(&params, &crd).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    let existing = api.get(&name).await?;
                    crd.metadata.resource_version = existing.metadata.resource_version;
                    api.replace(&name, &params, &crd)
                        .await
                        .with_context(|| format!("replacing CRD {name}"))?;
                }
                Err(e) => return Err(e).with_context(|| format!("creating CRD {name}")),
            }
            names.push(name);
        }
    }
    for name in names {
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        tokio::time::timeout(ESTABLISH_TIMEOUT, established)
            .await
            .with_context(|| format!("CRD {name} not Established after {ESTABLISH_TIMEOUT:?}"))?
            .with_context(|| format!("watching CRD {name}"))?;
    }
    Ok(())
}
