//! The chart's lifecycle as a user runs it, with the real `helm install`, `helm upgrade` and
//! `helm uninstall` against a real apiserver: exactly the commands of the README's "Install with
//! Helm", "Upgrading" and "Uninstalling without losing policies". No `--wait`: the test control
//! plane runs no pods, so the operator's Deployment never becomes available.

use std::path::{Path, PathBuf};

use liftoff_testenv::ControlPlane;
use serde::Deserialize;
use tokio::process::Command;

use super::{RELEASE_NS, helm, namespace};
use crate::support::{kubectl, repo_path};

const CRD: &str = "launchpolicies.liftoff.dev";

/// Helm pointed at the test apiserver, with its config, cache and data in a scratch directory.
struct Helm {
    bin: PathBuf,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

impl Helm {
    /// `helm <args> --kubeconfig … -n liftoff-system`, asserting success; its stdout.
    async fn run(&self, args: &[&str]) -> String {
        let home = self.home.path();
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", RELEASE_NS])
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .current_dir(repo_path(""))
            .output()
            .await
            .expect("helm runs");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert!(
            out.status.success(),
            "helm {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

/// `(kind, namespace, name)` of every object in a manifest stream, e.g. `helm get manifest`.
fn objects(manifest: &str) -> Vec<(String, Option<String>, String)> {
    serde_yaml::Deserializer::from_str(manifest)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|d| !d.is_null())
        .map(|d| {
            let meta = &d["metadata"];
            let s = |v: &serde_yaml::Value| v.as_str().map(str::to_string);
            (
                s(&d["kind"]).unwrap(),
                s(&meta["namespace"]),
                s(&meta["name"]).unwrap(),
            )
        })
        .collect()
}

/// `kubectl get KIND NAME [-n NS] -o jsonpath=PATH`: `Some(output)`, or `None` when not found.
async fn get(
    cp: &ControlPlane,
    kind: &str,
    ns: Option<&str>,
    name: &str,
    path: &str,
) -> Option<String> {
    let jsonpath = format!("-o=jsonpath={path}");
    let mut args = vec!["get", kind, name, &jsonpath];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    let (ok, out, err) = kubectl(cp, &args, None).await;
    if !ok {
        assert!(err.contains("NotFound"), "kubectl {args:?}: {err}");
    }
    ok.then_some(out)
}

/// `kubectl diff --server-side` of the repository's CRD against the cluster's: whether they
/// differ. Exit code 0 is "no difference", 1 "different", anything else an error.
async fn crd_differs_from_the_repositorys(cp: &ControlPlane) -> bool {
    let file = repo_path("charts/liftoff/crds/launchpolicy.yaml");
    let args = ["diff", "--server-side", "--force-conflicts", "-f"];
    let out = cp.kubectl().args(args).arg(&file).output().await.unwrap();
    match out.status.code() {
        Some(0) => false,
        Some(1) => true,
        _ => panic!("kubectl diff: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// A copy of the chart as a previous version would have shipped it: the same, except that its CRD
/// lacks the last printer column, a change of the kind a new CRD version brings.
fn previous_chart(dir: &Path) -> PathBuf {
    let chart = dir.join("liftoff");
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(repo_path("charts/liftoff"))
        .arg(&chart)
        .status();
    assert!(copied.unwrap().success());
    let crd_path = chart.join("crds/launchpolicy.yaml");
    let mut crd: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&crd_path).unwrap()).unwrap();
    let columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_sequence_mut()
        .expect("the CRD has printer columns");
    columns.pop();
    std::fs::write(&crd_path, serde_yaml::to_string(&crd).unwrap()).unwrap();
    chart
}

#[tokio::test]
async fn helm_install_upgrade_uninstall_removes_the_release_and_keeps_the_crd_and_every_policy() {
    let bin = helm_or_skip!();
    let cp = ControlPlane::start().await.unwrap();
    // The Prometheus Operator's CRDs, for the monitoring objects the upgrade turns on.
    cp.apply_crds(&repo_path("tests/fixtures")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let helm = Helm {
        bin,
        kubeconfig: cp.kubeconfig_path().to_path_buf(),
        home: tempfile::tempdir().unwrap(),
    };
    let deployment = |path: &'static str| {
        let cp = &cp;
        async move { get(cp, "deployment", Some(RELEASE_NS), "liftoff", path).await }
    };

    // Install (README "Install with Helm"), from the chart's previous version.
    let previous = previous_chart(dir.path());
    helm.run(&[
        "install",
        "liftoff",
        previous.to_str().unwrap(),
        "--create-namespace",
        "--set=image.repository=registry.example/liftoff",
        "--set=image.tag=0.0.9",
    ])
    .await;
    let (ok, _, err) = kubectl(
        &cp,
        &["wait", "--for=condition=Established", "crd", CRD],
        None,
    )
    .await;
    assert!(ok, "helm install creates the CRD from crds/: {err}");
    assert_eq!(deployment("{.spec.replicas}").await.as_deref(), Some("2"));
    assert!(
        crd_differs_from_the_repositorys(&cp).await,
        "the previous chart's CRD lacks a printer column"
    );

    // Upgrade (README "Upgrading"): the CRD by hand first, since Helm never upgrades crds/.
    // Helm created the CRD and owns its fields, so a server-side apply that changes them
    // conflicts unless it forces (hence `--force-conflicts` in the README).
    let crds = repo_path("charts/liftoff/crds");
    let mut args = vec!["apply", "--server-side", "-f", crds.to_str().unwrap()];
    let (ok, _, err) = kubectl(&cp, &args, None).await;
    assert!(!ok && err.contains("with \"helm\""), "{err}");
    args.push("--force-conflicts");
    let (ok, out, err) = kubectl(&cp, &args, None).await;
    assert!(ok, "kubectl {args:?} over the CRD Helm created: {err}{out}");
    assert!(
        !crd_differs_from_the_repositorys(&cp).await,
        "after the README's CRD step the cluster's CRD is the repository's"
    );
    helm.run(&[
        "upgrade",
        "liftoff",
        "charts/liftoff",
        "--reuse-values",
        "--set=image.tag=0.1.0",
        "--set=replicaCount=3",
        "--set=monitoring.serviceMonitor.enabled=true",
        "--set=monitoring.prometheusRule.enabled=true",
        "--set=monitoring.dashboard.enabled=true",
    ])
    .await;
    assert_eq!(deployment("{.spec.replicas}").await.as_deref(), Some("3"));
    assert_eq!(
        deployment("{.spec.template.spec.containers[0].image}")
            .await
            .as_deref(),
        Some("registry.example/liftoff:0.1.0"),
        "--reuse-values keeps the repository, --set changes the tag"
    );
    let history = helm.run(&["history", "liftoff", "-o", "json"]).await;
    assert_eq!(history.matches("\"revision\"").count(), 2, "{history}");

    // A policy, and everything the release made.
    namespace(&cp, "emr").await;
    let example = repo_path("examples/emr-platform.yaml");
    let (ok, _, err) = kubectl(&cp, &["apply", "-f", example.to_str().unwrap()], None).await;
    assert!(ok, "{err}");
    let policy_uid = get(
        &cp,
        "launchpolicy",
        Some("emr"),
        "emr-platform",
        "{.metadata.uid}",
    )
    .await;
    let crd_uid = get(&cp, "crd", None, CRD, "{.metadata.uid}").await;
    let released = objects(&helm.run(&["get", "manifest", "liftoff"]).await);
    let kinds: Vec<&str> = released.iter().map(|(k, _, _)| k.as_str()).collect();
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
    ] {
        assert!(kinds.contains(&kind), "the release has a {kind}: {kinds:?}");
    }
    for (kind, ns, name) in &released {
        assert!(
            get(&cp, kind, ns.as_deref(), name, "{.metadata.name}")
                .await
                .is_some(),
            "{kind} {ns:?}/{name} installed"
        );
    }

    // Uninstall (README "Uninstalling without losing policies").
    helm.run(&["uninstall", "liftoff"]).await;
    for (kind, ns, name) in &released {
        assert!(
            get(&cp, kind, ns.as_deref(), name, "{.metadata.name}")
                .await
                .is_none(),
            "helm uninstall removes {kind} {ns:?}/{name}"
        );
    }
    let (ok, secrets, err) = kubectl(
        &cp,
        &[
            "get",
            "secrets",
            "-n",
            RELEASE_NS,
            "-l",
            "owner=helm",
            "-o",
            "name",
        ],
        None,
    )
    .await;
    assert!(
        ok && secrets.trim().is_empty(),
        "no release record left: {secrets}{err}"
    );
    assert_eq!(
        get(&cp, "crd", None, CRD, "{.metadata.uid}").await,
        crd_uid,
        "the CRD stays, the same object"
    );
    assert_eq!(
        get(
            &cp,
            "launchpolicy",
            Some("emr"),
            "emr-platform",
            "{.metadata.uid}"
        )
        .await,
        policy_uid,
        "the LaunchPolicy stays, the same object"
    );

    // Reinstalling over the CRD that stayed works, and leaves the policy alone.
    helm.run(&[
        "install",
        "liftoff",
        "charts/liftoff",
        "--set=image.tag=0.1.0",
    ])
    .await;
    assert!(!crd_differs_from_the_repositorys(&cp).await);
    assert_eq!(
        get(
            &cp,
            "launchpolicy",
            Some("emr"),
            "emr-platform",
            "{.metadata.uid}"
        )
        .await,
        policy_uid
    );
}
