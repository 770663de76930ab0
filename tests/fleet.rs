//! The fleet: many policies asking Prometheus the same query share one request, and many reading
//! one consumer group's Kafka lag share one read; and past one
//! replica, two operator shards over one apiserver, each with `--selector` and its own Lease
//! (what the chart's `shards` value renders), each act on exactly the policies their selector
//! matches — and a policy relabelled from one shard to the other is taken over.

mod support;

use std::time::Duration;

use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease};
use kube::Api;
use liftoff::crd::LaunchPolicy;
use liftoff_testenv::Kafka;
use serde_json::{Value, json};
use support::{Operator, control_plane, eventually, healthy_service, http_get, kubectl, objects};

const WAIT: Duration = Duration::from_secs(90);

/// A policy scaling Deployment `target` on a CPU of 300 % (from 2 replicas to its max, 4).
fn policy(name: &str, target: &str, shard: Option<&str>, prometheus: &str) -> Value {
    let mut p = objects::policy(
        name,
        json!({
            "prometheus": {"address": prometheus, "timeout": "2s"},
            "scaling": {"interval": "1s", "triggers": [{
                "name": "cpu", "cpu": {"query": "max(cpu_percent)"},
                "scaleTargetRef": {"kind": "Deployment", "name": target},
                "replicas": {"min": 2, "max": 4}
            }]}
        }),
    );
    if let Some(shard) = shard {
        p["metadata"]["labels"] = json!({"liftoff.dev/shard": shard});
    }
    p
}

/// The policies whose trigger an operator's `/metrics` reports: the ones it samples.
async fn sampled(op: &Operator) -> Vec<String> {
    let mut policies: Vec<String> = op
        .metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("liftoff_trigger_value{"))
        .filter_map(|l| {
            l.split("policy=\"")
                .nth(1)?
                .split('"')
                .next()
                .map(String::from)
        })
        .collect();
    policies.sort();
    policies.dedup();
    policies
}

#[tokio::test]
async fn two_shards_each_act_on_exactly_their_own_policies() {
    let (exporter, prometheus) = healthy_service().await;
    exporter.set("cpu_percent", &[], 300.0);
    prometheus.wait_for_query("cpu_percent").await.unwrap();
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("shards").await.unwrap();
    for target in ["api-a", "api-b", "api-none"] {
        objects::create::<Deployment>(&client, &ns, objects::workload("Deployment", target, 2))
            .await;
    }
    let url = prometheus.url();
    for p in [
        policy("pa", "api-a", Some("a"), &url),
        policy("pb", "api-b", Some("b"), &url),
        policy("pnone", "api-none", None, &url),
    ] {
        objects::create::<LaunchPolicy>(&client, &ns, p).await;
    }
    // The chart's two shards: "a", and the rest (`!=` also matches policies without the label).
    let shard_a = Operator::start_elected(
        &cp,
        &ns,
        "shard-a-0",
        "15s",
        &["--selector=liftoff.dev/shard=a", "--lease-name=liftoff-a"],
    )
    .await;
    let rest = Operator::start_elected(
        &cp,
        &ns,
        "shard-rest-0",
        "15s",
        &[
            "--selector=liftoff.dev/shard!=a",
            "--lease-name=liftoff-rest",
        ],
    )
    .await;

    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    for target in ["api-a", "api-b", "api-none"] {
        eventually(WAIT, &format!("{target} scaled by its shard"), || async {
            let d = deployments.get(target).await.ok()?;
            (d.spec?.replicas == Some(4)).then_some(())
        })
        .await;
    }
    assert_eq!(sampled(&shard_a).await, ["pa"]);
    assert_eq!(sampled(&rest).await, ["pb", "pnone"]);
    let leases = Api::<Lease>::namespaced(client.clone(), &ns);
    for (lease, holder) in [("liftoff-a", "shard-a-0"), ("liftoff-rest", "shard-rest-0")] {
        let held = leases
            .get(lease)
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity;
        assert_eq!(held.as_deref(), Some(holder), "{lease}");
    }

    // Relabelled to shard a: the rest lets it go, shard a takes it over from its status.
    let (ok, _, err) = kubectl(
        &cp,
        &[
            "-n",
            &ns,
            "label",
            "--overwrite",
            "lp/pnone",
            "liftoff.dev/shard=a",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    eventually(WAIT, "pnone sampled by shard a", || async {
        (sampled(&shard_a).await == ["pa", "pnone"]).then_some(())
    })
    .await;
    // The rest forgets it within its resync (30 s here, at the latest); meanwhile it does not act
    // on it: a policy it no longer has is not reconciled.
    let policies = Api::<LaunchPolicy>::namespaced(client.clone(), &ns);
    let moved = policies.get("pnone").await.unwrap();
    assert!(moved.status.is_some_and(|s| !s.triggers.is_empty()));
}

/// One apiserver request at a time (`--api-requests-in-flight=1`): 40 policies stored before the
/// start, each scaling its own Deployment, are all acted on, and one created afterwards too (the
/// watches still deliver: a watch gives its turn back once its stream begins), over a handful of
/// connections to the apiserver — where 40 reconciles writing at once open one each.
#[tokio::test]
async fn one_apiserver_request_at_a_time_still_runs_the_fleet() {
    const N: usize = 40;
    let (exporter, prometheus) = healthy_service().await;
    exporter.set("cpu_percent", &[], 300.0);
    prometheus.wait_for_query("cpu_percent").await.unwrap();
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("one-request").await.unwrap();
    for i in 0..=N {
        let d = objects::workload("Deployment", &format!("api-{i}"), 2);
        objects::create::<Deployment>(&client, &ns, d).await;
    }
    let url = prometheus.url();
    for i in 0..N {
        let p = policy(&format!("p{i}"), &format!("api-{i}"), None, &url);
        objects::create::<LaunchPolicy>(&client, &ns, p).await;
    }
    let op = Operator::start(&cp, &["--api-requests-in-flight=1"]).await;
    let apiserver: u16 = cp.server_url().rsplit(':').next().unwrap().parse().unwrap();
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let scaled = |n: usize| at_max(deployments.clone(), n);
    let mut most = 0;
    eventually(WAIT, "every policy's Deployment scaled", || {
        most = most.max(op.connections_to(apiserver));
        scaled(N)
    })
    .await;
    let p = policy("late", &format!("api-{N}"), None, &url);
    objects::create::<LaunchPolicy>(&client, &ns, p).await;
    eventually(WAIT, "the policy created after the start acted on", || {
        most = most.max(op.connections_to(apiserver));
        scaled(N + 1)
    })
    .await;
    // The watches (policies, sources, Deployments, StatefulSets, HPAs), the one request in
    // flight, and a few whose answers are still being read (7 seen here; 47 without the bound).
    eprintln!("at most {most} connections to the apiserver");
    assert!(most <= 12, "{most} connections to the apiserver at once");
}

/// A burst leaves no crowd behind: a start over 40 stored policies writes their statuses, scales
/// and Events over many connections at once, and 15–30 s after it the operator holds only its
/// watches' connections — where kube's own pool kept every connection it opened until the
/// apiserver dropped it after 90 s idle (38 at the end of a 1,000-policy start, ~1.5 MiB).
#[tokio::test]
async fn a_burst_of_requests_leaves_no_idle_connection() {
    const N: usize = 40;
    /// The watches: policies, sources, Deployments, StatefulSets, HPAs (the test's operator
    /// runs without leader election, whose Lease client would hold one more). A new watch
    /// raises it.
    const AFTER: usize = 5;
    let (exporter, prometheus) = healthy_service().await;
    exporter.set("cpu_percent", &[], 300.0);
    prometheus.wait_for_query("cpu_percent").await.unwrap();
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("idle-connections").await.unwrap();
    let url = prometheus.url();
    for i in 0..N {
        let d = objects::workload("Deployment", &format!("api-{i}"), 2);
        objects::create::<Deployment>(&client, &ns, d).await;
        let p = policy(&format!("p{i}"), &format!("api-{i}"), None, &url);
        objects::create::<LaunchPolicy>(&client, &ns, p).await;
    }
    let op = Operator::start(&cp, &[]).await;
    let apiserver: u16 = cp.server_url().rsplit(':').next().unwrap().parse().unwrap();
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let mut most = 0;
    eventually(WAIT, "every policy's Deployment scaled", || {
        most = most.max(op.connections_to(apiserver));
        at_max(deployments.clone(), N)
    })
    .await;
    eprintln!("at most {most} connections to the apiserver in the burst");
    assert!(
        most > AFTER,
        "the burst used {most} connections: too few to show what is kept after it"
    );
    // 15–30 s after each connection's last use (src/apiserver.rs), well before the 90 s after
    // which the apiserver drops an idle connection itself.
    let mut now = most;
    eventually(
        Duration::from_secs(60),
        "the burst's connections closed",
        || {
            now = op.connections_to(apiserver);
            std::future::ready((now <= AFTER).then_some(()))
        },
    )
    .await;
    eprintln!("{now} connections to the apiserver after it");
}

/// `Some` once exactly `n` of the Deployments `deployments` lists run the policies' max, 4.
async fn at_max(deployments: Api<Deployment>, n: usize) -> Option<()> {
    let list = deployments.list(&Default::default()).await.ok()?;
    let scaled = list
        .items
        .iter()
        .filter(|d| d.spec.as_ref().and_then(|s| s.replicas) == Some(4));
    (scaled.count() == n).then_some(())
}

/// A request the apiserver answers 503 waits out kube's retries without its turn. With one
/// request at a time, a policy whose CPU trigger reads the metrics API of an APIService that is
/// down (answered 503, retried for minutes) does not stop another policy from acting.
#[tokio::test]
async fn a_request_waiting_to_retry_does_not_hold_the_line() {
    let (exporter, prometheus) = healthy_service().await;
    exporter.set("cpu_percent", &[], 300.0);
    prometheus.wait_for_query("cpu_percent").await.unwrap();
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    // metrics.k8s.io served by a Service that does not exist: the aggregator answers 503.
    let down = "apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service: {name: metrics-server, namespace: kube-system, port: 443}
";
    let (ok, _, err) = kubectl(&cp, &["apply", "-f", "-"], Some(down)).await;
    assert!(ok, "{err}");
    let ns = cp.create_namespace("retry").await.unwrap();
    for target in ["waits", "acts"] {
        objects::create::<Deployment>(&client, &ns, objects::workload("Deployment", target, 2))
            .await;
    }
    let on_metrics_api = objects::policy(
        "waits",
        json!({"scaling": {"interval": "1s", "triggers": [{
            "name": "cpu", "cpu": {},
            "scaleTargetRef": {"kind": "Deployment", "name": "waits"},
            "replicas": {"min": 2, "max": 4}
        }]}}),
    );
    objects::create::<LaunchPolicy>(&client, &ns, on_metrics_api).await;
    let op = Operator::start(&cp, &["--api-requests-in-flight=1"]).await;
    let path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods");
    let (ok, _, err) = kubectl(&cp, &["get", "--raw", &path], None).await;
    assert!(
        !ok && err.contains("ServiceUnavailable"),
        "the metrics API is down: {err}"
    );
    // The waiting policy's first reconcile is under way (its reads retried) before the other
    // policy exists.
    eventually(WAIT, "a reconcile in flight", || async {
        let started = op.metric("liftoff_reconciles_total").await;
        let completed = op.metric("liftoff_reconcile_duration_seconds_count").await;
        (started > completed).then_some(())
    })
    .await;
    let p = policy("acts", "acts", None, &prometheus.url());
    objects::create::<LaunchPolicy>(&client, &ns, p).await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    eventually(
        Duration::from_secs(30),
        "acts scaled while waits retries",
        || async {
            let d = deployments.get("acts").await.ok()?;
            (d.spec?.replicas == Some(4)).then_some(())
        },
    )
    .await;
    let (ok, _, err) = kubectl(
        &cp,
        &["delete", "apiservice", "v1beta1.metrics.k8s.io"],
        None,
    )
    .await;
    assert!(ok, "{err}");
}

/// Every one of the `n` policies `policies` lists has a value for its first trigger in status.
async fn all_sampled(policies: &Api<LaunchPolicy>, n: usize) {
    eventually(WAIT, "every policy sampled", || async {
        let list = policies.list(&Default::default()).await.ok()?;
        let sampled = list.items.iter().filter(|p| {
            let triggers = p
                .status
                .as_ref()
                .map(|s| s.triggers.as_slice())
                .unwrap_or_default();
            triggers.first().is_some_and(|t| t.value.is_some())
        });
        (sampled.count() == n).then_some(())
    })
    .await;
}

/// A counter of an operator's `/metrics` with the label `answer`, `sent` and `shared`.
async fn answers(op: &Operator, counter: &str) -> (f64, f64) {
    let text = op.metrics().await;
    let answered = |answer: &str| -> f64 {
        let prefix = format!("{counter}{{answer=\"{answer}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    (answered("sent"), answered("shared"))
}

/// The policies sampled (at least 100 answers), and at most one answer in five was sent: the
/// rest were shared.
fn assert_shared(sent: f64, shared: f64, what: &str) {
    assert!(
        sent + shared >= 100.0,
        "the policies sampled: {sent} + {shared}"
    );
    assert!(
        sent * 5.0 <= sent + shared,
        "{what}: {sent} sent, {shared} shared"
    );
}

/// `liftoff_prometheus_queries_total{answer}` of an operator, and Prometheus' own count of the
/// instant queries it answered.
async fn queries(op: &Operator, prometheus_port: u16) -> (f64, f64, f64) {
    let (sent, shared) = answers(op, "liftoff_prometheus_queries_total").await;
    let (_, prom) = http_get(prometheus_port, "/metrics")
        .await
        .expect("Prometheus /metrics");
    let received = prom
        .lines()
        .filter(|l| l.starts_with("prometheus_http_requests_total{"))
        .filter(|l| l.contains("handler=\"/api/v1/query\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    (sent, shared, received)
}

/// 20 policies sampling the same PromQL every second: the operator sends one request per
/// distinct query per reuse window (here each policy's 1 s interval), not one per policy.
#[tokio::test]
async fn policies_asking_the_same_query_share_one_request() {
    let (exporter, prometheus) = healthy_service().await;
    exporter.set("cpu_percent", &[], 20.0);
    prometheus.wait_for_query("cpu_percent").await.unwrap();
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("fleet").await.unwrap();
    objects::create::<Deployment>(&client, &ns, objects::workload("Deployment", "api", 2)).await;
    for i in 0..20 {
        let p = policy(&format!("p{i:02}"), "api", None, &prometheus.url());
        objects::create::<LaunchPolicy>(&client, &ns, p).await;
    }
    let op = Operator::start(&cp, &["--resync=30s"]).await;
    let policies = Api::<LaunchPolicy>::namespaced(client.clone(), &ns);
    all_sampled(&policies, 20).await;
    // 20 policies × 1 sample/s: 200 reconciles take about 10 s.
    let before = queries(&op, prometheus.port()).await;
    op.completes_reconciles(200).await;
    let after = queries(&op, prometheus.port()).await;
    let (sent, shared, received) = (after.0 - before.0, after.1 - before.1, after.2 - before.2);
    eprintln!("{sent} queries sent, {shared} shared; Prometheus received {received}");
    assert_shared(sent, shared, "20 policies asking one query");
    // Prometheus saw what the operator says it sent (and no more).
    assert!(received <= sent + 2.0, "{received} received, {sent} sent");
}

/// 20 policies reading one consumer group's lag on one topic every second: the operator reads
/// the broker once per reuse window (here each policy's 1 s interval), not once per policy, and
/// every policy still gets the lag.
#[tokio::test]
async fn policies_reading_the_same_consumer_lag_share_one_read() {
    let kafka = Kafka::start().await.unwrap();
    kafka.create_topic("task-events", 3).await.unwrap();
    support::kafka::produce(&kafka, "task-events", &[10, 10, 10]).await;
    support::kafka::commit(
        &kafka,
        "task-events",
        "task-workers",
        &[(0, 5), (1, 5), (2, 5)],
    )
    .await;
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("fleet").await.unwrap();
    for i in 0..20 {
        let spec = json!({"scaling": {"interval": "1s", "triggers": [{
            "name": "lag",
            "kafkaLag": {"bootstrapServers": kafka.bootstrap(), "topic": "task-events",
                         "consumerGroup": "task-workers", "threshold": 1000},
            "partitions": {"max": 3},
        }]}});
        objects::create::<LaunchPolicy>(&client, &ns, objects::policy(&format!("k{i:02}"), spec))
            .await;
    }
    let op = Operator::start(&cp, &["--resync=30s"]).await;
    let policies = Api::<LaunchPolicy>::namespaced(client.clone(), &ns);
    all_sampled(&policies, 20).await;
    let lags: Vec<Option<String>> = policies
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.status.as_ref()?.triggers.first()?.value.clone())
        .collect();
    assert!(
        lags.iter().all(|lag| lag.as_deref() == Some("15")),
        "each policy has the lag, 3 × (10 − 5): {lags:?}"
    );
    // 20 policies × 1 sample/s: 200 reconciles take about 10 s.
    let before = answers(&op, "liftoff_kafka_lag_reads_total").await;
    op.completes_reconciles(200).await;
    let after = answers(&op, "liftoff_kafka_lag_reads_total").await;
    let (sent, shared) = (after.0 - before.0, after.1 - before.1);
    eprintln!("{sent} lag reads sent, {shared} shared");
    assert_shared(sent, shared, "20 policies reading one group's lag");
}
