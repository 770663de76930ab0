//! Scaling triggers end to end: the real operator binary against a real apiserver and the real
//! metric servers (Prometheus scraping a test-controlled exporter, Kafka, PostgreSQL, Redis).
//! Needs `scripts/install-test-deps.sh` (run by `scripts/test.sh`).

mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::{Event, Secret},
};
use kube::{
    Api, Client,
    api::{DynamicObject, ListParams},
};
use liftoff::crd::{LaunchPolicy, TriggerStatus};
use liftoff_testenv::{
    ControlPlane, Kafka, MetricsExporter, PgSession, Postgres, Prometheus, Redis,
};
use serde_json::{Value, json};
use support::{
    Operator, control_plane, eventually, kafka as kafka_util, kubectl,
    load::Load,
    objects::{ack_object, create, install_crd, policy, replicas, workload},
};

const WAIT: Duration = Duration::from_secs(60);

async fn trigger_status(
    client: &Client,
    ns: &str,
    policy: &str,
    trigger: &str,
) -> Option<TriggerStatus> {
    let lp = Api::<LaunchPolicy>::namespaced(client.clone(), ns)
        .get(policy)
        .await
        .ok()?;
    lp.status?.triggers.into_iter().find(|t| t.name == trigger)
}

async fn condition(
    client: &Client,
    ns: &str,
    policy: &str,
    type_: &str,
) -> Option<(String, String, String)> {
    let lp = Api::<LaunchPolicy>::namespaced(client.clone(), ns)
        .get(policy)
        .await
        .ok()?;
    let c = lp
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status, c.reason, c.message))
}

/// The messages of the Events with `reason`, once per occurrence.
async fn events(client: &Client, ns: &str, reason: &str) -> Vec<String> {
    let list = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("events listed");
    list.items
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

struct Cpu {
    cp: ControlPlane,
    client: Client,
    ns: String,
    load: Load,
    prometheus: Prometheus,
    operator: Operator,
}

/// A Deployment `api` at 2 replicas with a CPU demand of 100 (50 % each), Prometheus scraping
/// it every second, a policy sampling every 2 s, and the operator.
async fn cpu_setup(name: &str, extra: Value) -> Cpu {
    cpu_setup_with(name, extra, 100.0, "2s", "30s").await
}

/// [`cpu_setup`] with a CPU `demand`, the policy's `interval` and the operator's `--resync`.
async fn cpu_setup_with(
    name: &str,
    extra: Value,
    demand: f64,
    interval: &str,
    resync: &str,
) -> Cpu {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace(name).await.unwrap();
    create::<Deployment>(&client, &ns, workload("Deployment", "api", 2)).await;
    let exporter = MetricsExporter::start().await.unwrap();
    let target = exporter.target();
    let load = Load::start(Arc::new(exporter), client.clone(), &ns, "api", demand);
    let prometheus = Prometheus::start(&[target], Duration::from_secs(1))
        .await
        .unwrap();
    prometheus.wait_for_query("cpu_utilization").await.unwrap();
    for (i, object) in extra
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let (ok, _, err) = kubectl(
            &cp,
            &["-n", &ns, "apply", "-f", "-"],
            Some(&object.to_string()),
        )
        .await;
        assert!(ok, "extra object {i}: {err}");
    }
    let spec = json!({
        "prometheus": {"address": prometheus.url(), "timeout": "2s"},
        "statusRefresh": "2s",
        "scaling": {"interval": interval, "triggers": [{
            "name": "api-cpu",
            "cpu": {"utilization": 70, "query": "max(cpu_utilization{app=\"api\"})"},
            "scaleTargetRef": {"kind": "Deployment", "name": "api"},
            "replicas": {"min": 2, "max": 10},
            "behavior": {"scaleDown": {"stabilizationWindow": "8s"}}
        }]}
    });
    create::<LaunchPolicy>(&client, &ns, policy("launch", spec)).await;
    let operator = Operator::start(&cp, &[&format!("--resync={resync}")]).await;
    Cpu {
        cp,
        client,
        ns,
        load,
        prometheus,
        operator,
    }
}

#[tokio::test]
async fn cpu_above_target_scales_up_per_hpa_maths_and_down_only_after_the_window() {
    let t = cpu_setup("cpu-scaling", json!([])).await;
    let (client, ns) = (&t.client, t.ns.as_str());
    // 50 % of a 70 % target with min 2: nothing to do.
    eventually(WAIT, "trigger status with the first value", || async {
        trigger_status(client, ns, "launch", "api-cpu")
            .await
            .filter(|s| s.value.is_some())
    })
    .await;
    assert_eq!(replicas::<Deployment>(client, ns, "api").await, 2);

    // Demand 280: 140 % on 2 pods → ceil(2 × 140 / 70) = 4, where it settles at 70 %.
    t.load.set(280.0);
    eventually(WAIT, "scale up to 4", || async {
        (replicas::<Deployment>(client, ns, "api").await == 4).then_some(())
    })
    .await;
    let status = eventually(WAIT, "the action in status", || async {
        trigger_status(client, ns, "launch", "api-cpu")
            .await
            .filter(|s| s.last_action.is_some())
    })
    .await;
    assert_eq!(
        status.last_action.as_deref(),
        Some("scaled Deployment api from 2 to 4 replicas")
    );
    assert_eq!(
        status.pending_action, None,
        "the intent is cleared once applied"
    );
    let ups = events(client, ns, "ScaleUp").await;
    assert!(
        ups.iter().any(|m| m.contains("from 2 to 4")),
        "ScaleUp event: {ups:?}"
    );
    assert!(t.operator.metrics().await.contains(
        &format!("liftoff_actions_total{{action=\"ScaleUp\",namespace=\"{ns}\",policy=\"launch\",trigger=\"api-cpu\"}} 1")
    ));
    t.operator.completes_reconciles(3).await;
    assert_eq!(
        replicas::<Deployment>(client, ns, "api").await,
        4,
        "settled at the target"
    );

    // Demand 140: 35 % on 4 pods → 2, but only after the 8 s scale-down stabilization window.
    t.load.set(140.0);
    let lowered = Instant::now();
    eventually(WAIT, "scale down to 2", || async {
        (replicas::<Deployment>(client, ns, "api").await == 2).then_some(())
    })
    .await;
    assert!(
        lowered.elapsed() >= Duration::from_secs(7),
        "scaled down after {:?}, before the 8 s stabilization window",
        lowered.elapsed()
    );
}

#[tokio::test]
async fn prometheus_down_means_no_scaling_and_the_status_names_the_source_until_it_returns() {
    let mut t = cpu_setup("cpu-source-down", json!([])).await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    eventually(WAIT, "first value", || async {
        trigger_status(&client, &ns, "launch", "api-cpu")
            .await
            .filter(|s| s.value.is_some())
    })
    .await;
    t.prometheus.stop().await;
    t.load.set(1000.0);
    let (_, reason, message) = eventually(WAIT, "Degraded=True SourceUnavailable", || async {
        condition(&client, &ns, "launch", "Degraded")
            .await
            .filter(|c| c.0 == "True")
    })
    .await;
    assert_eq!(reason, "SourceUnavailable");
    assert!(
        message.contains("api-cpu") && message.contains("prometheus"),
        "{message}"
    );
    let status = trigger_status(&client, &ns, "launch", "api-cpu")
        .await
        .unwrap();
    assert!(
        status
            .error
            .unwrap()
            .contains("prometheus http://127.0.0.1")
    );
    assert!(status.error_since.is_some());
    assert_eq!(status.value, None, "an unknown value is not shown as zero");
    assert!(t.operator.metrics().await.contains(&format!(
        "liftoff_trigger_source_up{{namespace=\"{ns}\",policy=\"launch\",trigger=\"api-cpu\"}} 0"
    )));
    t.operator.completes_reconciles(3).await;
    assert_eq!(
        replicas::<Deployment>(&client, &ns, "api").await,
        2,
        "no action on unknown data"
    );

    t.prometheus.restart().await.unwrap();
    eventually(
        WAIT,
        "recovery: scaled up once the source is back",
        || async { (replicas::<Deployment>(&client, &ns, "api").await > 2).then_some(()) },
    )
    .await;
    let (status, reason, _) = eventually(WAIT, "Degraded=False", || async {
        condition(&client, &ns, "launch", "Degraded")
            .await
            .filter(|c| c.0 == "False")
    })
    .await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "AsExpected"));

    // Renaming the trigger takes the old name's gauges off /metrics: no dashboard or alert keeps
    // showing a trigger that is gone (counters such as liftoff_actions_total keep their history).
    let series = |trigger: &str| {
        format!(
            "liftoff_trigger_source_up{{namespace=\"{ns}\",policy=\"launch\",trigger=\"{trigger}\"}} 1"
        )
    };
    assert!(t.operator.metrics().await.contains(&series("api-cpu")));
    let (ok, _, err) = kubectl(
        &t.cp,
        &["-n", &ns, "patch", "lp", "launch", "--type=json", "-p",
          r#"[{"op":"replace","path":"/spec/scaling/triggers/0/name","value":"api-cpu-renamed"}]"#],
        None,
    )
    .await;
    assert!(ok, "rename the trigger: {err}");
    let gone = |metrics: &str| {
        ["value", "threshold", "source_up"].iter().all(|gauge| {
            !metrics.contains(&format!(
                "liftoff_trigger_{gauge}{{namespace=\"{ns}\",policy=\"launch\",trigger=\"api-cpu\"}}"
            ))
        })
    };
    eventually(
        WAIT,
        "the renamed trigger's series, the old name's gone",
        || async {
            let metrics = t.operator.metrics().await;
            (metrics.contains(&series("api-cpu-renamed")) && gone(&metrics)).then_some(())
        },
    )
    .await;
    drop(t.cp);
}

#[tokio::test]
async fn an_hpa_on_the_same_deployment_is_refused_instead_of_fought() {
    let hpa = json!([{
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "api"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
                 "minReplicas": 2, "maxReplicas": 5}
    }]);
    let t = cpu_setup("cpu-hpa-conflict", hpa).await;
    let (client, ns) = (&t.client, t.ns.as_str());
    t.load.set(600.0);
    // A sample can fail transiently first (SourceUnavailable, e.g. a query timing out on a busy
    // machine); the refusal must show as soon as a sample asks for an action.
    let (_, _, message) = eventually(WAIT, "Degraded=True ScalingRefused", || async {
        condition(client, ns, "launch", "Degraded")
            .await
            .filter(|c| c.0 == "True" && c.1 == "ScalingRefused")
    })
    .await;
    assert!(
        message.contains("HorizontalPodAutoscaler api also scales Deployment api"),
        "{message}"
    );
    assert_eq!(replicas::<Deployment>(client, ns, "api").await, 2);
}

/// With `fallback`, a source that stays unreadable raises the Deployment to the known-safe count
/// once it has failed `afterFailures` samples in a row, not before.
#[tokio::test]
async fn a_fallback_raises_the_deployment_once_the_source_has_failed_enough_samples() {
    let mut t = cpu_setup("cpu-fallback", json!([])).await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let patch = json!([{"op": "add", "path": "/spec/scaling/triggers/0/fallback",
                        "value": {"afterFailures": 3, "replicas": 4}}]);
    let args = [
        "-n",
        &ns,
        "patch",
        "lp",
        "launch",
        "--type=json",
        "-p",
        &patch.to_string(),
    ];
    let (ok, _, err) = kubectl(&t.cp, &args, None).await;
    assert!(ok, "{err}");
    eventually(WAIT, "a first value", || async {
        trigger_status(&client, &ns, "launch", "api-cpu")
            .await
            .filter(|s| s.value.is_some())
    })
    .await;
    t.prometheus.stop().await;
    eventually(WAIT, "raised to the fallback", || async {
        (replicas::<Deployment>(&client, &ns, "api").await == 4).then_some(())
    })
    .await;
    let status = trigger_status(&client, &ns, "launch", "api-cpu")
        .await
        .unwrap();
    let since = status
        .error_since
        .clone()
        .expect("the outage is in status")
        .0;
    let acted = status
        .last_action_at
        .clone()
        .expect("the scale is recorded")
        .0;
    // Three samples 2 s apart: the first failure, then two more (times are whole seconds).
    assert!(
        acted.duration_since(since).as_secs() >= 3,
        "acted at {acted}, the source failed at {since}"
    );
    let last = status.last_action.unwrap_or_default();
    assert!(last.contains("from 2 to 4"), "{last}");
}

/// The war room pauses scale-out with an annotation, no spec edit: the hot trigger keeps being
/// sampled and says what it would have done, the Deployment stays put, and removing the
/// annotation lets the scale-up through.
#[tokio::test]
async fn an_annotation_pauses_scale_out_until_it_is_removed() {
    let t = cpu_setup("cpu-paused", json!([])).await;
    let (client, ns) = (&t.client, t.ns.as_str());
    let pause = ["-n", ns, "annotate", "lp", "launch"];
    let (ok, _, err) = kubectl(
        &t.cp,
        &[&pause[..], &["liftoff.dev/pause-scale-out=api-cpu"]].concat(),
        None,
    )
    .await;
    assert!(ok, "{err}");
    t.load.set(600.0);
    let held = eventually(WAIT, "the scale-up is held by the pause", || async {
        let status = trigger_status(client, ns, "launch", "api-cpu").await?;
        let message = status.message.unwrap_or_default();
        message
            .starts_with("scaling out is paused by the annotation liftoff.dev/pause-scale-out")
            .then_some(message)
    })
    .await;
    assert!(held.contains("would have acted: "), "{held}");
    assert_eq!(replicas::<Deployment>(client, ns, "api").await, 2);
    let degraded = condition(client, ns, "launch", "Degraded").await;
    assert!(
        degraded.as_ref().is_none_or(|c| c.1 != "ScalingRefused"),
        "a pause is not a refusal: {degraded:?}"
    );
    let (ok, _, err) = kubectl(
        &t.cp,
        &[&pause[..], &["liftoff.dev/pause-scale-out-"]].concat(),
        None,
    )
    .await;
    assert!(ok, "{err}");
    eventually(WAIT, "scaled up once the pause is lifted", || async {
        (replicas::<Deployment>(client, ns, "api").await > 2).then_some(())
    })
    .await;
}

/// Two LaunchPolicies scaling one Deployment would undo each other's changes: the first to claim
/// it scales it, the other is refused (naming the first) until the first lets go.
#[tokio::test]
async fn a_second_policy_on_the_same_deployment_is_refused_until_the_first_lets_go() {
    let t = cpu_setup("cpu-two-policies", json!([])).await;
    let (client, ns) = (&t.client, t.ns.as_str());
    let second = json!({
        "prometheus": {"address": t.prometheus.url(), "timeout": "2s"},
        "scaling": {"interval": "2s", "triggers": [{
            "name": "cpu",
            "cpu": {"utilization": 70, "query": "max(cpu_utilization{app=\"api\"})"},
            "scaleTargetRef": {"kind": "Deployment", "name": "api"},
            "replicas": {"min": 2, "max": 10}
        }]}
    });
    // Created after `launch` (or in the same second: then the first name holds it).
    create::<LaunchPolicy>(client, ns, policy("then-checkout", second)).await;
    t.load.set(600.0);
    let (_, _, message) = eventually(WAIT, "the second policy is refused", || async {
        condition(client, ns, "then-checkout", "Degraded")
            .await
            .filter(|c| c.0 == "True" && c.1 == "ScalingRefused")
    })
    .await;
    assert!(
        message.contains(
            "LaunchPolicy launch (trigger api-cpu) also scales Deployment api and claimed it first"
        ),
        "{message}"
    );
    // The scale is recorded in status after it is applied: wait for the record.
    eventually(WAIT, "the first policy scales up", || async {
        trigger_status(client, ns, "launch", "api-cpu")
            .await
            .filter(|s| s.last_action_at.is_some())
    })
    .await;
    assert!(replicas::<Deployment>(client, ns, "api").await > 2);
    let (ok, _, err) = kubectl(&t.cp, &["-n", ns, "delete", "lp", "launch"], None).await;
    assert!(ok, "{err}");
    // More load than the first policy's replicas carry: the second one must act on it now.
    t.load.set(2000.0);
    eventually(WAIT, "the second policy takes over and scales", || async {
        trigger_status(client, ns, "then-checkout", "cpu")
            .await
            .filter(|s| s.last_action_at.is_some())
    })
    .await;
    let degraded = condition(client, ns, "then-checkout", "Degraded").await;
    assert!(
        degraded.as_ref().is_none_or(|c| c.1 != "ScalingRefused"),
        "{degraded:?}"
    );
}

/// Deleting an HPA that held a trigger back, or the workload itself, is seen at once: the policy
/// is reconciled on the delete and its trigger sampled then, not at its next interval (1 h here)
/// or at the next resync (1 h).
#[tokio::test]
async fn deleting_the_hpa_or_the_workload_is_acted_on_at_once() {
    let hpa = json!([{
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "api"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
                 "minReplicas": 2, "maxReplicas": 5}
    }]);
    // 600 on 2 replicas: 300 % each, far beyond 70 %, from the first sample on.
    let t = cpu_setup_with("cpu-deletes", hpa, 600.0, "1h", "1h").await;
    let (client, ns) = (&t.client, t.ns.as_str());
    eventually(WAIT, "Degraded=True ScalingRefused", || async {
        condition(client, ns, "launch", "Degraded")
            .await
            .filter(|c| c.0 == "True" && c.1 == "ScalingRefused")
    })
    .await;
    let (ok, _, err) = kubectl(&t.cp, &["-n", ns, "delete", "hpa", "api"], None).await;
    assert!(ok, "{err}");
    eventually(WAIT, "scaled up once the HPA is gone", || async {
        (replicas::<Deployment>(client, ns, "api").await > 2).then_some(())
    })
    .await;
    let (ok, _, err) = kubectl(&t.cp, &["-n", ns, "delete", "deployment", "api"], None).await;
    assert!(ok, "{err}");
    let (_, reason, message) =
        eventually(WAIT, "Ready=False once the Deployment is gone", || async {
            condition(client, ns, "launch", "Ready")
                .await
                .filter(|c| c.0 == "False")
        })
        .await;
    assert!(message.contains("api"), "{reason}: {message}");
    let status = Api::<LaunchPolicy>::namespaced(client.clone(), ns)
        .get("launch")
        .await
        .unwrap()
        .status
        .unwrap();
    let error = status.triggers[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("target"),
        "the trigger says its target is gone: {error}"
    );
}

/// Topic `task-events` with 3 partitions of 1,000 messages each, and group `task-workers`
/// committed at the start of each: a lag of 3,000.
async fn lagging_topic(kafka: &Kafka) {
    kafka.create_topic("task-events", 3).await.unwrap();
    kafka_util::produce(kafka, "task-events", &[1_000, 1_000, 1_000]).await;
    kafka_util::commit(
        kafka,
        "task-events",
        "task-workers",
        &[(0, 0), (1, 0), (2, 0)],
    )
    .await;
}

#[tokio::test]
async fn kafka_lag_above_threshold_adds_partitions_once_per_cooldown_never_above_max() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("kafka-lag").await.unwrap();
    let kafka = Kafka::start().await.unwrap();
    lagging_topic(&kafka).await;
    let spec = json!({"statusRefresh": "2s", "scaling": {"interval": "1s", "triggers": [{
        "name": "task-events-lag",
        "kafkaLag": {"bootstrapServers": kafka.bootstrap(), "topic": "task-events",
                     "consumerGroup": "task-workers", "threshold": 1000},
        "partitions": {"max": 5},
        "cooldown": "1h"
    }]}});
    create::<LaunchPolicy>(&client, &ns, policy("launch", spec)).await;
    let operator = Operator::start(&cp, &["--resync=30s"]).await;

    // lag 3000 > 1000 → min(max 5, ceil(3 × 3000 / 1000) = 9) = 5 partitions.
    eventually(WAIT, "5 partitions in broker metadata", || async {
        (kafka.partitions("task-events").await.ok()? == 5).then_some(())
    })
    .await;
    let status = eventually(WAIT, "the action in status", || async {
        trigger_status(&client, &ns, "launch", "task-events-lag")
            .await
            .filter(|s| s.last_action.is_some())
    })
    .await;
    assert_eq!(
        status.last_action.as_deref(),
        Some("raised topic task-events from 3 to 5 partitions")
    );
    assert!(status.next_eligible_at.is_some(), "the cooldown is visible");
    // More lag within the cooldown: nothing more happens (and never above max anyway).
    kafka_util::produce(&kafka, "task-events", &[1_000, 1_000, 1_000]).await;
    operator.completes_reconciles(3).await;
    assert_eq!(kafka.partitions("task-events").await.unwrap(), 5);
    let adds = events(&client, &ns, "AddPartitions").await;
    assert_eq!(adds.len(), 1, "one action per cooldown: {adds:?}");
    let value = format!(
        "liftoff_trigger_value{{namespace=\"{ns}\",policy=\"launch\",trigger=\"task-events-lag\"}}"
    );
    assert!(operator.metrics().await.contains(&value), "{value}");
}

#[tokio::test]
async fn kafka_lag_scales_the_consumers_after_the_partitions_never_above_them() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("kafka-consumers").await.unwrap();
    let kafka = Kafka::start().await.unwrap();
    lagging_topic(&kafka).await;
    create::<Deployment>(&client, &ns, workload("Deployment", "workers", 1)).await;
    // The group's members are the Deployment's replicas, as its pods would be.
    let fleet = {
        let (client, ns) = (client.clone(), ns.clone());
        kafka_util::ConsumerFleet::follow(&kafka, "task-events", "task-workers", move || {
            let (client, ns) = (client.clone(), ns.clone());
            async move { replicas::<Deployment>(&client, &ns, "workers").await }
        })
    };
    // Lag 3,000 at 500 per consumer wants 6 consumers: more than the 3 partitions, and
    // partitions.max is 4.
    let spec = json!({"statusRefresh": "1h", "scaling": {"interval": "1s", "triggers": [{
        "name": "task-events-lag",
        "kafkaLag": {"bootstrapServers": kafka.bootstrap(), "topic": "task-events",
                     "consumerGroup": "task-workers", "threshold": 1000},
        "partitions": {"max": 4},
        "consumers": {"scaleTargetRef": {"kind": "Deployment", "name": "workers"},
                      "lagPerReplica": 500, "max": 10},
        "cooldown": "1h"
    }]}});
    create::<LaunchPolicy>(&client, &ns, policy("launch", spec)).await;
    let operator = Operator::start(&cp, &["--resync=30s"]).await;

    // Watched all along: never more consumers than partitions. Replicas are read first:
    // partitions only grow, so a later count can only be higher than the one they met.
    let seen = std::sync::Mutex::new(Vec::new());
    eventually(WAIT, "4 partitions and 4 consumers", || async {
        let consumers = replicas::<Deployment>(&client, &ns, "workers").await;
        let partitions = kafka.partitions("task-events").await.ok()? as i32;
        let mut seen = seen.lock().unwrap();
        if seen.last() != Some(&(partitions, consumers)) {
            seen.push((partitions, consumers));
        }
        (partitions == 4 && consumers == 4).then_some(())
    })
    .await;
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.iter().all(|(p, c)| c <= p),
        "consumers above partitions: {seen:?}"
    );
    assert_eq!(
        seen.first().map(|(_, c)| *c),
        Some(1),
        "the partitions move first: {seen:?}"
    );
    let status = eventually(WAIT, "the consumers' scale in status", || async {
        trigger_status(&client, &ns, "launch", "task-events-lag")
            .await
            .filter(|s| {
                s.last_action
                    .as_deref()
                    .is_some_and(|a| a.contains("workers"))
            })
    })
    .await;
    assert_eq!(
        status.last_action.as_deref(),
        Some("scaled Deployment workers from 1 to 4 replicas")
    );
    assert_eq!(events(&client, &ns, "AddPartitions").await.len(), 1);
    let ups = events(&client, &ns, "ScaleUp").await;
    assert_eq!(ups.len(), 1, "{ups:?}");
    assert!(
        ups[0].contains("capped by the 4 partitions, partitions.max 4"),
        "{ups:?}"
    );

    // The group follows: 4 members, one per partition.
    eventually(WAIT, "4 members in the consumer group", || async {
        (kafka_util::group_members(&kafka, "task-workers").await? == 4).then_some(())
    })
    .await;
    assert_eq!(fleet.wanted(), 4);
    // Nothing more: the partitions are at max, the consumers at the partition count.
    operator.completes_reconciles(3).await;
    assert_eq!(replicas::<Deployment>(&client, &ns, "workers").await, 4);
    assert_eq!(kafka.partitions("task-events").await.unwrap(), 4);
    drop(fleet);
}

async fn secret(client: &Client, ns: &str, name: &str, key: &str, value: &str) {
    create::<Secret>(
        client,
        ns,
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "stringData": {key: value}
        }),
    )
    .await;
}

/// The ACK `DBInstance` CRD, served; a `DBInstance` `emr-prod` at `db.r6g.xlarge`; a real
/// PostgreSQL holding 6 sessions and its URL in Secret `emr-db`. Returns the PostgreSQL, its
/// sessions and the `DBInstance`s' API.
async fn rds_setup(
    cp: &ControlPlane,
    client: &Client,
    ns: &str,
) -> (Postgres, Vec<PgSession>, Api<DynamicObject>) {
    install_crd(cp, "tests/fixtures/ack-dbinstance-crd.yaml", "dbinstances").await;
    let postgres = Postgres::start().await.unwrap();
    let mut sessions = Vec::new();
    for _ in 0..6 {
        sessions.push(postgres.connect().await.unwrap());
    }
    secret(client, ns, "emr-db", "url", &postgres.url()).await;
    let dbi = ack_object(
        cp,
        client,
        ns,
        ("rds.services.k8s.aws", "DBInstance", "dbinstances"),
        json!({"metadata": {"name": "emr-prod"}, "spec": {"dbInstanceClass": "db.r6g.xlarge"}}),
    )
    .await;
    (postgres, sessions, dbi)
}

/// The `DBInstance`'s `spec.dbInstanceClass`.
async fn class(dbi: &Api<DynamicObject>) -> Option<String> {
    let o = dbi.get("emr-prod").await.ok()?;
    o.data["spec"]["dbInstanceClass"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn database_connections_recommend_the_next_class_then_automatic_patches_the_ack_dbinstance() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("db-connections").await.unwrap();
    let (_postgres, sessions, dbi) = rds_setup(&cp, &client, &ns).await;
    let trigger = |approval: &str| {
        json!({
            "name": "emr-db",
            "databaseConnections": {"postgres": {"connectionSecretRef": {"name": "emr-db", "key": "url"}}, "threshold": 3},
            "rdsResize": {"dbInstanceIdentifier": "emr-prod", "approval": approval,
                          "classLadder": ["db.r6g.xlarge", "db.r6g.2xlarge", "db.r6g.4xlarge"],
                          "ackDBInstanceRef": {"name": "emr-prod"}},
            "cooldown": "1h"
        })
    };
    let spec = json!({"statusRefresh": "2s", "scaling": {"interval": "1s", "triggers": [trigger("Manual")]}});
    create::<LaunchPolicy>(&client, &ns, policy("launch", spec)).await;
    let operator = Operator::start(&cp, &["--resync=30s"]).await;

    let status = eventually(WAIT, "a recommendation", || async {
        trigger_status(&client, &ns, "launch", "emr-db")
            .await
            .filter(|s| s.recommendation.is_some())
    })
    .await;
    assert_eq!(
        status.recommendation.as_deref(),
        Some("resize emr-prod to db.r6g.2xlarge")
    );
    let (active, reason, _) = condition(&client, &ns, "launch", "ScalingActive")
        .await
        .unwrap();
    assert_eq!(
        (active.as_str(), reason.as_str()),
        ("True", "ThresholdExceeded")
    );
    let signals = events(&client, &ns, "RecommendResize").await;
    assert!(
        signals
            .iter()
            .any(|m| m.contains("from db.r6g.xlarge to db.r6g.2xlarge")),
        "{signals:?}"
    );
    assert_eq!(
        class(&dbi).await.as_deref(),
        Some("db.r6g.xlarge"),
        "Manual never patches"
    );

    // Approval Automatic: a new policy (fresh cooldown) patches the ACK object, one rung only.
    let spec = json!({"statusRefresh": "2s", "scaling": {"interval": "1s", "triggers": [trigger("Automatic")]}});
    create::<LaunchPolicy>(&client, &ns, policy("launch-auto", spec)).await;
    eventually(
        WAIT,
        "DBInstance class patched to the next rung",
        || async { (class(&dbi).await? == "db.r6g.2xlarge").then_some(()) },
    )
    .await;
    operator.completes_reconciles(3).await;
    assert_eq!(
        class(&dbi).await.as_deref(),
        Some("db.r6g.2xlarge"),
        "cooldown: no second rung"
    );
    drop(sessions);
    drop(operator);
}

#[tokio::test]
async fn a_recommended_resize_is_applied_once_when_the_war_room_approves_it() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("db-approval").await.unwrap();
    let (_postgres, sessions, dbi) = rds_setup(&cp, &client, &ns).await;
    let trigger = json!({
        "name": "emr-db",
        "databaseConnections": {"postgres": {"connectionSecretRef": {"name": "emr-db", "key": "url"}}, "threshold": 3},
        "rdsResize": {"dbInstanceIdentifier": "emr-prod", "approval": "Manual",
                      "classLadder": ["db.r6g.xlarge", "db.r6g.2xlarge", "db.r6g.4xlarge"],
                      "ackDBInstanceRef": {"name": "emr-prod"}},
        "cooldown": "3s"
    });
    let spec = json!({"statusRefresh": "1h", "scaling": {"interval": "1s", "triggers": [trigger]}});
    create::<LaunchPolicy>(&client, &ns, policy("launch", spec)).await;
    let operator = Operator::start(&cp, &["--resync=30s"]).await;
    let recommended = |to: &'static str| {
        let (client, ns) = (&client, &ns);
        move || async move {
            trigger_status(client, ns, "launch", "emr-db")
                .await
                .filter(|s| s.recommended_to.as_deref() == Some(to))
        }
    };
    let annotate = |value: &str| {
        let arg = format!("liftoff.dev/approve-resize={value}");
        let cp = &cp;
        let ns = ns.clone();
        async move {
            let (ok, _, err) = kubectl(
                cp,
                &["-n", &ns, "annotate", "--overwrite", "lp/launch", &arg],
                None,
            )
            .await;
            assert!(ok, "{err}");
        }
    };

    let status = eventually(WAIT, "a recommendation", recommended("db.r6g.2xlarge")).await;
    assert_eq!(
        status.recommendation.as_deref(),
        Some("resize emr-prod to db.r6g.2xlarge")
    );
    assert_eq!(class(&dbi).await.as_deref(), Some("db.r6g.xlarge"));

    // The Go: applied at once, one rung, and recorded with who gave it.
    annotate("emr-db@1").await;
    eventually(WAIT, "the approved class", || async {
        (class(&dbi).await? == "db.r6g.2xlarge").then_some(())
    })
    .await;
    let status = eventually(WAIT, "the approval recorded", || async {
        trigger_status(&client, &ns, "launch", "emr-db")
            .await
            .filter(|s| s.approval.is_some() && s.pending_action.is_none())
    })
    .await;
    let approval = status.approval.unwrap();
    assert_eq!(approval.command, "liftoff.dev/approve-resize=emr-db@1");
    assert!(
        approval
            .by
            .as_deref()
            .is_some_and(|b| b.starts_with("kubectl-annotate at ")),
        "{approval:?}"
    );
    assert_eq!(
        approval.outcome,
        "set DBInstance emr-prod (RDS emr-prod) class from db.r6g.xlarge to db.r6g.2xlarge"
    );
    let resized = events(&client, &ns, "ResizeDatabase").await;
    assert!(
        resized
            .iter()
            .any(|m| m.contains("approved by kubectl-annotate")),
        "{resized:?}"
    );

    // Still 6 connections over 3: after the cooldown the next rung is recommended. The Go
    // already taken does not apply it, however many samples pass.
    eventually(
        WAIT,
        "the next recommendation",
        recommended("db.r6g.4xlarge"),
    )
    .await;
    operator.completes_reconciles(5).await;
    assert_eq!(
        class(&dbi).await.as_deref(),
        Some("db.r6g.2xlarge"),
        "a Go is used once"
    );

    // A new value is a new Go, here from the console, which waits until the operator took it.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-launch"))
        .args(["-n", &ns, "approve-resize", "launch", "emr-db"])
        .env("KUBECONFIG", cp.kubeconfig_path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("recorded by the operator"), "{stdout}");
    assert!(stdout.contains("by kubectl-launch at "), "{stdout}");
    eventually(WAIT, "the second approved class", || async {
        (class(&dbi).await? == "db.r6g.4xlarge").then_some(())
    })
    .await;
    let status = trigger_status(&client, &ns, "launch", "emr-db")
        .await
        .unwrap();
    assert_eq!(status.recommendation, None);
    assert_eq!(
        events(&client, &ns, "ResizeDatabase").await.len(),
        2,
        "one resize per Go"
    );
    drop(sessions);
    drop(operator);
}

#[tokio::test]
async fn redis_memory_above_threshold_scales_the_statefulset_up_one_step() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("redis-memory").await.unwrap();
    let redis = Redis::start("2mb").await.unwrap();
    create::<StatefulSet>(&client, &ns, workload("StatefulSet", "redis", 3)).await;
    secret(&client, &ns, "redis", "url", &redis.url()).await;
    let spec = json!({"statusRefresh": "2s", "scaling": {"interval": "1s", "triggers": [{
        "name": "session-cache-memory",
        "redisMemory": {"addressSecretRef": {"name": "redis", "key": "url"}, "threshold": 80},
        "scaleTargetRef": {"kind": "StatefulSet", "name": "redis"},
        "replicas": {"min": 3, "max": 9},
        "cooldown": "1h"
    }]}});
    create::<LaunchPolicy>(&client, &ns, policy("launch", spec)).await;
    let operator = Operator::start(&cp, &["--resync=30s"]).await;
    eventually(WAIT, "a first reading below the threshold", || async {
        trigger_status(&client, &ns, "launch", "session-cache-memory")
            .await
            .filter(|s| s.value.is_some() && !s.active)
    })
    .await;
    // Fill past 80 % of 2 MiB with ~1.8 MiB of values.
    let blob = "x".repeat(16 * 1024);
    // maxmemory-policy noeviction: writes fail once full, which is fine here.
    for i in 0..128 {
        let _ = redis.command(&["SET", &format!("k{i}"), &blob]).await;
    }
    eventually(WAIT, "StatefulSet scaled from 3 to 4", || async {
        (replicas::<StatefulSet>(&client, &ns, "redis").await == 4).then_some(())
    })
    .await;
    operator.completes_reconciles(3).await;
    assert_eq!(
        replicas::<StatefulSet>(&client, &ns, "redis").await,
        4,
        "one step per cooldown"
    );
    let logs = operator.logs();
    assert!(
        !logs.contains(&redis.url()),
        "the Secret's URL must not be logged"
    );
}

#[tokio::test]
async fn redis_memory_on_elasticache_recommends_the_next_node_type_and_applies_it_once_approved() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("redis-elasticache").await.unwrap();
    install_crd(
        &cp,
        "tests/fixtures/ack-replicationgroup-crd.yaml",
        "replicationgroups",
    )
    .await;
    let groups = ack_object(
        &cp,
        &client,
        &ns,
        (
            "elasticache.services.k8s.aws",
            "ReplicationGroup",
            "replicationgroups",
        ),
        json!({"metadata": {"name": "sessions"}, "spec": {"cacheNodeType": "cache.r7g.large"}}),
    )
    .await;
    let node_type = || async {
        let o = groups.get("sessions").await.ok()?;
        o.data["spec"]["cacheNodeType"].as_str().map(str::to_owned)
    };
    let redis = Redis::start("2mb").await.unwrap();
    secret(&client, &ns, "redis", "url", &redis.url()).await;
    let spec = json!({"statusRefresh": "1h", "scaling": {"interval": "1s", "triggers": [{
        "name": "session-cache-memory",
        "redisMemory": {"addressSecretRef": {"name": "redis", "key": "url"}, "threshold": 80},
        "cacheResize": {"replicationGroupId": "sessions",
                        "nodeTypeLadder": ["cache.r7g.large", "cache.r7g.xlarge", "cache.r7g.2xlarge"],
                        "ackReplicationGroupRef": {"name": "sessions"}},
        "cooldown": "1h"
    }]}});
    create::<LaunchPolicy>(&client, &ns, policy("launch", spec)).await;
    let operator = Operator::start(&cp, &["--resync=30s"]).await;
    // Fill past 80 % of 2 MiB with ~1.8 MiB of values.
    let blob = "x".repeat(16 * 1024);
    for i in 0..128 {
        let _ = redis.command(&["SET", &format!("k{i}"), &blob]).await;
    }
    let status = eventually(WAIT, "a node type recommended", || async {
        trigger_status(&client, &ns, "launch", "session-cache-memory")
            .await
            .filter(|s| s.recommended_to.is_some())
    })
    .await;
    assert_eq!(
        status.recommendation.as_deref(),
        Some("resize sessions to cache.r7g.xlarge")
    );
    let recommended = events(&client, &ns, "RecommendResize").await;
    assert!(
        recommended
            .iter()
            .any(|m| m.contains("from cache.r7g.large to cache.r7g.xlarge")),
        "{recommended:?}"
    );
    assert_eq!(
        node_type().await.as_deref(),
        Some("cache.r7g.large"),
        "Manual never patches"
    );

    let (ok, _, err) = kubectl(
        &cp,
        &[
            "-n",
            &ns,
            "annotate",
            "lp/launch",
            "liftoff.dev/approve-resize=session-cache-memory@1",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    eventually(WAIT, "the approved node type", || async {
        (node_type().await? == "cache.r7g.xlarge").then_some(())
    })
    .await;
    let status = eventually(WAIT, "the approval recorded", || async {
        trigger_status(&client, &ns, "launch", "session-cache-memory")
            .await
            .filter(|s| s.approval.is_some() && s.pending_action.is_none())
    })
    .await;
    assert_eq!(
        status.approval.unwrap().outcome,
        "set ReplicationGroup sessions (ElastiCache sessions) node type from cache.r7g.large to \
         cache.r7g.xlarge"
    );
    assert_eq!(status.recommendation, None);
    assert_eq!(events(&client, &ns, "ResizeCache").await.len(), 1);
    operator.completes_reconciles(3).await;
    assert_eq!(
        node_type().await.as_deref(),
        Some("cache.r7g.xlarge"),
        "one rung per Go"
    );
}

#[tokio::test]
async fn kafka_lag_with_a_strimzi_topic_patches_its_partitions_instead_of_the_broker() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("kafka-strimzi").await.unwrap();
    let crd = support::repo_path("tests/fixtures/strimzi-kafkatopic-crd.yaml");
    let (ok, _, err) = kubectl(&cp, &["apply", "-f", crd.to_str().unwrap()], None).await;
    assert!(ok, "{err}");
    eventually(WAIT, "KafkaTopic CRD served", || async {
        kubectl(&cp, &["get", "kafkatopics", "-n", "default"], None)
            .await
            .0
            .then_some(())
    })
    .await;
    let topic = json!({"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic",
                       "metadata": {"name": "task-events"}, "spec": {"partitions": 3}});
    let (ok, _, err) = kubectl(
        &cp,
        &["-n", &ns, "apply", "-f", "-"],
        Some(&topic.to_string()),
    )
    .await;
    assert!(ok, "{err}");
    let kafka = Kafka::start().await.unwrap();
    lagging_topic(&kafka).await;
    let spec = json!({"scaling": {"interval": "1s", "triggers": [{
        "name": "task-events-lag",
        "kafkaLag": {"bootstrapServers": kafka.bootstrap(), "topic": "task-events",
                     "consumerGroup": "task-workers", "threshold": 1000},
        "partitions": {"max": 6, "strimziKafkaTopicRef": {"name": "task-events"}},
        "cooldown": "1h"
    }]}});
    create::<LaunchPolicy>(&client, &ns, policy("launch", spec)).await;
    let _operator = Operator::start(&cp, &["--resync=30s"]).await;

    // lag 3000 > 1000 → min(6, ceil(3 × 3000 / 1000) = 9) = 6, written to the KafkaTopic for
    // Strimzi's topic operator to apply; the broker itself is left to Strimzi.
    let topics = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &ns,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("kafka.strimzi.io", "v1beta2", "KafkaTopic"),
            "kafkatopics",
        ),
    );
    eventually(WAIT, "KafkaTopic spec.partitions = 6", || async {
        let t = topics.get("task-events").await.ok()?;
        (t.data["spec"]["partitions"] == 6).then_some(())
    })
    .await;
    assert_eq!(
        kafka.partitions("task-events").await.unwrap(),
        3,
        "the broker is Strimzi's job"
    );
    let status = trigger_status(&client, &ns, "launch", "task-events-lag")
        .await
        .unwrap();
    assert_eq!(
        status.last_action.as_deref(),
        Some("set KafkaTopic task-events partitions from 3 to 6")
    );
}

#[tokio::test]
async fn a_sample_no_pod_can_have_is_unknown_and_scales_nothing() {
    let t = cpu_setup("cpu-implausible", json!([])).await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    eventually(WAIT, "first value", || async {
        trigger_status(&client, &ns, "launch", "api-cpu")
            .await
            .filter(|s| s.value.is_some())
    })
    .await;
    // ~1e308 % CPU per pod: the report's sample that scaled a Deployment from 3 to 7.
    t.load.set(1.7e308);
    let (_, reason, message) =
        eventually(WAIT, "Degraded=True for the implausible sample", || async {
            condition(&client, &ns, "launch", "Degraded")
                .await
                .filter(|c| c.0 == "True")
        })
        .await;
    assert_eq!(reason, "SourceUnavailable");
    assert!(message.contains("above the plausible maximum"), "{message}");
    let status = trigger_status(&client, &ns, "launch", "api-cpu")
        .await
        .unwrap();
    assert_eq!(status.value, None, "no 309-digit value in status");
    // Evidence the operator had its chance to act on it: three more reconciles (one sample
    // every 2 s).
    let before = t.operator.metric("liftoff_reconciles_total").await;
    eventually(WAIT, "three more reconciles", || async {
        (t.operator.metric("liftoff_reconciles_total").await >= before + 3.0).then_some(())
    })
    .await;
    assert_eq!(
        replicas::<Deployment>(&client, &ns, "api").await,
        2,
        "no action on a sample that cannot be a measurement"
    );
    t.load.set(100.0);
    eventually(
        WAIT,
        "Degraded=False once the samples are plausible again",
        || async {
            condition(&client, &ns, "launch", "Degraded")
                .await
                .filter(|c| c.0 == "False")
        },
    )
    .await;
}
