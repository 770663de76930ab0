//! Pieces shared by the service harnesses (Prometheus, Redis, PostgreSQL, Kafka): binary lookup
//! with an install hint, free ports, temp dirs, readiness polling and a tiny HTTP/1.0 GET.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::process::Proc;

/// What every "not installed" error tells the reader to do.
pub(crate) const INSTALL_HINT: &str = "run scripts/install-test-deps.sh";

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
pub(crate) fn free_ports<const N: usize>() -> Result<[u16; N]> {
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
pub(crate) async fn http_get(port: u16, path_and_query: &str) -> Result<(u16, String)> {
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
