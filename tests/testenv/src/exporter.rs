//! A tiny HTTP server that serves `/metrics` in the Prometheus text format with values the
//! test sets at run time, for a real Prometheus to scrape. A script (the demo) sets a gauge
//! without labels with `PUT /set/<name>/<value>`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Gauges by metric name, then by rendered label set (`{a="1",b="2"}`, or empty).
type Series = BTreeMap<String, BTreeMap<String, f64>>;

#[derive(Default)]
struct Shared {
    series: Mutex<Series>,
    scrapes: AtomicU64,
}

/// Serves `GET /metrics` on `127.0.0.1:<free port>` from a task on the current tokio runtime.
/// Every series is exposed as a gauge. Dropping it stops the server.
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// let exporter = liftoff_testenv::MetricsExporter::start().await?;
/// exporter.set("app_cpu_utilization", &[("pod", "web-0")], 85.0);
/// let prom = liftoff_testenv::Prometheus::start(
///     &[exporter.target()],
///     std::time::Duration::from_secs(1),
/// ).await?;
/// # Ok(()) }
/// ```
pub struct MetricsExporter {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsExporter {
    /// Binds a free loopback port and starts serving (no series yet: an empty exposition).
    pub async fn start() -> Result<MetricsExporter> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the metrics exporter")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(serve(listener, shared.clone()));
        Ok(MetricsExporter { addr, shared, task })
    }

    /// `127.0.0.1:<port>`, the form a Prometheus `static_configs` target takes.
    pub fn target(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:<port>/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// Sets (or creates) the gauge `name{labels}` to `value`. Panics on an invalid metric or
    /// label name, which is a bug in the test.
    pub fn set(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        let key = label_set(name, labels);
        let mut series = self.shared.series.lock().expect("exporter lock");
        series
            .entry(name.to_string())
            .or_default()
            .insert(key, value);
    }

    /// Removes the series `name{labels}` (it disappears from the next scrape).
    pub fn remove(&self, name: &str, labels: &[(&str, &str)]) {
        let key = label_set(name, labels);
        let mut series = self.shared.series.lock().expect("exporter lock");
        if let Some(by_labels) = series.get_mut(name) {
            by_labels.remove(&key);
            if by_labels.is_empty() {
                series.remove(name);
            }
        }
    }

    /// Removes every series.
    pub fn clear(&self) {
        self.shared.series.lock().expect("exporter lock").clear();
    }

    /// How many times `/metrics` has been served.
    pub fn scrapes(&self) -> u64 {
        self.shared.scrapes.load(Ordering::Relaxed)
    }

    /// The exposition text the next scrape gets.
    pub fn render(&self) -> String {
        render(&self.shared.series.lock().expect("exporter lock"))
    }
}

impl Drop for MetricsExporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let handled =
                        tokio::time::timeout(Duration::from_secs(10), handle(stream, &shared));
                    if let Ok(Err(e)) = handled.await {
                        tracing::debug!("metrics exporter connection: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("metrics exporter accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Answers one request and closes the connection (clients reconnect for the next scrape).
async fn handle(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut request_line = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (request_line.next(), request_line.next());
    let (status, body) = match (method, path) {
        (Some("GET"), Some(p)) if p == "/metrics" || p.starts_with("/metrics?") => {
            shared.scrapes.fetch_add(1, Ordering::Relaxed);
            (
                "200 OK",
                render(&shared.series.lock().expect("exporter lock")),
            )
        }
        (Some("PUT"), Some(p)) if p.starts_with("/set/") => match set_from_path(p, shared) {
            Ok(()) => ("200 OK", "set\n".to_string()),
            Err(why) => ("400 Bad Request", format!("{why}\n")),
        },
        _ => (
            "404 Not Found",
            "only GET /metrics and PUT /set/<name>/<value> are served here\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// `PUT /set/<name>/<value>`: sets the gauge `name` (no labels) to `value`.
fn set_from_path(path: &str, shared: &Shared) -> Result<(), String> {
    let rest = path.trim_start_matches("/set/");
    let (name, value) = rest.split_once('/').ok_or("use PUT /set/<name>/<value>")?;
    if !valid_name(name, true) {
        return Err(format!("{name:?} is not a metric name"));
    }
    let value: f64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number"))?;
    let mut series = shared.series.lock().expect("exporter lock");
    series
        .entry(name.to_string())
        .or_default()
        .insert(String::new(), value);
    Ok(())
}

/// `{a="1",b="2"}` with escaped values (label order as given), or `""` without labels.
fn label_set(name: &str, labels: &[(&str, &str)]) -> String {
    assert!(valid_name(name, true), "invalid metric name {name:?}");
    if labels.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            assert!(valid_name(k, false), "invalid label name {k:?}");
            let v = v
                .replace('\\', r"\\")
                .replace('"', "\\\"")
                .replace('\n', r"\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*` for metric names; no `:` in label names.
fn valid_name(name: &str, colons: bool) -> bool {
    let ok = |c: char, first: bool| {
        c.is_ascii_alphabetic()
            || c == '_'
            || (colons && c == ':')
            || (!first && c.is_ascii_digit())
    };
    let mut chars = name.chars();
    chars.next().is_some_and(|c| ok(c, true)) && chars.all(|c| ok(c, false))
}

fn render(series: &Series) -> String {
    let mut out = String::new();
    for (name, by_labels) in series {
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in by_labels {
            let _ = writeln!(out, "{name}{labels} {}", format_value(*value));
        }
    }
    out
}

/// Prometheus spells the special values `NaN`, `+Inf` and `-Inf`.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_gauges_with_escaped_labels() {
        let mut series = Series::new();
        let labels = label_set("app_cpu", &[("pod", "a\"b"), ("zone", "x")]);
        series
            .entry("app_cpu".into())
            .or_default()
            .insert(labels, 85.0);
        series
            .entry("up_x".into())
            .or_default()
            .insert(String::new(), f64::NAN);
        assert_eq!(
            render(&series),
            "# TYPE app_cpu gauge\napp_cpu{pod=\"a\\\"b\",zone=\"x\"} 85\n\
             # TYPE up_x gauge\nup_x NaN\n"
        );
    }

    #[test]
    #[should_panic(expected = "invalid metric name")]
    fn rejects_bad_names() {
        label_set("1bad", &[]);
    }
}
