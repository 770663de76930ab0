//! The replay over hand-made CSV recordings. `tests/simulate.rs` replays a real Prometheus and
//! compares with what the operator did live.

use std::time::Duration;

use super::{
    pick,
    recorded::{Recording, Window},
    replay::{Options, Replay, replay},
    wanted,
};

const T0: i64 = 1_800_000_000;

const POLICY: &str = r#"
apiVersion: liftoff.dev/v1alpha1
kind: LaunchPolicy
metadata: {name: shop, namespace: team}
spec:
  prometheus: {address: "http://prometheus:9090"}
  scaling:
    interval: 2s
    triggers:
      - name: api-cpu
        cpu: {query: max(api_cpu_percent)}
        scaleTargetRef: {kind: Deployment, name: api}
        replicas: {min: 2, max: 6}
      - name: lag
        kafkaLag: {bootstrapServers: "kafka:9092", topic: orders, consumerGroup: workers, threshold: 1000}
        partitions: {max: 12}
        cooldown: 10s
  rollout:
    stages:
      - {name: canary, users: 100, bake: 8s}
      - {name: gradual, users: 500, bake: 8s, approval: Manual}
      - {name: everyone, users: All}
    gates:
      interval: 2s
      failureThreshold: 2
      checks:
        - {name: error-rate, query: max(http_error_rate), max: 0.001}
"#;

/// `rows` of `(seconds after T0, api-cpu, lag, error-rate)`, every 2 s.
fn csv(rows: impl Fn(i64) -> (&'static str, &'static str, &'static str)) -> String {
    let mut text = "time,api-cpu,lag,error-rate\n".to_string();
    for t in (0..=60).step_by(2) {
        let (cpu, lag, err) = rows(t);
        text.push_str(&format!("{},{cpu},{lag},{err}\n", T0 + t));
    }
    text
}

fn run(data: &str, options: &Options) -> Replay {
    let window = Window {
        from: T0,
        to: T0 + 60,
        step: 2,
    };
    replay_csv(POLICY, data, window, options)
}

/// The replay of the policy in `yaml` over the CSV `data`.
fn replay_csv(yaml: &str, data: &str, window: Window, options: &Options) -> Replay {
    let policy = pick(yaml, None).unwrap();
    let wanted = wanted(&policy).unwrap();
    let recording =
        futures::executor::block_on(Recording::load(&wanted, Some(data), None, window)).unwrap();
    replay(&policy, &recording, window, options).unwrap()
}

/// The topic starts with 3 partitions; the Go is given as soon as it is asked for.
fn go_at_once() -> Options {
    Options {
        go_after: Some(Duration::ZERO),
        start: [("lag".to_string(), "3".to_string())].into(),
    }
}

/// `(seconds after T0, subject, kind, detail)` of every decision.
fn decisions(r: &Replay) -> Vec<(i64, String, String, String)> {
    r.decisions
        .iter()
        .map(|d| {
            (
                d.at - T0,
                d.subject.clone(),
                d.kind.clone(),
                d.detail.clone(),
            )
        })
        .collect()
}

fn has(r: &Replay, at: i64, subject: &str, kind: &str, detail: &str) -> bool {
    decisions(r).contains(&(at, subject.into(), kind.into(), detail.into()))
}

#[test]
fn a_calm_launch_advances_at_each_bake_with_the_go_given() {
    let r = run(&csv(|_| ("40", "10", "0.0001")), &go_at_once());
    let rollout: Vec<_> = decisions(&r)
        .into_iter()
        .filter(|d| d.1 == "rollout")
        .map(|d| (d.0, d.2, d.3))
        .collect();
    assert_eq!(
        rollout,
        [
            (0, "StageAdvanced".into(), "canary (100 users)".into()),
            (8, "AwaitingApproval".into(), "canary (100 users)".into()),
            (10, "StageAdvanced".into(), "gradual (500 users)".into()),
            (18, "StageAdvanced".into(), "everyone (all users)".into()),
            (22, "Completed".into(), "everyone (all users)".into()),
        ]
    );
    assert!(
        r.decisions.iter().all(|d| d.subject == "rollout"),
        "no scaling at 40 %"
    );
    assert_eq!(r.phase.as_deref(), Some("Completed"));
}

#[test]
fn without_a_go_the_rollout_waits_for_one() {
    let options = Options {
        go_after: None,
        ..go_at_once()
    };
    let r = run(&csv(|_| ("40", "10", "0.0001")), &options);
    assert_eq!(r.phase.as_deref(), Some("AwaitingApproval"));
    assert_eq!(r.users.last().map(|u| u.1.as_str()), Some("100"));
}

#[test]
fn a_cpu_spike_scales_with_the_hpa_maths_and_holds_the_next_stage() {
    let r = run(
        &csv(|t| match t {
            4..=10 => ("150", "10", "0.0001"),
            _ => ("40", "10", "0.0001"),
        }),
        &go_at_once(),
    );
    // 2 × 150 / 70 → 5, then 5 × 150 / 70 → 11, limited by replicas.max.
    assert!(has(&r, 4, "api-cpu", "ScaleUp", "2 → 5 replicas"), "{r:#?}");
    assert!(has(&r, 6, "api-cpu", "ScaleUp", "5 → 6 replicas"), "{r:#?}");
    // The canary has baked at 8 s, but the CPU is beyond its threshold until 12 s.
    assert!(
        has(&r, 10, "rollout", "HeldCapacity", "canary (100 users)"),
        "{r:#?}"
    );
    assert!(
        !decisions(&r)
            .iter()
            .any(|d| d.2 == "StageAdvanced" && d.0 < 12 && d.0 > 0)
    );
    // Scaling down waits for the 300 s stabilization window: not in this minute.
    assert!(!decisions(&r).iter().any(|d| d.2 == "ScaleDown"));
}

#[test]
fn an_unknown_sample_takes_no_action_and_a_gate_failure_pauses() {
    let r = run(
        &csv(|t| match t {
            4..=10 => ("unknown", "10", "0.0001"),
            12..=16 => ("40", "10", "0.05"),
            _ => ("40", "10", "0.0001"),
        }),
        &go_at_once(),
    );
    assert!(
        !r.decisions.iter().any(|d| d.subject == "api-cpu"),
        "{r:#?}"
    );
    let cpu = &r.triggers[0];
    assert_eq!(cpu.points.iter().filter(|(_, v)| v.is_none()).count(), 4);
    // The unknown CPU holds the Go'd stage (capacity unknown), then the gate fails there.
    assert!(
        has(&r, 10, "rollout", "HeldCapacity", "canary (100 users)"),
        "{r:#?}"
    );
    assert!(
        has(&r, 14, "rollout", "GateFailed", "canary (100 users)"),
        "{r:#?}"
    );
    assert!(
        has(&r, 14, "rollout", "Paused", "canary (100 users)"),
        "{r:#?}"
    );
    assert_eq!(r.phase.as_deref(), Some("Paused"));
}

#[test]
fn partitions_need_a_starting_count_and_then_follow_the_lag() {
    let spike = |t| match t {
        20..=30 => ("40", "5000", "0.0001"),
        _ => ("40", "10", "0.0001"),
    };
    let unknown = Options {
        start: Default::default(),
        ..go_at_once()
    };
    let r = run(&csv(spike), &unknown);
    assert!(!r.decisions.iter().any(|d| d.subject == "lag"), "{r:#?}");
    assert!(r.triggers[1].target[0].1.contains("--start lag=N"));
    // Unknown capacity holds the rollout, as it would live.
    assert!(has(&r, 0, "rollout", "HeldCapacity", "0 users"), "{r:#?}");
    let r = run(&csv(spike), &go_at_once());
    let lag: Vec<_> = decisions(&r).into_iter().filter(|d| d.1 == "lag").collect();
    // One action: the 10 s cooldown outlasts the spike.
    assert_eq!(lag.len(), 1, "{lag:?}");
    assert_eq!((lag[0].0, lag[0].2.as_str()), (20, "AddPartitions"));
}

#[test]
fn a_policy_the_apiserver_would_refuse_is_not_replayed() {
    let broken = POLICY.replace("max: 6}", "max: 1}");
    let error = pick(&broken, None).unwrap_err();
    assert!(error.contains("apiserver would refuse"), "{error}");
    let two = format!(
        "{POLICY}---{}",
        POLICY.replace("name: shop", "name: shop-2")
    );
    assert!(pick(&two, None).unwrap_err().contains("--name"));
    assert_eq!(
        pick(&two, Some("shop-2")).unwrap().metadata.name.as_deref(),
        Some("shop-2")
    );
}

#[test]
fn a_database_beyond_its_connections_gets_a_resize_recommended_once() {
    let policy = r#"
apiVersion: liftoff.dev/v1alpha1
kind: LaunchPolicy
metadata: {name: db, namespace: team}
spec:
  prometheus: {address: "http://prometheus:9090"}
  scaling:
    interval: 1m
    triggers:
      - name: db
        databaseConnections: {query: max(db_connections), threshold: 700}
        rdsResize:
          dbInstanceIdentifier: emr-prod
          classLadder: [db.r6g.large, db.r6g.xlarge, db.r6g.2xlarge]
          approval: Manual
"#;
    let mut data = "time,db\n".to_string();
    for m in 0..=30 {
        let connections = if (10..20).contains(&m) { 820 } else { 300 };
        data.push_str(&format!("{},{connections}\n", T0 + m * 60));
    }
    let window = Window {
        from: T0,
        to: T0 + 1800,
        step: 60,
    };
    let r = replay_csv(policy, &data, window, &Options::default());
    let kinds: Vec<(i64, &str, &str)> = r
        .decisions
        .iter()
        .map(|d| (d.at - T0, d.kind.as_str(), d.detail.as_str()))
        .collect();
    // Manual approval: a recommendation, not a resize; the cooldown keeps it to one.
    assert_eq!(
        kinds,
        [(
            600,
            "RecommendResize",
            "recommend emr-prod: db.r6g.large → db.r6g.xlarge"
        )]
    );
    assert_eq!(r.triggers[0].target.len(), 1, "nobody resized it");
}
