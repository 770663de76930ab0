//! The `liftoff` command: run the operator, or print its CRD.

use std::{net::SocketAddr, time::Duration};

use clap::{Parser, Subcommand};
use liftoff::{
    apiserver, controller, http,
    leader::{self, LeaseSettings, Role},
    metrics::Metrics,
    sources::address::{AddressPolicy, Rule},
    telemetry,
};

/// The allocator: mimalloc returns freed memory to the system where glibc's per-thread arenas
/// keep it (see docs/benchmarks.md, operator memory at 10,000 policies). The
/// `system-allocator` feature keeps the C library's, for heap profilers that hook it.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Run(Box<RunArgs>),
    /// Print Liftoff's CustomResourceDefinitions as YAML (what `crds/` holds): both, or the one
    /// named (`launchpolicy`, `launchsource`).
    Crd {
        #[arg(value_enum)]
        which: Option<CrdName>,
    },
    /// Regenerate the generated parts of the docs (the metrics table, the LaunchPolicy
    /// reference) in the repository in the current directory.
    Docs,
    /// Check LaunchPolicies offline: the apiserver's verdict (the CRD's schema and CEL rules),
    /// then a reviewer's warnings. Exit status 1 when the apiserver would refuse one (or, with
    /// --strict, when there is a warning), 0 otherwise.
    Lint {
        /// YAML file(s) of LaunchPolicies (several documents each); `-` reads stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<std::path::PathBuf>,
        /// Warnings fail too.
        #[arg(long)]
        strict: bool,
    },
    /// Replay a LaunchPolicy over recorded metrics (Prometheus range queries, a CSV) with the
    /// operator's own engines: every scaling action and rollout decision it would have taken,
    /// when and why; --plot draws them. Contacts no cluster.
    Simulate(Box<liftoff::simulate::Args>),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch LaunchPolicies in this namespace only (default: all namespaces).
    #[arg(long, env = "LIFTOFF_NAMESPACE")]
    namespace: Option<String>,
    /// Act only on the LaunchPolicies this label selector matches (`team=payments`,
    /// `liftoff.dev/shard!=a`): one shard of several operators, each with its own
    /// --lease-name. The shards' selectors must together match every policy exactly once.
    #[arg(long, env = "LIFTOFF_SELECTOR")]
    selector: Option<String>,
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "LIFTOFF_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Log format: json (default, one object per line) or text.
    #[arg(long, env = "LIFTOFF_LOG_FORMAT", value_enum, default_value = "json")]
    log_format: telemetry::LogFormat,
    /// How often a healthy policy is re-checked even without changes (Secrets are not watched).
    #[arg(long, env = "LIFTOFF_RESYNC", default_value = "5m", value_parser = humantime::parse_duration)]
    resync: Duration,
    /// Addresses policies may not make the operator contact, besides the defaults (link-local
    /// and cloud metadata addresses, the apiserver): CIDRs or IPs, optionally for one destination
    /// (`redis=10.9.0.0/16`). Repeat the flag, or separate with commas.
    #[arg(
        long = "deny-address",
        env = "LIFTOFF_DENY_ADDRESS",
        value_delimiter = ','
    )]
    deny_address: Vec<Rule>,
    /// When a destination (prometheus, kafka, postgres, redis, webhook) has rules here, policies
    /// may make the operator contact only those networks for it (`prometheus=10.20.0.0/16`).
    #[arg(
        long = "allow-address",
        env = "LIFTOFF_ALLOW_ADDRESS",
        value_delimiter = ','
    )]
    allow_address: Vec<Rule>,
    /// Refuse Prometheus and Kafka addresses written in policies: policies must name a
    /// LaunchSource (`sourceRef`) the platform team created for their namespace.
    #[arg(long, env = "LIFTOFF_REQUIRE_NAMED_SOURCES", default_value_t = false)]
    require_named_sources: bool,
    /// The longest an answer to a Prometheus query is shared with identical queries (same
    /// address, credentials and PromQL) of other triggers and gates, and a Kafka consumer lag
    /// with identical reads (same cluster, credentials, namespace, topic and group); each also
    /// caps it at its own interval. 0s shares only reads in flight at the same time.
    #[arg(long, env = "LIFTOFF_QUERY_REUSE", default_value = "15s", value_parser = query_reuse)]
    query_reuse: Duration,
    /// The most reconciles in flight at once; the others wait their turn. A reconcile holds
    /// its turn while it reads its sources (at most their timeout), so with every source
    /// unreadable a turn serves about `concurrency ÷ timeout` policies a second.
    #[arg(long, env = "LIFTOFF_CONCURRENCY", default_value_t = controller::DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// The most requests to the apiserver awaiting an answer at once; the others wait in line.
    /// Each one in flight holds an HTTP connection (~40 KiB), closed 15–30 s after its last use,
    /// so this also bounds the operator's connections. A watch counts only until
    /// its stream begins, a request waiting to retry gives its turn back, and leader election
    /// has a connection of its own and never waits in this line.
    #[arg(long, env = "LIFTOFF_API_REQUESTS_IN_FLIGHT",
          default_value_t = apiserver::DEFAULT_REQUESTS_IN_FLIGHT,
          value_parser = clap::value_parser!(u16).range(1..))]
    api_requests_in_flight: u16,
    /// How often a policy with unresolved references is re-checked.
    #[arg(long, env = "LIFTOFF_RETRY", default_value = "30s", value_parser = humantime::parse_duration)]
    retry: Duration,
    #[command(flatten)]
    election: ElectionArgs,
}

/// One of Liftoff's CRDs.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CrdName {
    Launchpolicy,
    Launchsource,
}

/// Leader election: of several replicas only the one holding the Lease runs the controller.
#[derive(clap::Args)]
struct ElectionArgs {
    /// Run the controller only while holding the Lease (the Helm chart turns this on).
    #[arg(long, env = "LIFTOFF_LEADER_ELECTION", default_value_t = false)]
    leader_election: bool,
    /// Namespace of the Lease (default: the client's namespace, in-cluster the pod's own).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, env = "LIFTOFF_LEASE_NAME", default_value = "liftoff")]
    lease_name: String,
    /// How long a Lease that is not renewed keeps the other replicas waiting.
    #[arg(long, env = "LIFTOFF_LEASE_DURATION", default_value = "15s", value_parser = lease_duration)]
    lease_duration: Duration,
    /// This replica's name in the Lease (default: POD_NAME, else host name and process id).
    #[arg(long, env = "LIFTOFF_LEASE_IDENTITY")]
    lease_identity: Option<String>,
}

fn query_reuse(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d > Duration::from_secs(60) {
        return Err("must be at most 1m: older answers are not data to decide on".into());
    }
    Ok(d)
}

fn lease_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(2) {
        return Err("must be at least 2s".into());
    }
    Ok(d)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd { which } => {
            let (policy, source) = (liftoff::crd::crd_yaml(), liftoff::crd::source_crd_yaml());
            match which {
                Some(CrdName::Launchpolicy) => print!("{policy}"),
                Some(CrdName::Launchsource) => print!("{source}"),
                None => print!("{policy}---\n{source}"),
            }
            Ok(())
        }
        Command::Docs => {
            for page in liftoff::docs::write(std::path::Path::new("."))? {
                println!("updated {page}");
            }
            Ok(())
        }
        Command::Lint { files, strict } => {
            // A library that panics on a value is reported as a refusal or a warning; its
            // message would only clutter the verdicts.
            std::panic::set_hook(Box::new(|_| {}));
            let failed = lint(&files, strict)?;
            std::process::exit(i32::from(failed));
        }
        Command::Simulate(args) => {
            if let Err(e) = liftoff::simulate::run(*args).await {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Run(args) => run(*args).await,
    }
}

/// Prints the verdict on every policy of `files`; whether any failed.
fn lint(files: &[std::path::PathBuf], strict: bool) -> anyhow::Result<bool> {
    use std::io::{Read as _, Write as _};
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic: the verdict is the exit status.
    let mut say = |line: String| {
        let _ = writeln!(stdout, "{line}");
    };
    let mut failed = false;
    for file in files {
        let text = if file.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            text
        } else {
            std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
        };
        let verdicts = liftoff::lint::lint(&text);
        if verdicts.is_empty() {
            say(format!("{}: no LaunchPolicy", file.display()));
        }
        for v in verdicts {
            let (file, policy) = (file.display(), &v.policy);
            say(match (v.refusals.is_empty(), v.warnings.len()) {
                (false, _) => {
                    format!("{file}: {policy}: refused (the apiserver would not store it)")
                }
                (true, 0) => format!("{file}: {policy}: ok"),
                (true, n) => format!("{file}: {policy}: accepted, {n} warning(s)"),
            });
            for r in &v.refusals {
                say(format!("  error: {r}"));
            }
            for w in &v.warnings {
                say(format!("  warning: {w}"));
            }
            failed |= !v.refusals.is_empty() || (strict && !v.warnings.is_empty());
        }
    }
    Ok(failed)
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    let config = kube::Config::infer().await?;
    let url = &config.cluster_url;
    let apiserver = apiserver_addresses(url.host(), url.port_u16().unwrap_or(443)).await;
    // The Lease is renewed on a client of its own: a renewal never waits behind reconciles.
    let lease_client = kube::Client::try_from(config.clone())?;
    let client = apiserver::client(config, args.api_requests_in_flight)?;
    let metrics = Metrics::default();
    let address_policy = AddressPolicy::new(&args.deny_address, &args.allow_address, &apiserver);
    tracing::info!(?address_policy, "address policy");
    let settings = controller::Settings {
        namespace: args.namespace,
        selector: args.selector,
        resync: args.resync,
        retry: args.retry,
        leader: None,
        address_policy,
        require_named_sources: args.require_named_sources,
        query_reuse: args.query_reuse,
        concurrency: args.concurrency,
    };
    let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(args.metrics_addr, metrics.clone(), async {
        stopped.await.ok();
    }));
    let result = if args.election.leader_election {
        run_elected(client, lease_client, settings, metrics, args.election).await
    } else {
        metrics.leader.set(1);
        controller::run(client, settings, metrics).await
    };
    let _ = stop_http.send(());
    server.await??;
    match &result {
        Ok(()) => tracing::info!("shut down"),
        Err(e) => tracing::error!(error = %e, "exiting"),
    }
    result
}

/// The addresses of the apiserver the operator talks to, which policies may not name.
async fn apiserver_addresses(host: Option<&str>, port: u16) -> Vec<std::net::SocketAddr> {
    let Some(host) = host else {
        return Vec::new();
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match tokio::net::lookup_host((host, port)).await {
        Ok(found) => found.collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot resolve the apiserver's address to deny it to policies");
            Vec::new()
        }
    }
}

/// Waits for the Lease, then runs the controller while leading. Losing the Lease ends the
/// process with an error at once (no writer may outlive its leadership; the kubelet restarts it).
async fn run_elected(
    client: kube::Client,
    lease_client: kube::Client,
    mut settings: controller::Settings,
    metrics: Metrics,
    args: ElectionArgs,
) -> anyhow::Result<()> {
    let namespace = args
        .lease_namespace
        .unwrap_or_else(|| client.default_namespace().to_string());
    let identity = args.lease_identity.unwrap_or_else(leader::default_identity);
    tracing::info!(lease = %args.lease_name, %namespace, %identity, "leader election on; waiting for the lease");
    let lease = LeaseSettings::from_duration(args.lease_duration);
    let elector =
        leader::Elector::new(lease_client, &namespace, &args.lease_name, &identity, lease);
    let state = leader::State::default();
    settings.leader = Some(state.clone());
    let election = tokio::spawn(elector.run(state.clone()));
    tokio::spawn(publish_role(state.clone(), metrics.clone()));

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let leading = tokio::select! {
        _ = state.wait_until_leader() => true,
        _ = terminate.recv() => false,
        _ = tokio::signal::ctrl_c() => false,
    };
    if !leading {
        resign(state, election).await;
        return Ok(());
    }
    tracing::info!(%identity, "leading; starting the controller");
    let result = tokio::select! {
        result = controller::run(client, settings, metrics) => result,
        _ = state.wait_until_not_leader() => {
            election.abort();
            anyhow::bail!("lost the lease {}; exiting so that only the new leader acts", args.lease_name)
        }
    };
    resign(state, election).await;
    result
}

/// Releases the Lease (when held) and waits, boundedly, for the elector to finish.
async fn resign(state: leader::State, election: tokio::task::JoinHandle<()>) {
    state.resign();
    if tokio::time::timeout(Duration::from_secs(5), election)
        .await
        .is_err()
    {
        tracing::warn!("the lease was not released within 5s; peers wait for it to expire");
    }
}

/// Mirrors the role into `liftoff_leader`, and counts a replica standing by as ready.
async fn publish_role(state: leader::State, metrics: Metrics) {
    let mut roles = state.subscribe();
    loop {
        let role = *roles.borrow_and_update();
        metrics.leader.set(i64::from(role == Role::Leader));
        if role != Role::Starting {
            metrics.ready.set(1);
        }
        if roles.changed().await.is_err() {
            return;
        }
    }
}
