//! Locating the etcd, kube-apiserver, kubectl and kube-controller-manager binaries.
//!
//! The lookup mirrors `scripts/lib.sh`: an explicit `LIFTOFF_*` override wins, otherwise the
//! version-keyed cache that `scripts/build-control-plane.sh` fills is used. The pinned versions
//! come from `scripts/versions.env`, compiled in so tests and scripts can never disagree.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// `scripts/versions.env`, the single source of truth for the pinned server versions.
const VERSIONS_ENV: &str = include_str!("../../../scripts/versions.env");

/// Returns the value of `key` in `scripts/versions.env` (e.g. `K8S_VERSION` -> `v1.35.4`).
pub fn pinned_version(key: &str) -> Option<&'static str> {
    VERSIONS_ENV
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// Reads an environment variable, treating an empty value as unset (like `${VAR:-default}`).
fn env_nonempty(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// `${LIFTOFF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/liftoff}`, as in `scripts/lib.sh`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = env_nonempty("LIFTOFF_CACHE") {
        return PathBuf::from(dir);
    }
    let base = env_nonempty("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env_nonempty("HOME").unwrap_or_default()).join(".cache"));
    base.join("liftoff")
}

/// Absolute paths of the binaries a control plane needs.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kubectl: PathBuf,
    /// Run only on demand ([`crate::ControlPlane::start_garbage_collector`]).
    pub kube_controller_manager: PathBuf,
}

impl Binaries {
    /// Resolves every binary and checks that it exists, failing with a hint on how to build it.
    pub fn locate() -> Result<Binaries> {
        let cache = cache_dir();
        let k8s = pinned_version("K8S_VERSION").expect("K8S_VERSION in scripts/versions.env");
        let etcd = pinned_version("ETCD_VERSION").expect("ETCD_VERSION in scripts/versions.env");
        let k8s_dir = cache.join(format!("k8s-{k8s}"));
        let etcd_dir = cache.join(format!("etcd-{etcd}"));
        Ok(Binaries {
            etcd: resolve("LIFTOFF_ETCD", "etcd", &etcd_dir.join("etcd"))?,
            kube_apiserver: resolve(
                "LIFTOFF_KUBE_APISERVER",
                "kube-apiserver",
                &k8s_dir.join("kube-apiserver"),
            )?,
            kubectl: resolve("LIFTOFF_KUBECTL", "kubectl", &k8s_dir.join("kubectl"))?,
            kube_controller_manager: resolve(
                "LIFTOFF_KUBE_CONTROLLER_MANAGER",
                "kube-controller-manager",
                &k8s_dir.join("kube-controller-manager"),
            )?,
        })
    }
}

/// The override from `env_var` if set, else `default`; either way it must be an existing file.
fn resolve(env_var: &str, name: &str, default: &Path) -> Result<PathBuf> {
    let path = env_nonempty(env_var).map_or_else(|| default.to_path_buf(), PathBuf::from);
    if !path.is_file() {
        bail!(
            "{name} not found at {}: run scripts/build-control-plane.sh (builds it once, ~5 min)",
            path.display()
        );
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_env_is_parsed() {
        assert!(pinned_version("K8S_VERSION").unwrap().starts_with("v1."));
        assert!(pinned_version("ETCD_VERSION").unwrap().starts_with("v3."));
        assert_eq!(pinned_version("NO_SUCH_KEY"), None);
    }

    #[test]
    fn missing_binary_error_says_how_to_build_it() {
        let missing = Path::new("/nonexistent/kube-apiserver");
        let err = resolve("LIFTOFF_TESTENV_UNSET_VAR", "kube-apiserver", missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kube-apiserver not found at /nonexistent/kube-apiserver: \
             run scripts/build-control-plane.sh (builds it once, ~5 min)"
        );
    }
}
