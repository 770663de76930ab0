//! `kubectl launch`: the platform team's console for a LaunchPolicy (a kubectl plugin: on PATH as
//! `kubectl-launch`). It reads a policy's status, issues the operator's annotation commands
//! exactly as it expects them (a unique id per call, so no command is taken for an earlier one),
//! waits until the operator has applied each, and shows the launch on one screen. It needs `get`,
//! `list`, `watch` and `patch` on `launchpolicies`, nothing else.

use std::{io::IsTerminal, time::Duration};

use clap::{Parser, Subcommand};
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use liftoff::{
    console::{self, Command, Paint},
    crd::{LaunchPolicy, Phase, WaitReason},
};
use serde_json::json;

/// kubectl launch: the war room's view of a LaunchPolicy, and its commands.
#[derive(Parser)]
#[command(name = "kubectl launch", version)]
struct Cli {
    /// Namespace (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// The launch on one screen: stage, users, phase and why, bake left, gates, triggers, kill
    /// switches, conditions, next launch update.
    Status {
        /// The policy (default: every policy of the namespace).
        name: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// `json` for scripts.
        #[arg(short, long)]
        output: Option<String>,
        /// Redraw on every change (a watch, not polling).
        #[arg(short, long)]
        watch: bool,
    },
    /// The Go for a stage (default: the next one).
    Approve { name: String, stage: Option<String> },
    /// Hold the current users.
    Pause { name: String },
    /// Carry on after a pause or a rollback.
    Resume { name: String },
    /// Start the held stage over (an aborted launch: from the first stage).
    Retry { name: String },
    /// Admit nobody and stop.
    Abort { name: String },
    /// Switch kill switches off (names separated by commas).
    KillSwitch { name: String, switches: String },
    /// Switch kill switches back on.
    RestoreSwitch { name: String, switches: String },
    /// Apply the resize a trigger recommends (an RDS instance class or an ElastiCache node type,
    /// with `approval: Manual`).
    ApproveResize { name: String, trigger: String },
    /// The launch's decisions in order: stages, Go requests and who gave them, gate failures,
    /// actions, sources lost and found, kill switches.
    History { name: String },
}

/// How long a command waits for the operator.
const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let client = Client::try_default().await?;
    let ns = cli
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let paint = Paint(std::io::stdout().is_terminal());
    let api: Api<LaunchPolicy> = Api::namespaced(client.clone(), &ns);
    let (command, name, target) = match cli.command {
        Verb::Status {
            name,
            all_namespaces,
            output,
            watch,
        } => {
            let api = match all_namespaces {
                true => Api::all(client),
                false => api,
            };
            return status(&api, name, output.as_deref() == Some("json"), watch, paint).await;
        }
        Verb::History { name } => {
            print!("{}", console::history(&api.get(&name).await?));
            return Ok(());
        }
        Verb::Approve { name, stage } => (Command::Approve, name, stage),
        Verb::Pause { name } => (Command::Pause, name, None),
        Verb::Resume { name } => (Command::Resume, name, None),
        Verb::Retry { name } => (Command::Retry, name, None),
        Verb::Abort { name } => (Command::Abort, name, None),
        Verb::KillSwitch { name, switches } => (Command::Kill, name, Some(switches)),
        Verb::RestoreSwitch { name, switches } => (Command::Restore, name, Some(switches)),
        Verb::ApproveResize { name, trigger } => (Command::ApproveResize, name, Some(trigger)),
    };
    issue(&api, command, &name, target, paint).await
}

async fn status(
    api: &Api<LaunchPolicy>,
    name: Option<String>,
    json: bool,
    watch: bool,
    paint: Paint,
) -> anyhow::Result<()> {
    let show = |policies: &[LaunchPolicy]| {
        if json {
            let out: Vec<_> = policies
                .iter()
                .map(|p| json!({"namespace": p.namespace(), "name": p.name_any(), "status": p.status}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        } else {
            let views: Vec<String> = policies
                .iter()
                .map(|p| console::status(p, Timestamp::now(), paint))
                .collect();
            print!("{}", views.join("\n"));
        }
    };
    let fields = name.as_ref().map(|n| format!("metadata.name={n}"));
    if !watch {
        let policies = match &name {
            Some(n) => vec![api.get(n).await?],
            None => api.list(&ListParams::default()).await?.items,
        };
        if policies.is_empty() {
            eprintln!("no LaunchPolicy found");
        }
        show(&policies);
        return Ok(());
    }
    let config = match &fields {
        Some(f) => watcher::Config::default().fields(f),
        None => watcher::Config::default(),
    };
    let mut seen: Vec<LaunchPolicy> = Vec::new();
    let mut changes = watcher(api.clone(), config)
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(policy) = changes.next().await {
        let policy = policy?;
        seen.retain(|p| p.metadata.uid != policy.metadata.uid);
        seen.push(policy);
        seen.sort_by_key(|p| (p.namespace(), p.name_any()));
        if paint.0 {
            print!("\x1b[2J\x1b[H");
        }
        show(&seen);
        println!();
    }
    Ok(())
}

async fn issue(
    api: &Api<LaunchPolicy>,
    command: Command,
    name: &str,
    target: Option<String>,
    paint: Paint,
) -> anyhow::Result<()> {
    let policy = api.get(name).await?;
    let refuse = |why: String| -> ! {
        eprintln!("refused: {why}");
        std::process::exit(2);
    };
    if let Some(why) = console::unusable(&policy, command, target.as_deref()) {
        refuse(why);
    }
    let phase = policy
        .status
        .as_ref()
        .and_then(|s| s.rollout.as_ref())
        .map(|r| r.state.phase);
    if command.is_rollout() {
        let Some(rollout) = policy.status.as_ref().and_then(|s| s.rollout.as_ref()) else {
            anyhow::bail!("{name} has no rollout in its status yet: nothing to {command:?}");
        };
        if let Some(why) = command.refusal(rollout.state.phase) {
            refuse(why);
        }
    }
    let target = match (command, target) {
        (Command::Approve, None) => Some(
            console::next_stage(&policy)
                .ok_or_else(|| anyhow::anyhow!("{name} has no next stage to approve"))?,
        ),
        (_, target) => target,
    };
    let value = console::value(target.as_deref(), Timestamp::now());
    let patch = json!({"metadata": {"annotations": {command.annotation(): value}}});
    let params = PatchParams {
        field_manager: Some("kubectl-launch".into()),
        ..Default::default()
    };
    api.patch(name, &params, &Patch::Merge(&patch)).await?;
    let annotation = command.annotation();
    if command == Command::Approve && phase != Some(Phase::AwaitingApproval) {
        // The operator keeps a Go until its stage has baked with healthy gates.
        println!(
            "{annotation}={value}: the Go is recorded on the policy; the operator uses it once \
             the current stage has baked with healthy gates (kubectl launch status {name})"
        );
        return Ok(());
    }
    println!("{annotation}={value}: sent; waiting for the operator…");
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let policy = api.get(name).await?;
        let used = command == Command::Approve && console::approval_used(&policy, &value);
        if used || console::applied(&policy, command, &value) {
            println!("recorded by the operator:\n");
            print!("{}", console::status(&policy, Timestamp::now(), paint));
            return Ok(());
        }
        let rollout = policy.status.as_ref().and_then(|s| s.rollout.as_ref());
        let held = rollout
            .and_then(|r| r.waiting_on.as_ref())
            .filter(|w| w.reason != WaitReason::Approval);
        if tokio::time::Instant::now() >= deadline
            && command == Command::Approve
            && let Some(w) = held
        {
            println!(
                "the Go is recorded; the stage still waits on: {}",
                w.summary
            );
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "the operator has not applied {}={value} within {TIMEOUT:?}: is it running? \
                 (kubectl get events --field-selector involvedObject.name={name})",
                command.annotation()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
