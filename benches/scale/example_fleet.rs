//! What the scale benchmark's policies carry beyond one `cpu` trigger: the example's rollout
//! (`LIFTOFF_BENCH_ROLLOUT=1`), or whole copies of `examples/emr-platform.yaml`
//! (`LIFTOFF_BENCH_FULL=1`) — four triggers over a real Kafka broker, a real Redis and
//! Prometheus, the rollout with its twelve gates and its cohort (ConfigMap and flagd flag), two
//! kill switches, four webhook notifications to a local receiver and two summary figures. Each
//! copy has its own workloads and ConfigMaps, as N teams' launches would, and every query is
//! answered within its bounds: nothing acts, so what is measured is what N launches cost to
//! watch, sample, gate and keep in status.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::{ConfigMap, Secret},
};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use liftoff_testenv::{Kafka, Redis};
use serde_json::{Value, json};

use super::support::{self, objects::workload};

/// The exporter series every replaced query reads (20 on the bench's exporter).
const SERIES: &str = "max(cpu_utilization{app=\"api\"})";

/// The example's Kafka topic and consumer group.
const TOPIC: &str = "task-events";
const GROUP: &str = "task-workers";

/// `examples/emr-platform.yaml`'s spec.
fn example_spec() -> Value {
    let text = std::fs::read_to_string(support::repo_path("examples/emr-platform.yaml"))
        .expect("the example");
    let example: Value = serde_yaml::from_str(&text).expect("the example parses");
    example["spec"].clone()
}

/// A query this bench's Prometheus answers with `value`, distinct per `tag` (so that distinct
/// queries of the example stay distinct queries).
fn constant(value: f64, tag: usize) -> Value {
    json!(format!("{SERIES} * 0 + {value} + 0 * {tag}"))
}

/// Every gate check's query replaced by one answered inside the check's bounds: the middle
/// when both are set, else just inside the one set.
fn gates_within_bounds(rollout: &mut Value) {
    for (i, check) in rollout["gates"]["checks"]
        .as_array_mut()
        .expect("gate checks")
        .iter_mut()
        .enumerate()
    {
        let (min, max) = (check["min"].as_f64(), check["max"].as_f64());
        let inside = match (min, max) {
            (Some(lo), Some(hi)) => (lo + hi) / 2.0,
            (Some(lo), None) => lo + 1.0,
            (None, Some(hi)) => hi - 1.0,
            (None, None) => 0.0,
        };
        check["query"] = constant(inside, i);
    }
}

/// The rollout of the example (its four stages and twelve gate checks) without its cohort, each
/// check answered within its bounds: every policy's canary starts and bakes, and its gates pass
/// at every evaluation.
pub fn example_rollout() -> Value {
    let mut rollout = example_spec()["rollout"].clone();
    rollout.as_object_mut().expect("a rollout").remove("cohort");
    gates_within_bounds(&mut rollout);
    rollout
}

/// The servers and Secrets a copy of the whole example reads, in the bench's namespace.
pub struct Servers {
    pub kafka: Kafka,
    /// Kept running for the copies' `redisMemory` triggers.
    pub redis: Redis,
    /// The bodies the webhook receiver took.
    pub posts: Arc<Mutex<Vec<String>>>,
}

impl Servers {
    /// Starts Kafka (the topic `task-events` with a committed, caught-up group `task-workers`),
    /// Redis and a webhook receiver, and stores the Secrets the example names (`redis`, `war-room`).
    pub async fn start(client: &Client, ns: &str) -> Servers {
        let kafka = Kafka::start().await.expect("Kafka starts");
        kafka.create_topic(TOPIC, 3).await.expect("topic created");
        support::kafka::commit(&kafka, TOPIC, GROUP, &[(0, 0), (1, 0), (2, 0)]).await;
        let redis = Redis::start("256mb").await.expect("Redis starts");
        let (hook, posts) = support::webhook::receiver().await;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        for (name, data) in [
            ("redis", json!({"url": redis.url()})),
            (
                "war-room",
                json!({"url": hook, "stakeholders": hook, "executives": hook, "status-page": hook}),
            ),
        ] {
            let secret: Secret = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name}, "stringData": data
            }))
            .unwrap();
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .expect("Secret created");
        }
        Servers {
            kafka,
            redis,
            posts,
        }
    }

    /// The example's spec over these servers and `prometheus`, every PromQL query answered
    /// within its bounds (CPU 20 % of a 70 % target, 100 database connections of 700, the
    /// gates inside theirs); Kafka lag 0, Redis far below 80 % of its maxmemory.
    pub fn example(&self, prometheus: &str) -> Value {
        let mut spec = example_spec();
        spec["prometheus"]["address"] = json!(prometheus);
        for trigger in spec["scaling"]["triggers"]
            .as_array_mut()
            .expect("triggers")
        {
            if let Some(cpu) = trigger.get_mut("cpu") {
                cpu["query"] = json!(SERIES);
            }
            if let Some(db) = trigger.get_mut("databaseConnections") {
                db["query"] = constant(100.0, 100);
            }
            if let Some(lag) = trigger.get_mut("kafkaLag") {
                lag["bootstrapServers"] = json!(self.kafka.bootstrap());
            }
        }
        gates_within_bounds(&mut spec["rollout"]);
        for (i, metric) in spec["summary"]["metrics"]
            .as_array_mut()
            .expect("summary metrics")
            .iter_mut()
            .enumerate()
        {
            metric["query"] = constant(1000.0, 200 + i);
        }
        spec
    }
}

/// The workloads of one copy, named after its policy: (kind, name, replicas at the example's
/// minimum, so nothing scales).
fn workloads_of(policy: &str) -> [(&'static str, String, i32); 3] {
    [
        ("Deployment", format!("api-{policy}"), 3),
        ("Deployment", format!("task-workers-{policy}"), 2),
        ("StatefulSet", format!("redis-{policy}"), 3),
    ]
}

/// `spec` as the policy `policy` carries it: its workloads and ConfigMaps named after it.
pub fn copy_for(spec: &Value, policy: &str) -> Value {
    let mut spec = spec.clone();
    let own = |v: &mut Value| *v = json!(format!("{}-{policy}", v.as_str().unwrap_or_default()));
    for trigger in spec["scaling"]["triggers"]
        .as_array_mut()
        .expect("triggers")
    {
        if trigger.get("scaleTargetRef").is_some() {
            own(&mut trigger["scaleTargetRef"]["name"]);
        }
        if trigger.get("consumers").is_some() {
            own(&mut trigger["consumers"]["scaleTargetRef"]["name"]);
        }
    }
    own(&mut spec["rollout"]["cohort"]["configMap"]["name"]);
    own(&mut spec["rollout"]["cohort"]["flagd"]["configMap"]);
    own(&mut spec["contingency"]["configMap"]);
    spec
}

/// Creates the workloads of the policies `p-00000…`, `in_flight` at once; the errors.
pub async fn create_workloads(
    client: &Client,
    ns: &str,
    n: usize,
    in_flight: usize,
) -> Vec<String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    futures::stream::iter((0..n).flat_map(|i| workloads_of(&format!("p-{i:05}"))))
        .map(|(kind, name, replicas)| {
            let (deployments, statefulsets) = (&deployments, &statefulsets);
            async move {
                let object = workload(kind, &name, replicas);
                let created = match kind {
                    "Deployment" => deployments
                        .create(
                            &PostParams::default(),
                            &serde_json::from_value(object).unwrap(),
                        )
                        .await
                        .map(drop),
                    _ => statefulsets
                        .create(
                            &PostParams::default(),
                            &serde_json::from_value(object).unwrap(),
                        )
                        .await
                        .map(drop),
                };
                created.map_err(|e| format!("{kind} {name}: {e}"))
            }
        })
        .buffer_unordered(in_flight)
        .filter_map(|r| futures::future::ready(r.err()))
        .collect()
        .await
}

impl Servers {
    /// CPU seconds Kafka and Redis have used since they started.
    pub fn cpu_seconds(&self) -> (f64, f64) {
        let used = |pid: Option<u32>| pid.map_or(0.0, support::bench::cpu_seconds);
        (used(self.kafka.pid()), used(self.redis.pid()))
    }
}

/// The ConfigMaps the operator wrote for the copies (cohort, flags, kill switches).
pub async fn configmaps(client: &Client, ns: &str) -> usize {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut count = 0;
    let mut params = ListParams::default().limit(500);
    loop {
        let Ok(page) = api.list_metadata(&params).await else {
            return count;
        };
        count += page.items.len();
        match page.metadata.continue_ {
            Some(next) if !next.is_empty() => params = params.continue_token(&next),
            _ => return count,
        }
    }
}
