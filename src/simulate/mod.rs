//! `liftoff simulate`: replays a LaunchPolicy over recorded metrics with the operator's own
//! engines and prints what Liftoff would have done, when and why; `--plot` draws it.
//! See `docs/simulate.md`.

pub mod output;
pub mod plot;
pub mod recorded;
pub mod replay;

use std::{path::PathBuf, time::Duration};

use k8s_openapi::jiff::Timestamp;
use serde::Deserialize as _;

use crate::{
    crd::LaunchPolicy,
    sources::prometheus::{Auth, Client},
};
use recorded::{Recording, Wanted, Window};

/// The most steps one replay takes (35 days at 15 s).
pub const MAX_STEPS: i64 = 200_000;

/// `liftoff simulate`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The YAML file holding the LaunchPolicy (`-` reads stdin).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Which LaunchPolicy of the file, when it holds several.
    #[arg(long)]
    pub name: Option<String>,
    /// The Prometheus to read every PromQL trigger and gate from, over the window.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// A file holding a bearer token for --prometheus.
    #[arg(long)]
    pub prometheus_token_file: Option<PathBuf>,
    /// A CSV of values for what is not read from Prometheus (Kafka lag, PostgreSQL connections,
    /// Redis memory) or to replace a query: `time,<trigger or gate name>,…`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The window's start: RFC 3339, epoch seconds, or `now-6h`.
    #[arg(long)]
    pub from: String,
    /// The window's end (default: now).
    #[arg(long, default_value = "now")]
    pub to: String,
    /// Time between two replayed reconciles (default: the policy's shortest interval, as the
    /// operator samples).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub step: Option<Duration>,
    /// How long after the rollout asks for a Go the replay gives it.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub go_after: Duration,
    /// Never give a Go: the replay shows where the rollout waits.
    #[arg(long, conflicts_with = "go_after")]
    pub no_go: bool,
    /// A trigger's target at the start, `NAME=VALUE` (replicas, partitions or instance class);
    /// default `replicas.min`, `rdsResize.currentClass` or the ladder's first class.
    #[arg(long, value_parser = name_value)]
    pub start: Vec<(String, String)>,
    /// Draw the replay as SVG into this file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// `text` (default) or `json`.
    #[arg(short = 'o', long, default_value = "text")]
    pub output: Format,
}

/// How the replay is printed.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

fn name_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?}: write NAME=VALUE"))
}

/// Runs `liftoff simulate`: prints the replay, writes the plot. An error says what to fix.
pub async fn run(args: Args) -> Result<(), String> {
    let text = read(&args.file)?;
    let policy = pick(&text, args.name.as_deref())?;
    let name = format!(
        "{}/{}",
        policy.metadata.namespace.as_deref().unwrap_or("default"),
        policy.metadata.name.as_deref().unwrap_or("(unnamed)")
    );
    let window = window(&args, &policy)?;
    let client = match &args.prometheus {
        Some(address) => {
            let auth = match &args.prometheus_token_file {
                Some(file) => Some(Auth::Bearer(read(file)?.trim().to_string())),
                None => None,
            };
            let client = Client::new(address, auth, Duration::from_secs(60))
                .map_err(|e| format!("--prometheus: {e}"))?;
            Some(client)
        }
        None => None,
    };
    let csv = args.data.as_ref().map(read).transpose()?;
    let wanted = wanted(&policy)?;
    let recording = Recording::load(&wanted, csv.as_deref(), client.as_ref(), window).await?;
    let options = replay::Options {
        go_after: (!args.no_go).then_some(args.go_after),
        start: args.start.iter().cloned().collect(),
    };
    let replay = replay::replay(&policy, &recording, window, &options)?;
    match args.output {
        Format::Text => print!("{}", output::text(&name, &replay)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&replay).map_err(|e| e.to_string())?
        ),
    }
    if let Some(path) = &args.plot {
        let svg = plot::svg(&name, &replay)?;
        std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("plot written to {}", path.display());
    }
    Ok(())
}

fn read(path: &PathBuf) -> Result<String, String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("stdin: {e}"))?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The file's LaunchPolicy (the one named, when there are several), once the apiserver would
/// accept it: a replay of a policy that cannot be stored would describe nothing real.
fn pick(text: &str, name: Option<&str>) -> Result<LaunchPolicy, String> {
    let refused: Vec<String> = crate::lint::lint(text)
        .into_iter()
        .filter(|v| !v.refusals.is_empty())
        .map(|v| format!("{}: {}", v.policy, v.refusals.join("; ")))
        .collect();
    if !refused.is_empty() {
        return Err(format!(
            "the apiserver would refuse it (see liftoff lint): {}",
            refused.join("\n")
        ));
    }
    let mut policies = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(document).map_err(|e| e.to_string())?;
        if value.get("kind").and_then(serde_yaml::Value::as_str) == Some("LaunchPolicy") {
            let policy: LaunchPolicy = serde_yaml::from_value(value).map_err(|e| e.to_string())?;
            policies.push(policy);
        }
    }
    let names: Vec<String> = policies
        .iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect();
    let mut chosen = policies
        .into_iter()
        .filter(|p| name.is_none_or(|n| p.metadata.name.as_deref() == Some(n)));
    match (chosen.next(), chosen.next()) {
        (Some(policy), None) => Ok(policy),
        (None, _) if names.is_empty() => Err("the file holds no LaunchPolicy".into()),
        (None, _) => Err(format!("no LaunchPolicy named so; the file has {names:?}")),
        (Some(_), Some(_)) => Err(format!(
            "the file holds several LaunchPolicies ({names:?}): pick one with --name"
        )),
    }
}

/// The triggers and gates to record, by name (a name used by both is refused: the recording
/// and the CSV know each by its name alone).
fn wanted(policy: &LaunchPolicy) -> Result<Vec<Wanted<'_>>, String> {
    let triggers = policy
        .spec
        .scaling
        .as_ref()
        .map_or(&[][..], |s| &s.triggers);
    let mut wanted: Vec<Wanted> = Vec::new();
    for (trigger, kind) in triggers.iter().zip(crate::triggers::kinds(triggers)?) {
        wanted.push(Wanted {
            name: &trigger.name,
            query: kind.get().query().map(str::to_string),
        });
    }
    for check in policy
        .spec
        .rollout
        .iter()
        .flat_map(|r| &r.gates)
        .flat_map(|g| &g.checks)
    {
        if wanted.iter().any(|w| w.name == check.name) {
            return Err(format!(
                "a trigger and a gate are both named {:?}: rename one to replay the policy",
                check.name
            ));
        }
        wanted.push(Wanted {
            name: &check.name,
            query: Some(check.query.clone()),
        });
    }
    Ok(wanted)
}

/// The window from the arguments; the step defaults to the policy's shortest interval.
fn window(args: &Args, policy: &LaunchPolicy) -> Result<Window, String> {
    let now = Timestamp::now().as_second();
    let from = when(&args.from, now).map_err(|e| format!("--from: {e}"))?;
    let to = when(&args.to, now).map_err(|e| format!("--to: {e}"))?;
    let intervals = [
        policy
            .spec
            .scaling
            .as_ref()
            .map(|s| Duration::from(s.interval)),
        policy
            .spec
            .rollout
            .as_ref()
            .and_then(|r| r.gates.as_ref())
            .map(|g| Duration::from(g.interval)),
    ];
    let step = args
        .step
        .or_else(|| intervals.into_iter().flatten().min())
        .unwrap_or(Duration::from_secs(15));
    let step = i64::try_from(step.as_secs_f64().ceil() as u64)
        .unwrap_or(i64::MAX)
        .max(1);
    if to <= from {
        return Err(format!("--to ({to}) must be after --from ({from})"));
    }
    if to
        .checked_sub(from)
        .is_none_or(|span| span / step >= MAX_STEPS)
    {
        return Err(format!(
            "the window holds more than {MAX_STEPS} steps of {step}s: shorten it or raise --step"
        ));
    }
    Ok(Window { from, to, step })
}

/// A time: RFC 3339, epoch seconds, `now`, or `now-<duration>`.
fn when(text: &str, now: i64) -> Result<i64, String> {
    match text.strip_prefix("now") {
        Some("") => Ok(now),
        Some(ago) => {
            let ago = ago
                .strip_prefix('-')
                .ok_or_else(|| format!("{text:?}: write now-6h"))?;
            let ago = humantime::parse_duration(ago).map_err(|e| format!("{text:?}: {e}"))?;
            let at = now.saturating_sub(i64::try_from(ago.as_secs()).unwrap_or(i64::MAX));
            Timestamp::from_second(at)
                .map(|t| t.as_second())
                .map_err(|e| format!("{text:?} is not a time: {e}"))
        }
        None => recorded::parse_time(text),
    }
}

#[cfg(test)]
mod tests;
