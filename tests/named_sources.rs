//! Named sources against a real apiserver and a real Prometheus: the platform team creates a
//! LaunchSource for the namespaces it lists, a tenant's policy names it, and the operator —
//! started with `--require-named-sources` — reads that Prometheus with the platform's
//! credentials, refuses the source to namespaces it does not list (until the source is changed
//! to list them), and refuses an address written in a policy without contacting it.

mod support;

use std::{sync::atomic::Ordering, time::Duration};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Secret};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use liftoff::crd::{LaunchPolicy, LaunchSource};
use serde_json::json;
use support::{
    Operator, control_plane, counting_listener, eventually, healthy_service,
    objects::{create, policy, ready, workload},
};

const WAIT: Duration = Duration::from_secs(60);

/// A policy whose CPU trigger reads `p95_latency_seconds * 100` (20) from `prometheus`.
fn cpu(prometheus: serde_json::Value) -> serde_json::Value {
    json!({
        "prometheus": prometheus,
        "scaling": {"interval": "1s", "triggers": [{
            "name": "api-cpu", "cpu": {"query": "p95_latency_seconds * 100"},
            "scaleTargetRef": {"kind": "Deployment", "name": "api"},
            "replicas": {"min": 1, "max": 4}
        }]}
    })
}

/// The value the policy's first trigger last showed in status.
async fn trigger_value(api: &Api<LaunchPolicy>, name: &str) -> Option<String> {
    let status = api.get(name).await.ok()?.status?;
    status.triggers.into_iter().next()?.value
}

#[tokio::test]
async fn tenants_read_the_prometheus_the_platform_named_and_nothing_else() {
    let (_exporter, prometheus) = healthy_service().await;
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let platform = cp.create_namespace("platform").await.unwrap();
    let team_a = cp.create_namespace("team-a").await.unwrap();
    let team_b = cp.create_namespace("team-b").await.unwrap();
    let (written_port, connections) = counting_listener("127.0.0.1").await;

    // The platform team's source, with a credential tenants never see.
    let token = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prom-token"},
                       "stringData": {"token": "platform-only"}});
    create::<Secret>(&client, &platform, token).await;
    let sources: Api<LaunchSource> = Api::all(client.clone());
    let source: LaunchSource = serde_json::from_value(json!({
        "apiVersion": "liftoff.dev/v1alpha1", "kind": "LaunchSource",
        "metadata": {"name": "metrics"},
        "spec": {"namespaces": [team_a], "prometheus": {
            "address": prometheus.url(),
            "authSecretRef": {"namespace": platform, "name": "prom-token"}}}
    }))
    .unwrap();
    sources
        .create(&PostParams::default(), &source)
        .await
        .unwrap();
    let op = Operator::start(&cp, &["--require-named-sources"]).await;

    let named = cpu(json!({"sourceRef": {"name": "metrics"}}));
    let written = cpu(json!({"address": format!("http://127.0.0.1:{written_port}")}));
    for ns in [&team_a, &team_b] {
        create::<Deployment>(&client, ns, workload("Deployment", "api", 1)).await;
        create::<LaunchPolicy>(&client, ns, policy("named", named.clone())).await;
    }
    create::<LaunchPolicy>(&client, &team_a, policy("written", written)).await;
    let (a, b): (Api<LaunchPolicy>, Api<LaunchPolicy>) = (
        Api::namespaced(client.clone(), &team_a),
        Api::namespaced(client.clone(), &team_b),
    );

    // The listed namespace reads the named Prometheus, with the platform's Secret.
    let value = eventually(WAIT, "team-a's trigger to read Prometheus", || async {
        trigger_value(&a, "named").await
    })
    .await;
    assert_eq!(value, "20%");
    let (status, reason, _) = ready(&a, "named").await.unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Ready"));

    // A namespace the source does not list is refused, saying who can change that.
    let (_, reason, message) = eventually(WAIT, "team-b refused", || async {
        ready(&b, "named").await.filter(|(s, _, _)| s == "False")
    })
    .await;
    assert_eq!(reason, "SourceNotAllowed", "{message}");
    assert!(
        message.starts_with(&format!(
            "spec.prometheus.sourceRef: LaunchSource metrics does not list namespace {team_b}"
        )),
        "{message}"
    );

    // An address written in a policy is refused by an operator that requires named sources.
    let (_, reason, message) = eventually(WAIT, "the written address refused", || async {
        ready(&a, "written").await.filter(|(s, _, _)| s == "False")
    })
    .await;
    assert_eq!(reason, "AddressDenied", "{message}");
    assert!(
        message.starts_with("spec.prometheus.address: this operator only accepts named sources"),
        "{message}"
    );

    // The platform team lists team-b: its policy is reconciled from the source's change and
    // reads the same Prometheus.
    let patch = json!({"spec": {"namespaces": [team_a, team_b]}});
    sources
        .patch("metrics", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let value = eventually(WAIT, "team-b's trigger to read Prometheus", || async {
        trigger_value(&b, "named").await
    })
    .await;
    assert_eq!(value, "20%");

    // Evidence the operator had every chance to contact the written address: many reconciles
    // of the 1 s triggers. It never did.
    op.completes_reconciles(20).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}
