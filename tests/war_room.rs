//! War-room communications end to end: the real operator binary against a real apiserver, gates
//! and triggers read from a real Prometheus scraping a test-controlled exporter, and a local
//! webhook receiver standing in for the war-room channel. The launch's schedule is compressed to
//! seconds: fixed updates at H+0s, H+15s, H+30s and the launch report at 45s.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap, core::v1::Secret};
use kube::{Api, api::PostParams};
use liftoff::crd::LaunchPolicy;
use serde_json::{Value, json};
use support::{Operator, control_plane, eventually, healthy_service, kubectl, objects};

const WAIT: Duration = Duration::from_secs(90);

/// `(label, text)` of every chat message received, in order; the JSON-format bodies apart.
fn chat(received: &Mutex<Vec<String>>) -> Vec<(String, String)> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter_map(|b| {
            let text = serde_json::from_str::<Value>(b).unwrap()["text"]
                .as_str()?
                .to_owned();
            let (_, rest) = text.split_once("] ")?;
            let (label, body) = rest.split_once(": ")?;
            Some((label.to_owned(), body.to_owned()))
        })
        .collect()
}

fn json_bodies(received: &Mutex<Vec<String>>) -> Vec<Value> {
    let all = received.lock().unwrap().clone();
    all.iter()
        .map(|b| serde_json::from_str::<Value>(b).unwrap())
        .filter(|v| v.get("event").is_some())
        .collect()
}

/// Waits for a chat message labelled `label` whose text contains `part`; returns its text.
async fn message(received: &Arc<Mutex<Vec<String>>>, label: &str, part: &str) -> String {
    eventually(
        WAIT,
        &format!("a {label} message with {part:?}"),
        || async {
            chat(received)
                .into_iter()
                .find(|(l, t)| l == label && t.contains(part))
                .map(|(_, t)| t)
        },
    )
    .await
}

/// Position of the first chat message labelled `label` containing `part`.
fn position(received: &Mutex<Vec<String>>, label: &str, part: &str) -> usize {
    chat(received)
        .iter()
        .position(|(l, t)| l == label && t.contains(part))
        .unwrap_or_else(|| panic!("no {label} with {part:?}"))
}

#[tokio::test]
async fn the_war_room_hears_every_decision_the_fixed_updates_and_the_report() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("war-room").await.unwrap();
    let (exporter, prometheus) = healthy_service().await;
    exporter.set("users_online", &[], 312.0);
    exporter.set("api_cpu_percent", &[], 20.0);
    let url = prometheus.url();

    // The API on 2 replicas; an admission policy refuses more than 3, so a second scale-up
    // fails for real.
    let api = objects::workload("Deployment", "api", 2);
    objects::create::<Deployment>(&client, &ns, api).await;
    objects::cap_replicas(&cp, &ns, 3).await;

    // The gate's failure is refused once and arrives with its retry, half a second later: the
    // pause decided with it must still be read after it.
    let (hook, received) = support::webhook::receiver_refusing("] GateFailed: ").await;
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "war-room"},
        "stringData": {"url": hook.clone(), "json": hook}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let stages = json!([
        {"name": "internal-beta", "users": 100, "bake": "2s"},
        {"name": "gradual", "users": 500, "bake": "1h", "approval": "Manual"},
        {"name": "everyone", "users": "All", "approval": "Manual"}
    ]);
    let mut spec = objects::rollout_spec(&url, stages, "Pause");
    spec["scaling"] = json!({"interval": "1s", "triggers": [{
        "name": "api-cpu", "cpu": {"query": "max(api_cpu_percent)"},
        "scaleTargetRef": {"kind": "Deployment", "name": "api"},
        "replicas": {"min": 2, "max": 8}
    }]});
    spec["notifications"] = json!([
        {"webhookSecretRef": {"name": "war-room", "key": "url"},
         "summaryAt": ["0s", "15s", "30s"]},
        {"webhookSecretRef": {"name": "war-room", "key": "json"}, "format": "Json",
         "events": ["LaunchReport"], "summaryAt": ["0s"]}
    ]);
    spec["contingency"] = json!({"configMap": "launch-switches",
                                 "killSwitches": [{"name": "reports", "description": "PDF reports"}]});
    spec["summary"] = json!({
        "metrics": [{"name": "users online", "query": "max(users_online)", "format": "Count"}],
        "reportAt": "45s"
    });
    let policy = json!({
        "apiVersion": "liftoff.dev/v1alpha1", "kind": "LaunchPolicy",
        "metadata": {"name": "launch"}, "spec": spec
    });
    objects::create::<LaunchPolicy>(&client, &ns, policy).await;
    let policies = Api::<LaunchPolicy>::namespaced(client.clone(), &ns);
    let op = Operator::start(&cp, &["--resync=30s"]).await;

    // H+0: the update in the template, with the team's figure.
    let h0 = message(&received, "LaunchUpdate", "launch update at H+0").await;
    for part in [
        "• Users: 100 admitted",
        "• Figures: users online 312",
        "• Next update: ",
    ] {
        assert!(h0.contains(part), "{part:?} missing from {h0}");
    }
    // The beta baked: the room is asked for its Go, with the command to give it.
    let go = message(&received, "AwaitingApproval", "stage gradual").await;
    let command = format!(
        "To give the Go: kubectl annotate --overwrite -n {ns} lp/launch liftoff.dev/approve=1@$(date +%s)"
    );
    assert!(go.ends_with(&command), "{go}");
    let annotate = |value: &str| {
        let (cp, ns, value) = (&cp, &ns, value.to_string());
        async move {
            let args = ["-n", ns, "annotate", "--overwrite", "lp/launch", &value];
            let (ok, _, err) = kubectl(cp, &args, None).await;
            assert!(ok, "{value}: {err}");
        }
    };
    annotate("liftoff.dev/approve=1@go").await;
    message(&received, "StageAdvanced", "gradual").await;

    // Load: one scale-up goes through, the next is refused by the apiserver — one message.
    exporter.set("api_cpu_percent", &[], 95.0);
    message(&received, "ScalingAction", "api-cpu: ").await;
    let failed = message(&received, "ActionFailed", "api-cpu: ScaleUp failed").await;
    assert!(failed.contains("at most 3 replicas"), "{failed}");
    op.completes_reconciles(5).await;
    let failures = chat(&received)
        .into_iter()
        .filter(|(l, _)| l == "ActionFailed")
        .count();
    assert_eq!(failures, 1, "a retried failure is not news again");
    exporter.set("api_cpu_percent", &[], 20.0);

    // The latency series disappears, comes back broken: lost, found, failed, paused.
    exporter.remove("p95_latency_seconds", &[]);
    message(
        &received,
        "SourceUnavailable",
        "gate p95-latency-seconds cannot be read",
    )
    .await;
    exporter.set("p95_latency_seconds", &[], 0.9);
    message(&received, "SourceRecovered", "gate p95-latency-seconds").await;
    message(&received, "GateFailed", "p95-latency-seconds").await;
    message(&received, "RolloutPaused", "").await;
    annotate("liftoff.dev/kill-switch=reports").await;
    message(&received, "KillSwitch", "reports").await;
    annotate("liftoff.dev/abort=stop").await;
    message(&received, "RolloutAborted", "").await;

    let order = [
        ("StageAdvanced", "internal-beta"),
        ("AwaitingApproval", "gradual"),
        ("StageAdvanced", "gradual"),
        ("ScalingAction", "api-cpu"),
        ("ActionFailed", "api-cpu"),
        ("SourceUnavailable", "gate p95"),
        ("SourceRecovered", "gate p95"),
        ("GateFailed", "p95"),
        ("RolloutPaused", ""),
        ("KillSwitch", "reports"),
        ("RolloutAborted", ""),
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|(l, p)| position(&received, l, p))
        .collect();
    assert!(
        positions.is_sorted(),
        "out of order: {order:?} at {positions:?}: {:#?}",
        chat(&received)
    );

    // The report, at 45s: in its ConfigMap and as one message, with the real scaling action.
    let report = message(&received, "LaunchReport", "# Launch report: ").await;
    for part in [
        "## Stage history",
        "| StageAdvanced | entered stage gradual",
        "## Scaling actions",
        "| ScalingAction | api-cpu: ",
        "| trigger api-cpu | ",
    ] {
        assert!(report.contains(part), "{part:?} missing from:\n{report}");
    }
    let kept = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("launch-launch-report")
        .await
        .unwrap();
    assert_eq!(kept.data.unwrap()["report.md"], report);

    // The fixed updates: each offset once, in order, even after the abort.
    let sent = eventually(WAIT, "every offset sent", || async {
        let s = policies.get("launch").await.ok()?.status?;
        let entry = s
            .summaries
            .into_iter()
            .find(|e| e.webhook == "war-room/url")?;
        (entry.offsets_sent.len() == 3).then_some(entry)
    })
    .await;
    let offsets: Vec<String> = sent.offsets_sent.iter().map(|d| d.to_string()).collect();
    assert_eq!(offsets, ["0s", "15s", "30s"]);
    let status = policies.get("launch").await.unwrap().status.unwrap();
    let started = status.launch.unwrap().started_at.unwrap().0;
    let last = sent.last_sent_at.0.duration_since(started).as_secs();
    assert!(
        last >= 30,
        "the H+30s update went out {last}s after the start"
    );
    op.completes_reconciles(3).await;
    let updates: Vec<String> = chat(&received)
        .into_iter()
        .filter(|(l, _)| l == "LaunchUpdate")
        .map(|(_, t)| t)
        .collect();
    assert_eq!(updates.len(), 3, "{updates:#?}");
    assert!(
        updates[2].starts_with("🔴 major issue"),
        "aborted: {}",
        updates[2]
    );
    let json = json_bodies(&received);
    let events: Vec<&str> = json.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["LaunchUpdate", "LaunchReport"],
        "the JSON webhook gets what it lists"
    );
    assert_eq!(json[0]["update"]["usersAdmitted"], "100");
    assert_eq!(json[0]["update"]["figures"][0]["value"], "312");
    println!(
        "--- H+0 update ---\n{h0}\n--- last update ---\n{}\n--- report ---\n{report}",
        updates[2]
    );

    // The scale that went through is the one in status.
    let replicas = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get("api")
        .await
        .unwrap()
        .spec
        .unwrap()
        .replicas;
    assert_eq!(replicas, Some(3));
}
