//! High availability against a real apiserver: two operators with leader election, and the
//! leader killed with SIGKILL in the middle of a staged rollout and in the middle of a scale-up,
//! several times at different moments. What was done is counted from the apiserver's side:
//! watches on the cohort ConfigMap, the policy's status and the Deployment, opened before the
//! operators start, see every write either operator makes, whatever the operators believe.

mod support;

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use kube::Api;
use liftoff::{crd::LaunchPolicy, leader::LeaseSettings};
use liftoff_testenv::{ControlPlane, MetricsExporter, Prometheus};
use serde_json::json;
use support::{
    Operator, control_plane, eventually, healthy_service,
    load::Load,
    objects::{create, policy, rollout_spec, stages, workload},
    recording::Recording,
};

/// A short lease so that a takeover costs seconds, not the default 15 s.
const LEASE: Duration = Duration::from_secs(4);
const LEASE_ARG: &str = "4s";
/// Allowance for request latency and polling on a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(60);

/// Two operators watching `ns` only, with the Lease in `ns`: `op-a` leads, `op-b` stands by.
async fn pair(cp: &ControlPlane, ns: &str) -> (Operator, Operator) {
    let scope = format!("--namespace={ns}");
    let extra = [scope.as_str(), "--resync=30s"];
    let a = Operator::start_elected(cp, ns, "op-a", LEASE_ARG, &extra).await;
    eventually(SLACK, "op-a leads", || async {
        a.leads().await.then_some(())
    })
    .await;
    let b = Operator::start_elected(cp, ns, "op-b", LEASE_ARG, &extra).await;
    assert!(!b.leads().await, "op-b stands by");
    (a, b)
}

/// Kills `leader` with SIGKILL and waits for `standby` to lead and to finish its first
/// reconcile. Returns both delays, counted from the kill.
async fn kill_and_take_over(leader: Operator, standby: &Operator) -> (Duration, Duration) {
    leader.kill().await;
    let killed = Instant::now();
    // The standby takes the Lease once it has seen it unchanged for a whole lease duration,
    // checking every `retry_every`: up to one retry after expiry, from a renewal it saw up to
    // one retry late.
    let retry = LeaseSettings::from_duration(LEASE).retry_every;
    let bound = LEASE + 2 * retry + SLACK;
    eventually(bound, "the standby leads", || async {
        standby.leads().await.then_some(())
    })
    .await;
    let leads = killed.elapsed();
    eventually(bound, "the new leader's first reconcile", || async {
        let done = standby
            .metric("liftoff_reconcile_duration_seconds_count")
            .await;
        (done >= 1.0).then_some(())
    })
    .await;
    let reconciled = killed.elapsed();
    assert!(
        reconciled <= bound,
        "the standby led after {leads:?} and reconciled after {reconciled:?}: more than the \
         lease ({LEASE:?}) + two retries + {SLACK:?}"
    );
    (leads, reconciled)
}

/// `(stageIndex, maxUsers)` of the cohort ConfigMap.
fn published(cm: &ConfigMap) -> Option<(String, String)> {
    let data = cm.data.as_ref()?;
    Some((
        data.get("stageIndex")?.clone(),
        data.get("maxUsers")?.clone(),
    ))
}

/// `(stage, users)` of `status.rollout`, once a stage has been entered.
fn recorded_stage(lp: &LaunchPolicy) -> Option<(u32, String)> {
    let state = &lp.status.as_ref()?.rollout.as_ref()?.state;
    Some((state.stage?, state.users.to_string()))
}

fn phase(lp: &LaunchPolicy) -> Option<String> {
    let rollout = lp.status.as_ref()?.rollout.as_ref()?;
    Some(format!("{:?}", rollout.state.phase))
}

#[tokio::test]
async fn killing_the_leader_mid_rollout_neither_repeats_nor_skips_a_stage() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let (_exporter, prometheus) = healthy_service().await;
    let bake = Duration::from_secs(3);
    let expected: Vec<(String, String)> = [("0", "100"), ("1", "500"), ("2", "1500"), ("3", "All")]
        .map(|(i, users)| (i.to_owned(), users.to_owned()))
        .to_vec();

    // Kill once the status records stage 0 (maybe before its cohort is published), once the
    // cohort shows stage 1, and once the status records stage 2.
    for (run, kill_at) in [(0, "status 0"), (1, "cohort 1"), (2, "status 2")] {
        let started = Instant::now();
        let ns = cp.create_namespace("ha-rollout").await.unwrap();
        let cohort = Recording::start(
            Api::<ConfigMap>::namespaced(client.clone(), &ns),
            "launch-cohort",
            published,
        )
        .await;
        let stage = Recording::start(
            Api::<LaunchPolicy>::namespaced(client.clone(), &ns),
            "launch",
            recorded_stage,
        )
        .await;
        let (a, b) = pair(&cp, &ns).await;
        let spec = rollout_spec(&prometheus.url(), stages("3s", "Automatic"), "Pause");
        create::<LaunchPolicy>(&client, &ns, policy("launch", spec)).await;

        match kill_at.split_once(' ').unwrap() {
            ("status", i) => {
                let i: u32 = i.parse().unwrap();
                stage
                    .until(kill_at, |s| s.iter().any(|(n, _)| *n == i))
                    .await;
            }
            (_, i) => {
                cohort
                    .until(kill_at, |s| s.iter().any(|(n, _)| n == i))
                    .await
            }
        }
        let at_kill = cohort.values();
        let (leads, reconciled) = kill_and_take_over(a, &b).await;
        cohort
            .until("the cohort reaches All", |s| {
                s.last().is_some_and(|(_, users)| users == "All")
            })
            .await;
        let api = Api::<LaunchPolicy>::namespaced(client.clone(), &ns);
        eventually(WAIT, "Completed", || async {
            (phase(&api.get("launch").await.ok()?)? == "Completed").then_some(())
        })
        .await;

        assert_eq!(
            cohort.values(),
            expected,
            "run {run} (killed at {kill_at}): each stage published once, in order"
        );
        let entered: Vec<(String, String)> = stage
            .values()
            .into_iter()
            .map(|(i, users)| (i.to_string(), users))
            .collect();
        assert_eq!(
            entered, expected,
            "run {run} (killed at {kill_at}): each stage entered once, in order"
        );
        // No stage cut short either (a stage found unpublished bakes from its publication).
        // Stored times are whole seconds, so a bake may end up to 1 s early; and the cohort is
        // published after the status write and its Events, which takes a few hundred ms here.
        let precision = Duration::from_millis(1500);
        let seen = cohort.seen.borrow().clone();
        for step in seen.windows(2) {
            let baked = step[1].1 - step[0].1;
            assert!(
                baked >= bake - precision,
                "run {run}: stage {:?} lasted {baked:?}, its bake is {bake:?}",
                step[0].0
            );
        }
        let republished = b.logs().contains("was never published");
        eprintln!(
            "rollout run {run}: killed at {kill_at} (cohort {:?}); op-b led after {leads:.1?}, \
             reconciled after {reconciled:.1?}, found the stage unpublished: {republished}; run \
             took {:.1?}",
            at_kill,
            started.elapsed()
        );
    }
}

/// The Ready condition's status and reason, as the apiserver shows it.
fn ready(lp: &LaunchPolicy) -> Option<String> {
    let conditions = &lp.status.as_ref()?.conditions;
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    Some(format!("{} {}", ready.status, ready.reason))
}

/// `spec.replicas` of a Deployment.
fn deployment_replicas(d: &Deployment) -> Option<i32> {
    d.spec.as_ref()?.replicas
}

/// The first trigger's `pendingAction` as `(from, to, decidedAt)`, or `None` when there is none.
fn pending(lp: &LaunchPolicy) -> Option<Option<(String, String, String)>> {
    let trigger = lp.status.as_ref()?.triggers.first()?;
    Some(
        trigger
            .pending_action
            .as_ref()
            .map(|p| (p.from.clone(), p.to.clone(), p.decided_at.0.to_string())),
    )
}

#[tokio::test]
async fn killing_the_leader_mid_scale_up_takes_each_step_exactly_once() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let exporter = Arc::new(MetricsExporter::start().await.unwrap());
    let prometheus = Prometheus::start(&[exporter.target()], Duration::from_secs(1))
        .await
        .unwrap();
    let steps: Vec<(String, String)> = [("2", "4"), ("4", "6"), ("6", "8")]
        .map(|(from, to)| (from.to_owned(), to.to_owned()))
        .to_vec();

    // Kill as soon as the first decision is recorded (before or just after it is applied), as
    // soon as the Deployment shows the first step, and as soon as the second is decided.
    for (run, kill_at) in [(0, "pending 2"), (1, "replicas 4"), (2, "pending 4")] {
        let started = Instant::now();
        let ns = cp.create_namespace("ha-scaling").await.unwrap();
        create::<Deployment>(&client, &ns, workload("Deployment", "api", 2)).await;
        // Demand 560: 280 % on 2 pods, 140 % on 4, 93 % on 6, 70 % (the target) on 8.
        let _load = Load::start(exporter.clone(), client.clone(), &ns, "api", 560.0);
        let query = format!("max(cpu_utilization{{app=\"api\",namespace=\"{ns}\"}})");
        prometheus.wait_for_query(&query).await.unwrap();
        let replicas = Recording::start(
            Api::<Deployment>::namespaced(client.clone(), &ns),
            "api",
            deployment_replicas,
        )
        .await;
        let intents = Recording::start(
            Api::<LaunchPolicy>::namespaced(client.clone(), &ns),
            "launch",
            pending,
        )
        .await;
        let readiness = Recording::start(
            Api::<LaunchPolicy>::namespaced(client.clone(), &ns),
            "launch",
            ready,
        )
        .await;
        let (a, b) = pair(&cp, &ns).await;
        // At most 2 more pods per 3 s: each step is its own decision, whatever the metric says.
        let spec = json!({
            "prometheus": {"address": prometheus.url(), "timeout": "2s"},
            "statusRefresh": "2s",
            "scaling": {"interval": "1s", "triggers": [{
                "name": "api-cpu",
                "cpu": {"utilization": 70, "query": query},
                "scaleTargetRef": {"kind": "Deployment", "name": "api"},
                "replicas": {"min": 2, "max": 8},
                "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "period": "3s"}]},
                             "scaleDown": {"stabilizationWindow": "10m"}}
            }]}
        });
        create::<LaunchPolicy>(&client, &ns, policy("launch", spec)).await;

        match kill_at.split_once(' ').unwrap() {
            ("pending", from) => {
                intents
                    .until(kill_at, |s| s.iter().flatten().any(|(f, _, _)| f == from))
                    .await
            }
            (_, n) => {
                let n: i32 = n.parse().unwrap();
                replicas.until(kill_at, |s| s.contains(&n)).await
            }
        }
        let at_kill = (replicas.values(), intents.values().last().cloned());
        let (leads, reconciled) = kill_and_take_over(a, &b).await;
        replicas.until("8 replicas", |s| s.last() == Some(&8)).await;
        intents
            .until("no pending action", |s| s.last() == Some(&None))
            .await;
        // Three more samples by the new leader: time enough to take a step twice.
        let done = b.metric("liftoff_reconcile_duration_seconds_count").await;
        eventually(WAIT, "three more reconciles", || async {
            let now = b.metric("liftoff_reconcile_duration_seconds_count").await;
            (now >= done + 3.0).then_some(())
        })
        .await;

        assert_eq!(
            replicas.values(),
            [2, 4, 6, 8],
            "run {run} (killed at {kill_at}): each step once, in order"
        );
        assert_eq!(
            readiness.values(),
            ["True Ready"],
            "run {run}: a new leader does not report its target missing before its caches sync"
        );
        let decided: BTreeSet<(String, String, String)> =
            intents.values().into_iter().flatten().collect();
        let decisions: Vec<(String, String)> = decided
            .iter()
            .map(|(f, t, _)| (f.clone(), t.clone()))
            .collect();
        let mut sorted = decisions.clone();
        sorted.sort_by_key(|(from, _)| from.parse::<i32>().unwrap());
        assert_eq!(
            sorted,
            steps,
            "run {run} (killed at {kill_at}): one recorded decision per step, none re-decided: \
             {:?}",
            intents.values()
        );
        eprintln!(
            "scaling run {run}: killed at {kill_at} (replicas {:?}, pending {:?}); op-b led \
             after {leads:.1?}, reconciled after {reconciled:.1?}; run took {:.1?}",
            at_kill.0,
            at_kill.1.flatten(),
            started.elapsed()
        );
    }
}
