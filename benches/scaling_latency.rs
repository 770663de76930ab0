//! Benchmark, not a test: breach-to-action latency of every scaling trigger kind (issue 4,
//! "Performance"), measured against the real servers and the real operator binary, plus the
//! operator's memory. Not compiled by `cargo test`; run it with
//! `scripts/bench-scaling.sh` (release build, results as Markdown for `docs/benchmarks.md`).
//!
//! Each run of each kind uses fresh objects, so runs are independent: a new workload or topic
//! or ladder, a new LaunchPolicy sampling every [`INTERVAL`], a metric below the threshold until
//! the policy has been sampled once below it, then — after a phase delay that spreads the
//! breaches evenly over the sampling period — the metric is pushed above the threshold at `t0`
//! and the action is polled for every [`POLL`]. Latency = first observation of the action − `t0`.
//! `t0` is when the write that crosses the threshold has completed at the source (exporter gauge
//! set, produce acked, sessions established, `SET` answered). After a run its metric is put
//! back to a steady value (and, where the metric is server-wide — PostgreSQL sessions, Redis
//! memory — the policy's threshold is moved out of reach), and its policy stays alive: later
//! runs see the load of all earlier policies, sampled every interval, without their actions.
//!
//! Environment: `LIFTOFF_BENCH_RUNS` (default 20) runs per kind; `LIFTOFF_BENCH_TRIGGERS`
//! (default all: `cpu,kafkaLag,kafkaConsumers,databaseConnections,redisMemory,cacheResize`);
//! `LIFTOFF_BENCH_OUT`, a file to write the Markdown results to.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    future::Future,
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::Secret,
};
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use liftoff::{
    crd::{LaunchPolicy, TriggerStatus},
    sources::{kafka::Cluster, postgres::connection_count},
};
use liftoff_testenv::{Kafka, MetricsExporter, Postgres, Prometheus, Redis};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
};
use serde_json::{Value, json};
use support::{
    Operator,
    bench::{cpu_seconds, kib_to_mib, metric_sum, proc_status},
    control_plane, kafka as kafka_util,
    objects::{ack_object, create, install_crd, policy, workload},
};

/// `spec.scaling.interval` of every policy.
const INTERVAL: Duration = Duration::from_secs(2);
/// Prometheus' scrape interval (the CPU trigger reads the exporter through it).
const SCRAPE: Duration = Duration::from_secs(1);
/// How often the action is looked for: the resolution of the measurement.
const POLL: Duration = Duration::from_millis(20);
/// Longest wait for an action before the run counts as failed.
const ACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for setup steps (first sample, series scraped…).
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Headroom of the connection threshold above the count before the breach: other policies'
/// samples open sessions of their own for a few milliseconds, which must not breach it.
const PG_MARGIN: i64 = 4;
const MIB: i64 = 1024 * 1024;

/// What is measured: a trigger kind and the action it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Cpu,
    KafkaLag,
    /// A kafkaLag trigger with `consumers`: the consumer Deployment scaled.
    KafkaConsumers,
    DatabaseConnections,
    RedisMemory,
    /// A redisMemory trigger with `cacheResize` (Automatic): the ACK ReplicationGroup patched.
    CacheResize,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Cpu,
        Kind::KafkaLag,
        Kind::KafkaConsumers,
        Kind::DatabaseConnections,
        Kind::RedisMemory,
        Kind::CacheResize,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Cpu => "cpu",
            Kind::KafkaLag => "kafkaLag",
            Kind::KafkaConsumers => "kafkaConsumers",
            Kind::DatabaseConnections => "databaseConnections",
            Kind::RedisMemory => "redisMemory",
            Kind::CacheResize => "cacheResize",
        }
    }

    fn uses_kafka(self) -> bool {
        matches!(self, Kind::KafkaLag | Kind::KafkaConsumers)
    }

    fn uses_redis(self) -> bool {
        matches!(self, Kind::RedisMemory | Kind::CacheResize)
    }

    /// What crosses the threshold at `t0` → what is observed as the action.
    fn what(self) -> &'static str {
        match self {
            Kind::Cpu => "exporter gauge 50 → 140 % (Prometheus query) → Deployment `/scale` 1 → 2",
            Kind::KafkaLag => {
                "200 messages produced, lag 0 → 200 (threshold 100) → topic 1 → 2 partitions (broker metadata)"
            }
            Kind::KafkaConsumers => {
                "200 messages produced on a 2-partition topic, lag 0 → 200 (100 per consumer) → consumer Deployment `/scale` 1 → 2"
            }
            Kind::DatabaseConnections => {
                "8 PostgreSQL sessions opened (threshold: count + 4) → `status.triggers[0].recommendation`"
            }
            Kind::RedisMemory => {
                "2 MiB `SET` (threshold 80 % of `maxMemoryBytes` = used + 1 MiB) → StatefulSet `/scale` 1 → 2"
            }
            Kind::CacheResize => {
                "2 MiB `SET` (as above) → ACK `ReplicationGroup` `spec.cacheNodeType` large → xlarge (approval Automatic)"
            }
        }
    }

    /// The target: one sampling interval + 1 s, plus the scrape interval when the metric
    /// reaches the operator through Prometheus.
    fn budget(self) -> Duration {
        let scrape = if self == Kind::Cpu {
            SCRAPE
        } else {
            Duration::ZERO
        };
        INTERVAL + Duration::from_secs(1) + scrape
    }

    /// The name of run `i`'s policy.
    fn policy(self, i: usize) -> String {
        let prefix = match self {
            Kind::Cpu => "cpu",
            Kind::KafkaLag => "kafka",
            Kind::KafkaConsumers => "consumers",
            Kind::DatabaseConnections => "db",
            Kind::RedisMemory => "redis",
            Kind::CacheResize => "cache",
        };
        format!("{prefix}-{i}")
    }

    fn parse(s: &str) -> Kind {
        Kind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .unwrap_or_else(|| panic!("unknown trigger kind {s:?} in LIFTOFF_BENCH_TRIGGERS"))
    }
}

/// The outcome of one run.
enum Outcome {
    /// Breach → action, in this time; and the wall-clock time of the breach (to line it up with
    /// the operator's log).
    Acted(Duration, Timestamp),
    /// No action within [`ACTION_TIMEOUT`].
    TimedOut,
    /// The run could not be measured (e.g. the trigger was active before the breach).
    Invalid(String),
}

/// Everything a run needs: the control plane, the servers and the operator.
struct Bench {
    client: Client,
    ns: String,
    exporter: Option<MetricsExporter>,
    prometheus: Option<Prometheus>,
    kafka: Option<(Kafka, Cluster, AdminClient<DefaultClientContext>)>,
    postgres: Option<Postgres>,
    redis: Option<Redis>,
    operator: Operator,
}

#[tokio::main]
async fn main() {
    breach_to_action_latency().await;
}

async fn breach_to_action_latency() {
    let runs: usize = std::env::var("LIFTOFF_BENCH_RUNS")
        .ok()
        .map(|v| v.parse().expect("LIFTOFF_BENCH_RUNS is a number"))
        .unwrap_or(20);
    let kinds: Vec<Kind> = match std::env::var("LIFTOFF_BENCH_TRIGGERS") {
        Ok(list) if !list.trim().is_empty() => list.split(',').map(Kind::parse).collect(),
        _ => Kind::ALL.to_vec(),
    };
    let started = Instant::now();
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("bench").await.unwrap();

    let (exporter, prometheus) = if kinds.contains(&Kind::Cpu) {
        let exporter = MetricsExporter::start().await.unwrap();
        let prometheus = Prometheus::start(&[exporter.target()], SCRAPE)
            .await
            .unwrap();
        (Some(exporter), Some(prometheus))
    } else {
        (None, None)
    };
    let kafka = if kinds.iter().any(|k| k.uses_kafka()) {
        let kafka = Kafka::start().await.unwrap();
        let cluster = Cluster::connect(&kafka.bootstrap(), &BTreeMap::new()).unwrap();
        let admin = kafka_util::config(&kafka).create().expect("admin client");
        Some((kafka, cluster, admin))
    } else {
        None
    };
    let postgres = if kinds.contains(&Kind::DatabaseConnections) {
        let postgres = Postgres::start().await.unwrap();
        secret(&client, &ns, "pg", &postgres.url()).await;
        Some(postgres)
    } else {
        None
    };
    if kinds.contains(&Kind::CacheResize) {
        let crd = "tests/fixtures/ack-replicationgroup-crd.yaml";
        install_crd(&cp, crd, "replicationgroups").await;
    }
    let redis = if kinds.iter().any(|k| k.uses_redis()) {
        // A large limit the server never reaches; each policy sets its own `maxMemoryBytes`.
        let redis = Redis::start("1gb").await.unwrap();
        secret(&client, &ns, "redis", &redis.url()).await;
        Some(redis)
    } else {
        None
    };
    let operator_started = Instant::now();
    let operator = Operator::start(&cp, &[]).await;
    let pid = operator.pid().expect("operator running");
    let rss_start = proc_status(pid, "VmRSS");
    let threads_start = proc_status(pid, "Threads");
    let bench = Bench {
        client,
        ns,
        exporter,
        prometheus,
        kafka,
        postgres,
        redis,
        operator,
    };
    println!(
        "bench: {runs} runs × {:?}, operator pid {pid}, setup {:.1?}",
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        started.elapsed()
    );

    let measuring = Instant::now();
    let mut results: Vec<(Kind, Vec<(Outcome, Duration)>)> =
        kinds.iter().map(|&k| (k, Vec::new())).collect();
    let mut rss_max = rss_start;
    // Runs interleave the kinds, so every kind sees the same growing number of live policies.
    for i in 0..runs {
        for (k, (kind, outcomes)) in results.iter_mut().enumerate() {
            let phase = phase(i * kinds.len() + k);
            let outcome = match kind {
                Kind::Cpu => cpu_run(&bench, i, phase).await,
                Kind::KafkaLag => kafka_run(&bench, i, phase).await,
                Kind::KafkaConsumers => consumers_run(&bench, i, phase).await,
                Kind::DatabaseConnections => database_run(&bench, i, phase).await,
                Kind::RedisMemory => redis_run(&bench, i, phase).await,
                Kind::CacheResize => cache_run(&cp, &bench, i, phase).await,
            };
            let shown = match &outcome {
                Outcome::Acted(d, _) => format!("{:.3} s", d.as_secs_f64()),
                Outcome::TimedOut => format!("no action within {ACTION_TIMEOUT:?}"),
                Outcome::Invalid(why) => format!("not measured: {why}"),
            };
            println!(
                "run {i:>3} {:<20} phase {:>5.0} ms  {shown}",
                kind.name(),
                phase.as_secs_f64() * 1000.0
            );
            outcomes.push((outcome, phase));
        }
        rss_max = rss_max.max(proc_status(pid, "VmRSS"));
    }
    println!("runs took {:.0?}", measuring.elapsed());

    let policies = Api::<LaunchPolicy>::namespaced(bench.client.clone(), &bench.ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();
    let rss_end = proc_status(pid, "VmRSS");
    rss_max = rss_max.max(rss_end);
    let hwm = proc_status(pid, "VmHWM");
    let threads_end = proc_status(pid, "Threads");
    let cpu_seconds = cpu_seconds(pid);
    let alive = operator_started.elapsed();
    let metrics = bench.operator.metrics().await;
    let actions = metric_sum(&metrics, "liftoff_actions_total");
    let errors = metric_sum(&metrics, "liftoff_reconcile_errors_total");
    let reconciles = metric_sum(&metrics, "liftoff_reconciles_total");
    let status_writes = metric_sum(&metrics, "liftoff_status_writes_total");
    let reconcile_mean = metric_sum(&metrics, "liftoff_reconcile_duration_seconds_sum")
        / metric_sum(&metrics, "liftoff_reconcile_duration_seconds_count").max(1.0);

    let mut md = String::new();
    writeln!(
        md,
        "| Trigger | Breach → action observed | Runs | min | p50 | p99 | max | Budget | Within budget |"
    )
    .unwrap();
    writeln!(
        md,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    .unwrap();
    let mut raw = String::new();
    for (kind, outcomes) in &results {
        let mut acted: Vec<Duration> = outcomes
            .iter()
            .filter_map(|(o, _)| match o {
                Outcome::Acted(d, _) => Some(*d),
                _ => None,
            })
            .collect();
        let timed_out = outcomes
            .iter()
            .filter(|(o, _)| matches!(o, Outcome::TimedOut))
            .count();
        let invalid = outcomes.len() - acted.len() - timed_out;
        writeln!(
            raw,
            "- `{}`: {}",
            kind.name(),
            outcomes
                .iter()
                .map(|(o, phase)| {
                    let latency = match o {
                        Outcome::Acted(d, _) => format!("{:.2}", d.as_secs_f64()),
                        Outcome::TimedOut => "timeout".into(),
                        Outcome::Invalid(_) => "n/a".into(),
                    };
                    format!("{latency} ({:.2})", phase.as_secs_f64())
                })
                .collect::<Vec<_>>()
                .join(" ")
        )
        .unwrap();
        acted.sort();
        let within = acted.iter().filter(|d| **d <= kind.budget()).count();
        let mut runs_cell = acted.len().to_string();
        if timed_out > 0 {
            write!(runs_cell, " (+{timed_out} without action)").unwrap();
        }
        if invalid > 0 {
            write!(runs_cell, " (+{invalid} not measured)").unwrap();
        }
        let s = |d: Option<Duration>| {
            d.map_or("–".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
        };
        writeln!(
            md,
            "| `{}` | {} | {runs_cell} | {} | {} | {} | {} | {:.0} s | {within}/{} |",
            kind.name(),
            kind.what(),
            s(acted.first().copied()),
            s(percentile(&acted, 50.0)),
            s(percentile(&acted, 99.0)),
            s(acted.last().copied()),
            kind.budget().as_secs_f64(),
            outcomes.len(),
        )
        .unwrap();
    }
    writeln!(md).unwrap();
    md.push_str(&breakdown(&results, &bench.operator.logs()));
    writeln!(
        md,
        "Latency per run in run order, in seconds, with (in parentheses) the phase: how long \
         after the first sample below the threshold was seen the breach was made.\n\n{raw}"
    )
    .unwrap();
    writeln!(
        md,
        "Operator (release binary, `--resync` default, `RUST_LOG=info,liftoff=debug`): RSS {:.1} MiB \
         after start, peak sampled {:.1} MiB, {:.1} MiB at the end, VmHWM {:.1} MiB; {threads_start} threads after start, \
         {threads_end} at the end; {policies} \
         LaunchPolicies alive at the end, each sampled every {}s; {:.1} s of CPU in the {:.0} s since it \
         started ({:.1} % of one core); {reconciles:.0} reconciles (mean {:.1} ms), {status_writes:.0} status writes, \
         {actions:.0} actions taken, {errors:.0} reconcile errors.",
        kib_to_mib(rss_start),
        kib_to_mib(rss_max),
        kib_to_mib(rss_end),
        kib_to_mib(hwm),
        INTERVAL.as_secs(),
        cpu_seconds,
        alive.as_secs_f64(),
        100.0 * cpu_seconds / alive.as_secs_f64(),
        reconcile_mean * 1000.0,
    )
    .unwrap();

    // What outlives the policies: delete them all, give the operator a moment, look again.
    Api::<LaunchPolicy>::namespaced(bench.client.clone(), &bench.ns)
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("policies deleted");
    tokio::time::sleep(Duration::from_secs(5)).await;
    writeln!(
        md,
        "\nAfter deleting every LaunchPolicy (+5 s): RSS {:.1} MiB, {} threads.",
        kib_to_mib(proc_status(pid, "VmRSS")),
        proc_status(pid, "Threads"),
    )
    .unwrap();
    println!("\n{md}");
    if let Ok(path) = std::env::var("LIFTOFF_BENCH_OUT") {
        std::fs::write(&path, &md).expect("results written");
        println!("results written to {path}");
    }
    if errors > 0.0
        || results
            .iter()
            .any(|(_, o)| o.iter().any(|(o, _)| !matches!(o, Outcome::Acted(..))))
    {
        println!("operator log (last 40 lines):");
        let logs = bench.operator.logs();
        let lines: Vec<&str> = logs.lines().collect();
        for line in &lines[lines.len().saturating_sub(40)..] {
            println!("  {line}");
        }
    }
}

/// Where the time of each acted run went, from the operator's JSON log lined up with the
/// breach: breach → the decision's intent written to status (waiting for the next sample, the
/// sample itself, the decision), intent → the action's log line (the API call), action → seen by
/// the benchmark (the final status write for databaseConnections, and the poll).
fn breakdown(results: &[(Kind, Vec<(Outcome, Duration)>)], logs: &str) -> String {
    let mut by_policy: BTreeMap<String, Vec<(Timestamp, String, bool)>> = BTreeMap::new();
    for line in logs.lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let (Some(policy), Some(at), Some(message)) = (
            entry["span"]["policy"].as_str(),
            entry["timestamp"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok()),
            entry["message"].as_str(),
        ) else {
            continue;
        };
        by_policy.entry(policy.to_string()).or_default().push((
            at,
            message.to_string(),
            entry.get("action").is_some(),
        ));
    }
    let secs = |from: Timestamp, to: Timestamp| to.duration_since(from).as_secs_f64();
    let mut md = String::new();
    writeln!(
        md,
        "Where the time went, from the operator's log lined up with the breaches (p50 / max over \
         the runs; `databaseConnections` with `approval: Manual` writes no intent before its \
         action, so its first column ends with the action and its last one includes the status \
         write that shows the recommendation):\n\n\
         | Trigger | breach → decision in status (wait for the next sample, read, decide, write the intent) \
         | decision → action done (the API call) | action done → observed |\n\
         | --- | ---: | ---: | ---: |"
    )
    .unwrap();
    for (kind, outcomes) in results {
        let mut parts: [Vec<f64>; 3] = Default::default();
        for (i, (outcome, _)) in outcomes.iter().enumerate() {
            let Outcome::Acted(latency, breach) = outcome else {
                continue;
            };
            let Some(lines) = by_policy.get(&kind.policy(i)) else {
                continue;
            };
            let after = |pick: &dyn Fn(&(Timestamp, String, bool)) -> bool| {
                lines
                    .iter()
                    .filter(|l| l.0 >= *breach && pick(l))
                    .map(|l| l.0)
                    .min()
            };
            let Some(acted) = after(&|l| l.2) else {
                continue;
            };
            let observed = breach.saturating_add(*latency).expect("in range");
            // A recommendation is safe to repeat, so it has no intent write: its decision ends
            // at the action itself.
            match after(&|l| l.1 == "status updated").filter(|intent| *intent <= acted) {
                Some(intent) => {
                    parts[0].push(secs(*breach, intent));
                    parts[1].push(secs(intent, acted));
                }
                None => parts[0].push(secs(*breach, acted)),
            }
            parts[2].push(secs(acted, observed));
        }
        let cell = |v: &mut Vec<f64>| {
            if v.is_empty() {
                return "–".to_string();
            }
            v.sort_by(f64::total_cmp);
            format!("{:.2} / {:.2} s", v[(v.len() - 1) / 2], v[v.len() - 1])
        };
        let [a, b, c] = &mut parts;
        writeln!(
            md,
            "| `{}` | {} | {} | {} |",
            kind.name(),
            cell(a),
            cell(b),
            cell(c)
        )
        .unwrap();
    }
    writeln!(md).unwrap();
    md
}

/// Breach phases spread evenly over the sampling period (golden-ratio sequence): run `n`
/// breaches `phase(n)` after the first sample below the threshold was seen.
fn phase(n: usize) -> Duration {
    const GOLDEN: f64 = 0.618_033_988_749_895;
    INTERVAL.mul_f64((n as f64 * GOLDEN).fract())
}

/// Nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

// ---------------------------------------------------------------- the four kinds

async fn cpu_run(b: &Bench, i: usize, phase: Duration) -> Outcome {
    let exporter = b.exporter.as_ref().unwrap();
    let prometheus = b.prometheus.as_ref().unwrap();
    let app = format!("api-{i}");
    let policy_name = Kind::Cpu.policy(i);
    create::<Deployment>(&b.client, &b.ns, workload("Deployment", &app, 1)).await;
    exporter.set("cpu_utilization", &[("app", &app)], 50.0);
    prometheus
        .wait_for_query(&format!("cpu_utilization{{app=\"{app}\"}}"))
        .await
        .unwrap();
    let spec = json!({
        "prometheus": {"address": prometheus.url(), "timeout": "2s"},
        "scaling": {"interval": duration(INTERVAL), "triggers": [{
            "name": "cpu",
            "cpu": {"utilization": 70, "query": format!("max(cpu_utilization{{app=\"{app}\"}})")},
            "scaleTargetRef": {"kind": "Deployment", "name": app},
            "replicas": {"min": 1, "max": 2}
        }]}
    });
    create::<LaunchPolicy>(&b.client, &b.ns, policy(&policy_name, spec)).await;
    let acted =
        || async { (replicas::<Deployment>(&b.client, &b.ns, &app).await == 2).then_some(()) };
    let outcome = measure(b, &policy_name, phase, acted, || async {
        exporter.set("cpu_utilization", &[("app", &app)], 140.0);
    })
    .await;
    // Steady: 2 pods at the 70 % target, neither up nor down.
    exporter.set("cpu_utilization", &[("app", &app)], 70.0);
    outcome
}

async fn kafka_run(b: &Bench, i: usize, phase: Duration) -> Outcome {
    let (kafka, cluster, admin) = b.kafka.as_ref().unwrap();
    let (topic, group) = (format!("t-{i}"), format!("g-{i}"));
    let policy_name = Kind::KafkaLag.policy(i);
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("CreateTopics answered");
    for result in created {
        result.unwrap_or_else(|(t, e)| panic!("topic {t} not created: {e}"));
    }
    kafka_util::commit(kafka, &topic, &group, &[(0, 0)]).await;
    let spec = json!({"scaling": {"interval": duration(INTERVAL), "triggers": [{
        "name": "lag",
        "kafkaLag": {"bootstrapServers": kafka.bootstrap(), "topic": topic,
                     "consumerGroup": group, "threshold": 100},
        "partitions": {"max": 4}
    }]}});
    create::<LaunchPolicy>(&b.client, &b.ns, policy(&policy_name, spec)).await;
    let acted = || async {
        let count = cluster
            .partition_count(&topic, Duration::from_secs(2))
            .await
            .ok()?;
        (count == 2).then_some(())
    };
    let outcome = measure(b, &policy_name, phase, acted, || {
        kafka_util::produce(kafka, &topic, &[200])
    })
    .await;
    // Steady: the group has read everything (the new partition has no messages, so no lag).
    kafka_util::commit(kafka, &topic, &group, &[(0, 200)]).await;
    outcome
}

async fn consumers_run(b: &Bench, i: usize, phase: Duration) -> Outcome {
    let (kafka, _, admin) = b.kafka.as_ref().unwrap();
    let (topic, group, workers) = (format!("c-{i}"), format!("cg-{i}"), format!("workers-{i}"));
    let policy_name = Kind::KafkaConsumers.policy(i);
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 2, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("CreateTopics answered");
    for result in created {
        result.unwrap_or_else(|(t, e)| panic!("topic {t} not created: {e}"));
    }
    kafka_util::commit(kafka, &topic, &group, &[(0, 0), (1, 0)]).await;
    create::<Deployment>(&b.client, &b.ns, workload("Deployment", &workers, 1)).await;
    let spec = json!({"scaling": {"interval": duration(INTERVAL), "triggers": [{
        "name": "lag",
        "kafkaLag": {"bootstrapServers": kafka.bootstrap(), "topic": topic,
                     "consumerGroup": group, "threshold": 100},
        "partitions": {"max": 2},
        "consumers": {"scaleTargetRef": {"kind": "Deployment", "name": workers},
                      "lagPerReplica": 100, "max": 2}
    }]}});
    create::<LaunchPolicy>(&b.client, &b.ns, policy(&policy_name, spec)).await;
    let acted =
        || async { (replicas::<Deployment>(&b.client, &b.ns, &workers).await == 2).then_some(()) };
    let outcome = measure(b, &policy_name, phase, acted, || {
        kafka_util::produce(kafka, &topic, &[200])
    })
    .await;
    // Steady: the group has read everything (the consumers stay: scale-in waits 10m).
    kafka_util::commit(kafka, &topic, &group, &[(0, 200), (1, 0)]).await;
    outcome
}

async fn database_run(b: &Bench, i: usize, phase: Duration) -> Outcome {
    let postgres = b.postgres.as_ref().unwrap();
    let url = postgres.url();
    let policy_name = Kind::DatabaseConnections.policy(i);
    // The count as the operator sees it: the sampling session included.
    let before = pg_count(&url).await;
    let trigger = |threshold: i64| {
        json!([{
            "name": "connections",
            "databaseConnections": {"postgres": {"connectionSecretRef": {"name": "pg", "key": "url"}},
                                    "threshold": threshold},
            "rdsResize": {"dbInstanceIdentifier": format!("db-{i}"),
                          "classLadder": ["db.r6g.large", "db.r6g.xlarge"]}
        }])
    };
    let spec = json!({"scaling": {"interval": duration(INTERVAL), "triggers": trigger(before + PG_MARGIN)}});
    create::<LaunchPolicy>(&b.client, &b.ns, policy(&policy_name, spec)).await;
    let acted = || async {
        trigger_status(&b.client, &b.ns, &policy_name)
            .await?
            .recommendation
            .map(drop)
    };
    let sessions = std::sync::Mutex::new(Vec::new());
    let outcome = measure(b, &policy_name, phase, acted, || async {
        let opened =
            futures::future::join_all((0..2 * PG_MARGIN).map(|_| postgres.connect())).await;
        let opened: Vec<_> = opened
            .into_iter()
            .map(|s| s.expect("session opened"))
            .collect();
        *sessions.lock().unwrap() = opened;
    })
    .await;
    // Steady: the sessions close; wait (bounded) until the server has let them go, so the next
    // run's threshold is taken from a settled count.
    drop(sessions);
    // The connection count is server-wide: lift this policy's threshold out of reach so that
    // later runs' sessions do not make it cross again (it stays alive and sampled).
    retire(b, &policy_name, trigger(1_000_000)).await;
    let settled = Instant::now() + Duration::from_secs(10);
    while pg_count(&url).await > before + 1 && Instant::now() < settled {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    outcome
}

async fn redis_run(b: &Bench, i: usize, phase: Duration) -> Outcome {
    let redis = b.redis.as_ref().unwrap();
    let (sts, key) = (format!("redis-{i}"), format!("fill-{i}"));
    let policy_name = Kind::RedisMemory.policy(i);
    let used = redis_used_memory(redis).await;
    // 80 % of this limit is `used` + 1 MiB: below it now, above it after a 2 MiB write.
    let limit = ((used + MIB) as f64 / 0.8).ceil() as i64;
    create::<StatefulSet>(&b.client, &b.ns, workload("StatefulSet", &sts, 1)).await;
    let trigger = |limit: i64| {
        json!([{
            "name": "memory",
            "redisMemory": {"addressSecretRef": {"name": "redis", "key": "url"}, "threshold": 80,
                            "maxMemoryBytes": limit},
            "scaleTargetRef": {"kind": "StatefulSet", "name": sts},
            "replicas": {"min": 1, "max": 2}
        }])
    };
    let spec = json!({"scaling": {"interval": duration(INTERVAL), "triggers": trigger(limit)}});
    create::<LaunchPolicy>(&b.client, &b.ns, policy(&policy_name, spec)).await;
    let acted =
        || async { (replicas::<StatefulSet>(&b.client, &b.ns, &sts).await == 2).then_some(()) };
    let outcome = measure(b, &policy_name, phase, acted, || fill(redis, &key)).await;
    // Steady: the memory is freed again.
    redis.command(&["DEL", &key]).await.expect("DEL sent");
    // `used_memory` is server-wide: give this policy a limit later runs never reach.
    retire(b, &policy_name, trigger(64 * 1024 * MIB)).await;
    outcome
}

async fn cache_run(
    cp: &liftoff_testenv::ControlPlane,
    b: &Bench,
    i: usize,
    phase: Duration,
) -> Outcome {
    let redis = b.redis.as_ref().unwrap();
    let (group, key) = (format!("sessions-{i}"), format!("cache-fill-{i}"));
    let policy_name = Kind::CacheResize.policy(i);
    let used = redis_used_memory(redis).await;
    let limit = ((used + MIB) as f64 / 0.8).ceil() as i64;
    let groups = ack_object(
        cp,
        &b.client,
        &b.ns,
        (
            "elasticache.services.k8s.aws",
            "ReplicationGroup",
            "replicationgroups",
        ),
        json!({"metadata": {"name": group}, "spec": {"cacheNodeType": "cache.r7g.large"}}),
    )
    .await;
    let trigger = |limit: i64| {
        json!([{
            "name": "memory",
            "redisMemory": {"addressSecretRef": {"name": "redis", "key": "url"}, "threshold": 80,
                            "maxMemoryBytes": limit},
            "cacheResize": {"replicationGroupId": group, "approval": "Automatic",
                            "nodeTypeLadder": ["cache.r7g.large", "cache.r7g.xlarge"],
                            "ackReplicationGroupRef": {"name": group}}
        }])
    };
    let spec = json!({"scaling": {"interval": duration(INTERVAL), "triggers": trigger(limit)}});
    create::<LaunchPolicy>(&b.client, &b.ns, policy(&policy_name, spec)).await;
    let acted = || async {
        let o = groups.get(&group).await.ok()?;
        (o.data["spec"]["cacheNodeType"].as_str()? == "cache.r7g.xlarge").then_some(())
    };
    let outcome = measure(b, &policy_name, phase, acted, || fill(redis, &key)).await;
    redis.command(&["DEL", &key]).await.expect("DEL sent");
    retire(b, &policy_name, trigger(64 * 1024 * MIB)).await;
    outcome
}

/// The common part of a run: wait for a first sample below the threshold, wait `phase`, check
/// that nothing has acted yet, `breach`, then poll `acted` every [`POLL`].
async fn measure<A, AF, B, BF>(
    b: &Bench,
    policy_name: &str,
    phase: Duration,
    mut acted: A,
    breach: B,
) -> Outcome
where
    A: FnMut() -> AF,
    AF: Future<Output = Option<()>>,
    B: FnOnce() -> BF,
    BF: Future<Output = ()>,
{
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let below = loop {
        let status = trigger_status(&b.client, &b.ns, policy_name).await;
        match status {
            Some(s) if s.active => {
                return Outcome::Invalid(format!(
                    "active before the breach at {}",
                    s.value.unwrap_or_default()
                ));
            }
            Some(s) if s.value.is_some() && s.error.is_none() => break s,
            other if Instant::now() > deadline => {
                return Outcome::Invalid(format!("no sample below the threshold: {other:?}"));
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    tokio::time::sleep(phase).await;
    if acted().await.is_some() {
        return Outcome::Invalid(format!(
            "acted before the breach (first sample {})",
            below.value.unwrap_or_default()
        ));
    }
    breach().await;
    let t0 = Instant::now();
    let wall = Timestamp::now();
    loop {
        if acted().await.is_some() {
            return Outcome::Acted(t0.elapsed(), wall);
        }
        if t0.elapsed() > ACTION_TIMEOUT {
            return Outcome::TimedOut;
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------- helpers

/// Replaces the triggers of a measured policy (a spec change, so it is reconciled again).
async fn retire(b: &Bench, policy_name: &str, triggers: Value) {
    Api::<LaunchPolicy>::namespaced(b.client.clone(), &b.ns)
        .patch(
            policy_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"scaling": {"triggers": triggers}}})),
        )
        .await
        .expect("policy patched");
}

async fn secret(client: &Client, ns: &str, name: &str, url: &str) {
    create::<Secret>(
        client,
        ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
               "stringData": {"url": url}}),
    )
    .await;
}

fn duration(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

async fn replicas<K>(client: &Client, ns: &str, name: &str) -> i32
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), ns)
        .get_scale(name)
        .await
        .ok()
        .and_then(|s| s.spec)
        .and_then(|s| s.replicas)
        .unwrap_or(0)
}

/// The status of the policy's only trigger.
async fn trigger_status(client: &Client, ns: &str, policy: &str) -> Option<TriggerStatus> {
    let lp = Api::<LaunchPolicy>::namespaced(client.clone(), ns)
        .get(policy)
        .await
        .ok()?;
    lp.status?.triggers.into_iter().next()
}

async fn pg_count(url: &str) -> i64 {
    let open = liftoff::sources::address::AddressPolicy::allow_all();
    connection_count(url, Duration::from_secs(5), &open)
        .await
        .expect("connection count")
}

/// The breach of a Redis memory run: a 2 MiB value `SET` at `key`.
async fn fill(redis: &Redis, key: &str) {
    let blob = "x".repeat(2 * MIB as usize);
    let reply = redis.command(&["SET", key, &blob]).await.expect("SET sent");
    assert_eq!(reply.as_text().as_deref(), Some("OK"), "SET {key}");
}

async fn redis_used_memory(redis: &Redis) -> i64 {
    let info = redis
        .command(&["INFO", "memory"])
        .await
        .unwrap()
        .as_text()
        .expect("INFO text");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no used_memory in {info:?}"))
}
