//! The `liftoff` command: run the operator, or print its CRD.

use std::{net::SocketAddr, time::Duration};

use clap::{Parser, Subcommand};
use liftoff::{controller, http, metrics::Metrics, telemetry};

/// Liftoff scales a product launch on triggers and runs its staged rollout.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator against the cluster in KUBECONFIG or the in-cluster service account.
    Run(RunArgs),
    /// Print the LaunchPolicy CustomResourceDefinition as YAML (what `crds/` holds).
    Crd,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch LaunchPolicies in this namespace only (default: all namespaces).
    #[arg(long, env = "LIFTOFF_NAMESPACE")]
    namespace: Option<String>,
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "LIFTOFF_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Log format: json (default, one object per line) or text.
    #[arg(long, env = "LIFTOFF_LOG_FORMAT", value_enum, default_value = "json")]
    log_format: telemetry::LogFormat,
    /// How often a healthy policy is re-checked even without changes (Secrets are not watched).
    #[arg(long, env = "LIFTOFF_RESYNC", default_value = "5m", value_parser = humantime::parse_duration)]
    resync: Duration,
    /// How often a policy with unresolved references is re-checked.
    #[arg(long, env = "LIFTOFF_RETRY", default_value = "30s", value_parser = humantime::parse_duration)]
    retry: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => {
            print!("{}", liftoff::crd::crd_yaml());
            Ok(())
        }
        Command::Run(args) => run(args).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    let client = kube::Client::try_default().await?;
    let metrics = Metrics::default();
    let settings = controller::Settings {
        namespace: args.namespace,
        resync: args.resync,
        retry: args.retry,
    };
    let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(args.metrics_addr, metrics.clone(), async {
        stopped.await.ok();
    }));
    let result = controller::run(client, settings, metrics).await;
    let _ = stop_http.send(());
    server.await??;
    tracing::info!("shut down");
    result
}
