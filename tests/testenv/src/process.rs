//! Server child processes: spawning, liveness, log tails and (always) reaping.
//!
//! Children are `std::process::Child`, so they can be killed *and waited for* synchronously in
//! `Drop`, even outside a tokio runtime or while unwinding from a panic: no zombie or orphan keeps
//! a port bound after a test.
//!
//! On Linux every child also gets `PR_SET_PDEATHSIG(SIGKILL)`, so it dies if the test process is
//! killed without running destructors (SIGKILL, `std::process::exit`, abort). The kernel fires that
//! signal when the *thread* that forked the child exits, not the process, and tokio/test threads
//! come and go. All children are therefore forked from one dedicated thread that lives as long as
//! the process.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

type Job = Box<dyn FnOnce() + Send>;

/// Runs `f` on the process-lifetime spawner thread and returns its result.
fn on_spawner_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    static SPAWNER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("liftoff-testenv-spawner".into())
            // The sender lives in a static, so `rx` never disconnects and the thread never ends.
            .spawn(move || rx.into_iter().for_each(|job| job()))
            .expect("spawning the liftoff-testenv spawner thread");
        tx
    });
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    spawner
        .send(Box::new(move || {
            let _ = reply_tx.send(f());
        }))
        .expect("liftoff-testenv spawner thread is gone");
    reply_rx
        .recv()
        .expect("liftoff-testenv spawner thread dropped a job")
}

/// One running server process whose stdout and stderr go to a log file.
pub struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `program args…` with stdin closed and both output streams appended to `log`.
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: Vec<OsString>,
        log: PathBuf,
    ) -> Result<Proc> {
        let mut cmd = Command::new(program);
        cmd.args(args);
        Self::spawn_command(name, cmd, log)
    }

    /// Like [`Proc::spawn`] for a prepared command (environment, working dir, `uid`/`gid`…).
    /// Its stdio, process group and parent-death signal are set here.
    pub fn spawn_command(name: &'static str, mut cmd: Command, log: PathBuf) -> Result<Proc> {
        let program = PathBuf::from(cmd.get_program());
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            // Own process group: a Ctrl-C in the terminal reaches only us, and we stop the
            // servers in order (apiserver first, then etcd).
            .process_group(0);
        #[cfg(target_os = "linux")]
        {
            let parent = std::process::id() as libc::pid_t;
            // SAFETY: only async-signal-safe libc calls, no allocation, between fork and exec.
            // std runs this after any setuid, which would otherwise clear the death signal.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // The parent may have died before prctl took effect.
                    if libc::getppid() != parent {
                        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                    }
                    Ok(())
                });
            }
        }
        let child = on_spawner_thread(move || cmd.spawn())
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        tracing::debug!(name, pid = child.id(), log = %log.display(), "started");
        Ok(Proc { name, child, log })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended (reaping it), `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `lines` lines of the process's log file.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()));
        let all: Vec<&str> = text.lines().collect();
        if all.is_empty() {
            return "(log is empty)".to_string();
        }
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// An error describing an early exit, with the tail of the log.
    pub fn exit_error(&self, status: ExitStatus) -> anyhow::Error {
        anyhow::anyhow!(
            "{} exited ({status}); last lines of {}:\n{}",
            self.name,
            self.log.display(),
            self.log_tail(40)
        )
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; always reaps the process.
    pub async fn terminate(&mut self, grace: Duration) {
        self.terminate_with(libc::SIGTERM, grace).await;
    }

    /// Sends `signal` (the server's own graceful or fast shutdown), waits up to `grace`, then
    /// SIGKILLs the process group; always reaps the process.
    pub async fn terminate_with(&mut self, signal: libc::c_int, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        // SAFETY: plain kill(2); the pid is still ours because the child has not been reaped.
        unsafe { libc::kill(self.pid() as libc::pid_t, signal) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                tracing::debug!(name = self.name, signal, "stopped");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(
            name = self.name,
            "did not stop within {grace:?}; sending SIGKILL"
        );
        self.kill_now();
    }

    /// Blocking [`Proc::terminate_with`], for `Drop` (no runtime needed).
    pub fn terminate_blocking(&mut self, signal: libc::c_int, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        // SAFETY: as in `terminate_with`.
        unsafe { libc::kill(self.pid() as libc::pid_t, signal) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill_now();
    }

    /// SIGKILL to the process group (the server and any helper it forked into the group; not
    /// PostgreSQL's backends, which `setsid()`) and a blocking wait. Idempotent: nothing is signalled once the child is reaped.
    pub fn kill_now(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: the child is unreaped, so its pid (= its group id, see `process_group(0)`)
            // cannot have been reused.
            unsafe { libc::kill(-(self.pid() as libc::pid_t), libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_now();
    }
}
