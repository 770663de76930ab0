//! Smoke tests against a real etcd + kube-apiserver (needs scripts/build-control-plane.sh).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use liftoff_testenv::ControlPlane;

#[tokio::test]
async fn namespace_configmap_and_kubectl() -> anyhow::Result<()> {
    let started = Instant::now();
    let cp = ControlPlane::start().await?;
    eprintln!("ControlPlane::start() took {:?}", started.elapsed());

    let ns = cp.create_namespace("smoke").await?;
    let client = cp.client().await?;
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("hello".into()),
            ..ObjectMeta::default()
        },
        data: Some([("greeting".to_string(), "liftoff".to_string())].into()),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(client, &ns)
        .create(&PostParams::default(), &cm)
        .await?;

    let out = cp
        .kubectl()
        .args(["get", "configmap", "-n", &ns, "-o", "name"])
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.lines().any(|l| l == "configmap/hello"),
        "got {stdout:?}"
    );

    let stopping = Instant::now();
    cp.stop().await;
    eprintln!("ControlPlane::stop() took {:?}", stopping.elapsed());
    Ok(())
}

#[tokio::test]
async fn processes_are_gone_after_drop() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let pids = cp.pids();
    assert_eq!(pids.len(), 2, "apiserver and etcd run");
    let addr = cp.server_url().trim_start_matches("https://").to_string();
    let log_dir = cp.log_dir().to_path_buf();
    assert!(std::net::TcpStream::connect(&addr).is_ok());

    drop(cp);

    for pid in pids {
        // kill(pid, 0) fails with ESRCH once the process is gone and reaped.
        let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
        assert!(!alive, "pid {pid} still exists after drop");
    }
    let refused = std::net::TcpStream::connect_timeout(&addr.parse()?, Duration::from_secs(1));
    assert!(
        refused.is_err(),
        "apiserver port {addr} still accepts connections"
    );
    if std::env::var("LIFTOFF_KEEP_TESTENV").as_deref() != Ok("1") {
        assert!(
            !log_dir.exists(),
            "temp dir {} not removed",
            log_dir.display()
        );
    }
    Ok(())
}

/// Two CRDs in one multi-document file (plus a non-CRD document that is skipped).
const CRDS_YAML: &str = r#"
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.liftoff.dev
spec:
  group: smoke.liftoff.dev
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-a-crd}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.smoke.liftoff.dev
spec:
  group: smoke.liftoff.dev
  names: {kind: Gadget, plural: gadgets}
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object}
"#;

#[tokio::test]
async fn apply_crds_creates_and_replaces() -> anyhow::Result<()> {
    let crd_dir = tempfile::tempdir()?;
    std::fs::write(crd_dir.path().join("crds.yaml"), CRDS_YAML)?;
    let cp = ControlPlane::start().await?;
    cp.apply_crds(crd_dir.path()).await?;
    // A second run takes the replace path.
    cp.apply_crds(crd_dir.path()).await?;

    let ns = cp.create_namespace("crds").await?;
    let widget =
        r#"{"apiVersion":"smoke.liftoff.dev/v1","kind":"Widget","metadata":{"name":"w1"}}"#;
    let manifest = crd_dir.path().join("widget.json");
    std::fs::write(&manifest, widget)?;
    let out = cp
        .kubectl()
        .args(["create", "-n", &ns, "-f"])
        .arg(&manifest)
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl create failed: {stderr}");
    cp.stop().await;
    Ok(())
}
