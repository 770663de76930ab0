//! Helpers shared by the integration tests: the real `liftoff` binary as a child process,
//! bounded polling, and tiny HTTP/kubectl conveniences.
#![allow(dead_code)]

use std::{
    future::Future,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

pub mod bench;
pub mod kafka;
pub mod load;
pub mod objects;
pub mod recording;
pub mod webhook;

use liftoff_testenv::{ControlPlane, MetricsExporter, Prometheus};
use tokio::{
    io::AsyncWriteExt,
    process::{Child, Command},
};

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A control plane with Liftoff's CRDs installed.
pub async fn control_plane() -> ControlPlane {
    let cp = ControlPlane::start().await.expect("control plane starts");
    cp.apply_crds(&repo_path("crds"))
        .await
        .expect("CRDs install");
    cp
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An unlabelled counter's value in a `/metrics` text, 0 when it is not there yet.
fn counter_in(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// The `liftoff run` binary, started against a control plane. Killed on drop.
pub struct Operator {
    child: Child,
    pub metrics_port: u16,
    pub log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Operator {
    pub async fn start(cp: &ControlPlane, extra: &[&str]) -> Operator {
        Self::start_with(cp.kubeconfig_path(), extra, &[]).await
    }

    /// Starts it with another kubeconfig (e.g. a ServiceAccount's token) and extra environment.
    /// The metrics port is picked free just before the start, so another process (an outgoing
    /// connection's source port, a server of a parallel test) can take it first: an operator that
    /// exits before it is ready is started again on another port, and one that never gets ready
    /// fails the test with its log.
    pub async fn start_with(kubeconfig: &Path, extra: &[&str], env: &[(&str, &str)]) -> Operator {
        for attempt in 1..=3 {
            let mut op = Self::spawn(kubeconfig, extra, env);
            let port = op.metrics_port;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some((200, _)) = http_get(port, "/readyz").await {
                    return op;
                }
                if let Ok(Some(status)) = op.child.try_wait() {
                    let logs = op.logs();
                    assert!(
                        attempt < 3,
                        "operator exited ({status}) before it was ready, 3 times:\n{logs}"
                    );
                    eprintln!("operator exited ({status}) before it was ready; again:\n{logs}");
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out after 30s waiting for operator /readyz:\n{}",
                    op.logs()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn spawn(kubeconfig: &Path, extra: &[&str], env: &[(&str, &str)]) -> Operator {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("liftoff.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let metrics_port = free_port();
        // A profiler to run the operator under (`heaptrack -o FILE`), from the benchmarks.
        let wrapper = std::env::var("LIFTOFF_OPERATOR_WRAPPER").unwrap_or_default();
        let mut command = match wrapper.split_whitespace().collect::<Vec<_>>().split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(env!("CARGO_BIN_EXE_liftoff"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_liftoff")),
        };
        let child = command
            .arg("run")
            .arg(format!("--metrics-addr=127.0.0.1:{metrics_port}"))
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,liftoff=debug")
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("liftoff binary starts");
        Operator {
            child,
            metrics_port,
            log_path,
            _dir: dir,
        }
    }

    /// Starts it with leader election on the Lease `liftoff` in `lease_ns`, as `identity`.
    pub async fn start_elected(
        cp: &ControlPlane,
        lease_ns: &str,
        identity: &str,
        lease_duration: &str,
        extra: &[&str],
    ) -> Operator {
        let (lease_ns, id, d) = (
            format!("--lease-namespace={lease_ns}"),
            format!("--lease-identity={identity}"),
            format!("--lease-duration={lease_duration}"),
        );
        let mut args = vec!["--log-format=text", "--leader-election", &lease_ns, &id, &d];
        args.extend_from_slice(extra);
        Self::start(cp, &args).await
    }

    /// Whether it holds the leader Lease now (`liftoff_leader`).
    pub async fn leads(&self) -> bool {
        self.metric("liftoff_leader").await == 1.0
    }

    pub async fn metrics(&self) -> String {
        http_get(self.metrics_port, "/metrics")
            .await
            .expect("metrics served")
            .1
    }

    /// The value of an unlabelled counter or gauge.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("metric {name} not found"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Waits until the operator has completed `n` more reconciles than it had when called: the
    /// evidence, before asserting that nothing more happened, that it had its chance to act (a
    /// policy with triggers is reconciled once per sampling interval). Never a fixed sleep,
    /// which passes vacuously on a slow machine.
    pub async fn completes_reconciles(&self, n: u32) {
        const DONE: &str = "liftoff_reconcile_duration_seconds_count";
        let target = self.metric(DONE).await + f64::from(n);
        eventually(
            Duration::from_secs(120),
            &format!("{n} more completed reconciles"),
            || async { (self.metric(DONE).await >= target).then_some(()) },
        )
        .await;
    }

    /// Waits until status writes have settled: `n` reconciles, each started after the writes were
    /// counted, completed without a status write (the operator had its chance). Returns the number
    /// of status writes then.
    pub async fn settled_writes(&self, n: u32) -> f64 {
        const WRITES: &str = "liftoff_status_writes_total";
        const DONE: &str = "liftoff_reconcile_duration_seconds_count";
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen = Vec::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "status writes did not settle in 120s (counts seen: {seen:?}):\n{}",
                self.logs()
            );
            // One scrape with no reconcile in flight: every reconcile completed after it also
            // started after it, so none of them is the one whose write was just counted.
            let text = self.metrics().await;
            let (started, done) = (
                counter_in(&text, "liftoff_reconciles_total"),
                counter_in(&text, DONE),
            );
            if done < started {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let writes = counter_in(&text, WRITES);
            seen.push(writes);
            while self.metric(DONE).await < done + f64::from(n) {
                assert!(
                    Instant::now() < deadline,
                    "{n} more completed reconciles did not come in 120s:\n{}",
                    self.logs()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if self.metric(WRITES).await == writes {
                return writes;
            }
        }
    }

    /// Waits until every reconcile the operator has started has completed (none in flight).
    pub async fn idle(&self) {
        eventually(
            Duration::from_secs(60),
            "no reconcile in flight",
            || async {
                // Both from one scrape, so a reconcile starting in between cannot be missed.
                let text = self.metrics().await;
                let started = counter_in(&text, "liftoff_reconciles_total");
                let completed = counter_in(&text, "liftoff_reconcile_duration_seconds_count");
                (completed >= started).then_some(())
            },
        )
        .await;
    }

    /// The operator's process id while it runs (e.g. to read `/proc/<pid>/status`).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The TCP connections the operator's process holds open to `port` on any address (its
    /// sockets in `/proc/<pid>/fd`, looked up in the kernel's table of connections).
    pub fn connections_to(&self, port: u16) -> usize {
        let Some(pid) = self.pid() else { return 0 };
        let inodes: std::collections::HashSet<String> =
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter_map(|link| {
                    let link = link.to_string_lossy();
                    Some(
                        link.strip_prefix("socket:[")?
                            .strip_suffix(']')?
                            .to_string(),
                    )
                })
                .collect();
        let remote = format!(":{port:04X}");
        ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|table| std::fs::read_to_string(table).ok())
            .flat_map(|table| table.lines().skip(1).map(String::from).collect::<Vec<_>>())
            .filter(|line| {
                // sl local remote state … uid timeout inode
                let fields: Vec<&str> = line.split_whitespace().collect();
                // State 01: ESTABLISHED.
                fields.len() > 9
                    && fields[2].ends_with(&remote)
                    && fields[3] == "01"
                    && inodes.contains(fields[9])
            })
            .count()
    }

    /// SIGKILL, as a node failure or the OOM killer would: nothing of the process runs after it.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("operator killed");
    }

    /// Waits (bounded) for the process to exit on its own.
    pub async fn exits_within(mut self, timeout: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!("operator still running after {timeout:?}:\n{}", self.logs())
            })
            .unwrap()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(mut self, timeout: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running") as i32;
        // SAFETY: kill(2) on our own, still-running child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .expect("operator exits after SIGTERM")
            .unwrap()
    }
}

/// A listener on `ip` that counts the connections it accepts: its port and the count.
pub async fn counting_listener(ip: &str) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (port, count)
}

pub fn free_port() -> u16 {
    let [port] = liftoff_testenv::free_ports().expect("a free loopback port");
    port
}

/// `(status, body)` of a GET on loopback, or `None` when nothing answers (yet).
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    liftoff_testenv::http_get(port, path).await.ok()
}

/// Runs kubectl with stdin; returns (success, stdout, stderr).
pub async fn kubectl(
    cp: &ControlPlane,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut cmd = cp.kubectl();
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A healthy service (error rate 0, p95 0.2 s) behind a Prometheus scraping every second, ready
/// to answer queries.
pub async fn healthy_service() -> (MetricsExporter, Prometheus) {
    let exporter = MetricsExporter::start().await.unwrap();
    exporter.set("error_rate", &[], 0.0);
    exporter.set("p95_latency_seconds", &[], 0.2);
    let prometheus = Prometheus::start(&[exporter.target()], Duration::from_secs(1))
        .await
        .unwrap();
    prometheus
        .wait_for_query("p95_latency_seconds")
        .await
        .unwrap();
    (exporter, prometheus)
}
