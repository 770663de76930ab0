//! A real Redis server (Debian's `redis-server`) on a free loopback port, no persistence, with
//! a memory limit, plus a minimal RESP client for tests.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::process::Proc;
use crate::svc;

const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_GRACE: Duration = Duration::from_secs(5);

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    /// `None` is the nil bulk string.
    Bulk(Option<Vec<u8>>),
    /// `None` is the nil array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The text of a simple or bulk string (lossy UTF-8), `None` otherwise.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// A running `redis-server --save '' --appendonly no --maxmemory <limit>`. Dropping it SIGKILLs
/// and reaps the process and removes its temp dir (unless `LIFTOFF_KEEP_TESTENV=1`).
pub struct Redis {
    proc: Option<Proc>,
    port: u16,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
}

impl Redis {
    /// Starts Redis with `maxmemory` (Redis syntax: `"2mb"`, `"100000"`…) and the default
    /// `noeviction` policy, and waits until it answers `PING`.
    pub async fn start(maxmemory: &str) -> Result<Redis> {
        let binary = svc::find_binary("redis-server", &[])?;
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start(&binary, maxmemory).await {
                Ok(redis) => {
                    tracing::info!(url = %redis.url(), elapsed = ?started.elapsed(), "redis ready");
                    return Ok(redis);
                }
                Err(e) if svc::is_port_conflict(&e) && attempt < svc::START_ATTEMPTS => {
                    tracing::warn!("redis port conflict, retrying: {e:#}");
                }
                Err(e) => return Err(e.context("starting redis-server")),
            }
        }
    }

    async fn try_start(binary: &std::path::Path, maxmemory: &str) -> Result<Redis> {
        let dir = svc::temp_dir("redis", None)?;
        let [port] = svc::free_ports()?;
        let dir_path = dir.path().to_path_buf();
        let args = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory",
            maxmemory,
            "--daemonize",
            "no",
            "--dir",
            &dir_path.display().to_string(),
        ]
        .map(Into::into)
        .to_vec();
        let log = dir_path.join("redis.log");
        let mut redis = Redis {
            proc: Some(Proc::spawn("redis-server", binary, args, log)?),
            port,
            dir: Some(dir),
            dir_path,
        };
        let proc = redis.proc.as_mut().expect("just set");
        svc::wait_ready(proc, START_TIMEOUT, || async move {
            matches!(command_on(port, &["PING"]).await, Ok(Reply::Simple(p)) if p == "PONG")
        })
        .await?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// The temp dir holding `redis.log`.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir_path
    }

    /// Sends one command on a new connection and returns the reply (an `-ERR` reply is
    /// `Ok(Reply::Error(..))`, a transport problem is `Err`).
    pub async fn command(&self, args: &[&str]) -> Result<Reply> {
        command_on(self.port, args).await
    }

    /// Shuts Redis down (SIGTERM, up to 5 s, then SIGKILL) and removes its temp dir.
    pub async fn stop(mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.terminate(STOP_GRACE).await;
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill_now();
        }
        svc::release_dir(self.dir.take());
    }
}

/// One request/reply exchange on a fresh connection, bounded by 10 s.
async fn command_on(port: u16, args: &[&str]) -> Result<Reply> {
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(&request).await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some((reply, _)) = parse_reply(&buf)? {
                return Ok(reply);
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed after {} bytes", buf.len());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .context("redis command timed out")?
        .with_context(|| format!("redis command {:?} on port {port}", args.first()))
}

/// Parses one complete reply at the start of `buf`: `Ok(None)` if more bytes are needed.
fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>> {
    let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, rest)) = buf[..line_end].split_first() else {
        bail!("empty RESP line");
    };
    let line = String::from_utf8_lossy(rest).into_owned();
    let after = line_end + 2;
    let int = || {
        line.parse::<i64>()
            .with_context(|| format!("bad RESP length {line:?}"))
    };
    let reply = match kind {
        b'+' => (Reply::Simple(line), after),
        b'-' => (Reply::Error(line), after),
        b':' => (Reply::Integer(int()?), after),
        b'$' => match int()? {
            n if n < 0 => (Reply::Bulk(None), after),
            n => {
                let end = after + n as usize;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                (Reply::Bulk(Some(buf[after..end].to_vec())), end + 2)
            }
        },
        b'*' => match int()? {
            n if n < 0 => (Reply::Array(None), after),
            n => {
                let (mut items, mut pos) = (Vec::new(), after);
                for _ in 0..n {
                    let Some((item, used)) = parse_reply(&buf[pos..])? else {
                        return Ok(None);
                    };
                    items.push(item);
                    pos += used;
                }
                (Reply::Array(Some(items)), pos)
            }
        },
        other => bail!("unexpected RESP type byte {:?}", other as char),
    };
    Ok(Some(reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resp_replies() {
        assert_eq!(
            parse_reply(b"+PONG\r\n").unwrap(),
            Some((Reply::Simple("PONG".into()), 7))
        );
        assert_eq!(parse_reply(b"$5\r\nhel").unwrap(), None);
        assert_eq!(
            parse_reply(b"$5\r\nhello\r\n").unwrap(),
            Some((Reply::Bulk(Some(b"hello".to_vec())), 11))
        );
        let array = b"*3\r\n:1\r\n$-1\r\n-ERR x\r\n";
        let expected = Reply::Array(Some(vec![
            Reply::Integer(1),
            Reply::Bulk(None),
            Reply::Error("ERR x".into()),
        ]));
        assert_eq!(parse_reply(array).unwrap(), Some((expected, array.len())));
        assert_eq!(parse_reply(b"*2\r\n:1\r\n").unwrap(), None);
    }
}
