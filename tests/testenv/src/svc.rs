//! Pieces shared by the service harnesses (Prometheus, Redis, PostgreSQL, Kafka): binary lookup
//! with an install hint, free ports, temp dirs, readiness polling and a tiny HTTP/1.0 GET.

use std::ffi::CString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::process::Proc;

/// What every "not installed" error tells the reader to do.
pub(crate) const INSTALL_HINT: &str = "run scripts/install-test-deps.sh";

/// The unprivileged system user servers run as when the tests run as root (PostgreSQL refuses
/// root); `scripts/install-test-deps.sh` creates it.
pub(crate) const TEST_USER: &str = "liftoff-test";

/// How many times a server is started on fresh ports after "address already in use".
pub(crate) const START_ATTEMPTS: u32 = 3;

/// Finds `name` on `PATH`, then in `extra_dirs`; the error names the binary and the script.
pub(crate) fn find_binary(name: &str, extra_dirs: &[PathBuf]) -> Result<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .iter()
        .chain(extra_dirs)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| anyhow::anyhow!("{name} not found on PATH: {INSTALL_HINT}"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `N` distinct free loopback ports (all bound at once, then released for the server).
/// Another process may grab one in between: callers retry on "address already in use".
pub fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").context("binding a free loopback port"))
        .collect::<Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// True if `error` (which carries a server's log tail) says a port was taken.
pub(crate) fn is_port_conflict(error: &anyhow::Error) -> bool {
    format!("{error:#}")
        .to_ascii_lowercase()
        .contains("address already in use")
}

/// A fresh temp dir `liftoff-<name>-XXXX` under `parent` (default: the system temp dir).
pub(crate) fn temp_dir(name: &str, parent: Option<&Path>) -> Result<tempfile::TempDir> {
    let prefix = format!("liftoff-{name}-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    match parent {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
    .context("creating a temp dir")
}

/// Keeps `dir` (prints where) when `LIFTOFF_KEEP_TESTENV=1`, else lets it be removed.
pub(crate) fn release_dir(dir: Option<tempfile::TempDir>) {
    if let Some(dir) = dir
        && std::env::var("LIFTOFF_KEEP_TESTENV").is_ok_and(|v| v == "1")
    {
        eprintln!(
            "liftoff-testenv: kept {} (LIFTOFF_KEEP_TESTENV=1)",
            dir.keep().display()
        );
    }
}

/// Polls `ready` every 100 ms until it is true; fails with the log tail if `proc` exits, or
/// after `timeout`.
pub(crate) async fn wait_ready<F, Fut>(
    proc: &mut Proc,
    timeout: Duration,
    mut ready: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if ready().await {
            return Ok(());
        }
        if let Some(status) = proc.exited() {
            return Err(proc.exit_error(status));
        }
        if Instant::now() >= deadline {
            bail!(
                "{} not ready after {timeout:?}; last lines of its log:\n{}",
                proc.name(),
                proc.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET path_and_query` over HTTP/1.0 (the server closes the connection after the body);
/// returns the status code and the body. Bounded by 10 s.
pub async fn http_get(port: u16, path_and_query: &str) -> Result<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let request = format!("GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        std::io::Result::Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .with_context(|| format!("GET {path_and_query} on port {port} timed out"))?
        .with_context(|| format!("GET {path_and_query} on port {port}"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("malformed HTTP response to GET {path_and_query}: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no status code in {head:?}"))?;
    Ok((status, body.to_string()))
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for query parameters).
pub(crate) fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `Some((uid, gid))` of [`TEST_USER`] when we are root (creating the user if needed, `nobody`
/// as a last resort) for servers that refuse to run as root; `None` when we are not root.
pub(crate) fn unprivileged_user() -> Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    if let Some(ids) = lookup_user(TEST_USER) {
        return Ok(Some(ids));
    }
    // Concurrent `useradd`s of one name race (both "succeed", uids change under our feet):
    // one at a time across threads and processes, and look again once we hold the lock.
    let lock_path = std::env::temp_dir().join("liftoff-testenv-useradd.lock");
    let lock = std::fs::File::create(&lock_path)
        .and_then(|file| file.lock().map(|()| file))
        .with_context(|| format!("locking {}", lock_path.display()))?;
    if let Some(ids) = lookup_user(TEST_USER) {
        return Ok(Some(ids));
    }
    let created = std::process::Command::new("useradd")
        .args(["--system", "--no-create-home", "--home-dir", "/nonexistent"])
        .args(["--shell", "/usr/sbin/nologin", TEST_USER])
        .output();
    drop(lock);
    if let Some(ids) = lookup_user(TEST_USER) {
        return Ok(Some(ids));
    }
    tracing::warn!("could not create user {TEST_USER} ({created:?}); running as nobody");
    lookup_user("nobody")
        .map(Some)
        .with_context(|| format!("no unprivileged user to run servers as: {INSTALL_HINT}"))
}

/// (uid, gid) of `name` from the passwd database.
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let name = CString::new(name).ok()?;
    // SAFETY: getpwnam_r writes into our zeroed struct and buffer, both outliving the call.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut result = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        (rc == 0 && !result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_of_promql() {
        assert_eq!(
            url_encode(r#"up{job="x"} > 0"#),
            "up%7Bjob%3D%22x%22%7D%20%3E%200"
        );
    }

    #[test]
    fn missing_binary_names_binary_and_script() {
        let err = find_binary("liftoff-no-such-binary", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "liftoff-no-such-binary not found on PATH: run scripts/install-test-deps.sh"
        );
    }

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports::<3>().unwrap();
        assert!(a != b && b != c && a != c);
    }
}
