//! `kubectl launch` against a real apiserver with the real operator running: every command is
//! issued by the `kubectl-launch` binary as a team would, waits for the operator, and prints the
//! state it left; a command that does not fit the phase is refused before anything is written;
//! `history` lists the decisions in order with who made them; `status --watch` redraws on a
//! change.

mod support;

use std::{process::Stdio, time::Duration};

use kube::Api;
use liftoff::crd::LaunchPolicy;
use liftoff_testenv::ControlPlane;
use serde_json::{Value, json};
use support::{Operator, control_plane, eventually, healthy_service, objects};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

const WAIT: Duration = Duration::from_secs(90);

/// Runs `kubectl launch ARGS` in namespace `ns`; `(exit code, stdout, stderr)`.
async fn launch(cp: &ControlPlane, ns: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-launch"))
        .args(["-n", ns])
        .args(args)
        .env("KUBECONFIG", cp.kubeconfig_path())
        .output()
        .await
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// Runs a command that must succeed; its stdout.
async fn ok(cp: &ControlPlane, ns: &str, args: &[&str]) -> String {
    let (code, out, err) = launch(cp, ns, args).await;
    assert_eq!(code, 0, "kubectl launch {args:?}: {out}{err}");
    out
}

fn has(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }
}

/// `text` compared with `tests/golden/console-<name>.txt` once the parts that change from run to
/// run are replaced: the namespace, times, durations, command ids, and the gates' latest
/// evaluations (which depend on when the command ran).
/// `LIFTOFF_BLESS=1` rewrites the file after a deliberate change.
fn golden(name: &str, text: &str, ns: &str) {
    let rules = [
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "<time>"),
        (r"@\d+", "@<id>"),
        (r"=\d{10,}", "=<id>"),
        (r"\b(\d+h)?(\d+m)?\d+s\b", "<duration>"),
        (r"\d+/\d+ checks", "<n>/<m> checks"),
        (r"(?m)^Bake: .*$", "Bake:      <left>"),
        // A gate's line shows its latest evaluation, which may or may not have happened yet.
        (r"(?m)^  [✓✗?] (\S+) .*$", "  <gate> $1"),
    ];
    let mut normal = text.replace(ns, "<ns>");
    for (pattern, with) in rules {
        normal = regex::Regex::new(pattern)
            .unwrap()
            .replace_all(&normal, with)
            .into_owned();
    }
    let path = support::repo_path(&format!("tests/golden/console-{name}.txt"));
    if std::env::var_os("LIFTOFF_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &normal).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        normal,
        expected,
        "kubectl launch {name} differs from {} (LIFTOFF_BLESS=1 after a deliberate change)",
        path.display()
    );
}

#[tokio::test]
async fn the_console_drives_a_launch_and_refuses_what_does_not_fit() {
    let (_exporter, prometheus) = healthy_service().await;
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("console").await.unwrap();
    let stages = json!([
        {"name": "internal-beta", "users": 100, "bake": "1s"},
        {"name": "gradual", "users": 500, "bake": "1h", "approval": "Manual"},
        {"name": "everyone", "users": "All", "approval": "Manual"}
    ]);
    let mut spec = objects::rollout_spec(&prometheus.url(), stages, "Pause");
    spec["contingency"] = json!({"configMap": "launch-switches",
                                 "killSwitches": [{"name": "reports"}]});
    let policy = json!({
        "apiVersion": "liftoff.dev/v1alpha1", "kind": "LaunchPolicy",
        "metadata": {"name": "launch"}, "spec": spec
    });
    objects::create::<LaunchPolicy>(&client, &ns, policy).await;
    let policies = Api::<LaunchPolicy>::namespaced(client.clone(), &ns);
    let _op = Operator::start(&cp, &["--resync=30s"]).await;
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

    let status = ok(&cp, &ns, &["status", "launch"]).await;
    golden("status", &status, &ns);
    has(
        &status,
        &[
            &format!("{ns}/launch\n"),
            "Stage:     stage 1 of 3 (internal-beta), 100 users admitted\n",
            "Phase:     AwaitingApproval\n",
            "Waiting:   Go for stage gradual (Approval)\n",
            "  ✓ error-rate               0 (≤ 0.001) ",
            "Kill switches:\n  reports                  on\n",
            "  Ready                True   Ready: ",
        ],
    );
    assert!(
        !status.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );

    // Refused before anything is written: the phase does not fit.
    let (code, out, err) = launch(&cp, &ns, &["resume", "launch"]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(
        err,
        "refused: the rollout is AwaitingApproval: resume carries on after a pause or a rollback\n"
    );
    let annotations = policies.get("launch").await.unwrap().metadata.annotations;
    assert!(
        annotations.unwrap_or_default().is_empty(),
        "nothing was written"
    );

    // Each command waits for the operator and prints the state it left.
    let go = ok(&cp, &ns, &["approve", "launch"]).await;
    golden("approve", &go, &ns);
    has(
        &go,
        &[
            "liftoff.dev/approve=gradual@",
            "recorded by the operator:\n",
            "Stage:     stage 2 of 3 (gradual), 500 users admitted\n",
        ],
    );
    let paused = ok(&cp, &ns, &["pause", "launch"]).await;
    golden("pause", &paused, &ns);
    has(
        &paused,
        &["recorded by the operator:", "Phase:     Paused\n"],
    );
    // A Go while paused is kept for later, as the operator keeps it; a switch that does not
    // exist is refused.
    let queued = ok(&cp, &ns, &["approve", "launch"]).await;
    has(
        &queued,
        &[
            "liftoff.dev/approve=everyone@",
            "the Go is recorded on the policy",
        ],
    );
    let (code, _, err) = launch(&cp, &ns, &["kill-switch", "launch", "nosuch"]).await;
    assert_eq!(
        (code, err.as_str()),
        (
            2,
            "refused: no kill switch nosuch; the policy has: reports\n"
        )
    );
    let resume = ok(&cp, &ns, &["resume", "launch"]).await;
    golden("resume", &resume, &ns);
    has(&resume, &["Phase:     Baking\n"]);
    let kill_switch = ok(&cp, &ns, &["kill-switch", "launch", "reports"]).await;
    golden("kill-switch", &kill_switch, &ns);
    has(&kill_switch, &["  reports                  OFF — "]);
    let restore_switch = ok(&cp, &ns, &["restore-switch", "launch", "reports"]).await;
    golden("restore-switch", &restore_switch, &ns);
    has(&restore_switch, &["  reports                  on"]);
    let abort = ok(&cp, &ns, &["abort", "launch"]).await;
    golden("abort", &abort, &ns);
    has(&abort, &["Phase:     Aborted\n", "0 users admitted"]);
    let retry = ok(&cp, &ns, &["retry", "launch"]).await;
    // Not golden: whether the canary's one-second bake is over when it prints depends on timing.
    has(&retry, &["Stage:     stage 1 of 3 (internal-beta)"]);

    // The decisions in order, with who made them.
    let history = ok(&cp, &ns, &["history", "launch"]).await;
    // The first decisions: a later one (the retried canary's Go) depends on timing.
    let first: Vec<&str> = history.lines().take(11).collect();
    golden("history", &(first.join("\n") + "\n"), &ns);
    let events: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    let order = [
        "LaunchStarted",
        "StageAdvanced",
        "AwaitingApproval",
        "StageAdvanced",
        "RolloutPaused",
        "RolloutResumed",
        "KillSwitch",
        "KillSwitch",
        "RolloutAborted",
        "RolloutResumed",
        "StageAdvanced",
    ];
    assert_eq!(&events[..order.len()], order, "{history}");
    has(
        &history,
        &["approved by kubectl-launch at ", "paused by kubectl-launch"],
    );

    // For scripts.
    let json: Value =
        serde_json::from_str(&ok(&cp, &ns, &["status", "launch", "-o", "json"]).await).unwrap();
    assert_eq!(json[0]["name"], "launch");
    assert_eq!(json[0]["status"]["rollout"]["stageName"], "internal-beta");

    // --watch redraws on a change.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_kubectl-launch"))
        .args(["-n", &ns, "status", "launch", "--watch"])
        .env("KUBECONFIG", cp.kubeconfig_path())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    until(&mut lines, "Stage:     stage 1 of 3").await;
    ok(&cp, &ns, &["pause", "launch"]).await;
    until(&mut lines, "Phase:     Paused").await;
}

/// Reads `lines` until one contains `want`.
async fn until<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut tokio::io::Lines<R>, want: &str) {
    let found = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(want) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "no {want:?} from the watch");
}
