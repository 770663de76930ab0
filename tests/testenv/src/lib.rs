//! `liftoff-testenv`: a real, throw-away Kubernetes control plane (etcd + kube-apiserver, no
//! mocks) for Liftoff's integration tests and demo.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let cp = liftoff_testenv::ControlPlane::start().await?;
//! let client = cp.client().await?;
//! let ns = cp.create_namespace("my-test").await?;
//! // … use `client` in `ns` …
//! cp.stop().await;
//! # Ok(()) }
//! ```
//!
//! Only etcd and the apiserver run: no controller-manager or scheduler, so Deployments get no
//! Pods and deleted namespaces stay `Terminating`. A test that needs the garbage collector (an
//! owner deleted, its dependents expected to go) starts it with
//! [`ControlPlane::start_garbage_collector`]. Binaries come from `scripts/build-control-plane.sh`
//! (see [`Binaries`]). Set `LIFTOFF_KEEP_TESTENV=1` to keep the temp dir (logs, kubeconfig, certs).
//!
//! The trigger sources run for real too, each on free loopback ports in its own temp dir:
//! [`Prometheus`] (scraping a [`MetricsExporter`] the test controls), [`Redis`], [`Postgres`] and
//! [`Kafka`]. Install them with `scripts/install-test-deps.sh`.

mod binaries;
mod certs;
mod crds;
mod exporter;
mod kafka;
mod postgres;
mod process;
mod prometheus;
mod redis;
mod start;
mod svc;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use binaries::{Binaries, cache_dir, pinned_version};
pub use exporter::MetricsExporter;
pub use kafka::Kafka;
pub use postgres::{PgSession, Postgres};
use process::Proc;
pub use prometheus::{Prometheus, Sample};
pub use redis::{Redis, Reply};
use start::Ports;
pub use svc::{free_ports, http_get};

/// Bound on one start attempt (both servers healthy and `default` namespace present).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times to retry with fresh ports when a server hits "address already in use".
const START_ATTEMPTS: u32 = 3;
/// How long `stop()` waits after SIGTERM before SIGKILL, per process.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running etcd + kube-apiserver pair and the temp dir holding their data, certs and logs.
///
/// Dropping it SIGKILLs and reaps both processes synchronously and removes the temp dir
/// (unless `LIFTOFF_KEEP_TESTENV=1`). [`ControlPlane::stop`] shuts down more gently.
pub struct ControlPlane {
    // Field order matters only for readability: `Drop` kills the processes explicitly, before the
    // temp dir (dropped after `drop()` returns) is removed.
    garbage_collector: Option<Proc>,
    apiserver: Option<Proc>,
    etcd: Option<Proc>,
    binaries: Binaries,
    ports: Ports,
    kubeconfig: Kubeconfig,
    kubeconfig_path: PathBuf,
    dir_path: PathBuf,
    dir: Option<tempfile::TempDir>,
}

/// Why one start attempt failed, and whether a retry with new ports may help.
struct StartFailure {
    error: anyhow::Error,
    port_conflict: bool,
}

impl From<anyhow::Error> for StartFailure {
    fn from(error: anyhow::Error) -> Self {
        StartFailure {
            error,
            port_conflict: false,
        }
    }
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver on free loopback ports with fresh certificates and waits
    /// (at most ~60 s) until `/healthz` is `ok` and namespace `default` exists.
    pub async fn start() -> Result<ControlPlane> {
        let binaries = Binaries::locate()?;
        let started = Instant::now();
        for attempt in 1..=START_ATTEMPTS {
            match Self::try_start(binaries.clone()).await {
                Ok(cp) => {
                    tracing::info!(server = %cp.server_url(), elapsed = ?started.elapsed(), "control plane ready");
                    return Ok(cp);
                }
                Err(f) if f.port_conflict && attempt < START_ATTEMPTS => {
                    tracing::warn!(
                        "port conflict on attempt {attempt}, retrying: {:#}",
                        f.error
                    );
                }
                Err(f) => return Err(f.error.context("starting the test control plane")),
            }
        }
        unreachable!("the last attempt always returns")
    }

    /// One attempt: fresh temp dir, ports, certs; etcd, then the apiserver.
    async fn try_start(binaries: Binaries) -> Result<ControlPlane, StartFailure> {
        let dir = tempfile::Builder::new()
            .prefix("liftoff-testenv-")
            .tempdir()
            .context("creating a temp dir")?;
        let dir_path = dir.path().to_path_buf();
        let ports = Ports::pick()?;
        let pki_dir = dir_path.join("pki");
        let pki = certs::generate(&pki_dir)?;
        let server = format!("https://127.0.0.1:{}", ports.apiserver);
        let kubeconfig_yaml = pki.kubeconfig_yaml(&server);
        let kubeconfig_path = dir_path.join("kubeconfig");
        std::fs::write(&kubeconfig_path, &kubeconfig_yaml).context("writing the kubeconfig")?;
        let kubeconfig =
            Kubeconfig::from_yaml(&kubeconfig_yaml).context("parsing the kubeconfig")?;
        // From here on, `Drop` cleans up whatever was started if this attempt fails.
        let mut cp = ControlPlane {
            garbage_collector: None,
            apiserver: None,
            etcd: None,
            binaries,
            ports,
            kubeconfig,
            kubeconfig_path,
            dir_path,
            dir: Some(dir),
        };
        let deadline = Instant::now() + START_TIMEOUT;

        let args = start::etcd_args(ports, &cp.dir_path.join("etcd-data"));
        let log = cp.dir_path.join("etcd.log");
        let etcd = cp
            .etcd
            .insert(Proc::spawn("etcd", &cp.binaries.etcd, args, log)?);
        wait_until(etcd, deadline, || start::etcd_healthy(ports.etcd_client)).await?;

        let args = start::apiserver_args(ports, &pki_dir);
        let log = cp.dir_path.join("kube-apiserver.log");
        let bin = &cp.binaries.kube_apiserver;
        cp.apiserver = Some(Proc::spawn("kube-apiserver", bin, args, log)?);
        let client = cp.client().await?;
        let apiserver = cp.apiserver.as_mut().expect("just set");
        wait_until(apiserver, deadline, || start::apiserver_ready(&client)).await?;
        if let Some(status) = cp.etcd.as_mut().and_then(Proc::exited) {
            return Err(cp.etcd.as_ref().expect("checked").exit_error(status).into());
        }
        Ok(cp)
    }

    /// Path of a kubeconfig (certificate data embedded) for the admin user, usable by kubectl.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The apiserver URL, `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.ports.apiserver)
    }

    /// The etcd client URL, `http://127.0.0.1:<port>`.
    pub fn etcd_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.etcd_client)
    }

    /// The directory holding `etcd.log` and `kube-apiserver.log` (the temp dir's root).
    pub fn log_dir(&self) -> &Path {
        &self.dir_path
    }

    /// Stops kube-apiserver (SIGTERM) and starts it again on the same port, certificates and
    /// etcd; returns once it is ready. Clients see an outage meanwhile, as in an upgrade.
    pub async fn restart_apiserver(&mut self) -> Result<()> {
        if let Some(mut proc) = self.apiserver.take() {
            proc.terminate(STOP_GRACE).await;
        }
        let args = start::apiserver_args(self.ports, &self.dir_path.join("pki"));
        let log = self.dir_path.join("kube-apiserver.log");
        let bin = &self.binaries.kube_apiserver;
        self.apiserver = Some(Proc::spawn("kube-apiserver", bin, args, log)?);
        let client = self.client().await?;
        let apiserver = self.apiserver.as_mut().expect("just set");
        let deadline = Instant::now() + START_TIMEOUT;
        wait_until(apiserver, deadline, || start::apiserver_ready(&client))
            .await
            .map_err(|f| f.error)
    }

    /// Starts kube-controller-manager running only its garbage collector, so that deleting an
    /// owner deletes the objects whose `ownerReferences` name it, as in a real cluster. Returns
    /// once the process runs; the collector syncs its informers within seconds after that, so
    /// wait for the deletion itself with a bound.
    pub fn start_garbage_collector(&mut self) -> Result<()> {
        if self.garbage_collector.is_some() {
            return Ok(());
        }
        let kubeconfig = self.kubeconfig_path.display().to_string();
        let args = [
            format!("--kubeconfig={kubeconfig}"),
            "--controllers=garbagecollector".to_string(),
            "--leader-elect=false".to_string(),
            "--secure-port=0".to_string(),
        ]
        .map(std::ffi::OsString::from)
        .to_vec();
        let log = self.dir_path.join("kube-controller-manager.log");
        let bin = &self.binaries.kube_controller_manager;
        let proc = Proc::spawn("kube-controller-manager", bin, args, log)?;
        self.garbage_collector = Some(proc);
        Ok(())
    }

    /// Freezes etcd (SIGSTOP) or thaws it (SIGCONT): requests hang, as on a stalled disk.
    pub fn pause_etcd(&self, paused: bool) {
        if let Some(etcd) = &self.etcd {
            let signal = if paused { libc::SIGSTOP } else { libc::SIGCONT };
            // SAFETY: kill(2) on a child process this struct owns.
            unsafe { libc::kill(etcd.pid() as libc::pid_t, signal) };
        }
    }

    /// Process ids of the running servers (apiserver, etcd).
    pub fn pids(&self) -> Vec<u32> {
        [&self.apiserver, &self.etcd]
            .into_iter()
            .flatten()
            .map(Proc::pid)
            .collect()
    }

    /// The binaries this control plane runs (and `kubectl`).
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// A new admin client (`CN=admin, O=system:masters`: allowed everything under RBAC).
    pub async fn client(&self) -> Result<kube::Client> {
        let options = KubeConfigOptions::default();
        let config = kube::Config::from_custom_kubeconfig(self.kubeconfig.clone(), &options)
            .await
            .context("loading the generated kubeconfig")?;
        kube::Client::try_from(config).context("building a kube client")
    }

    /// `kubectl --kubeconfig <ours>`; add arguments and run it. Killed if dropped while running.
    pub fn kubectl(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.binaries.kubectl);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig_path)
            .kill_on_drop(true);
        cmd
    }

    /// Creates or replaces every CRD in the `*.yaml`/`*.yml` files of `dir` (multi-document
    /// files are fine, non-CRD documents are skipped) and waits until each is `Established`.
    pub async fn apply_crds(&self, dir: &Path) -> Result<()> {
        crds::apply_crds(self.client().await?, dir).await
    }

    /// Creates a namespace with a unique name `<prefix>-<n>-<random>` and returns the name.
    pub async fn create_namespace(&self, prefix: &str) -> Result<String> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
        let name = format!("{prefix}-{n}-{}", random_suffix());
        let valid = name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            bail!("namespace prefix {prefix:?} does not give a valid DNS label ({name:?})");
        }
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(self.client().await?)
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(name)
    }

    /// Fails (with the log tail) if a server process has exited; use it to watch a long run.
    pub fn ensure_running(&mut self) -> Result<()> {
        for proc in [&mut self.apiserver, &mut self.etcd].into_iter().flatten() {
            if let Some(status) = proc.exited() {
                return Err(proc.exit_error(status));
            }
        }
        Ok(())
    }

    /// Stops the apiserver, then etcd: SIGTERM, up to ~5 s each, then SIGKILL. Removes the temp
    /// dir unless `LIFTOFF_KEEP_TESTENV=1`.
    pub async fn stop(mut self) {
        if let Some(proc) = self.garbage_collector.as_mut() {
            proc.terminate(STOP_GRACE).await;
        }
        for proc in [self.apiserver.as_mut(), self.etcd.as_mut()]
            .into_iter()
            .flatten()
        {
            proc.terminate(STOP_GRACE).await;
        }
        // `Drop` finishes the job (the processes are already reaped, so no signal is sent).
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Clients first, then the apiserver, so it does not spin on a vanished etcd; each is
        // killed and reaped.
        if let Some(mut p) = self.garbage_collector.take() {
            p.kill_now();
        }
        if let Some(mut p) = self.apiserver.take() {
            p.kill_now();
        }
        if let Some(mut p) = self.etcd.take() {
            p.kill_now();
        }
        if std::env::var("LIFTOFF_KEEP_TESTENV").is_ok_and(|v| v == "1")
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!(
                "liftoff-testenv: kept {} (LIFTOFF_KEEP_TESTENV=1)",
                kept.display()
            );
        }
    }
}

/// Five hex digits from std's randomly seeded hasher (enough to tell runs apart in logs).
fn random_suffix() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    format!("{:05x}", hasher.finish() & 0xf_ffff)
}

/// Polls `ready` every 100 ms until it is true, `proc` exits, or `deadline` passes.
async fn wait_until<F, Fut>(
    proc: &mut Proc,
    deadline: Instant,
    mut ready: F,
) -> Result<(), StartFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        if ready().await {
            return Ok(());
        }
        if let Some(status) = proc.exited() {
            let tail = proc.log_tail(40);
            return Err(StartFailure {
                port_conflict: tail.contains("address already in use"),
                error: proc.exit_error(status),
            });
        }
        if Instant::now() >= deadline {
            let name = proc.name();
            let error = anyhow::anyhow!(
                "{name} not ready after {START_TIMEOUT:?}; last lines of its log:\n{}",
                proc.log_tail(40)
            );
            return Err(error.into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
