//! The operator skeleton against a real kube-apiserver + etcd: readiness, reference checks,
//! no-op resyncs, deletion, logs and shutdown.

mod support;

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Event},
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use liftoff::crd::LaunchPolicy;
use serde_json::json;
use support::{
    Operator, control_plane, eventually, healthy_service, kubectl, objects::ready, repo_path,
};

const WAIT: Duration = Duration::from_secs(20);

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}
        }
    }))
    .unwrap()
}

fn cpu_policy(name: &str, target: &str) -> LaunchPolicy {
    serde_json::from_value(json!({
        "apiVersion": "liftoff.dev/v1alpha1", "kind": "LaunchPolicy",
        "metadata": {"name": name},
        "spec": {"scaling": {"triggers": [{
            "name": "api-cpu", "cpu": {},
            "scaleTargetRef": {"kind": "Deployment", "name": target},
            "replicas": {"min": 2, "max": 10}
        }]}}
    }))
    .unwrap()
}

async fn ready_is(api: &Api<LaunchPolicy>, name: &str, status: &str) -> (String, String, String) {
    eventually(WAIT, &format!("{name} Ready={status}"), || async {
        ready(api, name).await.filter(|(s, _, _)| s == status)
    })
    .await
}

#[tokio::test]
async fn example_policy_applied_with_kubectl_becomes_ready_and_reads_well() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    kubectl(&cp, &["create", "namespace", "emr"], None).await;
    let setup = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: emr}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: registry.example/api:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: task-workers, namespace: emr}
spec:
  selector: {matchLabels: {app: task-workers}}
  template:
    metadata: {labels: {app: task-workers}}
    spec: {containers: [{name: worker, image: registry.example/task-worker:1}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: redis, namespace: emr}
spec:
  serviceName: redis
  selector: {matchLabels: {app: redis}}
  template:
    metadata: {labels: {app: redis}}
    spec: {containers: [{name: redis, image: registry.example/redis:7}]}
---
apiVersion: v1
kind: Secret
metadata: {name: redis, namespace: emr}
stringData: {url: "redis://redis.emr.svc:6379"}
---
apiVersion: v1
kind: Secret
metadata: {name: war-room, namespace: emr}
stringData: {url: "https://hooks.example/secret-token", stakeholders: "https://hooks.example/s",
             executives: "https://hooks.example/e", status-page: "https://hooks.example/p"}
"#;
    let (ok, _, err) = kubectl(&cp, &["apply", "-f", "-"], Some(setup)).await;
    assert!(ok, "{err}");
    let op = Operator::start(&cp, &["--log-format=json"]).await;

    let example = repo_path("examples/emr-platform.yaml");
    let (ok, _, err) = kubectl(&cp, &["apply", "-f", example.to_str().unwrap()], None).await;
    assert!(
        ok,
        "the example must be valid against the real apiserver: {err}"
    );

    let api: Api<LaunchPolicy> = Api::namespaced(client.clone(), "emr");
    let (_, reason, _) = ready_is(&api, "emr-platform", "True").await;
    assert_eq!(reason, "Ready");
    let policy = api.get("emr-platform").await.unwrap();
    let status = policy.status.unwrap();
    assert_eq!(status.observed_generation, policy.metadata.generation);

    let (_, table, _) = kubectl(&cp, &["get", "lp", "-n", "emr"], None).await;
    let header: Vec<_> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "STAGE", "USERS", "PHASE", "WAITING", "ON", "READY", "REASON", "AGE"
        ]
    );
    assert!(
        table.contains("emr-platform") && table.contains("True"),
        "{table}"
    );

    let (ok, explain, err) = kubectl(
        &cp,
        &["explain", "launchpolicy.spec.scaling.triggers"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert!(explain.contains("exactly one metric kind"), "{explain}");
    // The launch team's scaling controls are all in kubectl explain.
    for (path, says) in [
        (
            "launchpolicy.spec.scaling.triggers.consumers",
            "Never above the topic's partition count",
        ),
        (
            "launchpolicy.spec.scaling.triggers.partitions",
            "Adding partitions moves keys",
        ),
        (
            "launchpolicy.spec.scaling.triggers.cacheResize",
            "a bigger node",
        ),
        (
            "launchpolicy.spec.scaling.triggers.rdsResize.approval",
            "liftoff.dev/approve-resize",
        ),
        (
            "launchpolicy.spec.scaling.triggers.fallback",
            "afterFailures",
        ),
        ("launchpolicy.spec.scaling", "liftoff.dev/pause-scaling"),
    ] {
        let (ok, explain, err) = kubectl(&cp, &["explain", path], None).await;
        assert!(ok, "{path}: {err}");
        let flat = explain.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains(says),
            "{path} should say {says:?}:\n{explain}"
        );
    }

    // Every log line the reconciler writes carries the policy's namespace and name, as JSON.
    let logs = op.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("status updated"))
        .unwrap_or_else(|| panic!("no status log line in:\n{logs}"));
    let line: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(line["span"]["namespace"], "emr");
    assert_eq!(line["span"]["policy"], "emr-platform");
    assert!(
        !logs.contains("secret-token"),
        "a Secret's value leaked into the logs"
    );
}

#[tokio::test]
async fn missing_deployment_is_reported_then_ready_once_it_is_created() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("missing").await.unwrap();
    // A long retry proves the Deployment watch, not a periodic retry, flips the condition.
    let _op = Operator::start(&cp, &["--log-format=text", "--retry=10m"]).await;
    let api: Api<LaunchPolicy> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &cpu_policy("launch", "api"))
        .await
        .unwrap();

    let (_, reason, message) = ready_is(&api, "launch", "False").await;
    assert_eq!(reason, "TargetNotFound");
    assert!(
        message.contains("spec.scaling.triggers[0].scaleTargetRef: Deployment api not found"),
        "{message}"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    eventually(WAIT, "a TargetNotFound Warning event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .find(|e| {
                e.reason.as_deref() == Some("TargetNotFound")
                    && e.type_.as_deref() == Some("Warning")
            })
            .map(|_| ())
    })
    .await;

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment("api"))
        .await
        .unwrap();
    let (_, reason, _) = ready_is(&api, "launch", "True").await;
    assert_eq!(reason, "Ready");
}

#[tokio::test]
async fn a_resync_without_changes_writes_no_status() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("noop").await.unwrap();
    let op = Operator::start(&cp, &["--log-format=text"]).await;
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &deployment("api"))
        .await
        .unwrap();
    let api: Api<LaunchPolicy> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &cpu_policy("launch", "api"))
        .await
        .unwrap();
    ready_is(&api, "launch", "True").await;

    // Let the reconcile triggered by our own status write settle.
    let writes = op.settled_writes(1).await;
    let reconciles = op.metric("liftoff_reconciles_total").await;

    // An annotation change triggers a reconcile but changes nothing Liftoff decides.
    let touched = api
        .patch(
            "launch",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"example.com/touched": "1"}}})),
        )
        .await
        .unwrap();
    eventually(WAIT, "a reconcile after the annotation", || async {
        (op.metric("liftoff_reconciles_total").await > reconciles).then_some(())
    })
    .await;
    op.completes_reconciles(1).await;
    assert_eq!(
        op.metric("liftoff_status_writes_total").await,
        writes,
        "no status write expected"
    );
    let after = api.get("launch").await.unwrap();
    assert_eq!(
        after.resource_version(),
        touched.resource_version(),
        "the object must not change"
    );
}

/// A crash (or a takeover) is not a change: the new process re-reads every policy and every
/// source, and finds nothing to write.
#[tokio::test]
async fn an_operator_restarted_over_settled_policies_writes_no_status() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("restart-noop").await.unwrap();
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &deployment("api"))
        .await
        .unwrap();
    let (exporter, prometheus) = healthy_service().await;
    exporter.set("cpu_utilization", &[("app", "api")], 20.0);
    prometheus.wait_for_query("cpu_utilization").await.unwrap();
    let api: Api<LaunchPolicy> = Api::namespaced(client.clone(), &ns);
    let names = ["a", "b", "c"];
    for name in names {
        let policy: LaunchPolicy = serde_json::from_value(json!({
            "apiVersion": "liftoff.dev/v1alpha1", "kind": "LaunchPolicy",
            "metadata": {"name": name},
            "spec": {
                "prometheus": {"address": prometheus.url()},
                "scaling": {"interval": "2s", "triggers": [{
                    "name": "api-cpu",
                    "cpu": {"utilization": 70, "query": "max(cpu_utilization{app=\"api\"})"},
                    "scaleTargetRef": {"kind": "Deployment", "name": "api"},
                    "replicas": {"min": 2, "max": 10}
                }]}
            }
        }))
        .unwrap();
        api.create(&PostParams::default(), &policy).await.unwrap();
    }
    let op = Operator::start(&cp, &[]).await;
    for name in names {
        ready_is(&api, name, "True").await;
    }
    // Six completed reconciles of the three policies (2 s interval) without a write.
    op.settled_writes(6).await;
    let versions = |list: Vec<LaunchPolicy>| -> Vec<(String, String)> {
        list.iter()
            .map(|p| (p.name_any(), p.resource_version().unwrap_or_default()))
            .collect()
    };
    let before = versions(api.list(&ListParams::default()).await.unwrap().items);

    op.kill().await;
    let op = Operator::start(&cp, &[]).await;
    // Every policy reconciled to the end and sampled (memory is empty after a start), twice
    // over: a reconcile that completes either writes status or counts a skipped write.
    eventually(WAIT, "every policy reconciled twice", || async {
        (op.metric("liftoff_status_writes_skipped_total").await >= 6.0).then_some(())
    })
    .await;
    op.completes_reconciles(3).await;
    let metrics = op.metrics().await;
    assert!(
        !metrics.contains("liftoff_reconcile_errors_total{"),
        "no reconcile failed:\n{metrics}"
    );
    assert_eq!(op.metric("liftoff_status_writes_total").await, 0.0);
    let after = versions(api.list(&ListParams::default()).await.unwrap().items);
    assert_eq!(after, before, "no policy changed");
}

#[tokio::test]
async fn invalid_policies_are_rejected_by_the_apiserver_naming_the_field() {
    let cp = control_plane().await;
    let ns = cp.create_namespace("invalid").await.unwrap();
    let fixtures =
        std::fs::read_to_string(repo_path("tests/fixtures/invalid-policies.yaml")).unwrap();
    let mut checked = 0;
    for doc in serde_yaml::Deserializer::from_str(&fixtures) {
        let value = <serde_yaml::Value as serde::Deserialize>::deserialize(doc).unwrap();
        let annotations = &value["metadata"]["annotations"];
        let name = value["metadata"]["name"].as_str().unwrap().to_string();
        let expect = annotations["test.liftoff.dev/expect"].as_str().unwrap();
        let field = annotations["test.liftoff.dev/field"].as_str().unwrap();
        let text = serde_yaml::to_string(&value).unwrap();
        let (ok, _, err) = kubectl(&cp, &["create", "-n", &ns, "-f", "-"], Some(&text)).await;
        assert!(!ok, "{name}: the apiserver accepted an invalid policy");
        assert!(
            err.contains(expect),
            "{name}: message should contain {expect:?}, got: {err}"
        );
        assert!(
            err.contains(field),
            "{name}: message should name {field}, got: {err}"
        );
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} invalid policies checked");
    let (_, out, _) = kubectl(&cp, &["get", "lp", "-n", &ns, "-o", "name"], None).await;
    assert_eq!(out.trim(), "", "nothing invalid was stored");
}

#[tokio::test]
async fn deleting_a_policy_leaves_nothing_behind_and_sigterm_stops_the_operator() {
    let mut cp = control_plane().await;
    // Deleting an owner removes its dependents through the cluster's garbage collector.
    cp.start_garbage_collector().unwrap();
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("delete").await.unwrap();
    let op = Operator::start(&cp, &["--log-format=text"]).await;
    let api: Api<LaunchPolicy> = Api::namespaced(client.clone(), &ns);
    // A flagd ConfigMap that exists before the policy, holding another team's flags.
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let shared: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "shared-flags"}, "data": {"other.json": "{}"}
    }))
    .unwrap();
    configmaps
        .create(&PostParams::default(), &shared)
        .await
        .unwrap();
    let mut policy = cpu_policy("launch", "api");
    policy.spec.rollout = Some(
        serde_json::from_value(json!({
            "stages": [{"name": "canary", "users": 100}, {"name": "everyone", "users": "All"}],
            "cohort": {
                "configMap": {"name": "launch-cohort"},
                "flagd": {"configMap": "shared-flags", "flagKey": "new-platform", "population": 20000}
            }
        }))
        .unwrap(),
    );
    let created = api.create(&PostParams::default(), &policy).await.unwrap();
    // The policy made something: the cohort ConfigMap, owned by it. The shared one gets the
    // flag, and no owner: deleting the policy must not delete what it did not create.
    let cohort = eventually(WAIT, "ConfigMap launch-cohort published", || async {
        configmaps.get_opt("launch-cohort").await.ok().flatten()
    })
    .await;
    let owners: Vec<_> = cohort.owner_references().iter().map(|o| &o.uid).collect();
    assert_eq!(
        owners,
        [&created.uid().unwrap()],
        "launch-cohort is owned by the policy"
    );
    let flags = eventually(WAIT, "the flag published in shared-flags", || async {
        let cm = configmaps.get_opt("shared-flags").await.ok().flatten()?;
        cm.data
            .as_ref()?
            .contains_key("flags.flagd.json")
            .then_some(cm)
    })
    .await;
    assert!(flags.owner_references().is_empty(), "{:?}", flags.metadata);

    api.delete("launch", &DeleteParams::default())
        .await
        .unwrap();
    eventually(WAIT, "the policy to be gone", || async {
        api.get_opt("launch")
            .await
            .ok()
            .filter(|p| p.is_none())
            .map(|_| ())
    })
    .await;
    eventually(WAIT, "the cohort ConfigMap to be collected", || async {
        let left = configmaps.list(&ListParams::default()).await.ok()?;
        let names: Vec<String> = left.items.iter().map(|cm| cm.name_any()).collect();
        (names == ["shared-flags"]).then_some(())
    })
    .await;
    // The garbage collector had its chance at the shared one too; it is still there, with the
    // other team's flags. Then it goes, so that nothing else is left.
    let flags = configmaps.get("shared-flags").await.unwrap();
    assert!(flags.data.unwrap_or_default().contains_key("other.json"));
    configmaps
        .delete("shared-flags", &DeleteParams::default())
        .await
        .unwrap();
    let (_, left, _) = kubectl(
        &cp,
        &[
            "get",
            "configmaps,deployments,statefulsets,secrets,launchpolicies",
            "-n",
            &ns,
            "-o",
            "name",
        ],
        None,
    )
    .await;
    assert_eq!(left.trim(), "", "objects left behind: {left}");
    // The operator keeps running happily after the deletion.
    let errors = op.metrics().await;
    assert!(
        !errors.contains("liftoff_reconcile_errors_total{"),
        "{errors}"
    );

    let status = op.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[tokio::test]
async fn a_status_decided_from_an_old_version_is_refused_by_the_apiserver() {
    use liftoff::{controller::status::write_if_changed, crd::LaunchPolicyStatus};
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("stale-writes").await.unwrap();
    let api: Api<LaunchPolicy> = Api::namespaced(client.clone(), &ns);
    let read = api
        .create(&PostParams::default(), &cpu_policy("launch", "api"))
        .await
        .unwrap();
    let decided = LaunchPolicyStatus {
        observed_generation: Some(1),
        ..Default::default()
    };
    let old = read.metadata.resource_version.clone();

    // Someone changes the policy after it was read (a person's annotation, another replica).
    let touch = json!({"metadata": {"annotations": {"liftoff.dev/pause": "p1"}}});
    api.patch("launch", &PatchParams::default(), &Patch::Merge(&touch))
        .await
        .unwrap();
    let refused = write_if_changed(&api, "launch", old.as_deref(), None, &decided).await;
    match refused {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 409, "{e:?}"),
        other => panic!("a write decided from {old:?} must be refused, got {other:?}"),
    }
    assert_eq!(api.get_status("launch").await.unwrap().status, None);

    // Decided from the current version, the same write lands and returns the next version.
    let current = api.get("launch").await.unwrap().metadata.resource_version;
    let written = write_if_changed(&api, "launch", current.as_deref(), None, &decided)
        .await
        .unwrap();
    let now = api.get("launch").await.unwrap();
    assert_eq!(written, now.metadata.resource_version);
    assert_eq!(now.status, Some(decided));
}

/// Events repeated within the series window are one object with a `series`: three publishes
/// of the same Warning about one policy (at three resourceVersions, as status writes in between
/// would make them) give one Event of count 3; another note is another Event; and once the
/// apiserver no longer has an Event (they expire there), the next repeat creates it anew.
#[tokio::test]
async fn repeated_events_fold_into_one_series() {
    use k8s_openapi::api::{core::v1::ObjectReference, events::v1::Event as EventV1};
    use kube::runtime::events::EventType;
    use liftoff::controller::events::{Publisher, publish_ref};

    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("series").await.unwrap();
    let publisher = Publisher::new(client.clone());
    let at = |version: &str| ObjectReference {
        api_version: Some("liftoff.dev/v1alpha1".into()),
        kind: Some("LaunchPolicy".into()),
        namespace: Some(ns.clone()),
        name: Some("launch".into()),
        uid: Some("8f0c1a52-0000-4000-8000-000000000001".into()),
        resource_version: Some(version.into()),
        ..ObjectReference::default()
    };
    let (warning, failing) = (EventType::Warning, "error rate 0.4 % above 0.1 %");
    for version in ["1", "2", "3"] {
        publish_ref(&publisher, &at(version), warning, "GateFailing", failing).await;
    }
    publish_ref(&publisher, &at("4"), warning, "GateFailing", "p95 612 ms").await;

    let events = Api::<EventV1>::namespaced(client.clone(), &ns);
    let listed = events.list(&ListParams::default()).await.unwrap().items;
    let notes: Vec<_> = listed.iter().map(|e| e.note.clone().unwrap()).collect();
    assert_eq!(listed.len(), 2, "{notes:?}");
    let folded = listed.iter().find(|e| e.note.as_deref() == Some(failing));
    let folded = folded.expect("the repeated Event");
    assert_eq!(folded.series.as_ref().map(|s| s.count), Some(3));
    assert_eq!(folded.reporting_controller.as_deref(), Some("liftoff"));

    events
        .delete(&folded.name_any(), &DeleteParams::default())
        .await
        .unwrap();
    publish_ref(&publisher, &at("5"), warning, "GateFailing", failing).await;
    let listed = events.list(&ListParams::default()).await.unwrap().items;
    let anew = listed.iter().find(|e| e.note.as_deref() == Some(failing));
    assert!(
        anew.is_some_and(|e| e.series.is_none() && e.name_any() != folded.name_any()),
        "{listed:?}"
    );
    // And the new one takes the next repeat into its own series.
    publish_ref(&publisher, &at("6"), warning, "GateFailing", failing).await;
    let listed = events.list(&ListParams::default()).await.unwrap().items;
    let notes: Vec<_> = listed.iter().map(|e| e.note.clone().unwrap()).collect();
    assert_eq!(listed.len(), 2, "{notes:?}");
    let anew = listed.iter().find(|e| e.note.as_deref() == Some(failing));
    assert_eq!(
        anew.and_then(|e| e.series.as_ref()).map(|s| s.count),
        Some(2)
    );
}
