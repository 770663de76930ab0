//! Chaos soak: the example launch compressed to minutes, with real scaling (CPU through
//! Prometheus, Kafka lag on a real broker), while the operator is killed with SIGKILL over and
//! over and the apiserver, etcd, Prometheus and Kafka fail in turn. Everything is counted from
//! the servers' side (apiserver watches opened before the operator starts, the broker's
//! metadata), and every count of harm must be 0. A benchmark, not a test: `scripts/chaos-soak.sh`.
//!
//! Environment: `LIFTOFF_SOAK_KILLS` (default 100), `LIFTOFF_SOAK_BAKE` (default 40s),
//! `LIFTOFF_SOAK_SEED` (default: the time).

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use kube::{Api, ResourceExt};
use liftoff::crd::LaunchPolicy;
use liftoff_testenv::{Kafka, MetricsExporter, Prometheus};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;
use support::{
    Operator, control_plane, eventually,
    kafka::{commit, produce},
    load::Load,
    objects::{create, policy, stages, workload},
    recording::Recording,
};

const WAIT: Duration = Duration::from_secs(120);

/// A small deterministic generator (xorshift), so a failing run can be repeated by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `(stage, users, stageStartedAt)`: a stage entered again (a restarted bake) is a new value.
fn recorded_stage(lp: &LaunchPolicy) -> Option<(u32, String, String)> {
    let state = &lp.status.as_ref()?.rollout.as_ref()?.state;
    let started = state.stage_started_at.as_ref().map(|t| t.0.to_string());
    Some((
        state.stage?,
        state.users.to_string(),
        started.unwrap_or_default(),
    ))
}

/// `(stageIndex, maxUsers, updatedAt)`: a stage published again with a new start is a new value.
fn published(cm: &ConfigMap) -> Option<(String, String, String)> {
    let data = cm.data.as_ref()?;
    Some((
        data.get("stageIndex")?.clone(),
        data.get("maxUsers")?.clone(),
        data.get("updatedAt").cloned().unwrap_or_default(),
    ))
}

fn replicas(d: &Deployment) -> Option<i32> {
    d.spec.as_ref()?.replicas
}

/// Every trigger's `pendingAction` as `trigger from→to @decidedAt`, sorted.
fn pending(lp: &LaunchPolicy) -> Option<Vec<String>> {
    let triggers = &lp.status.as_ref()?.triggers;
    let mut actions: Vec<String> = triggers
        .iter()
        .filter_map(|t| {
            let p = t.pending_action.as_ref()?;
            Some(format!(
                "{} {}→{} @{}",
                t.name, p.from, p.to, p.decided_at.0
            ))
        })
        .collect();
    actions.sort();
    Some(actions)
}

fn version(lp: &LaunchPolicy) -> Option<String> {
    lp.resource_version()
}

fn phase(lp: &LaunchPolicy) -> Option<String> {
    Some(format!(
        "{:?}",
        lp.status.as_ref()?.rollout.as_ref()?.state.phase
    ))
}

/// The topic's partition count in the broker's metadata (unknown while the broker is down).
async fn partition_count(client: &Arc<BaseConsumer>) -> Option<usize> {
    let client = client.clone();
    tokio::task::spawn_blocking(move || {
        let metadata = client
            .fetch_metadata(Some("task-events"), Duration::from_secs(2))
            .ok()?;
        let topic = metadata.topics().first()?;
        (topic.error().is_none()).then(|| topic.partitions().len())
    })
    .await
    .ok()?
}

#[derive(Default, Debug)]
struct Chaos {
    operator_kills: u32,
    apiserver_restarts: u32,
    etcd_pauses: u32,
    prometheus_stops: u32,
    kafka_stops: u32,
    operator_panics: u32,
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench` lists benchmarks this way; nothing to list.
    }
    let kills: u32 = env_or("LIFTOFF_SOAK_KILLS", 100);
    let bake: String = env_or("LIFTOFF_SOAK_BAKE", "40s".to_string());
    // Never 0: xorshift would stay at 0.
    let seed: u64 = env_or(
        "LIFTOFF_SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs()),
    ) | 1;
    let mut rng = Rng(seed);
    let started = Instant::now();

    let mut cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("soak").await.unwrap();
    let exporter = Arc::new(MetricsExporter::start().await.unwrap());
    exporter.set("error_rate", &[], 0.0);
    exporter.set("p95_latency_seconds", &[], 0.2);
    let mut prometheus = Prometheus::start(&[exporter.target()], Duration::from_secs(1))
        .await
        .unwrap();
    let mut kafka = Kafka::start().await.unwrap();
    kafka.create_topic("task-events", 1).await.unwrap();
    produce(&kafka, "task-events", &[1500]).await;
    commit(&kafka, "task-events", "task-workers", &[(0, 0)]).await;

    create::<Deployment>(&client, &ns, workload("Deployment", "api", 2)).await;
    // Demand 700 (% of one pod): 2 → 4 → 6 → 8 → 10 replicas, 2 per 10 s; it never falls, so
    // any scale-down would be one taken on unknown or stale data.
    let _load = Load::start(exporter.clone(), client.clone(), &ns, "api", 700.0);
    let query = format!("max(cpu_utilization{{app=\"api\",namespace=\"{ns}\"}})");
    prometheus.wait_for_query(&query).await.unwrap();

    let policies = Api::<LaunchPolicy>::namespaced(client.clone(), &ns);
    let stage = Recording::start(policies.clone(), "launch", recorded_stage).await;
    let cohort = Recording::start(
        Api::<ConfigMap>::namespaced(client.clone(), &ns),
        "launch-cohort",
        published,
    )
    .await;
    let scaled = Recording::start(
        Api::<Deployment>::namespaced(client.clone(), &ns),
        "api",
        replicas,
    )
    .await;
    let intents = Recording::start(policies.clone(), "launch", pending).await;
    let versions = Recording::start(policies.clone(), "launch", version).await;

    let spec = json!({
        "prometheus": {"address": prometheus.url(), "timeout": "2s"},
        "statusRefresh": "1h",
        "scaling": {"interval": "1s", "triggers": [
            {"name": "api-cpu", "cpu": {"utilization": 70, "query": query},
             "scaleTargetRef": {"kind": "Deployment", "name": "api"},
             "replicas": {"min": 2, "max": 10},
             "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "period": "10s"}]}}},
            // lag 1500 over a threshold of 1000: 1 → 2 → 3 → 5 → 8 partitions, 5 s apart.
            {"name": "task-lag",
             "kafkaLag": {"bootstrapServers": kafka.bootstrap(), "topic": "task-events",
                          "consumerGroup": "task-workers", "threshold": 1000},
             "partitions": {"max": 8}, "cooldown": "5s"}
        ]},
        "rollout": {
            "stages": stages(&bake, "Automatic"),
            "gates": {"interval": "1s", "failureThreshold": 3, "checks": [
                {"name": "error-rate", "query": "max(error_rate)", "max": 0.001},
                {"name": "p95-latency-seconds", "query": "max(p95_latency_seconds)", "max": 0.5}
            ]},
            "cohort": {"configMap": {"name": "launch-cohort"}}
        }
    });
    let mut operator = Some(Operator::start(&cp, &["--resync=30s"]).await);
    create::<LaunchPolicy>(&client, &ns, policy("launch", spec)).await;

    let metadata: Arc<BaseConsumer> = Arc::new(support::kafka::config(&kafka).create().unwrap());
    let mut chaos = Chaos::default();
    // Control-plane outages: the test's own watches deliver late across them.
    let mut outages: Vec<(Instant, Instant)> = Vec::new();
    let done = |stage: &Recording<(u32, String, String)>, scaled: &Recording<i32>| {
        stage
            .values()
            .last()
            .is_some_and(|(_, users, _)| users == "All")
            && scaled.values().last() == Some(&10)
    };
    let mut partitions = 1;
    while chaos.operator_kills < kills || !done(&stage, &scaled) || partitions < 8 {
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "the soak did not finish in 30 min: {chaos:?}, stages {:?}, replicas {:?}, \
             partitions {partitions}",
            stage.values(),
            scaled.values()
        );
        // A fresh operator needs about a second to list, connect to Kafka and finish a
        // reconcile on this machine; faults 1–5 s apart leave it that chance some of the time.
        tokio::time::sleep(rng.millis(1000, 5000)).await;
        let roll = rng.below(100);
        if roll < 75 {
            let op = operator.take().expect("an operator runs between events");
            if op.logs().contains("panicked") {
                chaos.operator_panics += 1;
            }
            op.kill().await;
            chaos.operator_kills += 1;
            operator = Some(Operator::start(&cp, &["--resync=30s"]).await);
        } else if roll < 83 {
            let from = Instant::now();
            cp.restart_apiserver().await.unwrap();
            outages.push((from, Instant::now()));
            chaos.apiserver_restarts += 1;
        } else if roll < 90 {
            let from = Instant::now();
            cp.pause_etcd(true);
            tokio::time::sleep(rng.millis(500, 3000)).await;
            cp.pause_etcd(false);
            outages.push((from, Instant::now()));
            chaos.etcd_pauses += 1;
        } else if roll < 97 {
            prometheus.stop().await;
            tokio::time::sleep(rng.millis(1000, 4000)).await;
            prometheus.restart().await.unwrap();
            chaos.prometheus_stops += 1;
        } else if chaos.kafka_stops < 5 {
            kafka.stop_broker().await;
            tokio::time::sleep(rng.millis(1000, 4000)).await;
            kafka.restart().await.unwrap();
            chaos.kafka_stops += 1;
        }
        partitions = partition_count(&metadata).await.unwrap_or(partitions);
    }

    // The end: chaos stops; the operator gets ten more reconciles to write anything it would.
    let op = operator.take().unwrap();
    eventually(WAIT, "Completed", || async {
        (phase(&policies.get("launch").await.ok()?)? == "Completed").then_some(())
    })
    .await;
    intents
        .until("no pending action", |s| s.last().is_some_and(Vec::is_empty))
        .await;
    // The watch has delivered everything written so far before the count starts.
    let current = policies.get("launch").await.unwrap().resource_version();
    versions
        .until("the watch to catch up", |v| v.last() == current.as_ref())
        .await;
    let settled = versions.values().len();
    op.completes_reconciles(10).await;
    let current = policies.get("launch").await.unwrap().resource_version();
    versions
        .until("the watch to catch up again", |v| {
            v.last() == current.as_ref()
        })
        .await;
    let writes_after_end = versions.values().len() - settled;
    if op.logs().contains("panicked") {
        chaos.operator_panics += 1;
    }

    let expected: Vec<(u32, String)> = [(0, "100"), (1, "500"), (2, "1500"), (3, "All")]
        .map(|(i, u)| (i, u.to_string()))
        .to_vec();
    // Every distinct (stage, start) recorded: a stage entered twice shows twice.
    let entered: Vec<(u32, String)> = stage
        .values()
        .into_iter()
        .map(|(i, users, _)| (i, users))
        .collect();
    let stages_repeated = entered.len().saturating_sub(expected.len());
    let stages_skipped = expected.iter().filter(|e| !entered.contains(e)).count();
    let publications: Vec<(u32, String)> = cohort
        .values()
        .into_iter()
        .map(|(i, users, _)| (i.parse().unwrap_or(u32::MAX), users))
        .collect();
    let published_out_of_order = usize::from(publications != expected);
    let replicas_seen = scaled.values();
    let scale_downs = replicas_seen.windows(2).filter(|w| w[1] < w[0]).count();
    // The rate policy allows +2 pods per 10 s: two steps closer than that (less the watch's
    // delivery jitter) mean one step was decided twice. Steps seen during or just after a
    // control-plane outage are not judged: the watch delivers them late, bunched together.
    let late = |at: Instant| {
        outages
            .iter()
            .any(|(from, to)| at >= *from && at <= *to + Duration::from_secs(3))
    };
    let steps: Vec<Instant> = scaled.seen.borrow().iter().map(|(_, at)| *at).collect();
    let steps_too_close = steps
        .windows(2)
        .skip(1) // from the replicas found at the start to the first step: no rate limit yet
        .filter(|w| !late(w[0]) && !late(w[1]))
        .filter(|w| w[1] - w[0] < Duration::from_secs(9))
        .count();
    // A decision is `trigger from→to`; decided twice = recorded with two different times. The
    // watch re-lists after an apiserver restart and may miss a short-lived pendingAction, so
    // this is a lower bound; the step spacing above is the check that cannot miss.
    let mut decided: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for action in intents.values().into_iter().flatten() {
        let (what, at) = action.split_once(" @").unwrap();
        decided
            .entry(what.to_string())
            .or_default()
            .insert(at.to_string());
    }
    let doubled = decided.values().filter(|times| times.len() > 1).count();

    let harm = stages_repeated
        + stages_skipped
        + published_out_of_order
        + scale_downs
        + steps_too_close
        + doubled
        + writes_after_end
        + chaos.operator_panics as usize;
    println!("## Chaos soak, {}", k8s_openapi::jiff::Timestamp::now());
    println!();
    println!("seed {seed}, bake {bake}, {:.0?} in all", started.elapsed());
    println!();
    println!("| Chaos | Count |\n| --- | --- |");
    println!(
        "| operator SIGKILLed and restarted | {} |",
        chaos.operator_kills
    );
    println!(
        "| kube-apiserver restarted | {} |",
        chaos.apiserver_restarts
    );
    println!("| etcd paused (SIGSTOP 0.5–3 s) | {} |", chaos.etcd_pauses);
    println!(
        "| Prometheus stopped (1–4 s) | {} |",
        chaos.prometheus_stops
    );
    println!(
        "| Kafka broker stopped (1–4 s + restart) | {} |",
        chaos.kafka_stops
    );
    println!();
    println!("| Harm (must be 0) | Count |\n| --- | --- |");
    println!("| stages repeated | {stages_repeated} |");
    println!("| stages skipped | {stages_skipped} |");
    println!("| cohort published out of order | {published_out_of_order} |");
    println!("| scale-downs (demand never fell) | {scale_downs} |");
    println!("| replica steps closer than the rate policy allows (10 s) | {steps_too_close} |");
    println!("| actions recorded as decided twice | {doubled} |");
    println!("| status writes after the end (10 reconciles) | {writes_after_end} |");
    println!("| operator panics | {} |", chaos.operator_panics);
    println!();
    println!(
        "stages {entered:?}; replicas {replicas_seen:?}; partitions {partitions}; decisions {:?}",
        decided.keys().collect::<Vec<_>>()
    );
    drop(op);
    assert_eq!(harm, 0, "the soak found harm (see the tables above)");
}
