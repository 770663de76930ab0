//! `liftoff simulate` against real servers: the operator runs a launch live (real apiserver,
//! real Prometheus scraping a CPU spike and an error spike), then `liftoff simulate` replays the
//! series Prometheus recorded over the same window. Every scaling action and rollout event it
//! prints must be the operator's, in the same order, with the same reasons, within a few seconds.
//! A second test backfills a six-hour series with `promtool` (the "last week" use) and checks the
//! known spike's decisions and the plot.

mod support;

use std::{path::Path, process::Command, time::Duration};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use liftoff::crd::{LaunchPolicy, NotificationEvent};
use liftoff_testenv::{MetricsExporter, Prometheus};
use serde_json::{Value, json};
use support::{Operator, control_plane, eventually, objects};

const WAIT: Duration = Duration::from_secs(90);

/// Runs `liftoff simulate ARGS -o json`; its JSON, or the test fails with its stderr.
fn simulate(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_liftoff"))
        .arg("simulate")
        .args(args)
        .args(["-o", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "liftoff simulate failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The policy both tests replay: a CPU trigger on `api` and a three-stage launch gated on the
/// error rate, every second.
fn policy(prometheus: &str, bake: &str) -> Value {
    json!({
        "apiVersion": "liftoff.dev/v1alpha1", "kind": "LaunchPolicy",
        "metadata": {"name": "launch", "namespace": "replayed"},
        "spec": {
            "prometheus": {"address": prometheus, "timeout": "2s"},
            "scaling": {"interval": "1s", "triggers": [{
                "name": "api-cpu", "cpu": {"utilization": 70, "query": "max(api_cpu_percent)"},
                "scaleTargetRef": {"kind": "Deployment", "name": "api"},
                "replicas": {"min": 2, "max": 4},
                "behavior": {"scaleDown": {"stabilizationWindow": "2s"}}
            }]},
            "rollout": {
                "stages": [
                    {"name": "canary", "users": 100, "bake": bake},
                    {"name": "gradual", "users": 500, "bake": bake},
                    {"name": "everyone", "users": "All"}
                ],
                "gates": {"interval": "1s", "failureThreshold": 2, "checks": [
                    {"name": "error-rate", "query": "max(error_rate)", "max": 0.01}
                ]},
                "onGateFailure": "Pause"
            }
        }
    })
}

/// A launch's decisions in order, each with its time: the scaling actions by the engine's
/// reason (the operator journals `trigger: …, because <reason>`), the rollout's events by their
/// journal event and message.
#[derive(Default)]
struct Story {
    scaling: Vec<(i64, String)>,
    rollout: Vec<(i64, (String, String))>,
}

/// The story a replay tells.
fn replayed(replay: &Value) -> Story {
    let mut story = Story::default();
    for d in replay["decisions"].as_array().unwrap() {
        let at = d["at"].as_i64().unwrap();
        let why = d["why"].as_str().unwrap().to_string();
        match (d["subject"].as_str().unwrap(), d["kind"].as_str().unwrap()) {
            ("rollout", kind) => {
                let event = match kind {
                    "StageAdvanced" | "GateFailed" => kind,
                    "Paused" => "RolloutPaused",
                    "Completed" => "RolloutCompleted",
                    _ => continue,
                };
                story.rollout.push((at, (event.into(), why)));
            }
            (_, _) => story.scaling.push((at, why)),
        }
    }
    story
}

/// The story the live operator's journal (`status.launch.journal`) tells.
fn journaled(policy: &LaunchPolicy) -> Story {
    let status = policy.status.as_ref().unwrap();
    let journal = &status.launch.as_ref().unwrap().journal;
    let mut story = Story::default();
    for e in journal {
        let at = e.at.0.as_second();
        match e.event {
            NotificationEvent::ScalingAction => {
                let (_, why) = e.message.split_once(", because ").unwrap();
                story.scaling.push((at, why.to_string()));
            }
            NotificationEvent::StageAdvanced
            | NotificationEvent::GateFailed
            | NotificationEvent::RolloutPaused
            | NotificationEvent::RolloutCompleted => {
                let event = serde_json::to_value(e.event).unwrap();
                let event = event.as_str().unwrap().to_string();
                story.rollout.push((at, (event, e.message.clone())));
            }
            _ => {}
        }
    }
    story
}

/// Equal but for the times, which may differ by up to `slack` seconds (the operator samples
/// whenever its timers fire; the replay on a whole-second grid).
fn assert_same<T: PartialEq + std::fmt::Debug>(
    what: &str,
    live: &[(i64, T)],
    replay: &[(i64, T)],
    slack: i64,
) {
    let live_what: Vec<&T> = live.iter().map(|(_, x)| x).collect();
    let replay_what: Vec<&T> = replay.iter().map(|(_, x)| x).collect();
    assert_eq!(live_what, replay_what, "{what}: live vs replay");
    for ((l, _), (r, _)) in live.iter().zip(replay) {
        assert!(
            (l - r).abs() <= slack,
            "{what}: live at {l}, replayed at {r}"
        );
    }
}

#[tokio::test]
async fn the_replay_of_a_recorded_launch_decides_what_the_operator_did_live() {
    let exporter = MetricsExporter::start().await.unwrap();
    exporter.set("api_cpu_percent", &[], 40.0);
    exporter.set("error_rate", &[], 0.0);
    let prometheus = Prometheus::start(&[exporter.target()], Duration::from_secs(1))
        .await
        .unwrap();
    prometheus.wait_for_query("api_cpu_percent").await.unwrap();
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("replayed").await.unwrap();
    objects::create::<Deployment>(&client, &ns, objects::workload("Deployment", "api", 2)).await;
    let _op = Operator::start(&cp, &["--resync=30s"]).await;

    let mut live = policy(&prometheus.url(), "6s");
    live["metadata"]["namespace"] = json!(ns);
    objects::create::<LaunchPolicy>(&client, &ns, live.clone()).await;
    let policies = Api::<LaunchPolicy>::namespaced(client.clone(), &ns);
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let stage = || async {
        let p = policies.get("launch").await.ok()?;
        p.status?.rollout?.state.stage_name
    };
    eventually(WAIT, "the canary entered", || async {
        (stage().await.as_deref() == Some("canary")).then_some(())
    })
    .await;
    // The CPU spike: 2 → 4 replicas (the most), then back down once it is over.
    exporter.set("api_cpu_percent", &[], 150.0);
    let replicas = |n: i32| {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get("api").await.ok()?;
            (d.spec?.replicas == Some(n)).then_some(())
        }
    };
    eventually(WAIT, "scaled up to 4", || replicas(4)).await;
    exporter.set("api_cpu_percent", &[], 40.0);
    eventually(WAIT, "scaled back to 2", || replicas(2)).await;
    eventually(WAIT, "the second stage entered", || async {
        (stage().await.as_deref() == Some("gradual")).then_some(())
    })
    .await;
    // The error spike: the gate fails twice in a row and the launch pauses.
    exporter.set("error_rate", &[], 0.5);
    let paused = eventually(WAIT, "paused by the gate", || async {
        let p = policies.get("launch").await.ok()?;
        let phase = p.status.as_ref()?.rollout.as_ref()?.state.phase;
        (phase.as_str() == "Paused").then_some(p)
    })
    .await;
    // The window: from the policy's creation to a few seconds past the pause, once Prometheus
    // holds a scrape from past its end.
    let journal = &paused
        .status
        .as_ref()
        .unwrap()
        .launch
        .as_ref()
        .unwrap()
        .journal;
    let to = journal.last().unwrap().at.0.as_second() + 5;
    let from = paused
        .metadata
        .creation_timestamp
        .as_ref()
        .unwrap()
        .0
        .as_second();
    eventually(WAIT, "a scrape past the window", || async {
        let scraped = prometheus.query("timestamp(error_rate)").await.ok()?;
        (scraped.first()?.value >= to as f64).then_some(())
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, serde_yaml::to_string(&live).unwrap()).unwrap();
    let plot = dir.path().join("replay.svg");
    let replay = simulate(&[
        "-f",
        file.to_str().unwrap(),
        "--prometheus",
        &prometheus.url(),
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(replay["step"], 1, "the policy's intervals set the step");
    let (live, replayed) = (journaled(&paused), replayed(&replay));
    assert!(live.scaling.len() >= 2, "up and down: {:?}", live.scaling);
    assert!(live.scaling[0].1.contains("scaling from 2 to 4 replicas"));
    assert!(live.rollout.len() >= 4, "two stages, a failure, a pause");
    assert_same("scaling", &live.scaling, &replayed.scaling, 3);
    assert_same("rollout", &live.rollout, &replayed.rollout, 3);
    assert_eq!(replay["phase"], "Paused");
    check_plot(&plot, &["api-cpu", "error-rate"], "2 → 4");
}

/// The plot is an SVG document with a panel per trigger and gate, a line for each, and the
/// actions marked.
fn check_plot(path: &Path, names: &[&str], mark: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the plot is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect();
    for name in names {
        assert!(
            texts.iter().any(|t| t.contains(name) && t.contains('(')),
            "a panel titled with {name}: {texts:?}"
        );
    }
    assert!(
        texts.iter().any(|t| t.contains(mark)),
        "{mark} marked: {texts:?}"
    );
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .count();
    assert!(lines > names.len() * 2, "value and bound lines: {lines}");
}

/// `(seconds after from, detail)` of the replay's decisions whose `field` is `value`.
fn decided<'a>(replay: &'a Value, field: &str, value: &str, from: i64) -> Vec<(i64, &'a str)> {
    let decisions = replay["decisions"].as_array().unwrap();
    decisions
        .iter()
        .filter(|d| d[field] == value)
        .map(|d| {
            (
                d["at"].as_i64().unwrap() - from,
                d["detail"].as_str().unwrap(),
            )
        })
        .collect()
}

/// Six hours recorded an hour ago at a 15 s resolution, backfilled with `promtool` (what a team
/// replays from last week), with a known CPU spike from +2h to +2h10m: the replay of a policy
/// sampling every 15 s finds the one scale-up at the spike's first sample, and the scale-down
/// after the default five-minute stabilization window.
#[tokio::test]
async fn a_backfilled_spike_is_replayed_over_hours() {
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let from = (now - 7 * 3600) / 15 * 15;
    let spike = from + 2 * 3600;
    let (mut cpu, mut errors) = (String::new(), String::new());
    for t in (from..=from + 6 * 3600).step_by(15) {
        let value = if (spike..spike + 600).contains(&t) {
            150
        } else {
            40
        };
        cpu.push_str(&format!("api_cpu_percent {value} {t}\n"));
        errors.push_str(&format!("error_rate 0 {t}\n"));
    }
    let recorded =
        format!("# TYPE api_cpu_percent gauge\n{cpu}# TYPE error_rate gauge\n{errors}# EOF\n");
    let mut prometheus = Prometheus::start(&[], Duration::from_secs(60))
        .await
        .unwrap();
    prometheus.backfill(&recorded).await.unwrap();

    let mut spec = policy(&prometheus.url(), "1h");
    spec["spec"]["scaling"]["interval"] = json!("15s");
    spec["spec"]["scaling"]["triggers"][0]["behavior"] = json!(null);
    spec["spec"]["rollout"]["gates"]["interval"] = json!("15s");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, serde_yaml::to_string(&spec).unwrap()).unwrap();
    let plot = dir.path().join("replay.svg");
    let to = from + 6 * 3600;
    let replay = simulate(&[
        "-f",
        file.to_str().unwrap(),
        "--prometheus",
        &prometheus.url(),
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
        "--step",
        "1s",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(replay["step"], 1);
    // 21,601 one-second steps, read in three range queries (at most 10,000 steps each); the
    // trigger sampled every 15 s as the policy says, each sample with its value.
    let points = replay["triggers"][0]["points"].as_array().unwrap();
    assert_eq!(points.len(), 6 * 240 + 1, "every step read");
    assert!(
        points.iter().all(|p| p[1].is_number()),
        "no step without data"
    );
    let scaling = decided(&replay, "subject", "api-cpu", from);
    // Up at the spike's first sample (2 × 150 / 70 → 5, at most 4). Down one step at a time,
    // each once the 300 s stabilization window has no higher recommendation: 300 s after the
    // spike's last sample (+585 s), then 300 s after the last recommendation of 3.
    let up = spike - from;
    let down = spike + 585 + 300 - from;
    assert_eq!(
        scaling,
        [
            (up, "2 → 4 replicas"),
            (down, "4 → 3 replicas"),
            (down + 300, "3 → 2 replicas")
        ]
    );
    let stages = decided(&replay, "kind", "StageAdvanced", from);
    // The canary's hour ends at +1h; gradual's at +2h, during the spike: held until it passes.
    assert_eq!(stages[0], (0, "canary (100 users)"));
    assert_eq!(stages[1], (3600, "gradual (500 users)"));
    assert!(
        stages[2].0 > up,
        "held for capacity during the spike: {stages:?}"
    );
    check_plot(&plot, &["api-cpu", "error-rate"], "2 → 4");
}

/// The replay `docs/simulate.md` shows, from the example policy and its recorded day, is what the
/// command prints and draws today (`LIFTOFF_BLESS=1` rewrites the page's block and the picture
/// after a deliberate change).
#[test]
fn the_documented_replay_is_what_the_command_prints_and_draws() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("launch-day.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_liftoff"))
        .current_dir(support::repo_path("."))
        .args(["simulate", "-f", "examples/replay/launch-day.yaml"])
        .args(["--data", "examples/replay/launch-day.csv"])
        .args([
            "--from",
            "2026-11-30T08:00:00Z",
            "--to",
            "2026-12-01T08:00:00Z",
        ])
        .args([
            "--go-after",
            "15m",
            "--start",
            "task-events-lag=12",
            "--plot",
        ])
        .arg(&plot)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let drawn = std::fs::read_to_string(&plot).unwrap();

    let page_path = support::repo_path("docs/simulate.md");
    let page = std::fs::read_to_string(&page_path).unwrap();
    let (begin, end) = (
        "<!-- BEGIN launch-day -->\n```text\n",
        "```\n<!-- END launch-day -->",
    );
    let (head, rest) = page.split_once(begin).expect("the page's launch-day block");
    let (shown, tail) = rest.split_once(end).expect("the block's end");
    let picture_path = support::repo_path("docs/images/simulate-launch-day.svg");
    if std::env::var_os("LIFTOFF_BLESS").is_some() {
        std::fs::write(&page_path, format!("{head}{begin}{printed}{end}{tail}")).unwrap();
        std::fs::write(&picture_path, &drawn).unwrap();
        return;
    }
    assert_eq!(
        shown, printed,
        "docs/simulate.md shows another replay (LIFTOFF_BLESS=1)"
    );
    let picture = std::fs::read_to_string(&picture_path).unwrap();
    assert!(
        picture == drawn,
        "docs/images/simulate-launch-day.svg is stale (LIFTOFF_BLESS=1)"
    );
    let panels = ["api-cpu", "task-events-lag", "error-rate", "login-success"];
    check_plot(&plot, &panels, "12 → 16 partitions");
}
