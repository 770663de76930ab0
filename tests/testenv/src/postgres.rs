//! A real PostgreSQL server (Debian's packages: `initdb` + `postgres`) in a temp dir on a free
//! loopback port, trust auth, superuser `postgres`.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (CI and developer machines
//! here do), `initdb` and `postgres` run as the unprivileged system user `liftoff-test` (created
//! by `scripts/install-test-deps.sh`, or here with `useradd` if absent; `nobody` as a last
//! resort), in a temp dir under `/tmp` owned by that user. Otherwise they run as the caller.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::process::Proc;
use crate::svc;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running PostgreSQL. Dropping it shuts it down at once (SIGQUIT: the postmaster ends its
/// backends and frees its shared memory; SIGKILL after 5 s), reaps it and removes the temp dir
/// (unless `LIFTOFF_KEEP_TESTENV=1`). If the test process is killed outright, the postmaster
/// gets SIGKILL (parent-death signal) and its backends exit when they notice it is gone.
pub struct Postgres {
    proc: Option<Proc>,
    port: u16,
    max_connections: u32,
    bin_dir: PathBuf,
    dir_path: PathBuf,
    dir: Option<tempfile::TempDir>,
}

/// An open, authenticated, idle client connection (it occupies one connection slot).
pub struct PgSession {
    _stream: TcpStream,
}

impl Postgres {
    /// Starts PostgreSQL with `max_connections = 100`.
    pub async fn start() -> Result<Postgres> {
        Self::start_with_max_connections(100).await
    }

    /// Starts PostgreSQL with the given `max_connections` (the superuser may use all of them)
    /// and waits until it accepts a session.
    pub async fn start_with_max_connections(max_connections: u32) -> Result<Postgres> {
        let bin_dir = locate_bin_dir()?;
        let user = svc::unprivileged_user()?;
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start(&bin_dir, user, max_connections).await {
                Ok(pg) => {
                    tracing::info!(url = %pg.url(), elapsed = ?started.elapsed(), "postgres ready");
                    return Ok(pg);
                }
                Err(e) if svc::is_port_conflict(&e) && attempt < svc::START_ATTEMPTS => {
                    tracing::warn!("postgres port conflict, retrying: {e:#}");
                }
                Err(e) => return Err(e.context("starting postgres")),
            }
        }
    }

    async fn try_start(bin_dir: &Path, user: Option<(u32, u32)>, max: u32) -> Result<Postgres> {
        // The unprivileged user must be able to reach the dir: keep it out of root's $TMPDIR.
        let dir = svc::temp_dir("postgres", user.map(|_| Path::new("/tmp")))?;
        let dir_path = dir.path().to_path_buf();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir_path, Some(uid), Some(gid))
                .with_context(|| format!("chown {} to uid {uid}", dir_path.display()))?;
        }
        let data = dir_path.join("data");
        let mut initdb = tokio::process::Command::new(bin_dir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .current_dir(&dir_path)
            .kill_on_drop(true);
        if let Some((uid, gid)) = user {
            initdb.uid(uid).gid(gid);
        }
        let out = initdb.output().await.context("running initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        let [port] = svc::free_ports()?;
        let mut cmd = std::process::Command::new(bin_dir.join("postgres"));
        cmd.arg("-D").arg(&data).arg("-k").arg(&dir_path);
        cmd.args(["-p", &port.to_string(), "-h", "127.0.0.1"]);
        for setting in [
            format!("max_connections={max}"),
            "fsync=off".into(),
            "synchronous_commit=off".into(),
            "full_page_writes=off".into(),
            "logging_collector=off".into(),
        ] {
            cmd.arg("-c").arg(setting);
        }
        cmd.current_dir(&dir_path);
        if let Some((uid, gid)) = user {
            use std::os::unix::process::CommandExt as _;
            cmd.uid(uid).gid(gid);
        }
        let log = dir_path.join("postgres.log");
        let mut pg = Postgres {
            proc: Some(Proc::spawn_command("postgres", cmd, log)?),
            port,
            max_connections: max,
            bin_dir: bin_dir.to_path_buf(),
            dir_path,
            dir: Some(dir),
        };
        let proc = pg.proc.as_mut().expect("just set");
        svc::wait_ready(proc, START_TIMEOUT, || async move {
            open_session(port).await.is_ok()
        })
        .await?;
        Ok(pg)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres` (trust auth: no password).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }

    /// The postmaster's pid (also its process group: backends share it) while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// The temp dir holding `data/`, `postgres.log` and the Unix socket.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// Opens a session (startup + trust auth, up to ReadyForQuery) and keeps it idle. Fails with
    /// the server's message, e.g. "sorry, too many clients already".
    pub async fn connect(&self) -> Result<PgSession> {
        open_session(self.port).await
    }

    /// Runs `sql` with `psql -XAtq` and returns its stdout (rows `|`-separated, one a line).
    pub async fn psql(&self, sql: &str) -> Result<String> {
        let psql = svc::find_binary("psql", std::slice::from_ref(&self.bin_dir))?;
        let run = tokio::process::Command::new(psql)
            .args([
                "-XAtq",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(),
                "-c",
                sql,
            ])
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .context("psql timed out")?
            .context("running psql")?;
        if !out.status.success() {
            bail!(
                "psql {sql:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Fast shutdown (SIGINT: disconnects clients, up to 10 s, then SIGKILL) and cleanup.
    pub async fn stop(mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.terminate_with(libc::SIGINT, STOP_GRACE).await;
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate shutdown lets the postmaster end its backends and free its shared memory.
        if let Some(mut proc) = self.proc.take() {
            proc.terminate_blocking(libc::SIGQUIT, Duration::from_secs(5));
        }
        svc::release_dir(self.dir.take());
    }
}

/// initdb's directory: next to `initdb` on PATH, else the newest `/usr/lib/postgresql/*/bin`.
fn locate_bin_dir() -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.sort_by_key(|d| {
        let version = d
            .parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok());
        std::cmp::Reverse(version.unwrap_or(0))
    });
    let initdb = svc::find_binary("initdb", &dirs)?;
    let dir = initdb
        .canonicalize()
        .ok()
        .and_then(|p| Some(p.parent()?.to_path_buf()))
        .unwrap_or_else(|| initdb.parent().unwrap_or(Path::new("/")).to_path_buf());
    if !dir.join("postgres").is_file() {
        bail!(
            "postgres not found next to {}: {}",
            initdb.display(),
            svc::INSTALL_HINT
        );
    }
    Ok(dir)
}

/// Protocol 3.0 startup as `postgres` to database `postgres`; reads until ReadyForQuery.
async fn open_session(port: u16) -> Result<PgSession> {
    let handshake = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let params = b"user\0postgres\0database\0postgres\0application_name\0liftoff-testenv\0\0";
        let mut startup = ((8 + params.len()) as i32).to_be_bytes().to_vec();
        startup.extend_from_slice(&196_608i32.to_be_bytes()); // 3 << 16: protocol 3.0
        startup.extend_from_slice(params);
        stream.write_all(&startup).await?;
        loop {
            let kind = stream.read_u8().await?;
            let len = stream.read_i32().await?;
            let mut body = vec![0u8; (len.max(4) - 4) as usize];
            stream.read_exact(&mut body).await?;
            match kind {
                b'Z' => return Ok(PgSession { _stream: stream }),
                b'R' if body.get(..4) != Some(&[0, 0, 0, 0]) => {
                    bail!("server asks for authentication (trust auth expected)")
                }
                b'E' => bail!("{}", error_message(&body)),
                _ => {} // AuthenticationOk, ParameterStatus, BackendKeyData, notices
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), handshake)
        .await
        .context("postgres startup handshake timed out")?
}

/// The `M` (message) field of an ErrorResponse body.
fn error_message(body: &[u8]) -> String {
    body.split(|&b| b == 0)
        .find_map(|field| field.strip_prefix(b"M"))
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}
