//! `liftoff-testenv up --kubeconfig-out PATH [--crds DIR] [--prometheus]`
//!
//! Starts a real etcd + kube-apiserver (see the library docs), installs the CRDs from DIR if
//! given, copies the admin kubeconfig to PATH, prints `READY <server-url>` on stdout, then runs
//! until SIGINT/SIGTERM (or until a server dies) and stops everything. Used by the demo script.
//!
//! With `--prometheus` it also starts a real Prometheus scraping, every second, an exporter of a
//! healthy launch's war-room metrics (`http_error_rate`, `http_p95_latency_seconds`,
//! `login_success_ratio`, `pod_restarts`, and the API's CPU `api_cpu_percent` at 40), and prints
//! `PROMETHEUS <url>` and `EXPORTER <url>` before `READY`; `curl -X PUT <exporter>/set/<name>/<value>`
//! changes a gauge (the demo's CPU breach).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use liftoff_testenv::{ControlPlane, MetricsExporter, Prometheus};
use tokio::signal::unix::{SignalKind, signal};

const USAGE: &str = "usage: liftoff-testenv up --kubeconfig-out PATH [--crds DIR] [--prometheus]";

struct Args {
    kubeconfig_out: PathBuf,
    crds: Option<PathBuf>,
    prometheus: bool,
}

/// Hand-rolled parser: `up` followed by `--flag VALUE` or `--flag=VALUE`.
fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args> {
    match argv.next().as_deref() {
        Some("up") => {}
        Some("-h" | "--help") => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        other => bail!("expected the `up` subcommand, got {other:?}"),
    }
    let (mut kubeconfig_out, mut crds, mut prometheus) = (None, None, false);
    while let Some(arg) = argv.next() {
        if arg == "--prometheus" {
            prometheus = true;
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| argv.next())
                .with_context(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--kubeconfig-out" => kubeconfig_out = Some(PathBuf::from(value()?)),
            "--crds" => crds = Some(PathBuf::from(value()?)),
            _ => bail!("unknown argument {flag:?}"),
        }
    }
    Ok(Args {
        kubeconfig_out: kubeconfig_out.context("--kubeconfig-out is required")?,
        crds,
        prometheus,
    })
}

/// A healthy launch as the war room would see it.
async fn healthy_launch() -> Result<(MetricsExporter, Prometheus)> {
    let exporter = MetricsExporter::start().await?;
    exporter.set("http_error_rate", &[], 0.0002);
    exporter.set("http_p95_latency_seconds", &[], 0.21);
    exporter.set("login_success_ratio", &[], 0.995);
    exporter.set("pod_restarts", &[], 0.0);
    exporter.set("api_cpu_percent", &[], 40.0);
    let prometheus = Prometheus::start(&[exporter.target()], Duration::from_secs(1)).await?;
    prometheus
        .wait_for_query("http_p95_latency_seconds")
        .await?;
    Ok((exporter, prometheus))
}

async fn up(args: Args) -> Result<()> {
    let mut cp = ControlPlane::start().await?;
    eprintln!("liftoff-testenv: logs in {}", cp.log_dir().display());
    if let Some(dir) = &args.crds {
        cp.apply_crds(dir)
            .await
            .with_context(|| format!("installing CRDs from {}", dir.display()))?;
    }
    let launch = match args.prometheus {
        true => Some(healthy_launch().await.context("starting Prometheus")?),
        false => None,
    };
    if let Some((exporter, prometheus)) = &launch {
        println!("PROMETHEUS {}", prometheus.url());
        println!("EXPORTER http://{}", exporter.target());
    }
    std::fs::copy(cp.kubeconfig_path(), &args.kubeconfig_out)
        .with_context(|| format!("writing {}", args.kubeconfig_out.display()))?;
    println!("READY {}", cp.server_url());

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            _ = sigterm.recv() => break Ok(()),
            _ = sigint.recv() => break Ok(()),
            _ = tick.tick() => {
                if let Err(e) = cp.ensure_running() {
                    break Err(e);
                }
            }
        }
    };
    eprintln!("liftoff-testenv: stopping");
    if let Some((_, mut prometheus)) = launch {
        prometheus.stop().await;
    }
    cp.stop().await;
    outcome
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("liftoff-testenv: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match up(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("liftoff-testenv: {e:#}");
            ExitCode::FAILURE
        }
    }
}
