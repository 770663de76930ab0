//! The Helm chart (`charts/liftoff`): its CRD is the operator's, it lints, its schema rejects bad
//! values, it installs into a real apiserver, and the operator running as the chart's
//! ServiceAccount (a real token, not an admin) does its job and nothing more.
//!
//! Helm comes from `scripts/build-helm.sh` (which `scripts/test.sh` runs); without it the helm
//! tests say so and pass as skipped.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use liftoff::crd::LaunchPolicy;
use liftoff_testenv::{ControlPlane, cache_dir, pinned_version};
use serde::Deserialize;
use support::{Operator, eventually, kubectl, repo_path};
use tokio::process::Command;

const RELEASE_NS: &str = "liftoff-system";
const SA: &str = "system:serviceaccount:liftoff-system:liftoff";
const MONITORING: [&str; 7] = [
    "--set=monitoring.serviceMonitor.enabled=true",
    "--set=monitoring.prometheusRule.enabled=true",
    "--set=monitoring.prometheusRule.labels.release=kube-prometheus-stack",
    "--set=monitoring.dashboard.enabled=true",
    "--set=replicaCount=3",
    "--set=leaderElection.leaseDuration=20s",
    "--set=image.tag=test",
];

#[test]
fn the_charts_crds_are_exactly_what_liftoff_crd_prints() {
    for (file, generated) in [
        ("launchpolicy", liftoff::crd::crd_yaml()),
        ("launchsource", liftoff::crd::source_crd_yaml()),
    ] {
        let path = format!("charts/liftoff/crds/{file}.yaml");
        let chart_crd = std::fs::read_to_string(repo_path(&path)).expect(&path);
        assert!(
            chart_crd == generated,
            "{path} is stale: run `cargo run -- crd {file} > crds/{file}.yaml && cp crds/{file}.yaml charts/liftoff/crds/`"
        );
    }
}

/// `LIFTOFF_HELM`, else the cached build of the pinned version, else `helm` on PATH.
fn helm() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LIFTOFF_HELM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let version = pinned_version("HELM_VERSION").expect("HELM_VERSION in scripts/versions.env");
    let cached = cache_dir().join(format!("helm-{version}")).join("helm");
    if cached.is_file() {
        return Some(cached);
    }
    let on_path = std::process::Command::new("helm").arg("version").output();
    on_path
        .is_ok_and(|o| o.status.success())
        .then(|| "helm".into())
}

macro_rules! helm_or_skip {
    () => {
        match helm() {
            Some(h) => h,
            None => {
                eprintln!("SKIPPED: helm not found; build it with scripts/build-helm.sh");
                return;
            }
        }
    };
}

#[path = "chart/release.rs"]
mod release;

/// Runs helm on the chart; `(success, stdout, stderr)`.
async fn run_helm(helm: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(helm)
        .args(args)
        .current_dir(repo_path(""))
        .output()
        .await
        .expect("helm runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// `helm template liftoff charts/liftoff -n liftoff-system --include-crds`, for the test
/// apiserver's Kubernetes version, with `extra` values.
async fn render(helm: &Path, extra: &[&str]) -> String {
    let kube_version = pinned_version("K8S_VERSION").unwrap();
    let mut args = vec![
        "template",
        "liftoff",
        "charts/liftoff",
        "--namespace",
        RELEASE_NS,
    ];
    args.extend(["--include-crds", "--kube-version", kube_version]);
    args.extend(extra);
    let (ok, out, err) = run_helm(helm, &args).await;
    assert!(ok, "helm template {extra:?} failed: {err}");
    out
}

#[tokio::test]
async fn the_chart_lints_and_its_schema_rejects_bad_values() {
    let helm = helm_or_skip!();
    for extra in [
        &[][..],
        &MONITORING[..],
        &["--set=watchNamespace=team-a"][..],
    ] {
        let mut args = vec!["lint", "--strict", "charts/liftoff"];
        args.extend(extra);
        let (ok, out, err) = run_helm(&helm, &args).await;
        assert!(ok, "helm lint {extra:?}: {out}{err}");
    }
    for (bad, path) in [
        ("--set=replicaCount=two", "/replicaCount"),
        (
            "--set=leaderElection.leaseDuration=fast",
            "/leaderElection/leaseDuration",
        ),
        // The operator refuses a lease under 2 s: the pods would crash-loop.
        (
            "--set=leaderElection.leaseDuration=1500ms",
            "/leaderElection/leaseDuration",
        ),
        ("--set=logFormat=xml", "/logFormat"),
        // The operator refuses 0 (no reconcile would ever run) and kube's limit is a u16.
        ("--set=concurrency=0", "/concurrency"),
        ("--set=concurrency=70000", "/concurrency"),
        ("--set=apiRequestsInFlight=0", "/apiRequestsInFlight"),
        ("--set=watchNamespace=Team_A", "/watchNamespace"),
        ("--set=replicas=2", "additional properties 'replicas'"),
    ] {
        let args = ["template", "liftoff", "charts/liftoff", bad];
        let (ok, _, err) = run_helm(&helm, &args).await;
        assert!(!ok, "{bad} must be rejected");
        assert!(
            err.contains(path),
            "{bad}: the error must name {path}: {err}"
        );
    }
}

async fn apply(cp: &ControlPlane, manifests: &str, extra: &[&str]) {
    let mut args = vec!["apply", "-f", "-"];
    args.extend(extra);
    let (ok, out, err) = kubectl(cp, &args, Some(manifests)).await;
    assert!(ok, "kubectl {args:?} failed: {err}\n{out}");
}

async fn namespace(cp: &ControlPlane, name: &str) {
    let (ok, _, err) = kubectl(cp, &["create", "namespace", name], None).await;
    assert!(ok, "{err}");
}

#[tokio::test]
async fn the_rendered_chart_is_accepted_by_the_apiserver_with_default_and_other_values() {
    let helm = helm_or_skip!();
    let cp = ControlPlane::start().await.unwrap();
    cp.apply_crds(&repo_path("tests/fixtures")).await.unwrap();
    namespace(&cp, RELEASE_NS).await;
    namespace(&cp, "team-a").await;

    let default = render(&helm, &[]).await;
    let mut namespaced = MONITORING.to_vec();
    namespaced.push("--set=watchNamespace=team-a");
    let other = render(&helm, &namespaced).await;
    for kind in [
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
        "kind: Role\n",
    ] {
        assert!(other.contains(kind), "non-default values render {kind}");
    }
    assert!(
        !other.contains("ClusterRole"),
        "namespaced mode needs no ClusterRole"
    );
    // Requiring named sources: the flag, and the one ClusterRole that reads LaunchSources.
    namespaced.push("--set=addressPolicy.requireNamedSources=true");
    let named = render(&helm, &namespaced).await;
    assert!(named.contains("- --require-named-sources"));
    assert!(named.contains("resources: [launchsources]"));
    assert_eq!(named.matches("\nkind: ClusterRole\n").count(), 1, "{named}");
    // Two shards: a Deployment, a PodDisruptionBudget and a Lease each, every pod's selector its
    // own, and the Role lets each replica hold its shard's Lease.
    let sharded = render(
        &helm,
        &[
            "--set=shards[0].name=payments,shards[0].selector=liftoff.dev/shard=payments",
            "--set=shards[1].name=rest,shards[1].selector=liftoff.dev/shard!=payments",
        ],
    )
    .await;
    assert_eq!(
        sharded.matches("\nkind: Deployment\n").count(),
        2,
        "{sharded}"
    );
    assert_eq!(sharded.matches("\nkind: PodDisruptionBudget\n").count(), 2);
    for (shard, selector) in [("payments", "=payments"), ("rest", "!=payments")] {
        assert!(
            sharded.contains(&format!("name: liftoff-{shard}\n")),
            "{shard}"
        );
        let flag = format!("- \"--selector=liftoff.dev/shard{selector}\"\n");
        assert!(sharded.contains(&flag), "{flag}");
        assert!(sharded.contains(&format!("- --lease-name=liftoff-{shard}\n")));
        assert!(
            sharded.contains(&format!("      - liftoff-{shard}\n")),
            "Role"
        );
    }
    for manifests in [&default, &other, &named, &sharded] {
        apply(&cp, manifests, &["--dry-run=server"]).await;
    }
}

/// A kubeconfig for the chart's ServiceAccount: the test apiserver, a token from the TokenRequest
/// API, and nothing of the admin's certificate.
async fn service_account_kubeconfig(cp: &ControlPlane, dir: &Path) -> PathBuf {
    let args = [
        "create",
        "token",
        "liftoff",
        "-n",
        RELEASE_NS,
        "--duration=1h",
    ];
    let (ok, token, err) = kubectl(cp, &args, None).await;
    assert!(ok, "TokenRequest for the chart's ServiceAccount: {err}");
    let admin = std::fs::read_to_string(cp.kubeconfig_path()).unwrap();
    let mut config: serde_yaml::Value = serde_yaml::from_str(&admin).unwrap();
    for user in config["users"].as_sequence_mut().unwrap() {
        user["user"] = serde_yaml::from_str(&format!("{{token: {}}}", token.trim())).unwrap();
    }
    let path = dir.join("liftoff-sa.kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

/// The operator started exactly as the chart's Deployment starts it (its args and downward-API
/// environment), but as a local process with the ServiceAccount's kubeconfig.
async fn run_as_the_chart_would(rendered: &str, kubeconfig: &Path) -> Operator {
    let deployment = serde_yaml::Deserializer::from_str(rendered)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .find(|d| d["kind"] == "Deployment")
        .expect("the chart renders a Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .filter(|a| a != "run" && !a.starts_with("--metrics-addr"))
        .collect();
    assert!(args.contains(&"--leader-election".to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = [
        ("POD_NAME", "liftoff-6d4cf-x2x9q"),
        ("POD_NAMESPACE", RELEASE_NS),
    ];
    Operator::start_with(kubeconfig, &args, &env).await
}

/// `kubectl auth can-i <question> -n NS --as=<the chart's ServiceAccount>`, e.g.
/// `"patch deployments --subresource=scale"` or `"update leases/liftoff"`.
async fn can_i(cp: &ControlPlane, question: &str, ns: &str) -> bool {
    let as_sa = format!("--as={SA}");
    let mut args = vec!["auth", "can-i", "-n", ns, &as_sa];
    args.extend(question.split_whitespace());
    let (_, out, _) = kubectl(cp, &args, None).await;
    out.trim() == "yes"
}

async fn ready(api: &Api<LaunchPolicy>, name: &str) -> (String, String) {
    eventually(
        Duration::from_secs(30),
        "the policy's Ready condition",
        || async {
            let status = api.get(name).await.ok()?.status?;
            let c = status.conditions.into_iter().find(|c| c.type_ == "Ready")?;
            Some((c.status, c.reason))
        },
    )
    .await
}

async fn install_chart_and_example(cp: &ControlPlane, rendered: &str) {
    namespace(cp, RELEASE_NS).await;
    namespace(cp, "emr").await;
    namespace(cp, "other").await;
    apply(cp, rendered, &[]).await;
    let (ok, _, err) = kubectl(
        cp,
        &[
            "wait",
            "--for=condition=Established",
            "crd/launchpolicies.liftoff.dev",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    let workloads = repo_path("examples/demo-workloads.yaml");
    let (ok, _, err) = kubectl(cp, &["apply", "-f", workloads.to_str().unwrap()], None).await;
    assert!(ok, "{err}");
}

#[tokio::test]
async fn the_operator_as_the_charts_service_account_reconciles_and_may_do_nothing_else() {
    let helm = helm_or_skip!();
    let cp = ControlPlane::start().await.unwrap();
    let rendered = render(&helm, &[]).await;
    install_chart_and_example(&cp, &rendered).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = service_account_kubeconfig(&cp, dir.path()).await;
    let op = run_as_the_chart_would(&rendered, &kubeconfig).await;

    let example = repo_path("examples/emr-platform.yaml");
    let (ok, _, err) = kubectl(&cp, &["apply", "-f", example.to_str().unwrap()], None).await;
    assert!(ok, "{err}");
    let client = cp.client().await.unwrap();
    let api: Api<LaunchPolicy> = Api::namespaced(client.clone(), "emr");
    assert_eq!(
        ready(&api, "emr-platform").await,
        ("True".into(), "Ready".into()),
        "every reference (workloads, Secrets) resolves under the chart's RBAC:\n{}",
        op.logs()
    );
    let lease = Api::<Lease>::namespaced(client, RELEASE_NS)
        .get("liftoff")
        .await
        .unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("liftoff-6d4cf-x2x9q")
    );
    let (_, events, _) = kubectl(&cp, &["get", "events.events.k8s.io", "-n", "emr"], None).await;
    // The example's sources do not exist here: the first sample's Degraded=True is announced.
    assert!(
        events.contains("launchpolicy/emr-platform"),
        "the operator may publish Events: {events}"
    );
    assert!(
        !op.logs().to_lowercase().contains("forbidden"),
        "{}",
        op.logs()
    );

    for (question, ns) in [
        ("get secrets", "emr"),
        ("patch deployments --subresource=scale", "emr"),
        ("update statefulsets --subresource=scale", "emr"),
        (
            "patch launchpolicies.liftoff.dev --subresource=status",
            "emr",
        ),
        ("create configmaps", "emr"),
        ("create leases.coordination.k8s.io", RELEASE_NS),
        ("update leases.coordination.k8s.io/liftoff", RELEASE_NS),
    ] {
        assert!(
            can_i(&cp, question, ns).await,
            "{SA} may {question} in {ns}"
        );
    }
    for (question, ns) in [
        ("list secrets", "emr"),
        ("watch secrets", "emr"),
        ("delete deployments", "emr"),
        ("update deployments", "emr"),
        ("patch deployments", "emr"),
        ("delete launchpolicies.liftoff.dev", "emr"),
        ("create pods", "emr"),
        ("update configmaps", "emr"),
        ("delete configmaps", "emr"),
        ("create leases.coordination.k8s.io", "emr"),
        ("update leases.coordination.k8s.io/another", RELEASE_NS),
        ("delete leases.coordination.k8s.io/liftoff", RELEASE_NS),
    ] {
        assert!(
            !can_i(&cp, question, ns).await,
            "{SA} must not {question} in {ns}"
        );
    }
    // And for real, with the ServiceAccount's own token.
    let sa_kubectl = |args: &[&str]| {
        let mut cmd = Command::new(&cp.binaries().kubectl);
        cmd.arg("--kubeconfig").arg(&kubeconfig).args(args);
        cmd
    };
    for args in [
        &["delete", "deployment", "api", "-n", "emr"][..],
        &["get", "secrets", "-n", "emr"],
    ] {
        let out = sa_kubectl(args).output().await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("forbidden"),
            "kubectl {args:?}: {err}"
        );
    }
}

#[tokio::test]
async fn in_namespaced_mode_the_operator_reconciles_its_namespace_and_reaches_no_other() {
    let helm = helm_or_skip!();
    let cp = ControlPlane::start().await.unwrap();
    let rendered = render(&helm, &["--set=watchNamespace=emr"]).await;
    assert!(!rendered.contains("ClusterRole"));
    install_chart_and_example(&cp, &rendered).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = service_account_kubeconfig(&cp, dir.path()).await;
    let op = run_as_the_chart_would(&rendered, &kubeconfig).await;

    let example = repo_path("examples/emr-platform.yaml");
    let (ok, _, err) = kubectl(&cp, &["apply", "-f", example.to_str().unwrap()], None).await;
    assert!(ok, "{err}");
    let api: Api<LaunchPolicy> = Api::namespaced(cp.client().await.unwrap(), "emr");
    assert_eq!(ready(&api, "emr-platform").await.0, "True", "{}", op.logs());
    for question in [
        "get secrets",
        "list deployments",
        "list launchpolicies.liftoff.dev",
    ] {
        assert!(can_i(&cp, question, "emr").await, "{question} in emr");
        assert!(!can_i(&cp, question, "other").await, "{question} in other");
    }
}

/// The PrometheusRule's alerts parse and are well formed, by Prometheus' own `promtool` (from the
/// `prometheus` Debian package that scripts/install-test-deps.sh installs).
#[tokio::test]
async fn the_charts_alert_rules_pass_promtool() {
    let helm = helm_or_skip!();
    // With the label a Prometheus Operator selects rules by (it once broke the YAML); sharded,
    // one LiftoffNoLeader per shard.
    let sharded = [
        "--set=shards[0].name=payments,shards[0].selector=liftoff.dev/shard=payments",
        "--set=shards[1].name=rest,shards[1].selector=liftoff.dev/shard!=payments",
    ];
    for (extra, rules_found) in [(&[][..], 10), (&sharded[..], 11)] {
        let mut values = vec![
            "--set=monitoring.prometheusRule.enabled=true",
            "--set=monitoring.prometheusRule.labels.release=kube-prometheus-stack",
        ];
        values.extend(extra);
        let rendered = render(&helm, &values).await;
        let rule = serde_yaml::Deserializer::from_str(&rendered)
            .map(|d| serde_yaml::Value::deserialize(d).unwrap())
            .find(|d| d["kind"] == "PrometheusRule")
            .expect("a PrometheusRule");
        assert_eq!(
            rule["metadata"]["labels"]["release"], "kube-prometheus-stack",
            "prometheusRule.labels are the rule's labels"
        );
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules.yaml");
        std::fs::write(&rules, serde_yaml::to_string(&rule["spec"]).unwrap()).unwrap();
        let Ok(out) = Command::new("promtool")
            .arg("check")
            .arg("rules")
            .arg(&rules)
            .output()
            .await
        else {
            eprintln!("SKIPPED: promtool not found (apt-get install prometheus)");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "promtool check rules:\n{text}");
        let found = format!("SUCCESS: {rules_found} rules found");
        assert!(text.contains(&found), "{text}");
    }
}
