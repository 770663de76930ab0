//! One bad policy never stops the operator, against a real kube-apiserver + etcd: policies the
//! schema refuses today, stored before it did (under a CRD without bounds), are reported on
//! themselves while a healthy policy beside them is reconciled and completes its rollout.

mod support;

use std::time::Duration;

use std::sync::Arc;

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Event},
};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use liftoff::crd::LaunchPolicy;
use liftoff_testenv::{ControlPlane, MetricsExporter, Prometheus};
use serde_json::{Value, json};
use support::{
    Operator, eventually,
    load::Load,
    objects::{create, policy, replicas, workload},
    repo_path,
};

const WAIT: Duration = Duration::from_secs(60);

/// Liftoff's CRD with its schema replaced by "anything goes": what a cluster had before the
/// schema bounded its numbers and durations.
fn unbounded_crd_dir() -> tempfile::TempDir {
    let text = std::fs::read_to_string(repo_path("crds/launchpolicy.yaml")).unwrap();
    let mut crd: Value = serde_yaml::from_str(&text).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("launchpolicy.yaml"),
        serde_yaml::to_string(&crd).unwrap(),
    )
    .unwrap();
    dir
}

fn cpu_trigger(max: Value) -> Value {
    json!({"scaling": {"triggers": [{
        "name": "api-cpu", "cpu": {},
        "scaleTargetRef": {"kind": "Deployment", "name": "api"},
        "replicas": {"min": 1, "max": max}
    }]}})
}

/// `(status, reason, message)` of `name`'s Ready condition, read as raw JSON (the operator's
/// types cannot read a broken policy either).
async fn ready(
    api: &Api<kube::api::DynamicObject>,
    name: &str,
) -> Option<(String, String, String)> {
    let object = api.get_opt(name).await.ok()??;
    let conditions = object
        .data
        .pointer("/status/conditions")?
        .as_array()?
        .clone();
    let ready = conditions.into_iter().find(|c| c["type"] == "Ready")?;
    let field = |k: &str| ready[k].as_str().unwrap_or_default().to_string();
    Some((field("status"), field("reason"), field("message")))
}

#[tokio::test]
async fn unreadable_policies_are_reported_on_themselves_and_the_others_complete() {
    let cp = ControlPlane::start().await.expect("control plane starts");
    let client = cp.client().await.unwrap();
    cp.apply_crds(unbounded_crd_dir().path()).await.unwrap();
    let ns = cp.create_namespace("isolation").await.unwrap();
    let raw_api = |client: &kube::Client| {
        let resource = kube::api::ApiResource::erase::<LaunchPolicy>(&());
        Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), &ns, &resource)
    };
    let dynamic = raw_api(&client);
    let broken = [
        // `cannot list LaunchPolicies (… integer 2147483648, expected i32)` at start-up.
        (
            "replicas-over-int32",
            cpu_trigger(json!(2147483648u64)),
            "spec.scaling.triggers[0].replicas.max: invalid value: integer `2147483648`, expected i32",
        ),
        // A panic in the duration parser, on every start.
        (
            "bake-overflowing",
            json!({"rollout": {"stages": [
                {"name": "canary", "users": 100, "bake": "99999999999999999999h"},
                {"name": "everyone", "users": "All"}
            ]}}),
            "spec.rollout.stages[0].bake: invalid duration",
        ),
        (
            "stage-users-not-a-list",
            json!({"rollout": {"stages": "100,500,All"}}),
            "spec.rollout.stages: invalid type: string",
        ),
    ];
    for (name, spec, _) in &broken {
        let object: kube::api::DynamicObject =
            serde_json::from_value(policy(name, spec.clone())).unwrap();
        dynamic
            .create(&Default::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("{name} stored under the unbounded CRD: {e}"));
    }
    // The bounded CRD of today: stored objects are not validated again.
    cp.apply_crds(&repo_path("crds")).await.unwrap();

    let op = Operator::start(&cp, &["--log-format=text"]).await;
    // The healthy policy scales `web` on a real Prometheus query: demand 280 % of one pod is
    // 140 % on 2 replicas, 70 % (the target) on 4.
    create::<Deployment>(&client, &ns, workload("Deployment", "web", 2)).await;
    let exporter = Arc::new(MetricsExporter::start().await.unwrap());
    let prometheus = Prometheus::start(&[exporter.target()], Duration::from_secs(1))
        .await
        .unwrap();
    let _load = Load::start(exporter.clone(), client.clone(), &ns, "web", 280.0);
    let query = format!("max(cpu_utilization{{app=\"web\",namespace=\"{ns}\"}})");
    prometheus.wait_for_query(&query).await.unwrap();
    let healthy = policy(
        "healthy",
        json!({
          "prometheus": {"address": prometheus.url()},
          "scaling": {"interval": "1s", "triggers": [{
            "name": "web-cpu", "cpu": {"query": query},
            "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "replicas": {"min": 2, "max": 6}
          }]},
          "rollout": {
            "stages": [
                {"name": "canary", "users": 100, "bake": "1s"},
                {"name": "everyone", "users": "All"}
            ],
            "cohort": {"configMap": {"name": "healthy-cohort"}}
        }}),
    );
    let healthy: kube::api::DynamicObject = serde_json::from_value(healthy).unwrap();
    dynamic.create(&Default::default(), &healthy).await.unwrap();

    let policies: Api<LaunchPolicy> = Api::namespaced(client.clone(), &ns);
    eventually(
        WAIT,
        "the healthy policy to complete its rollout",
        || async {
            let p = policies.get("healthy").await.ok()?;
            let rollout = p.status?.rollout?;
            (format!("{:?}", rollout.state.phase) == "Completed").then_some(())
        },
    )
    .await;
    let cohort: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let published = cohort.get("healthy-cohort").await.unwrap();
    assert_eq!(published.data.unwrap()["maxUsers"], "All");
    eventually(WAIT, "the healthy policy to scale web to 4", || async {
        (replicas::<Deployment>(&client, &ns, "web").await == 4).then_some(())
    })
    .await;

    // One Warning event per broken policy, naming the field and the fix.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    for (name, _, field) in &broken {
        let what = format!(
            "an InvalidSpec event for {name}; operator log:\n{}",
            op.logs()
        );
        let note = eventually(WAIT, &what, || async {
            let events = events.list(&ListParams::default()).await.ok()?.items;
            let invalid: Vec<Event> = events
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("InvalidSpec"))
                .filter(|e| e.involved_object.name.as_deref() == Some(*name))
                .collect();
            match invalid.as_slice() {
                [one] => one.message.clone(),
                _ => None,
            }
        })
        .await;
        assert!(note.contains(field), "{name}: {note}");
        assert!(note.contains("apply the policy again"), "{name}: {note}");
    }
    // And on the policy itself where the apiserver accepts a status for it (it refuses any
    // status write while a CEL rule cannot evaluate on the broken field, as for the other two).
    let (status, _, message) = eventually(WAIT, "Ready=False InvalidSpec", || async {
        ready(&dynamic, "replicas-over-int32")
            .await
            .filter(|(_, reason, _)| reason == "InvalidSpec")
    })
    .await;
    assert_eq!(status, "False");
    assert!(message.contains(broken[0].2), "{message}");
    let metrics = op.metrics().await;
    for (name, _, _) in &broken {
        let series = format!("liftoff_invalid_policies{{namespace=\"{ns}\",policy=\"{name}\"}} 1");
        assert!(metrics.contains(&series), "missing {series} in\n{metrics}");
    }
    let healthy_series =
        format!("liftoff_invalid_policies{{namespace=\"{ns}\",policy=\"healthy\"}}");
    assert!(
        !metrics.contains(&healthy_series),
        "the healthy policy is not reported invalid"
    );

    // A fixed policy is read again at once and reconciled like any other.
    dynamic
        .patch(
            "replicas-over-int32",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": cpu_trigger(json!(10))})),
        )
        .await
        .unwrap();
    eventually(WAIT, "the fixed policy to be read", || async {
        ready(&dynamic, "replicas-over-int32")
            .await
            .filter(|(_, reason, _)| reason != "InvalidSpec")
    })
    .await;
    eventually(WAIT, "the fixed policy's metric to go", || async {
        let metrics = op.metrics().await;
        (!metrics.contains("policy=\"replicas-over-int32\"} 1")).then_some(())
    })
    .await;
    let metrics = op.metrics().await;
    assert!(
        !metrics.contains("liftoff_reconcile_errors_total{"),
        "no reconcile failed:\n{metrics}\n{}",
        op.logs()
    );
}
