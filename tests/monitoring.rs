//! The chart's dashboard and alerts against a real Prometheus holding the operator's own series:
//! the real operator binary runs a launch that waits for a Go while a gate cannot be read, a kill
//! switch is off and a scale-up is refused by the apiserver; Prometheus scrapes the operator. Every
//! dashboard panel must show data, every alert query must run, and the alerts for what is wrong
//! must fire. (`tests/chart.rs` checks the rules' syntax with promtool; this checks their meaning.)

mod support;

use std::{collections::BTreeSet, time::Duration};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use liftoff::crd::LaunchPolicy;
use liftoff_testenv::{MetricsExporter, Prometheus};
use serde_json::{Value, json};
use support::{Operator, control_plane, eventually, kubectl, objects, repo_path};

const WAIT: Duration = Duration::from_secs(90);

/// Every `expr:` of the chart's PrometheusRule template, by alert name, as the default values
/// render it: the expressions carry no templating (only `for:` and the annotations do), except
/// the per-shard ones, which are skipped.
fn alert_exprs() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(repo_path("charts/liftoff/templates/prometheusrule.yaml")).unwrap();
    let mut out = Vec::new();
    let mut alert = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert: ") {
            alert = Some(name.to_string());
        } else if let Some(expr) = line.strip_prefix("expr: ") {
            let alert = alert.take().expect("expr after alert");
            // The per-shard variants (rendered only with `shards`) name their shard through
            // templating; tests/chart.rs checks them with promtool as rendered.
            if !expr.contains("{{") {
                out.push((alert, expr.to_string()));
            }
        }
    }
    out
}

/// Every panel of the dashboard with its queries, the variables set to match everything.
fn panels() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(repo_path("charts/liftoff/files/dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .map(|p| {
            let exprs = p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    t["expr"]
                        .as_str()
                        .unwrap()
                        .replace("$namespace", ".*")
                        .replace("$policy", ".*")
                        .replace("$__rate_interval", "1m")
                })
                .collect();
            (p["title"].as_str().unwrap().to_string(), exprs)
        })
        .collect()
}

/// The metric names the operator registers, from the generated table of docs/metrics.md (a unit
/// test keeps it equal to the registry).
fn registered() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo_path("docs/metrics.md")).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("| `liftoff_"))
        .map(|l| {
            let name: String = l
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            format!("liftoff_{name}")
        })
        .collect()
}

/// The `liftoff_*` names a query uses (a histogram's `_bucket` counts as the histogram).
fn names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("liftoff_"))
        .map(|w| w.trim_end_matches("_bucket").to_string())
        .collect()
}

#[tokio::test]
async fn every_panel_shows_data_and_the_alerts_for_what_is_wrong_fire() {
    let exporter = MetricsExporter::start().await.unwrap();
    exporter.set("error_rate", &[], 0.0);
    exporter.set("p95_latency_seconds", &[], 0.2);
    exporter.set("api_cpu_percent", &[], 20.0);
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("monitoring").await.unwrap();
    let api = objects::workload("Deployment", "api", 2);
    objects::create::<Deployment>(&client, &ns, api).await;
    objects::cap_replicas(&cp, &ns, 3).await;
    let op = Operator::start(&cp, &["--resync=30s"]).await;
    let operator = format!("127.0.0.1:{}", op.metrics_port);
    let targets = [exporter.target(), operator];
    let prometheus = Prometheus::start(&targets, Duration::from_secs(1))
        .await
        .unwrap();
    prometheus.wait_for_query("liftoff_leader").await.unwrap();

    let stages = json!([
        {"name": "internal-beta", "users": 100, "bake": "1s"},
        {"name": "gradual", "users": 500, "approval": "Manual"}
    ]);
    let mut spec = objects::rollout_spec(&prometheus.url(), stages, "Pause");
    spec["scaling"] = json!({"interval": "1s", "triggers": [{
        "name": "api-cpu", "cpu": {"query": "max(api_cpu_percent)"},
        "scaleTargetRef": {"kind": "Deployment", "name": "api"},
        "replicas": {"min": 2, "max": 8}
    }]});
    spec["contingency"] = json!({"configMap": "launch-switches",
                                 "killSwitches": [{"name": "reports"}]});
    let policy = json!({
        "apiVersion": "liftoff.dev/v1alpha1", "kind": "LaunchPolicy",
        "metadata": {"name": "launch"}, "spec": spec
    });
    objects::create::<LaunchPolicy>(&client, &ns, policy).await;
    let policies = Api::<LaunchPolicy>::namespaced(client.clone(), &ns);
    eventually(WAIT, "the Go awaited", || async {
        let phase = policies
            .get("launch")
            .await
            .ok()?
            .status?
            .rollout?
            .state
            .phase;
        (phase.as_str() == "AwaitingApproval").then_some(())
    })
    .await;
    let expr_of = |alert: &str| {
        let found = alert_exprs().into_iter().find(|(a, _)| a == alert);
        found.unwrap_or_else(|| panic!("no alert {alert}")).1
    };
    // Waiting for the Go (an unreadable gate would send the rollout back to Baking: a Go is only
    // awaited with healthy gates, so this is checked first).
    let waiting = prometheus
        .wait_for_query(&expr_of("LiftoffGoAwaited"))
        .await
        .unwrap();
    assert_eq!(waiting[0].labels["policy"], "launch");

    // What goes wrong: a switch turned off, a gate that cannot be read, a refused scale-up.
    let args = [
        "-n",
        &ns,
        "annotate",
        "lp/launch",
        "liftoff.dev/kill-switch=reports",
    ];
    let (ok, _, err) = kubectl(&cp, &args, None).await;
    assert!(ok, "{err}");
    exporter.remove("error_rate", &[]);
    exporter.set("api_cpu_percent", &[], 95.0);

    let known = registered();
    for (alert, expr) in alert_exprs() {
        for name in names(&expr) {
            assert!(
                known.contains(&name),
                "alert {alert} uses {name}, which Liftoff does not export"
            );
        }
        prometheus
            .query(&expr)
            .await
            .unwrap_or_else(|e| panic!("alert {alert}: {e:#}"));
    }
    for alert in [
        "LiftoffGateUnreadable",
        "LiftoffKillSwitchOff",
        "LiftoffScalingActionFailed",
    ] {
        let firing = prometheus.wait_for_query(&expr_of(alert)).await;
        let firing = firing.unwrap_or_else(|e| panic!("{alert} does not fire: {e:#}"));
        assert_eq!(firing[0].labels["policy"], "launch", "{alert}");
    }
    for (title, exprs) in panels() {
        for expr in &exprs {
            for name in names(expr) {
                assert!(
                    known.contains(&name),
                    "panel {title:?} uses {name}, which Liftoff does not export"
                );
            }
        }
        eventually(WAIT, &format!("data in panel {title:?}"), || async {
            for expr in &exprs {
                let samples = prometheus.query(expr).await;
                let samples = samples.unwrap_or_else(|e| panic!("panel {title:?}: {e:#}"));
                if !samples.is_empty() {
                    return Some(());
                }
            }
            None
        })
        .await;
    }
    let gate_up = prometheus
        .query(r#"liftoff_gate_up{gate="error-rate"}"#)
        .await
        .unwrap();
    assert_eq!(gate_up[0].value, 0.0);
    let bound = prometheus
        .query(r#"liftoff_gate_bound{gate="p95-latency-seconds",bound="max"}"#)
        .await
        .unwrap();
    assert_eq!(bound[0].value, 0.5);
}
