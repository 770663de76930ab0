//! The example's launch as a team would run it, with its own health-gate queries, against a real
//! Prometheus scraping a service that behaves like the EMR platform: requests with no 5xx at all
//! (so the error-rate series does not even exist), a latency histogram, logins, no restarts, a
//! little Kafka lag, and no Redis traffic. With bakes compressed to seconds the launch walks
//! canary → Go → 500 → 1,500 → everyone; the same launch with a broken p95 pauses at the canary.
//!
//! The example's scaling triggers need Kafka, PostgreSQL and Redis (tested in `scaling.rs`); here
//! the rollout is the subject, so they are left out, with the stage floors that name them.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use kube::{
    Api,
    api::{Patch, PatchParams},
};
use liftoff::crd::{LaunchPolicy, RolloutStatus};
use liftoff_testenv::{MetricsExporter, Prometheus};
use serde_json::{Value, json};
use support::{Operator, control_plane, eventually, kubectl, repo_path};

const WAIT: Duration = Duration::from_secs(120);

/// The EMR platform's metrics, as counters that grow every 250 ms: 100 requests/s, all 200s;
/// their latencies (p95 about 0.2 s, or about 0.95 s once `slow` is set); 10 logins/s, all
/// successful; no restarts; a Kafka lag of 10; every Deployment available; 40 database
/// connections; 1 of 4 requested cores busy; 1 of 4 GiB of the memory limit used. No 5xx series,
/// no Redis series, no volume and no alert exist.
fn emr_platform(exporter: Arc<MetricsExporter>, slow: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let emr = ("namespace", "emr");
        let buckets = ["0.1", "0.25", "0.5", "1", "+Inf"];
        let mut totals = [0.0f64; 5];
        let (mut requests, mut logins) = (0.0, 0.0);
        exporter.set("kube_pod_container_status_restarts_total", &[emr], 0.0);
        exporter.set("kube_deployment_status_replicas_unavailable", &[emr], 0.0);
        exporter.set("pg_stat_database_numbackends", &[("datname", "emr")], 40.0);
        let (api, gib) = (("container", "api"), 1024.0 * 1024.0 * 1024.0);
        let cpu = [emr, ("resource", "cpu")];
        exporter.set("kube_pod_container_resource_requests", &cpu, 4.0);
        let memory = [emr, ("resource", "memory")];
        exporter.set("kube_pod_container_resource_limits", &memory, 4.0 * gib);
        exporter.set("container_memory_working_set_bytes", &[emr, api], gib);
        let mut cpu_seconds = 0.0;
        exporter.set(
            "kafka_consumergroup_lag",
            &[("consumergroup", "task-workers")],
            10.0,
        );
        loop {
            // Per tick (25 requests): cumulative counts at or below each bucket's bound.
            let cumulative = match slow.load(Ordering::Relaxed) {
                false => [10.0, 24.0, 25.0, 25.0, 25.0],
                true => [0.0, 0.0, 1.0, 24.0, 25.0],
            };
            for (total, add) in totals.iter_mut().zip(cumulative) {
                *total += add;
            }
            requests += 25.0;
            logins += 2.5;
            cpu_seconds += 0.25;
            exporter.set(
                "container_cpu_usage_seconds_total",
                &[emr, api],
                cpu_seconds,
            );
            for (le, total) in buckets.iter().zip(totals) {
                let labels = [emr, ("le", le)];
                exporter.set("http_request_duration_seconds_bucket", &labels, total);
            }
            exporter.set("http_requests_total", &[emr, ("code", "200")], requests);
            exporter.set("logins_total", &[emr, ("result", "success")], logins);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
}

/// `examples/emr-platform.yaml` in namespace `ns`, reading `prometheus`, with its bakes and gate
/// interval compressed to seconds and without its scaling triggers (and their floors) and webhook.
fn example(ns: &str, prometheus: &str) -> Value {
    let text = std::fs::read_to_string(repo_path("examples/emr-platform.yaml")).unwrap();
    let mut policy: Value = serde_yaml::from_str(&text).unwrap();
    policy["metadata"]["namespace"] = json!(ns);
    let spec = policy["spec"].as_object_mut().unwrap();
    spec.remove("scaling");
    spec.remove("notifications");
    spec["prometheus"]["address"] = json!(prometheus);
    let rollout = &mut spec["rollout"];
    for stage in rollout["stages"].as_array_mut().unwrap() {
        if stage.get("bake").is_some() {
            stage["bake"] = json!("3s");
        }
        // Its floors name the triggers left out above.
        stage.as_object_mut().unwrap().remove("scaleUpFirst");
    }
    rollout["gates"]["interval"] = json!("1s");
    rollout["gates"]["failureThreshold"] = json!(2);
    policy
}

async fn rollout(api: &Api<LaunchPolicy>) -> Option<RolloutStatus> {
    api.get("emr-platform")
        .await
        .ok()?
        .status?
        .rollout
        .map(|r| *r)
}

async fn phase_is(api: &Api<LaunchPolicy>, phase: &str, stage: &str) -> RolloutStatus {
    let what = format!("{phase} at {stage}");
    eventually(WAIT, &what, || async {
        rollout(api).await.filter(|r| {
            format!("{:?}", r.state.phase) == phase && r.state.stage_name.as_deref() == Some(stage)
        })
    })
    .await
}

#[tokio::test]
async fn the_examples_launch_walks_to_everyone_when_healthy_and_pauses_on_a_broken_p95() {
    let exporter = Arc::new(MetricsExporter::start().await.unwrap());
    let slow = Arc::new(AtomicBool::new(false));
    emr_platform(exporter.clone(), slow.clone());
    let prometheus = Prometheus::start(&[exporter.target()], Duration::from_secs(1))
        .await
        .unwrap();
    prometheus
        .wait_for_query("http_request_duration_seconds_bucket")
        .await
        .unwrap();
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let healthy = cp.create_namespace("example-healthy").await.unwrap();
    let _op = Operator::start(&cp, &["--resync=30s"]).await;
    let apply = |ns: String| {
        let cp = &cp;
        let policy = example(&ns, &prometheus.url());
        async move {
            let text = serde_json::to_string(&policy).unwrap();
            let (ok, _, err) = kubectl(cp, &["apply", "-f", "-"], Some(&text)).await;
            assert!(ok, "the compressed example must be accepted: {err}");
        }
    };

    // Healthy, with no 5xx series at all: the canary bakes, every gate passes, and the launch
    // waits for the Go.
    apply(healthy.clone()).await;
    let api: Api<LaunchPolicy> = Api::namespaced(client.clone(), &healthy);
    let r = phase_is(&api, "AwaitingApproval", "internal-beta").await;
    let gate = |r: &RolloutStatus, name: &str| {
        r.state
            .gates
            .iter()
            .find(|g| g.name == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        gate(&r, "error-rate").value,
        Some(0.0),
        "no 5xx counts as 0"
    );
    let p95 = gate(&r, "p95-latency-seconds").value.unwrap();
    assert!(p95 > 0.1 && p95 < 0.5, "p95 {p95}");
    let hit_rate = gate(&r, "redis-hit-rate");
    assert_eq!(
        (hit_rate.passing, hit_rate.value),
        (Some(true), None),
        "no Redis traffic passes (onNoData: Pass)"
    );
    // The whole 15-minute checklist, each check answered by the series a cluster exports.
    assert_eq!(r.state.gates.len(), 12, "{:?}", r.state.gates);
    for g in &r.state.gates {
        assert_eq!(g.passing, Some(true), "{g:?}");
    }
    for (name, value) in [
        ("services-running", 0.0),
        ("db-connections", 40.0),
        ("pod-restarts", 0.0),
        ("memory", 0.25),
        ("alerts-firing", 0.0),
    ] {
        assert_eq!(gate(&r, name).value, Some(value), "{name}");
    }
    let cpu = gate(&r, "cpu").value.unwrap();
    // A quarter of the requested cores, seen through `rate(…[5m])` over the few seconds of data
    // the test has: rate divides by the whole window, so it reads low until the window fills.
    assert!(cpu > 0.0 && cpu <= 0.25, "cpu {cpu}");
    assert_eq!(
        gate(&r, "disk").value,
        None,
        "no volume passes (onNoData: Pass)"
    );
    let patch = json!({"metadata": {"annotations": {"liftoff.dev/approve": "gradual"}}});
    api.patch(
        "emr-platform",
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .unwrap();
    phase_is(&api, "Completed", "everyone").await;

    // The same launch while p95 is about 0.95 s: the p95 gate fails twice in a row at the
    // canary and the launch pauses there, with the value.
    slow.store(true, Ordering::Relaxed);
    let broken = cp.create_namespace("example-broken").await.unwrap();
    apply(broken.clone()).await;
    let api: Api<LaunchPolicy> = Api::namespaced(client.clone(), &broken);
    let r = phase_is(&api, "Paused", "internal-beta").await;
    let hold = r.state.hold.expect("held by the gate");
    assert_eq!(hold.by.as_deref(), Some("p95-latency-seconds"));
    assert!(
        hold.detail.contains("> 0.5 (2/2 checks failed)"),
        "{}",
        hold.detail
    );
}
