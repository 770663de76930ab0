//! Benchmark, not a test: how fast the operator brings N LaunchPolicies to Ready, and what N
//! policies cost in steady state (status writes, reconciles, CPU, memory, Prometheus queries,
//! apiserver requests). Not compiled by `cargo test`; run it with
//! `scripts/bench-scale.sh` (release build, results as Markdown for `docs/benchmarks.md`).
//!
//! Setup: a control plane, an exporter serving `cpu_utilization{app="api"} 20` scraped by
//! Prometheus every 5 s, a Deployment `api` at 2 replicas, and the release operator. Then N
//! policies, each with one `cpu` trigger on `api` (PromQL, target 70 %, replicas 2–10, default
//! `interval` 15 s and `statusRefresh` 5 m) are created with [`IN_FLIGHT`] creates in flight.
//! 20 % on 2 replicas recommends 2: no policy ever acts, so what is measured is the cost of
//! watching, sampling and keeping status. Last, the operator is killed with SIGKILL and a new one
//! started over the N policies: its time to `/readyz`, to reconcile every policy once, and what
//! it writes (nothing changed, so nothing should be written).
//!
//! Environment: `LIFTOFF_BENCH_POLICIES` (default 1000); `LIFTOFF_BENCH_READY_CAP` (seconds,
//! default 900) — the longest wait for every policy to be Ready; `LIFTOFF_BENCH_STEADY`
//! (seconds, default 120) — the steady-state window; `LIFTOFF_BENCH_LOG` (the operator's
//! `RUST_LOG`, default `info`); `LIFTOFF_BENCH_OUT`, a file to write the Markdown results to;
//! `LIFTOFF_BENCH_PRESTORED=1` stores the N policies before the operator starts (a fresh install
//! over an existing fleet, or a new leader) and times Ready from the operator's start, then
//! measures the apiserver's own floor with the operator stopped: N more policies created, and
//! the status the operator wrote to the first one written to each of them by a plain client, the
//! same JSON patch, [`IN_FLIGHT`] at once. `LIFTOFF_BENCH_PROFILE_DIR` (with `PRESTORED`) keeps a
//! CPU profile of the apiserver (`/debug/pprof/profile`) of the first seconds of the operator's
//! ramp and of the plain client's status writes, for `go tool pprof`. `LIFTOFF_BENCH_ROLLOUT=1`
//! gives every policy the example's rollout as well ([`example_fleet::example_rollout`]);
//! `LIFTOFF_BENCH_FULL=1` makes every policy a whole copy of `examples/emr-platform.yaml` with
//! its own workloads and ConfigMaps, over real Kafka and Redis ([`example_fleet`]).
//! `LIFTOFF_BENCH_QUERY_REUSE` (a duration, e.g. `15s`) runs the operator with that
//! `--query-reuse` instead of its default.

#[path = "scale/example_fleet.rs"]
mod example_fleet;
#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    collections::HashMap,
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use liftoff::crd::LaunchPolicy;
use liftoff_testenv::{ControlPlane, MetricsExporter, Prometheus};
use serde_json::json;
use support::{
    Operator,
    bench::{cpu_seconds, kib_to_mib, metric_sum, metric_sum_where, proc_status},
    control_plane, http_get, kubectl,
    objects::{create, policy, workload},
};

/// Creates in flight at once.
const IN_FLIGHT: usize = 32;
/// Prometheus' scrape interval.
const SCRAPE: Duration = Duration::from_secs(5);
/// How often progress and resource samples are taken.
const TICK: Duration = Duration::from_secs(1);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name} is a number"))
        })
        .unwrap_or(default)
}

/// Counters read at the start and end of a window.
#[derive(Clone, Copy, Debug, Default)]
struct Snapshot {
    at: Option<Instant>,
    operator_cpu: f64,
    apiserver_cpu: f64,
    etcd_cpu: f64,
    prometheus_cpu: f64,
    reconciles: f64,
    reconcile_seconds: f64,
    reconcile_errors: f64,
    status_writes: f64,
    status_skipped: f64,
    status_conflicts: f64,
    actions: f64,
    prometheus_queries: f64,
    api_requests: f64,
    api_errors: f64,
    api_throttled: f64,
    /// Answers 404 to a GET: a lookup of something that does not exist yet (a ConfigMap the
    /// operator is about to create), not a failure.
    api_not_found: f64,
    api_policy_status_writes: f64,
}

#[derive(Clone, Copy)]
struct Pids {
    operator: u32,
    apiserver: Option<u32>,
    etcd: Option<u32>,
    prometheus: Option<u32>,
}

/// `op` is `None` before the operator runs: its counters are zero then.
async fn snapshot(
    cp: &ControlPlane,
    op: Option<&Operator>,
    prom: &Prometheus,
    pids: &Pids,
) -> Snapshot {
    let m = match op {
        Some(op) => op.metrics().await,
        None => String::new(),
    };
    let prom_metrics = http_get(prom.port(), "/metrics")
        .await
        .map(|(_, body)| body)
        .unwrap_or_default();
    // A busy apiserver (a new operator listing every policy) may not answer at once.
    let mut api = String::new();
    for attempt in 1..=5 {
        let (ok, out, err) = kubectl(cp, &["get", "--raw", "/metrics"], None).await;
        if ok {
            api = out;
            break;
        }
        assert!(attempt < 5, "apiserver /metrics: {err}");
        println!("apiserver /metrics (attempt {attempt}): {err}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let code = |labels: &str| -> u16 {
        labels
            .split("code=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    let cpu = |pid: Option<u32>| pid.map_or(0.0, cpu_seconds);
    Snapshot {
        at: Some(Instant::now()),
        operator_cpu: if op.is_some() {
            cpu_seconds(pids.operator)
        } else {
            0.0
        },
        apiserver_cpu: cpu(pids.apiserver),
        etcd_cpu: cpu(pids.etcd),
        prometheus_cpu: cpu(pids.prometheus),
        reconciles: metric_sum(&m, "liftoff_reconciles_total"),
        reconcile_seconds: metric_sum(&m, "liftoff_reconcile_duration_seconds_sum"),
        reconcile_errors: metric_sum(&m, "liftoff_reconcile_errors_total"),
        status_writes: metric_sum(&m, "liftoff_status_writes_total"),
        status_skipped: metric_sum(&m, "liftoff_status_writes_skipped_total"),
        status_conflicts: metric_sum(&m, "liftoff_status_conflicts_total"),
        actions: metric_sum(&m, "liftoff_actions_total"),
        prometheus_queries: metric_sum_where(
            &prom_metrics,
            "prometheus_http_requests_total",
            |l| l.contains("handler=\"/api/v1/query\""),
        ),
        api_requests: metric_sum(&api, "apiserver_request_total"),
        api_errors: metric_sum_where(&api, "apiserver_request_total", |l| code(l) >= 400),
        api_throttled: metric_sum_where(&api, "apiserver_request_total", |l| code(l) == 429),
        api_not_found: metric_sum_where(&api, "apiserver_request_total", |l| {
            code(l) == 404 && l.contains("verb=\"GET\"")
        }),
        api_policy_status_writes: metric_sum_where(&api, "apiserver_request_total", |l| {
            l.contains("resource=\"launchpolicies\"")
                && l.contains("subresource=\"status\"")
                && ["APPLY", "PATCH", "PUT"]
                    .iter()
                    .any(|v| l.contains(&format!("verb=\"{v}\"")))
        }),
    }
}

/// What happened between two snapshots.
struct Window {
    secs: f64,
    d: Snapshot,
}

fn window(a: &Snapshot, b: &Snapshot) -> Window {
    let secs = b.at.unwrap().duration_since(a.at.unwrap()).as_secs_f64();
    let d = Snapshot {
        at: None,
        operator_cpu: b.operator_cpu - a.operator_cpu,
        apiserver_cpu: b.apiserver_cpu - a.apiserver_cpu,
        etcd_cpu: b.etcd_cpu - a.etcd_cpu,
        prometheus_cpu: b.prometheus_cpu - a.prometheus_cpu,
        reconciles: b.reconciles - a.reconciles,
        reconcile_seconds: b.reconcile_seconds - a.reconcile_seconds,
        reconcile_errors: b.reconcile_errors - a.reconcile_errors,
        status_writes: b.status_writes - a.status_writes,
        status_skipped: b.status_skipped - a.status_skipped,
        status_conflicts: b.status_conflicts - a.status_conflicts,
        actions: b.actions - a.actions,
        prometheus_queries: b.prometheus_queries - a.prometheus_queries,
        api_requests: b.api_requests - a.api_requests,
        api_errors: b.api_errors - a.api_errors,
        api_throttled: b.api_throttled - a.api_throttled,
        api_not_found: b.api_not_found - a.api_not_found,
        api_policy_status_writes: b.api_policy_status_writes - a.api_policy_status_writes,
    };
    Window { secs, d }
}

impl Window {
    fn rate(&self, v: f64) -> String {
        format!("{:.1}/s", v / self.secs)
    }

    fn cpu(&self, seconds: f64) -> String {
        format!("{:.0} %", 100.0 * seconds / self.secs)
    }

    /// One Markdown table row: `label` then the window's figures.
    fn row(&self, label: &str) -> String {
        let d = &self.d;
        format!(
            "| {label} | {:.0} s | {} ({:.0}) | {} ({:.0}) | {:.0} | {:.0} | {:.1} ms | {:.0} | {:.2}/s ({:.0}) | {} / {} / {} / {} | {} ({:.0} ≥ 400: {:.0} × 404 to a GET, {:.0} × 429) | {} |",
            self.secs,
            self.rate(d.reconciles),
            d.reconciles,
            self.rate(d.status_writes),
            d.status_writes,
            d.status_skipped,
            d.status_conflicts,
            1000.0 * d.reconcile_seconds / d.reconciles.max(1.0),
            d.reconcile_errors,
            d.prometheus_queries / self.secs,
            d.prometheus_queries,
            self.cpu(d.operator_cpu),
            self.cpu(d.apiserver_cpu),
            self.cpu(d.etcd_cpu),
            self.cpu(d.prometheus_cpu),
            self.rate(d.api_requests),
            d.api_errors,
            d.api_not_found,
            d.api_throttled,
            self.rate(d.api_policy_status_writes),
        )
    }
}

const WINDOW_HEADER: &str = "| Window | Length | Reconciles | Status writes | Writes skipped | Conflicts | Mean reconcile | Reconcile errors | Prometheus queries | CPU of one core: operator / apiserver / etcd / Prometheus | apiserver requests | LaunchPolicy status writes (apiserver) |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";

#[tokio::main]
async fn main() {
    policies_to_ready_and_steady_state().await;
}

async fn policies_to_ready_and_steady_state() {
    let n = env_num("LIFTOFF_BENCH_POLICIES", 1000) as usize;
    let prestored = env_num("LIFTOFF_BENCH_PRESTORED", 0) != 0;
    let full = env_num("LIFTOFF_BENCH_FULL", 0) != 0;
    let rollout = env_num("LIFTOFF_BENCH_ROLLOUT", 0) != 0 && !full;
    let cap = Duration::from_secs(env_num("LIFTOFF_BENCH_READY_CAP", 900));
    let steady = Duration::from_secs(env_num("LIFTOFF_BENCH_STEADY", 120));
    let log = std::env::var("LIFTOFF_BENCH_LOG").unwrap_or_else(|_| "info".into());

    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("scale").await.unwrap();
    create::<Deployment>(&client, &ns, workload("Deployment", "api", 2)).await;
    let exporter = MetricsExporter::start().await.unwrap();
    exporter.set("cpu_utilization", &[("app", "api")], 20.0);
    let prometheus = Prometheus::start(&[exporter.target()], SCRAPE)
        .await
        .unwrap();
    prometheus.wait_for_query("cpu_utilization").await.unwrap();
    let mut spec = json!({
        "prometheus": {"address": prometheus.url()},
        "scaling": {"triggers": [{
            "name": "api-cpu",
            "cpu": {"utilization": 70, "query": "max(cpu_utilization{app=\"api\"})"},
            "scaleTargetRef": {"kind": "Deployment", "name": "api"},
            "replicas": {"min": 2, "max": 10}
        }]}
    });
    if rollout {
        spec["rollout"] = example_fleet::example_rollout();
    }
    // The whole example: its servers, Secrets and every policy's own workloads, stored first.
    let servers = match full {
        true => Some(example_fleet::Servers::start(&client, &ns).await),
        false => None,
    };
    if let Some(servers) = &servers {
        spec = servers.example(&prometheus.url());
        let started = Instant::now();
        let errors = example_fleet::create_workloads(&client, &ns, n, IN_FLIGHT).await;
        println!(
            "created {} workloads in {:.1?} ({} errors{})",
            3 * n,
            started.elapsed(),
            errors.len(),
            errors
                .first()
                .map_or(String::new(), |e| format!(", first: {e}"))
        );
    }
    // Every policy's first Ready=True, seen through a watch of the namespace.
    let policies: Api<LaunchPolicy> = Api::namespaced(client.clone(), &ns);
    let ready_at: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let seen = ready_at.clone();
    let watch = tokio::spawn(
        watcher(policies.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects()
            // An error (a watch the apiserver timed out under load) is retried by the backoff;
            // it must not end the count.
            .for_each(move |lp| {
                let lp: LaunchPolicy = match lp {
                    Ok(lp) => lp,
                    Err(e) => {
                        eprintln!("bench: the Ready watch failed, retrying: {e}");
                        return futures::future::ready(());
                    }
                };
                let ready = lp.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                });
                if ready {
                    seen.lock()
                        .unwrap()
                        .entry(lp.name_any())
                        .or_insert_with(Instant::now);
                }
                futures::future::ready(())
            }),
    );

    // Prestored: every policy is stored before the operator starts (a fresh install over an
    // existing fleet, or a new leader), and Ready is timed from its start.
    let stored_in = if prestored {
        let stored = Instant::now();
        let errors = create_all(&policies, &spec, n, full).await;
        println!(
            "stored {n} in {:.1?} ({} errors) before the operator starts",
            stored.elapsed(),
            errors.len()
        );
        Some((stored.elapsed(), errors))
    } else {
        None
    };
    let unstarted = Pids {
        operator: 0,
        apiserver: cp.pids().first().copied(),
        etcd: cp.pids().get(1).copied(),
        prometheus: prometheus.pid(),
    };
    let before_start = snapshot(&cp, None, &prometheus, &unstarted).await;
    let ramp_profile = prestored
        .then(|| apiserver_profile(&cp, "apiserver-operator-ramp", PROFILE_SECONDS))
        .flatten();
    let started = Instant::now();
    let operator =
        Operator::start_with(cp.kubeconfig_path(), &[], &borrowed(&operator_env(&log))).await;
    let cp_pids = cp.pids();
    let pids = Pids {
        operator: operator.pid().expect("operator running"),
        // `ControlPlane::pids` lists the apiserver, then etcd.
        apiserver: cp_pids.first().copied(),
        etcd: cp_pids.get(1).copied(),
        prometheus: prometheus.pid(),
    };
    let rss_idle = proc_status(pids.operator, "VmRSS");
    println!(
        "bench: {n} policies, operator pid {}, RUST_LOG={log}",
        pids.operator
    );

    let (before, t0) = match prestored {
        true => (before_start, started),
        false => (
            snapshot(&cp, Some(&operator), &prometheus, &pids).await,
            Instant::now(),
        ),
    };
    let create_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut creating = (!prestored).then(|| {
        let spec = spec.clone();
        let policies = policies.clone();
        let errors = create_errors.clone();
        tokio::spawn(async move {
            futures::stream::iter(0..n)
                .map(|i| {
                    let policies = policies.clone();
                    let object = named_policy(&spec, i, full);
                    async move { policies.create(&PostParams::default(), &object).await }
                })
                .buffer_unordered(IN_FLIGHT)
                .for_each(|r| {
                    if let Err(e) = r {
                        errors.lock().unwrap().push(e.to_string());
                    }
                    futures::future::ready(())
                })
                .await;
            t0.elapsed()
        })
    });

    let mut rss_max = rss_idle;
    let mut created_in = stored_in.as_ref().map(|_| Duration::ZERO);
    let mut last_print = Instant::now();
    let all_ready = loop {
        tokio::time::sleep(TICK).await;
        rss_max = rss_max.max(proc_status(pids.operator, "VmRSS"));
        if let Some(done) = creating.take_if(|c| c.is_finished()) {
            created_in = Some(done.await.unwrap());
            println!(
                "created {n} in {:.1?} ({} errors)",
                created_in.unwrap(),
                create_errors.lock().unwrap().len()
            );
        }
        let ready = ready_at.lock().unwrap().len();
        if last_print.elapsed() >= Duration::from_secs(10) {
            last_print = Instant::now();
            println!(
                "{:>5.0} s: {ready}/{n} Ready, operator RSS {:.1} MiB",
                t0.elapsed().as_secs_f64(),
                kib_to_mib(proc_status(pids.operator, "VmRSS"))
            );
        }
        if created_in.is_some() && ready >= n {
            break true;
        }
        if t0.elapsed() >= cap {
            break false;
        }
    };
    let ramp_end = snapshot(&cp, Some(&operator), &prometheus, &pids).await;
    let ramp = window(&before, &ramp_end);
    let mut times: Vec<Duration> = ready_at
        .lock()
        .unwrap()
        .values()
        .map(|at| at.duration_since(t0))
        .collect();
    times.sort();
    let ready_at_cap = times.len();
    let rss_ramp = proc_status(pids.operator, "VmRSS");
    println!(
        "ramp over after {:.1?}: {ready_at_cap}/{n} Ready",
        t0.elapsed()
    );

    // Steady state: nothing changes, every policy is sampled every 15 s.
    let steady_start = snapshot(&cp, Some(&operator), &prometheus, &pids).await;
    let steady_from = Instant::now();
    while steady_from.elapsed() < steady {
        tokio::time::sleep(TICK).await;
        rss_max = rss_max.max(proc_status(pids.operator, "VmRSS"));
    }
    let steady_end = snapshot(&cp, Some(&operator), &prometheus, &pids).await;
    let steady_window = window(&steady_start, &steady_end);
    let rss_end = proc_status(pids.operator, "VmRSS");
    rss_max = rss_max.max(rss_end);
    let hwm = proc_status(pids.operator, "VmHWM");
    // What the end's RSS is made of: anonymous memory (heap, stacks) and file pages (the binary).
    let (rss_anon, rss_file) = (
        proc_status(pids.operator, "RssAnon"),
        proc_status(pids.operator, "RssFile"),
    );
    let threads = proc_status(pids.operator, "Threads");
    let apiserver_port: u16 = cp.server_url().rsplit(':').next().unwrap().parse().unwrap();
    let connections = operator.connections_to(apiserver_port);
    let ready_end = ready_at.lock().unwrap().len();
    watch.abort();

    if let Some(profile) = ramp_profile {
        let _ = profile.await;
    }
    // The first status the operator wrote, for the floor below (no status changed since).
    let first_status = policies
        .get_status("p-00000")
        .await
        .ok()
        .and_then(|p| p.status);

    // Restart: kill -9 (a crash, or a takeover) and start a new operator over the N policies.
    keep_log("operator", &operator.logs());
    let (restart, restarted_rss) = restart(&cp, operator, &prometheus, &pids, n, &log).await;
    keep_log("restarted-operator", &restart.logs);
    let floor = match (prestored, &first_status) {
        (true, Some(status)) => {
            Some(write_floor(&cp, &client, &spec, status, n, full, pids.apiserver).await)
        }
        _ => None,
    };

    // Report.
    let at = |pct: usize| -> String {
        let k = (n * pct).div_ceil(100).max(1);
        times.get(k - 1).map_or_else(
            || {
                format!(
                    "not reached ({ready_at_cap}/{n} at {:.0} s)",
                    cap.as_secs_f64()
                )
            },
            |d| format!("{:.1} s", d.as_secs_f64()),
        )
    };
    let mut md = String::new();
    let mut errors = create_errors.lock().unwrap().clone();
    if let Some((stored, stored_errors)) = &stored_in {
        // Stored before the operator started: creation is not part of what is timed.
        created_in = Some(*stored);
        errors.extend(stored_errors.iter().cloned());
    }
    writeln!(
        md,
        "N = {n} LaunchPolicies ({}{}, PromQL on Prometheus scraping every {} s, \
         default `interval` 15 s and `statusRefresh` 5 m; no policy acts), created {IN_FLIGHT} in \
         flight in {} ({} create errors{}){}; operator `RUST_LOG={log}`{}.\n",
        match full {
            true =>
                "copies of `examples/emr-platform.yaml` (`LIFTOFF_BENCH_FULL=1`): 4 triggers \
                     (CPU and database connections on PromQL, Kafka lag on a real broker, Redis \
                     memory on a real Redis; interval 15 s), the rollout's 12 gate checks every \
                     minute, its cohort ConfigMap and flagd flag, 2 kill switches, 4 webhook \
                     notifications to a local receiver and 2 summary figures, each copy with its \
                     own 2 Deployments, StatefulSet and 3 ConfigMaps",
            false => "one `cpu` trigger each",
        },
        if rollout {
            " and the example's rollout: 4 stages, 12 gate checks every minute, no cohort \
             (`LIFTOFF_BENCH_ROLLOUT=1`)"
        } else {
            ""
        },
        SCRAPE.as_secs(),
        created_in.map_or("– (still creating at the cap)".to_string(), |d| format!(
            "{:.1} s ({:.0}/s)",
            d.as_secs_f64(),
            n as f64 / d.as_secs_f64()
        )),
        errors.len(),
        errors
            .first()
            .map_or(String::new(), |e| format!(", first: {e}")),
        if prestored {
            ", all stored **before the operator started** (`LIFTOFF_BENCH_PRESTORED=1`)"
        } else {
            ""
        },
        query_reuse().map_or(String::new(), |r| format!(", `--query-reuse={r}`")),
    )
    .unwrap();
    let from = match prestored {
        true => "from the operator's start",
        false => "from the first create",
    };
    writeln!(
        md,
        "| Ready=True, {from} | 50 % | 90 % | 100 % | Ready at the end of the ramp |\n\
         | --- | ---: | ---: | ---: | ---: |\n\
         | time | {} | {} | {} | {ready_at_cap}/{n}{} |\n",
        at(50),
        at(90),
        at(100),
        if all_ready {
            String::new()
        } else {
            format!(" (cap {:.0} s)", cap.as_secs_f64())
        },
    )
    .unwrap();
    writeln!(md, "{WINDOW_HEADER}").unwrap();
    writeln!(
        md,
        "{}",
        ramp.row(match prestored {
            true => "ramp: operator start → all Ready (or the cap)",
            false => "ramp: first create → all Ready (or the cap)",
        })
    )
    .unwrap();
    writeln!(md, "{}", steady_window.row("steady state after the ramp")).unwrap();
    writeln!(
        md,
        "\nIn steady state, per policy: {:.3} reconciles/s (one sample per 15 s interval would be \
         {:.3}), {:.4} status writes/s (at most one `statusRefresh` rewrite per 5 m would be \
         {:.4}), {:.5} Prometheus queries/s. Actions taken over the whole run: {:.0}.\n",
        steady_window.d.reconciles / steady_window.secs / n as f64,
        1.0 / 15.0,
        steady_window.d.status_writes / steady_window.secs / n as f64,
        1.0 / 300.0,
        steady_window.d.prometheus_queries / steady_window.secs / n as f64,
        steady_end.actions,
    )
    .unwrap();
    writeln!(
        md,
        "Operator: RSS {:.1} MiB idle (no policy; with `PRESTORED`, once started over them), {:.1} MiB at the end of the ramp, {:.1} MiB \
         at the end ({:.1} MiB anonymous, {:.1} MiB file pages), peak sampled {:.1} MiB (VmHWM {:.1} MiB), {threads} threads and \
         {connections} connections to the apiserver at the end; {ready_end}/{n} Ready at the end.",
        kib_to_mib(rss_idle),
        kib_to_mib(rss_ramp),
        kib_to_mib(rss_end),
        kib_to_mib(rss_anon),
        kib_to_mib(rss_file),
        kib_to_mib(rss_max),
        kib_to_mib(hwm),
    )
    .unwrap();
    writeln!(
        md,
        "\nRestart (kill -9, then a new operator over the {n} policies): /readyz after {:.1} s, \
         N reconciles completed (`liftoff_status_writes_total` + `liftoff_status_writes_skipped_total` ≥ N) after {}; in the {:.0} s \
         after the start: {:.0} status writes ({:.0} seen by the apiserver), {:.0} reconcile \
         errors, operator {} of a core, RSS {:.1} MiB; at the end {}.",
        restart.ready.as_secs_f64(),
        restart
            .all_reconciled
            .map_or("– (not within the window)".into(), |d| format!(
                "{:.1} s",
                d.as_secs_f64()
            )),
        restart.window.secs,
        restart.window.d.status_writes,
        restart.window.d.api_policy_status_writes,
        restart.window.d.reconcile_errors,
        restart.window.cpu(restart.window.d.operator_cpu),
        kib_to_mib(restarted_rss),
        match &restart.errors {
            Ok((n, messages)) if messages.is_empty() => format!("{n} policies show a trigger error"),
            Ok((n, messages)) => format!(
                "{n} policies show a trigger error ({})",
                messages.join("; ")
            ),
            Err(e) => format!("trigger errors not counted: the list failed ({e})"),
        },
    )
    .unwrap();
    if let Some(servers) = &servers {
        writeln!(
            md,
            "\nThe copies' side effects: {} ConfigMaps written by the operator (3 per copy: \
             cohort, flagd flags, kill switches), {} webhook posts received; CPU over the \
             whole run: Kafka {:.0} s, Redis {:.0} s.",
            example_fleet::configmaps(&client, &ns).await,
            servers.posts.lock().unwrap().len(),
            servers.cpu_seconds().0,
            servers.cpu_seconds().1,
        )
        .unwrap();
    }
    if let Some(floor) = &floor {
        let ready_all = times.last().filter(|_| ready_at_cap >= n);
        writeln!(
            md,
            "\nThe apiserver's floor, with the operator stopped: {n} more policies created \
             {IN_FLIGHT} in flight in {:.1} s ({:.0}/s, {} errors), then the status the operator \
             wrote to `p-00000` written to each by a plain client (the operator's JSON patch, \
             {IN_FLIGHT} in flight) in {:.1} s ({:.0}/s, {} errors{}), the apiserver at {:.0} % of \
             a core.{}",
            floor.creates.as_secs_f64(),
            n as f64 / floor.creates.as_secs_f64(),
            floor.create_errors,
            floor.status_writes.as_secs_f64(),
            n as f64 / floor.status_writes.as_secs_f64(),
            floor.write_errors.len(),
            floor
                .write_errors
                .first()
                .map_or(String::new(), |e| format!(", first: {e}")),
            100.0 * floor.apiserver_cpu / floor.status_writes.as_secs_f64(),
            ready_all.map_or(String::new(), |d| format!(
                " All Ready came {:.2}× the status-write floor and {:.2}× the create floor after \
                 the operator's start.",
                d.as_secs_f64() / floor.status_writes.as_secs_f64(),
                d.as_secs_f64() / floor.creates.as_secs_f64(),
            )),
        )
        .unwrap();
    }
    println!("\n{md}");
    if let Ok(path) = std::env::var("LIFTOFF_BENCH_OUT") {
        std::fs::write(&path, &md).expect("results written");
        println!("results written to {path}");
    }
    if ready_end < n || steady_end.reconcile_errors > 0.0 || restart.window.d.reconcile_errors > 0.0
    {
        println!("operator log (last 40 lines):");
        let logs = &restart.logs;
        let lines: Vec<&str> = logs.lines().collect();
        for line in &lines[lines.len().saturating_sub(40)..] {
            println!("  {line}");
        }
    }
}

/// The policy `p-{i:05}` with `spec`; with `full`, a copy of the example with its own workloads
/// and ConfigMaps.
fn named_policy(spec: &serde_json::Value, i: usize, full: bool) -> LaunchPolicy {
    let name = format!("p-{i:05}");
    let spec = match full {
        true => example_fleet::copy_for(spec, &name),
        false => spec.clone(),
    };
    serde_json::from_value(policy(&name, spec)).unwrap()
}

/// Creates `p-00000…` with `spec` (see [`named_policy`]), [`IN_FLIGHT`] at once; the errors.
async fn create_all(
    policies: &Api<LaunchPolicy>,
    spec: &serde_json::Value,
    n: usize,
    full: bool,
) -> Vec<String> {
    futures::stream::iter(0..n)
        .map(|i| {
            let object = named_policy(spec, i, full);
            async move { policies.create(&PostParams::default(), &object).await }
        })
        .buffer_unordered(IN_FLIGHT)
        .filter_map(|r| futures::future::ready(r.err().map(|e| e.to_string())))
        .collect()
        .await
}

/// The operator's environment: its log filter, the allocator settings the image ships with (the
/// Dockerfile's `MIMALLOC_PURGE_DELAY=0` and `MIMALLOC_ALLOW_THP=0`), so that memory is measured
/// as it runs in a cluster, and `--query-reuse` when `LIFTOFF_BENCH_QUERY_REUSE` sets it.
fn operator_env(log: &str) -> Vec<(&str, String)> {
    let mut env = vec![
        ("RUST_LOG", log.to_string()),
        ("MIMALLOC_PURGE_DELAY", "0".to_string()),
        ("MIMALLOC_ALLOW_THP", "0".to_string()),
    ];
    if let Some(reuse) = query_reuse() {
        env.push(("LIFTOFF_QUERY_REUSE", reuse));
    }
    env
}

/// `LIFTOFF_BENCH_QUERY_REUSE`: the operator's `--query-reuse`, when set (else its default).
fn query_reuse() -> Option<String> {
    std::env::var("LIFTOFF_BENCH_QUERY_REUSE")
        .ok()
        .filter(|r| !r.is_empty())
}

/// Keeps an operator's log beside the results (`LIFTOFF_BENCH_OUT` with `.<name>.log`), to read
/// what it did (run with `LIFTOFF_BENCH_LOG=info,liftoff=debug` for each reconcile's reasons).
fn keep_log(name: &str, logs: &str) {
    if let Ok(out) = std::env::var("LIFTOFF_BENCH_OUT") {
        let path = format!("{}.{name}.log", out.trim_end_matches(".md"));
        std::fs::write(&path, logs).expect("log written");
        println!("{name} log kept in {path}");
    }
}

/// `(name, value)` pairs as [`Operator::start_with`] takes them.
fn borrowed<'a>(env: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Length of each apiserver CPU profile.
const PROFILE_SECONDS: u64 = 10;

/// With `LIFTOFF_BENCH_PROFILE_DIR` set, starts a CPU profile of the apiserver over the next
/// `seconds`, written to `<dir>/<name>.pprof` (`go tool pprof -top` reads it); the task ends
/// when it is written.
fn apiserver_profile(
    cp: &ControlPlane,
    name: &str,
    seconds: u64,
) -> Option<tokio::task::JoinHandle<()>> {
    let dir = std::env::var("LIFTOFF_BENCH_PROFILE_DIR")
        .ok()
        .filter(|d| !d.is_empty())?;
    let path = std::path::Path::new(&dir).join(format!("{name}.pprof"));
    let out = std::fs::File::create(&path).expect("profile file");
    let mut cmd = cp.kubectl();
    cmd.args([
        "get",
        "--raw",
        &format!("/debug/pprof/profile?seconds={seconds}"),
    ])
    .stdout(out)
    .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("kubectl runs");
    Some(tokio::spawn(async move {
        let _ = child.wait().await;
        println!("apiserver CPU profile: {}", path.display());
    }))
}

/// The apiserver's own floor for a start, measured with no operator running.
struct Floor {
    /// N creates, [`IN_FLIGHT`] at once.
    creates: Duration,
    create_errors: usize,
    /// N first status writes by a plain client, [`IN_FLIGHT`] at once.
    status_writes: Duration,
    write_errors: Vec<String>,
    /// The apiserver's CPU seconds during the status writes.
    apiserver_cpu: f64,
}

/// Creates N policies in a new namespace, then writes `status` to each as the operator writes a
/// status (one JSON patch adding it), [`IN_FLIGHT`] at once.
async fn write_floor(
    cp: &ControlPlane,
    client: &kube::Client,
    spec: &serde_json::Value,
    status: &liftoff::crd::LaunchPolicyStatus,
    n: usize,
    full: bool,
    apiserver: Option<u32>,
) -> Floor {
    let ns = cp.create_namespace("floor").await.unwrap();
    let policies: Api<LaunchPolicy> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    let create_errors = create_all(&policies, spec, n, full).await.len();
    let creates = started.elapsed();
    let patch: json_patch::Patch =
        serde_json::from_value(json!([{"op": "add", "path": "/status", "value": status}])).unwrap();
    let params = PatchParams {
        field_manager: Some("liftoff".into()),
        ..PatchParams::default()
    };
    let cpu_before = apiserver.map_or(0.0, cpu_seconds);
    let profile = apiserver_profile(cp, "apiserver-status-writes", PROFILE_SECONDS);
    let started = Instant::now();
    let write_errors: Vec<String> = futures::stream::iter(0..n)
        .map(|i| {
            let (policies, patch, params) = (&policies, patch.clone(), &params);
            async move {
                policies
                    .patch_status(&format!("p-{i:05}"), params, &Patch::<()>::Json(patch))
                    .await
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .filter_map(|r| futures::future::ready(r.err().map(|e| e.to_string())))
        .collect()
        .await;
    let status_writes = started.elapsed();
    let apiserver_cpu = apiserver.map_or(0.0, cpu_seconds) - cpu_before;
    if let Some(profile) = profile {
        let _ = profile.await;
    }
    println!(
        "floor: {n} creates in {creates:.1?}, {n} status writes in {status_writes:.1?} ({} errors)",
        write_errors.len()
    );
    Floor {
        creates,
        create_errors,
        status_writes,
        write_errors,
        apiserver_cpu,
    }
}

/// What a restart over existing policies costs.
struct Restart {
    /// From the new process' start to `/readyz`.
    ready: Duration,
    /// From the start until as many reconciles completed as there are policies.
    all_reconciled: Option<Duration>,
    /// From `/readyz` to the end of the restart window.
    window: Window,
    /// The restarted operator's log (it is stopped once measured).
    logs: String,
    /// Policies showing a trigger error at the end, and some of the messages; or why they
    /// could not be listed.
    errors: Result<(usize, Vec<String>), String>,
}

/// Kills `operator`, starts a new one and watches it for the restart window (the longer of 60 s
/// and the time to reconcile every policy once, capped at 5 min).
async fn restart(
    cp: &ControlPlane,
    operator: Operator,
    prometheus: &Prometheus,
    pids: &Pids,
    n: usize,
    log: &str,
) -> (Restart, u64) {
    operator.kill().await;
    let started = Instant::now();
    let operator =
        Operator::start_with(cp.kubeconfig_path(), &[], &borrowed(&operator_env(log))).await;
    let ready = started.elapsed();
    let pids = Pids {
        operator: operator.pid().expect("operator running"),
        ..*pids
    };
    let from = snapshot(cp, Some(&operator), prometheus, &pids).await;
    let mut all_reconciled = None;
    loop {
        tokio::time::sleep(TICK).await;
        // A reconcile that completes either writes status or counts a skipped write.
        let completed = operator.metric("liftoff_status_writes_total").await
            + operator.metric("liftoff_status_writes_skipped_total").await;
        if all_reconciled.is_none() && completed >= n as f64 {
            all_reconciled = Some(started.elapsed());
        }
        let waited = started.elapsed();
        if (all_reconciled.is_some() && waited >= Duration::from_secs(60))
            || waited >= Duration::from_secs(300)
        {
            break;
        }
    }
    let to = snapshot(cp, Some(&operator), prometheus, &pids).await;
    let rss = proc_status(pids.operator, "VmRSS");
    let restart = Restart {
        ready,
        all_reconciled,
        window: window(&from, &to),
        logs: operator.logs(),
        errors: trigger_errors(cp).await,
    };
    operator.kill().await;
    (restart, rss)
}

/// How many policies show a trigger error now, with up to 3 distinct messages. Read in pages
/// of 500, as a client of a large fleet should (one list of 10,000 whole launches failed once,
/// cause not recorded).
async fn trigger_errors(cp: &ControlPlane) -> Result<(usize, Vec<String>), String> {
    let client = cp.client().await.unwrap();
    let all: Api<LaunchPolicy> = Api::all(client);
    let mut errors: Vec<String> = Vec::new();
    let mut page = ListParams::default().limit(500);
    loop {
        let list = match all.list(&page).await {
            Ok(list) => list,
            Err(e) => return Err(e.to_string()),
        };
        errors.extend(list.items.iter().filter_map(|p| {
            let triggers = &p.status.as_ref()?.triggers;
            triggers.iter().find_map(|t| t.error.clone())
        }));
        match list.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => page = page.continue_token(&token),
            None => break,
        }
    }
    let mut distinct: Vec<String> = Vec::new();
    for e in &errors {
        if distinct.len() < 3 && !distinct.contains(e) {
            distinct.push(e.clone());
        }
    }
    Ok((errors.len(), distinct))
}
