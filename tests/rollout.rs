//! The staged launch end to end: the real operator binary against a real apiserver, with health
//! gates read from a real Prometheus scraping a test-controlled exporter. Bake times are seconds.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use liftoff::crd::{LaunchPolicy, RolloutStatus};
use liftoff_testenv::{ControlPlane, MetricsExporter, Prometheus};
use serde_json::{Value, json};
use support::{
    Operator, control_plane, eventually, healthy_service, kubectl,
    objects::{rollout_spec, stages},
};

const WAIT: Duration = Duration::from_secs(90);

struct Launch {
    cp: ControlPlane,
    client: Client,
    ns: String,
    exporter: MetricsExporter,
    _prometheus: Prometheus,
}

/// A healthy service (error rate 0, p95 0.2 s) behind a Prometheus scraping every second.
async fn launch(name: &str) -> Launch {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace(name).await.unwrap();
    let (exporter, prometheus) = healthy_service().await;
    Launch {
        cp,
        client,
        ns,
        exporter,
        _prometheus: prometheus,
    }
}

async fn create_policy(l: &Launch, prometheus: &str, spec: Value) {
    let policy: LaunchPolicy = serde_json::from_value(json!({
        "apiVersion": "liftoff.dev/v1alpha1", "kind": "LaunchPolicy",
        "metadata": {"name": "launch"}, "spec": spec
    }))
    .unwrap();
    Api::<LaunchPolicy>::namespaced(l.client.clone(), &l.ns)
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    let _ = prometheus;
}

async fn rollout(client: &Client, ns: &str) -> Option<RolloutStatus> {
    Api::<LaunchPolicy>::namespaced(client.clone(), ns)
        .get("launch")
        .await
        .ok()?
        .status?
        .rollout
        .map(|r| *r)
}

async fn cohort(client: &Client, ns: &str) -> Option<String> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt("launch-cohort")
        .await
        .ok()??;
    cm.data?.get("maxUsers").cloned()
}

/// The messages of the Events with `reason`, once per occurrence.
async fn events(client: &Client, ns: &str, reason: &str) -> Vec<String> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .flat_map(|e| {
            // An Event repeated within minutes is one object with a series count: each
            // repeat counts.
            let count = e.series.as_ref().and_then(|s| s.count).or(e.count);
            let count = usize::try_from(count.unwrap_or(1).max(1)).unwrap_or(1);
            std::iter::repeat_n(e.message.unwrap_or_default(), count)
        })
        .collect()
}

/// Starts [`webhook`] and stores its URL in Secret `war-room` (key `url`); returns the bodies.
async fn war_room(l: &Launch) -> Arc<Mutex<Vec<String>>> {
    let (hook, received) = support::webhook::receiver().await;
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "war-room"},
        "stringData": {"url": hook}
    }))
    .unwrap();
    Api::<Secret>::namespaced(l.client.clone(), &l.ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    received
}

#[tokio::test]
async fn healthy_gates_walk_100_500_1500_everyone_and_publish_each_cohort_in_order() {
    let l = launch("rollout-walk").await;
    let url = l._prometheus.url();
    let received = war_room(&l).await;
    let mut walk = rollout_spec(&url, stages("2s", "Automatic"), "Pause");
    walk["notifications"] = json!([{"webhookSecretRef": {"name": "war-room", "key": "url"}}]);
    create_policy(&l, &url, walk).await;
    let _op = Operator::start(&l.cp, &["--resync=30s"]).await;

    let seen = std::sync::Mutex::new(Vec::<String>::new());
    eventually(WAIT, "the cohort reaches All", || async {
        let users = cohort(&l.client, &l.ns).await?;
        let mut seen = seen.lock().unwrap();
        if seen.last() != Some(&users) {
            seen.push(users.clone());
        }
        (users == "All").then_some(())
    })
    .await;
    let seen = seen.into_inner().unwrap();
    assert_eq!(
        seen,
        ["100", "500", "1500", "All"],
        "every stage published, none skipped"
    );
    let status = eventually(WAIT, "Completed", || async {
        rollout(&l.client, &l.ns)
            .await
            .filter(|r| format!("{:?}", r.state.phase) == "Completed")
    })
    .await;
    assert_eq!(status.state.stage_name.as_deref(), Some("everyone"));
    let flags = Api::<ConfigMap>::namespaced(l.client.clone(), &l.ns)
        .get("launch-flags")
        .await
        .unwrap();
    let definition: Value = serde_json::from_str(&flags.data.unwrap()["flags.flagd.json"]).unwrap();
    assert_eq!(definition["flags"]["new-platform"]["defaultVariant"], "on");
    let advanced = events(&l.client, &l.ns, "StageAdvanced").await;
    assert_eq!(
        advanced.len(),
        4,
        "one StageAdvanced per stage: {advanced:?}"
    );

    // The war room heard about every stage and the completion, despite a first 500.
    let texts = eventually(WAIT, "webhook messages", || async {
        let texts: Vec<String> = received
            .lock()
            .unwrap()
            .iter()
            .map(|b| {
                serde_json::from_str::<Value>(b).unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let stages = texts.iter().filter(|t| t.contains("StageAdvanced")).count();
        let done = texts.iter().any(|t| t.contains("RolloutCompleted"));
        (stages == 4 && done).then_some(texts)
    })
    .await;
    assert!(
        texts
            .iter()
            .any(|t| t.contains("/launch] StageAdvanced: entered stage gradual (500 users)")),
        "{texts:?}"
    );
}

#[tokio::test]
async fn a_manual_stage_waits_for_an_approval_annotation_and_records_who_gave_it() {
    let l = launch("rollout-approval").await;
    let url = l._prometheus.url();
    create_policy(
        &l,
        &url,
        rollout_spec(&url, stages("1s", "Manual"), "Pause"),
    )
    .await;
    let _op = Operator::start(&l.cp, &["--resync=30s"]).await;
    let status = eventually(WAIT, "AwaitingApproval for gradual", || async {
        rollout(&l.client, &l.ns)
            .await
            .filter(|r| format!("{:?}", r.state.phase) == "AwaitingApproval")
    })
    .await;
    assert_eq!(status.state.stage_name.as_deref(), Some("internal-beta"));
    _op.completes_reconciles(3).await;
    assert_eq!(
        cohort(&l.client, &l.ns).await.as_deref(),
        Some("100"),
        "no Go, no 500"
    );

    let (ok, _, err) = kubectl(
        &l.cp,
        &[
            "-n",
            &l.ns,
            "annotate",
            "lp/launch",
            "liftoff.dev/approve=gradual",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    eventually(WAIT, "500 users after the Go", || async {
        (cohort(&l.client, &l.ns).await? == "500").then_some(())
    })
    .await;
    let status = rollout(&l.client, &l.ns).await.unwrap();
    let approval = status
        .state
        .last_approval
        .expect("the approval is recorded");
    assert_eq!(approval.stage_name, "gradual");
    assert!(
        approval
            .by
            .as_deref()
            .unwrap_or_default()
            .starts_with("kubectl-annotate at "),
        "{approval:?}"
    );
}

#[tokio::test]
async fn a_go_given_while_a_gate_cannot_be_read_is_kept_and_waits_for_healthy_gates() {
    let l = launch("rollout-early-go").await;
    let url = l._prometheus.url();
    // The canary's p95 has no series yet: the gate is unknown, which holds the stage (a failing
    // gate would pause it instead; the engine's tests cover that case).
    let mut spec = rollout_spec(&url, stages("1s", "Manual"), "Pause");
    spec["rollout"]["gates"]["checks"][1]["query"] = json!("max(canary_p95_latency_seconds)");
    create_policy(&l, &url, spec).await;
    let op = Operator::start(&l.cp, &["--resync=30s"]).await;
    eventually(WAIT, "the canary held by p95", || async {
        let r = rollout(&l.client, &l.ns).await?;
        let held = r.state.stage_name.as_deref() == Some("internal-beta")
            && r.message.as_deref()?.contains("p95-latency-seconds");
        held.then_some(())
    })
    .await;

    let approve = [
        "-n",
        &l.ns,
        "annotate",
        "lp/launch",
        "liftoff.dev/approve=gradual",
    ];
    let (ok, _, err) = kubectl(&l.cp, &approve, None).await;
    assert!(ok, "{err}");
    let message = eventually(WAIT, "status to say the Go is kept", || async {
        let message = rollout(&l.client, &l.ns).await?.message?;
        message
            .contains("the Go for stage gradual was given")
            .then_some(message)
    })
    .await;
    assert!(
        message.contains("applies once this stage has baked with healthy gates"),
        "{message}"
    );
    // The operator had its chances (1 s gates): the Go did not override the unknown gate.
    op.completes_reconciles(5).await;
    let r = rollout(&l.client, &l.ns).await.unwrap();
    assert_eq!(r.state.stage_name.as_deref(), Some("internal-beta"));
    assert_eq!(cohort(&l.client, &l.ns).await.as_deref(), Some("100"));

    // Healthy again: the kept Go opens the gradual rollout, recorded with who gave it.
    l.exporter.set("canary_p95_latency_seconds", &[], 0.2);
    eventually(WAIT, "500 users once healthy", || async {
        (cohort(&l.client, &l.ns).await? == "500").then_some(())
    })
    .await;
    let approval = rollout(&l.client, &l.ns)
        .await
        .unwrap()
        .state
        .last_approval
        .expect("the Go is recorded");
    assert_eq!(approval.stage_name, "gradual");
}

#[tokio::test]
async fn a_query_with_no_series_holds_visibly_by_default_and_passes_when_the_policy_says_so() {
    let l = launch("rollout-no-data").await;
    let url = l._prometheus.url();
    let mut spec = rollout_spec(&url, stages("1s", "Automatic"), "Pause");
    let checks = &mut spec["rollout"]["gates"]["checks"];
    // No 5xx series exists: "no errors" passes.
    checks[0]["query"] = json!("max(http_5xx_rate)");
    checks[0]["onNoData"] = json!("Pass");
    // The canary's p95 and login ratio are not scraped yet: unknown, so the stage waits (the
    // default).
    checks[1]["query"] = json!("max(canary_p95_latency_seconds)");
    checks
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "login-success", "query": "max(canary_login_ratio)", "min": 0.99}));
    create_policy(&l, &url, spec).await;
    let op = Operator::start(&l.cp, &["--resync=30s"]).await;

    // The hold shows in the table, naming every gate that holds it, and in the condition.
    let table = eventually(WAIT, "kubectl get lp to show the hold", || async {
        let (_, out, _) = kubectl(&l.cp, &["-n", &l.ns, "get", "lp", "launch"], None).await;
        out.contains("gates unknown: p95-latency-seconds, login-success")
            .then_some(out)
    })
    .await;
    assert!(table.contains("WAITING ON"), "{table}");
    let policy = Api::<LaunchPolicy>::namespaced(l.client.clone(), &l.ns)
        .get("launch")
        .await
        .unwrap();
    let progressing = policy
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "RolloutProgressing")
        .unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("False", "GatesUnknown"),
        "{}",
        progressing.message
    );
    assert!(
        progressing.message.contains("gates p95-latency-seconds (")
            && progressing.message.contains("login-success ("),
        "{}",
        progressing.message
    );

    let gate = eventually(WAIT, "the p95 gate to report no data", || async {
        let r = rollout(&l.client, &l.ns).await?;
        r.state
            .gates
            .into_iter()
            .find(|g| g.name == "p95-latency-seconds" && g.no_data_since.is_some())
    })
    .await;
    let error = gate.error.unwrap_or_default();
    assert!(
        error.starts_with("the query has returned no series since ")
            && error.ends_with("; onNoData: Hold"),
        "{error}"
    );
    op.completes_reconciles(5).await;
    let r = rollout(&l.client, &l.ns).await.unwrap();
    assert_eq!(r.state.stage_name.as_deref(), Some("internal-beta"), "held");
    assert!(
        r.message
            .as_deref()
            .unwrap_or_default()
            .contains("onNoData: Hold"),
        "{:?}",
        r.message
    );

    // Data arrives: the launch walks to everyone while error-rate still has no series.
    l.exporter.set("canary_p95_latency_seconds", &[], 0.2);
    l.exporter.set("canary_login_ratio", &[], 1.0);
    let r = eventually(WAIT, "the rollout to complete", || async {
        rollout(&l.client, &l.ns)
            .await
            .filter(|r| format!("{:?}", r.state.phase) == "Completed")
    })
    .await;
    let errors = r
        .state
        .gates
        .iter()
        .find(|g| g.name == "error-rate")
        .unwrap();
    assert_eq!((errors.passing, errors.value), (Some(true), None));
    assert!(errors.no_data_since.is_some());
    assert_eq!(r.waiting_on, None, "nothing holds a completed launch");
}

/// The API: a Deployment `api` on 2 replicas whose CPU (`api_cpu_percent`) reads `cpu` %.
async fn api_on_two_replicas(l: &Launch, cpu: f64) -> Api<k8s_openapi::api::apps::v1::Deployment> {
    l.exporter.set("api_cpu_percent", &[], cpu);
    let api = support::objects::workload("Deployment", "api", 2);
    support::objects::create::<k8s_openapi::api::apps::v1::Deployment>(&l.client, &l.ns, api).await;
    Api::namespaced(l.client.clone(), &l.ns)
}

/// `spec.scaling` with the API's CPU trigger (`api-cpu`, 70 %), sampled every second.
fn api_cpu_scaling(min: i32, max: i32) -> Value {
    json!({"interval": "1s", "triggers": [{
        "name": "api-cpu", "cpu": {"query": "max(api_cpu_percent)"},
        "scaleTargetRef": {"kind": "Deployment", "name": "api"},
        "replicas": {"min": min, "max": max}
    }]})
}

#[tokio::test]
async fn a_stage_waits_while_a_scaling_trigger_says_capacity_is_short() {
    let l = launch("rollout-capacity").await;
    let url = l._prometheus.url();
    // The API runs hot: 90 % CPU against a 70 % threshold, already at its maximum replicas.
    api_on_two_replicas(&l, 90.0).await;
    let stages = json!([
        {"name": "internal-beta", "users": 100, "bake": "1s"},
        {"name": "everyone", "users": "All"}
    ]);
    let mut spec = rollout_spec(&url, stages, "Pause");
    spec["scaling"] = api_cpu_scaling(1, 2);
    create_policy(&l, &url, spec).await;
    let op = Operator::start(&l.cp, &["--resync=30s"]).await;

    // No stage admits more users while the trigger is unreadable (at first) or hot; the
    // message names it.
    let hot = "no more users while the platform is short of capacity: trigger api-cpu is \
               beyond its threshold (70%)";
    let r = eventually(WAIT, "the launch held for capacity", || async {
        rollout(&l.client, &l.ns)
            .await
            .filter(|r| r.message.as_deref().is_some_and(|m| m.contains(hot)))
    })
    .await;
    let waiting = r.waiting_on.expect("waiting on capacity");
    assert_eq!(waiting.summary, "capacity: api-cpu");
    op.completes_reconciles(5).await;
    let r = rollout(&l.client, &l.ns).await.unwrap();
    assert_ne!(r.state.stage_name.as_deref(), Some("everyone"), "held");
    assert_ne!(cohort(&l.client, &l.ns).await.as_deref(), Some("All"));

    // The load passes: the launch goes on to everyone.
    l.exporter.set("api_cpu_percent", &[], 20.0);
    eventually(WAIT, "everyone admitted once capacity is back", || async {
        (cohort(&l.client, &l.ns).await? == "All").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_stage_scales_up_first_and_waits_for_ready_replicas_before_its_users_arrive() {
    use kube::api::{Patch, PatchParams};
    let l = launch("rollout-scale-up-first").await;
    let url = l._prometheus.url();
    // A calm API (50 % CPU against 70 %) on 2 replicas.
    let deployments = api_on_two_replicas(&l, 50.0).await;
    let stages = json!([
        {"name": "internal-beta", "users": 100, "bake": "1s"},
        {"name": "gradual", "users": 500, "scaleUpFirst": [{"trigger": "api-cpu", "minReplicas": 5}]},
        {"name": "everyone", "users": "All"}
    ]);
    let mut spec = rollout_spec(&url, stages, "Pause");
    spec["scaling"] = api_cpu_scaling(2, 20);
    create_policy(&l, &url, spec).await;
    let _op = Operator::start(&l.cp, &["--resync=30s"]).await;

    // Once the canary has baked, the API is scaled to 5 before the 500 users arrive, and the
    // stage waits for the pods to be ready (no kubelet here: nothing is ready yet).
    eventually(WAIT, "the API scaled to the stage's floor", || async {
        let d = deployments.get("api").await.ok()?;
        (d.spec?.replicas? == 5).then_some(())
    })
    .await;
    let r = eventually(WAIT, "the stage waiting for ready replicas", || async {
        rollout(&l.client, &l.ns).await.filter(|r| {
            r.waiting_on
                .as_ref()
                .is_some_and(|w| w.summary == "scale-up first: api-cpu 0/5")
        })
    })
    .await;
    assert_eq!(r.state.stage_name.as_deref(), Some("internal-beta"));
    assert_eq!(cohort(&l.client, &l.ns).await.as_deref(), Some("100"));

    // The pods are ready (as the kubelet would report): the 500 users are admitted.
    let ready = json!({"status": {"replicas": 5, "readyReplicas": 5}});
    deployments
        .patch_status("api", &PatchParams::default(), &Patch::Merge(&ready))
        .await
        .unwrap();
    eventually(WAIT, "500 users once the pods are ready", || async {
        (cohort(&l.client, &l.ns).await? == "500").then_some(())
    })
    .await;
    // The floor stays with the stage: the calm API is not scaled back below 5.
    _op.completes_reconciles(5).await;
    let d = deployments.get("api").await.unwrap();
    assert!(d.spec.unwrap().replicas.unwrap() >= 5);
}

#[tokio::test]
async fn breaking_latency_pauses_with_the_value_and_rollback_returns_to_the_previous_cohort() {
    let l = launch("rollout-gate-failure").await;
    let url = l._prometheus.url();
    create_policy(
        &l,
        &url,
        rollout_spec(&url, stages("4s", "Automatic"), "Rollback"),
    )
    .await;
    let _op = Operator::start(&l.cp, &["--resync=30s"]).await;
    eventually(WAIT, "500 users", || async {
        (cohort(&l.client, &l.ns).await? == "500").then_some(())
    })
    .await;
    l.exporter.set("p95_latency_seconds", &[], 0.9);
    let status = eventually(WAIT, "RolledBack", || async {
        rollout(&l.client, &l.ns)
            .await
            .filter(|r| format!("{:?}", r.state.phase) == "RolledBack")
    })
    .await;
    let message = status.message.unwrap_or_default();
    assert!(
        message.contains("p95-latency-seconds") && message.contains("0.9"),
        "{message}"
    );
    eventually(WAIT, "the previous stage's 100 users published", || async {
        (cohort(&l.client, &l.ns).await? == "100").then_some(())
    })
    .await;
    // The cohort goes out first, then the events that announce the decision.
    let failed = eventually(WAIT, "a GateFailed event", || async {
        let failed = events(&l.client, &l.ns, "GateFailed").await;
        (!failed.is_empty()).then_some(failed)
    })
    .await;
    assert!(
        failed.iter().any(|m| m.contains("p95-latency-seconds")),
        "{failed:?}"
    );
    // A held rollout is reconciled again only on a change or a resync: make a change.
    let (ok, _, err) = kubectl(
        &l.cp,
        &[
            "-n",
            &l.ns,
            "annotate",
            "lp/launch",
            "test.liftoff.dev/poke=1",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    _op.completes_reconciles(2).await;
    assert_eq!(
        cohort(&l.client, &l.ns).await.as_deref(),
        Some("100"),
        "held, not advanced"
    );
}

/// Server-side applies of ConfigMaps the apiserver has answered so far.
async fn configmap_applies(cp: &ControlPlane) -> f64 {
    let (ok, text, err) = kubectl(cp, &["get", "--raw", "/metrics"], None).await;
    assert!(ok, "apiserver /metrics: {err}");
    support::bench::metric_sum_where(&text, "apiserver_request_total", |l| {
        l.contains("resource=\"configmaps\"") && l.contains("verb=\"APPLY\"")
    })
}

#[tokio::test]
async fn an_operator_restarted_mid_bake_keeps_the_deadline_and_repeats_no_stage() {
    let l = launch("rollout-restart").await;
    let url = l._prometheus.url();
    create_policy(
        &l,
        &url,
        rollout_spec(&url, stages("30s", "Automatic"), "Pause"),
    )
    .await;
    let op = Operator::start(&l.cp, &["--resync=30s"]).await;
    let before = eventually(WAIT, "baking internal-beta", || async {
        rollout(&l.client, &l.ns).await.filter(|r| {
            r.state.stage_name.as_deref() == Some("internal-beta") && r.state.bake_until.is_some()
        })
    })
    .await;
    // Mid-bake means after the cohort reached the application: a stage recorded but never
    // published is re-entered, and bakes from its publication (nobody was admitted before).
    eventually(WAIT, "100 users published", || async {
        (cohort(&l.client, &l.ns).await? == "100").then_some(())
    })
    .await;
    // Events are published right after the status write that records them (at most once: a
    // crash in between loses the Event, never the state); wait for it so the count below is
    // about repeats only.
    eventually(WAIT, "the StageAdvanced event", || async {
        let advanced = events(&l.client, &l.ns, "StageAdvanced").await;
        advanced
            .iter()
            .any(|m| m.contains("internal-beta"))
            .then_some(())
    })
    .await;
    // The flag is published after the cohort: both are in before the applies are counted.
    eventually(WAIT, "100 users in the flag", || async {
        (flag(&l.client, &l.ns).await? == ("off".to_string(), Some(100))).then_some(())
    })
    .await;
    let applies = configmap_applies(&l.cp).await;
    op.kill().await;
    let _op = Operator::start(&l.cp, &["--resync=30s"]).await;
    _op.completes_reconciles(2).await;
    // The cohort and the flag the new operator finds are what it would publish: it checks them
    // (a GET each) and applies nothing.
    assert_eq!(
        (
            configmap_applies(&l.cp).await,
            cohort(&l.client, &l.ns).await.as_deref()
        ),
        (applies, Some("100")),
        "no ConfigMap applied again after the restart"
    );
    let after = rollout(&l.client, &l.ns).await.unwrap();
    assert_eq!(after.state.stage_name, before.state.stage_name);
    assert_eq!(
        after.state.bake_until, before.state.bake_until,
        "the deadline did not move"
    );
    eventually(WAIT, "500 users after the bake", || async {
        (cohort(&l.client, &l.ns).await? == "500").then_some(())
    })
    .await;
    let advanced = events(&l.client, &l.ns, "StageAdvanced").await;
    let into_beta = advanced
        .iter()
        .filter(|m| m.contains("internal-beta"))
        .count();
    assert_eq!(into_beta, 1, "internal-beta entered once: {advanced:?}");
}

#[tokio::test]
async fn reconciles_during_a_bake_write_no_status() {
    let l = launch("rollout-quiet").await;
    let url = l._prometheus.url();
    let mut quiet = rollout_spec(&url, stages("10m", "Automatic"), "Pause");
    quiet["rollout"]["gates"]["interval"] = json!("10m");
    create_policy(&l, &url, quiet).await;
    let op = Operator::start(&l.cp, &["--resync=30s"]).await;
    eventually(WAIT, "baking internal-beta", || async {
        rollout(&l.client, &l.ns)
            .await
            .filter(|r| format!("{:?}", r.state.phase) == "Baking")
    })
    .await;
    op.idle().await;
    let writes = op.metric("liftoff_status_writes_total").await;
    let reconciles = op.metric("liftoff_reconciles_total").await;
    for i in 0..3 {
        let before = op.metric("liftoff_reconciles_total").await;
        let (ok, _, err) = kubectl(
            &l.cp,
            &[
                "-n",
                &l.ns,
                "annotate",
                "--overwrite",
                "lp/launch",
                &format!("touch={i}"),
            ],
            None,
        )
        .await;
        assert!(ok, "{err}");
        eventually(WAIT, "a reconcile of the annotation", || async {
            (op.metric("liftoff_reconciles_total").await > before).then_some(())
        })
        .await;
    }
    op.idle().await;
    assert!(
        op.metric("liftoff_reconciles_total").await >= reconciles + 3.0,
        "the annotations were reconciled"
    );
    assert_eq!(
        op.metric("liftoff_status_writes_total").await,
        writes,
        "a bake in progress is not rewritten (no countdown in status)"
    );
}

/// The texts the webhook received with `label`, in order.
fn texts(received: &Mutex<Vec<String>>, label: &str) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter_map(|b| {
            let text = serde_json::from_str::<Value>(b).unwrap()["text"]
                .as_str()?
                .to_owned();
            text.contains(&format!("] {label}: ")).then_some(text)
        })
        .collect()
}

async fn last_sent_at(client: &Client, ns: &str) -> Option<k8s_openapi::jiff::Timestamp> {
    let status = Api::<LaunchPolicy>::namespaced(client.clone(), ns)
        .get("launch")
        .await
        .ok()?
        .status?;
    Some(status.summaries.first()?.last_sent_at.0)
}

#[tokio::test]
async fn a_launch_update_goes_out_every_summary_every_even_across_a_restart() {
    let l = launch("rollout-summary").await;
    let url = l._prometheus.url();
    let received = war_room(&l).await;
    let every = Duration::from_secs(4);
    let mut long_bake = rollout_spec(&url, stages("10m", "Automatic"), "Pause");
    long_bake["notifications"] = json!([{
        "webhookSecretRef": {"name": "war-room", "key": "url"},
        "events": ["RolloutCompleted"],
        "summaryEvery": "4s"
    }]);
    create_policy(&l, &url, long_bake).await;
    let op = Operator::start(&l.cp, &["--resync=30s"]).await;
    let started = std::time::Instant::now();

    eventually(WAIT, "the first launch update", || async {
        (!texts(&received, "LaunchUpdate").is_empty()).then_some(())
    })
    .await;
    let first = last_sent_at(&l.client, &l.ns).await.unwrap();
    let second = eventually(WAIT, "the second launch update", || async {
        let sent = last_sent_at(&l.client, &l.ns).await?;
        (sent != first && texts(&received, "LaunchUpdate").len() >= 2).then_some(sent)
    })
    .await;
    assert!(
        second.duration_since(first) >= k8s_openapi::jiff::SignedDuration::try_from(every).unwrap(),
        "updates {first} and {second} are less than {every:?} apart"
    );

    // A restarted operator keeps the schedule from status: no extra update on start.
    op.kill().await;
    let _op = Operator::start(&l.cp, &["--resync=30s"]).await;
    eventually(
        WAIT,
        "a third launch update, on the restored schedule",
        || async { (texts(&received, "LaunchUpdate").len() >= 3).then_some(()) },
    )
    .await;
    _op.completes_reconciles(3).await;
    let updates = texts(&received, "LaunchUpdate");
    let periods = started.elapsed().as_secs_f64() / every.as_secs_f64();
    assert!(
        updates.len() >= 3 && updates.len() as f64 <= periods.floor() + 1.0,
        "{} updates in {periods:.1} periods: {updates:#?}",
        updates.len()
    );
    let last = updates.last().unwrap();
    for part in [
        "/launch] LaunchUpdate: 🟢 all systems operational — launch update at H+0\n",
        "• Users: 100 admitted\n",
        "• Status: Baking, stage 1 of 4: stage internal-beta (100 users) baking 10m, until ",
        "• Key metrics: error-rate 0 (max 0.001, ok); p95-latency-seconds 0.2 (max 0.5, ok)",
        "• Issues: none",
        "• Next update: ",
    ] {
        assert!(last.contains(part), "{part:?} missing from {last}");
    }
    assert!(
        texts(&received, "StageAdvanced").is_empty(),
        "only the subscribed events are sent"
    );
}

#[tokio::test]
async fn gate_samples_go_to_metrics_at_once_and_to_status_only_on_a_decision_or_refresh() {
    let l = launch("rollout-gate-samples").await;
    let url = l._prometheus.url();
    let mut sampled = rollout_spec(&url, stages("10m", "Automatic"), "Pause");
    sampled["statusRefresh"] = json!("1h");
    create_policy(&l, &url, sampled).await;
    let op = Operator::start(&l.cp, &["--resync=30s"]).await;
    let series = |name: &str| {
        format!(
            "{name}{{gate=\"p95-latency-seconds\",namespace=\"{}\",policy=\"launch\"}}",
            l.ns
        )
    };
    // While the stage bakes (10m), passes in a row are samples, not decisions: on /metrics at
    // once, in status only at statusRefresh (1h here). The stage is in status from its entry.
    eventually(WAIT, "the first stage entered in status", || async {
        rollout(&l.client, &l.ns).await?.state.stage.map(|_| ())
    })
    .await;
    let passing = format!("{} 1", series("liftoff_gate_passing"));
    eventually(WAIT, "a passing evaluation on /metrics", || async {
        op.metrics()
            .await
            .lines()
            .any(|l| l == passing)
            .then_some(())
    })
    .await;
    op.completes_reconciles(2).await;
    let writes = op.metric("liftoff_status_writes_total").await;
    let shown = rollout(&l.client, &l.ns).await.unwrap();
    let p95 = |r: &RolloutStatus| {
        r.state
            .gates
            .iter()
            .find(|g| g.name == "p95-latency-seconds")
            .map(|g| g.consecutive_passes)
    };
    // Passing verdicts during the bake are samples: at most the entry's count is in status.
    assert!(p95(&shown) <= Some(1), "{shown:?}");

    l.exporter.set("p95_latency_seconds", &[], 0.3);
    eventually(WAIT, "the new sample on /metrics", || async {
        (op.metric(&series("liftoff_gate_value")).await == 0.3).then_some(())
    })
    .await;
    op.completes_reconciles(3).await;
    assert_eq!(op.metric(&series("liftoff_gate_passing")).await, 1.0);
    assert_eq!(
        op.metric("liftoff_status_writes_total").await,
        writes,
        "passing samples of a healthy gate are not written before statusRefresh"
    );
    assert_eq!(rollout(&l.client, &l.ns).await.unwrap(), shown);
    assert!(
        p95(&shown) < Some(2),
        "several evaluations later, the second pass in a row is still not in status"
    );
    let stage = format!(
        "liftoff_rollout_stage{{namespace=\"{}\",policy=\"launch\"}}",
        l.ns
    );
    assert_eq!(op.metric(&stage).await, 1.0);

    // A failing sample is a step towards a decision: in status at once, with its value.
    l.exporter.set("p95_latency_seconds", &[], 0.9);
    let failing = eventually(WAIT, "the failure in status", || async {
        let r = rollout(&l.client, &l.ns).await?;
        let g = r
            .state
            .gates
            .into_iter()
            .find(|g| g.name == "p95-latency-seconds")?;
        (g.consecutive_failures >= 1).then_some(g)
    })
    .await;
    assert_eq!(failing.value, Some(0.9));
    assert_eq!(failing.passing, Some(false));
    let paused = format!(
        "liftoff_rollout_phase{{namespace=\"{}\",phase=\"Paused\",policy=\"launch\"}}",
        l.ns
    );
    eventually(WAIT, "Paused on /metrics", || async {
        (op.metric(&paused).await == 1.0).then_some(())
    })
    .await;
}

/// Events about `lp/launch` with `reason`: `(type, count)` of each Event object.
async fn event_series(client: &Client, ns: &str, reason: &str) -> Vec<(String, i32)> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| {
            let count = e
                .series
                .as_ref()
                .and_then(|s| s.count)
                .or(e.count)
                .unwrap_or(1);
            (e.type_.unwrap_or_default(), count)
        })
        .collect()
}

/// `kubectl annotate --overwrite lp/launch <annotation>`, as the war room does.
async fn annotate(l: &Launch, annotation: &str) {
    let args = [
        "-n",
        &l.ns,
        "annotate",
        "--overwrite",
        "lp/launch",
        annotation,
    ];
    let (ok, _, err) = kubectl(&l.cp, &args, None).await;
    assert!(ok, "{annotation}: {err}");
}

/// What the flagd flag admits: its default variant, and the `on` weight of its fractional
/// targeting if it has one.
async fn flag(client: &Client, ns: &str) -> Option<(String, Option<u64>)> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt("launch-flags")
        .await
        .ok()??;
    let text = cm.data?.get("flags.flagd.json")?.clone();
    let definition: Value = serde_json::from_str(&text).ok()?;
    let flag = &definition["flags"]["new-platform"];
    let default = flag["defaultVariant"].as_str()?.to_string();
    let on = flag["targeting"]["fractional"][0][1].as_u64();
    Some((default, on))
}

#[tokio::test]
async fn the_war_rooms_commands_move_the_phase_the_cohort_and_the_flag() {
    let l = launch("rollout-commands").await;
    let url = l._prometheus.url();
    let stages = json!([
        {"name": "internal-beta", "users": 100, "bake": "1s"},
        {"name": "gradual", "users": 500, "bake": "1h", "approval": "Manual"},
        {"name": "everyone", "users": "All"}
    ]);
    create_policy(&l, &url, rollout_spec(&url, stages, "Pause")).await;
    let _op = Operator::start(&l.cp, &["--resync=30s"]).await;
    // Each step: the phase in status, then what the application sees.
    let reaches =
        |phase: &'static str, users: &'static str, flag_is: (&'static str, Option<u64>)| {
            let (client, ns) = (l.client.clone(), l.ns.clone());
            async move {
                let what = format!("{phase} with {users} users published");
                eventually(WAIT, &what, || async {
                    let r = rollout(&client, &ns).await?;
                    let published = cohort(&client, &ns).await?;
                    let (default, on) = flag(&client, &ns).await?;
                    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
                        .get("launch-cohort")
                        .await
                        .ok()?;
                    let cohort_phase = cm.data?.get("phase")?.clone();
                    (format!("{:?}", r.state.phase) == phase
                        && published == users
                        && cohort_phase == phase
                        && (default.as_str(), on) == flag_is)
                        .then_some(())
                })
                .await
            }
        };

    // The canary bakes, then waits for the Go: 100 of 20,000 admitted by the flag.
    reaches("AwaitingApproval", "100", ("off", Some(100))).await;
    annotate(&l, "liftoff.dev/approve=gradual").await;
    reaches("Baking", "500", ("off", Some(500))).await;
    // Pause holds the 500; resume carries on with the same bake.
    annotate(&l, "liftoff.dev/pause=1").await;
    reaches("Paused", "500", ("off", Some(500))).await;
    annotate(&l, "liftoff.dev/resume=1").await;
    reaches("Baking", "500", ("off", Some(500))).await;
    // Abort at 500 users: nobody is admitted, by the ConfigMap or by the flag.
    annotate(&l, "liftoff.dev/abort=1").await;
    reaches("Aborted", "0", ("off", None)).await;
    // Retry starts over from the canary, which needs no Go.
    annotate(&l, "liftoff.dev/retry=1").await;
    reaches("AwaitingApproval", "100", ("off", Some(100))).await;
    // The Go given before the abort was used; a new Go is needed, with a new token.
    annotate(&l, "liftoff.dev/approve=gradual@2").await;
    reaches("Baking", "500", ("off", Some(500))).await;
}

/// Each kill switch's flag in the ConfigMap: `(flag key, on)`.
async fn switches(client: &Client, ns: &str) -> Option<Vec<(String, bool)>> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt("launch-kill-switches")
        .await
        .ok()??;
    let definition: Value = serde_json::from_str(cm.data?.get("flags.flagd.json")?).ok()?;
    let flags = definition["flags"].as_object()?;
    Some(
        flags
            .iter()
            .map(|(k, f)| (k.clone(), f["defaultVariant"] == "on"))
            .collect(),
    )
}

#[tokio::test]
async fn kill_switches_turn_off_by_annotation_and_by_a_failing_gate_and_say_who() {
    let l = launch("rollout-kill-switches").await;
    let url = l._prometheus.url();
    let mut spec = rollout_spec(&url, stages("1h", "Automatic"), "Pause");
    spec["contingency"] = json!({"configMap": "launch-kill-switches", "killSwitches": [
        {"name": "report-export", "flagKey": "reports.export", "description": "PDF export",
         "offOnGateFailure": ["p95-latency-seconds"]},
        {"name": "live-dashboard"}
    ]});
    create_policy(&l, &url, spec).await;
    let _op = Operator::start(&l.cp, &["--resync=30s"]).await;
    let flags_are = |want: [(&'static str, bool); 2]| {
        let (client, ns) = (l.client.clone(), l.ns.clone());
        async move {
            let want: Vec<(String, bool)> =
                want.iter().map(|(k, on)| (k.to_string(), *on)).collect();
            eventually(WAIT, &format!("flags {want:?}"), || async {
                let mut got = switches(&client, &ns).await?;
                got.sort();
                let mut want = want.clone();
                want.sort();
                (got == want).then_some(())
            })
            .await
        }
    };
    let switch_status = |name: &'static str| {
        let (client, ns) = (l.client.clone(), l.ns.clone());
        async move {
            let p = Api::<LaunchPolicy>::namespaced(client, &ns)
                .get("launch")
                .await
                .unwrap();
            p.status
                .unwrap()
                .kill_switches
                .into_iter()
                .find(|s| s.name == name)
                .unwrap()
        }
    };

    // Every switch starts on.
    flags_are([("reports.export", true), ("live-dashboard", true)]).await;
    // The war room sheds the live dashboard.
    annotate(&l, "liftoff.dev/kill-switch=live-dashboard").await;
    flags_are([("reports.export", true), ("live-dashboard", false)]).await;
    let s = switch_status("live-dashboard").await;
    assert!(!s.enabled);
    assert!(
        s.by.as_deref()
            .unwrap_or_default()
            .starts_with("kubectl-annotate at "),
        "{s:?}"
    );
    assert!(s.since.is_some());
    // p95 breaks: the gate trips, the rollout pauses, and the report export is shed with it.
    l.exporter.set("p95_latency_seconds", &[], 0.9);
    flags_are([("reports.export", false), ("live-dashboard", false)]).await;
    let s = switch_status("report-export").await;
    assert_eq!(s.by.as_deref(), Some("liftoff"));
    assert!(
        s.why
            .as_deref()
            .unwrap_or_default()
            .starts_with("gate p95-latency-seconds 0.9 > 0.5"),
        "{s:?}"
    );
    // Every flip is an Event.
    eventually(WAIT, "the KillSwitchOff events", || async {
        let series = event_series(&l.client, &l.ns, "KillSwitchOff").await;
        (series.iter().map(|(_, n)| n).sum::<i32>() >= 2).then_some(())
    })
    .await;
    // Recovered: a person restores both.
    l.exporter.set("p95_latency_seconds", &[], 0.2);
    annotate(
        &l,
        "liftoff.dev/restore-switch=report-export,live-dashboard",
    )
    .await;
    flags_are([("reports.export", true), ("live-dashboard", true)]).await;
}

#[tokio::test]
async fn a_trigger_out_of_room_switches_off_what_lists_it() {
    let l = launch("kill-switch-at-max").await;
    let url = l._prometheus.url();
    // The API is hot (95 % against 70 %) and already at its maximum of 2 replicas.
    api_on_two_replicas(&l, 95.0).await;
    let spec = json!({
        "prometheus": {"address": url},
        "scaling": api_cpu_scaling(1, 2),
        "contingency": {"configMap": "launch-kill-switches", "killSwitches": [
            {"name": "report-export", "offAtMax": ["api-cpu"]},
            {"name": "live-dashboard"}
        ]}
    });
    create_policy(&l, &url, spec).await;
    let _op = Operator::start(&l.cp, &["--resync=30s"]).await;
    eventually(WAIT, "report-export switched off", || async {
        let mut got = switches(&l.client, &l.ns).await?;
        got.sort();
        (got == [
            ("live-dashboard".to_string(), true),
            ("report-export".to_string(), false),
        ])
        .then_some(())
    })
    .await;
    let policy = Api::<LaunchPolicy>::namespaced(l.client.clone(), &l.ns)
        .get("launch")
        .await
        .unwrap();
    let s = policy
        .status
        .unwrap()
        .kill_switches
        .into_iter()
        .find(|s| s.name == "report-export")
        .unwrap();
    assert_eq!(s.by.as_deref(), Some("liftoff"));
    assert_eq!(
        s.why.as_deref(),
        Some("trigger api-cpu is beyond its threshold (70%) at replicas.max 2")
    );
}

#[tokio::test]
async fn a_pause_and_an_abort_are_each_announced_by_one_warning_event() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("rollout-one-event").await.unwrap();
    let spec = json!({"rollout": {"stages": [
        {"name": "canary", "users": 100, "bake": "1h"},
        {"name": "everyone", "users": "All"}
    ]}});
    let policy: LaunchPolicy = serde_json::from_value(json!({
        "apiVersion": "liftoff.dev/v1alpha1", "kind": "LaunchPolicy",
        "metadata": {"name": "launch"}, "spec": spec
    }))
    .unwrap();
    let api = Api::<LaunchPolicy>::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &policy).await.unwrap();
    let op = Operator::start(&cp, &["--resync=30s"]).await;
    let phase_is = |phase: &'static str| {
        let (client, ns) = (client.clone(), ns.clone());
        async move {
            eventually(WAIT, phase, || async {
                rollout(&client, &ns)
                    .await
                    .filter(|r| format!("{:?}", r.state.phase) == phase)
            })
            .await
        }
    };
    phase_is("Baking").await;
    for (annotation, phase) in [
        ("liftoff.dev/pause=1", "Paused"),
        ("liftoff.dev/abort=1", "Aborted"),
    ] {
        let (ok, _, err) =
            kubectl(&cp, &["-n", &ns, "annotate", "lp/launch", annotation], None).await;
        assert!(ok, "{err}");
        phase_is(phase).await;
    }
    // Evidence the operator had its chance to announce anything more: two further reconciles,
    // each caused by an unrelated annotation.
    for poke in ["1", "2"] {
        let before = op.metric("liftoff_reconciles_total").await;
        let (ok, _, err) = kubectl(
            &cp,
            &[
                "-n",
                &ns,
                "annotate",
                "--overwrite",
                "lp/launch",
                &format!("test.liftoff.dev/poke={poke}"),
            ],
            None,
        )
        .await;
        assert!(ok, "{err}");
        eventually(WAIT, "a reconcile after the poke", || async {
            (op.metric("liftoff_reconciles_total").await > before).then_some(())
        })
        .await;
    }
    for reason in ["Paused", "Aborted"] {
        assert_eq!(
            event_series(&client, &ns, reason).await,
            [("Warning".to_string(), 1)],
            "one decision, one Event ({reason})"
        );
    }
}
