//! A real Prometheus server (Debian's `prometheus` binary) on a free loopback port, scraping
//! the targets a test names, with its TSDB in a temp dir.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::Proc;
use crate::svc;

/// Bound on start-up (until `/-/ready` answers 200).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on [`Prometheus::wait_for_query`].
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop()` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// One element of an instant-query result: the series' labels and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    /// Prometheus sends values as strings; `"NaN"`/`"+Inf"` parse to the matching `f64`.
    pub value: f64,
}

/// A running (or stopped, see [`Prometheus::stop`]) Prometheus. Dropping it SIGKILLs and reaps
/// the process and removes the temp dir (unless `LIFTOFF_KEEP_TESTENV=1`).
pub struct Prometheus {
    proc: Option<Proc>,
    binary: PathBuf,
    port: u16,
    /// How many times the server was started (names the log file of each run).
    runs: u32,
    dir_path: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl Prometheus {
    /// Starts Prometheus scraping `scrape_targets` (`host:port`, path `/metrics`) every
    /// `scrape_interval`, and waits until it is ready. The first samples are queryable a few
    /// seconds later (targets are applied on a 5 s tick): use [`Prometheus::wait_for_query`].
    pub async fn start(scrape_targets: &[String], scrape_interval: Duration) -> Result<Prometheus> {
        let binary = svc::find_binary("prometheus", &[])?;
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let dir = svc::temp_dir("prometheus", None)?;
            let [port] = svc::free_ports()?;
            let config = config_yaml(scrape_targets, scrape_interval);
            std::fs::write(dir.path().join("prometheus.yml"), config)
                .context("writing prometheus.yml")?;
            let mut prom = Prometheus {
                proc: None,
                binary: binary.clone(),
                port,
                runs: 0,
                dir_path: dir.path().to_path_buf(),
                dir: Some(dir),
            };
            match prom.launch().await {
                Ok(()) => {
                    tracing::info!(url = %prom.url(), elapsed = ?started.elapsed(), "prometheus ready");
                    return Ok(prom);
                }
                Err(e) if svc::is_port_conflict(&e) && attempt < svc::START_ATTEMPTS => {
                    tracing::warn!("prometheus port conflict, retrying: {e:#}");
                }
                Err(e) => return Err(e.context("starting prometheus")),
            }
        }
    }

    /// Spawns the server on `self.port` with the config and data in the temp dir; waits for ready.
    async fn launch(&mut self) -> Result<()> {
        self.runs += 1;
        let dir = &self.dir_path;
        let arg = |flag: &str, value: &std::path::Path| format!("--{flag}={}", value.display());
        let args = vec![
            arg("config.file", &dir.join("prometheus.yml")).into(),
            arg("storage.tsdb.path", &dir.join("data")).into(),
            format!("--web.listen-address=127.0.0.1:{}", self.port).into(),
            "--storage.tsdb.retention.time=1d".into(),
            "--log.level=warn".into(),
        ];
        let log = dir.join(format!("prometheus-{}.log", self.runs));
        let proc = self
            .proc
            .insert(Proc::spawn("prometheus", &self.binary, args, log)?);
        let port = self.port;
        svc::wait_ready(proc, START_TIMEOUT, || async move {
            matches!(svc::http_get(port, "/-/ready").await, Ok((200, _)))
        })
        .await
    }

    /// `http://127.0.0.1:<port>` (the same across [`Prometheus::restart`]).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// The temp dir holding `prometheus.yml`, `data/` and one `prometheus-<run>.log` per start.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir_path
    }

    /// Stops the server (SIGTERM, up to 10 s, then SIGKILL) and keeps its config and data, so
    /// that [`Prometheus::restart`] brings it back on the same port with the same history.
    /// Queries fail with "connection refused" meanwhile, as they would against a real outage.
    pub async fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.terminate(STOP_GRACE).await;
        }
    }

    /// Starts the server again (stopping it first if it runs) on the same port, config and data.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await;
        let started = Instant::now();
        self.launch()
            .await
            .with_context(|| format!("restarting prometheus on port {}", self.port))?;
        tracing::info!(url = %self.url(), elapsed = ?started.elapsed(), "prometheus restarted");
        Ok(())
    }

    /// Adds recorded history: `openmetrics` (samples with timestamps, ending in `# EOF`) is
    /// turned into TSDB blocks by Prometheus' own `promtool tsdb create-blocks-from openmetrics`
    /// while the server is stopped, and the server is started again on them. The samples must be
    /// older than the server's head (a few hours back) and younger than its 1-day retention.
    pub async fn backfill(&mut self, openmetrics: &str) -> Result<()> {
        let promtool = svc::find_binary("promtool", &[])?;
        self.stop().await;
        let input = self.dir_path.join("backfill.om");
        std::fs::write(&input, openmetrics).context("writing the backfill input")?;
        let out = std::process::Command::new(promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(self.dir_path.join("data"))
            .output()
            .context("running promtool")?;
        if !out.status.success() {
            bail!("promtool: {}", String::from_utf8_lossy(&out.stderr));
        }
        self.restart().await
    }

    /// Runs the instant query `expr` once (vector or scalar results).
    pub async fn query(&self, expr: &str) -> Result<Vec<Sample>> {
        let path = format!("/api/v1/query?query={}", svc::url_encode(expr));
        let (status, body) = svc::http_get(self.port, &path).await?;
        parse_query_response(status, &body).with_context(|| format!("query {expr:?}"))
    }

    /// Polls `expr` every 250 ms until it returns at least one sample (at most 60 s). Errors
    /// other than an unreachable server (e.g. a PromQL syntax error) fail at once.
    pub async fn wait_for_query(&self, expr: &str) -> Result<Vec<Sample>> {
        let deadline = Instant::now() + QUERY_TIMEOUT;
        loop {
            let last = match self.query(expr).await {
                Ok(samples) if !samples.is_empty() => return Ok(samples),
                Ok(_) => "empty result".to_string(),
                Err(e) if format!("{e:#}").contains("HTTP 4") => return Err(e),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!("query {expr:?} returned no data within {QUERY_TIMEOUT:?} (last: {last})");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill_now();
        }
        svc::release_dir(self.dir.take());
    }
}

/// `prometheus.yml`: one job scraping every target at `interval` (timeout = interval).
fn config_yaml(targets: &[String], interval: Duration) -> String {
    let interval = format!("{}ms", interval.as_millis().max(1));
    let mut yaml = format!(
        "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  \
         evaluation_interval: {interval}\n"
    );
    if !targets.is_empty() {
        let list: Vec<String> = targets.iter().map(|t| format!("{t:?}")).collect();
        yaml += &format!(
            "scrape_configs:\n  - job_name: liftoff-test\n    static_configs:\n      \
             - targets: [{}]\n",
            list.join(", ")
        );
    }
    yaml
}

/// Parses `/api/v1/query` JSON: `{"status":"success","data":{"resultType":…,"result":…}}`.
fn parse_query_response(status: u16, body: &str) -> Result<Vec<Sample>> {
    let json: serde_json::Value = serde_json::from_str(body)
        .with_context(|| format!("HTTP {status}, not JSON: {body:.200}"))?;
    if status != 200 || json["status"] != "success" {
        bail!(
            "HTTP {status}: {} ({})",
            json["error"].as_str().unwrap_or(body),
            json["errorType"].as_str().unwrap_or("?")
        );
    }
    let data = &json["data"];
    let value = |pair: &serde_json::Value| -> Result<f64> {
        let text = pair[1].as_str().context("sample value is not a string")?;
        text.parse::<f64>()
            .with_context(|| format!("sample value {text:?}"))
    };
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .context("vector result is not an array")?
            .iter()
            .map(|s| {
                let labels = serde_json::from_value(s["metric"].clone()).context("labels")?;
                Ok(Sample {
                    labels,
                    value: value(&s["value"])?,
                })
            })
            .collect(),
        Some("scalar") => Ok(vec![Sample {
            labels: BTreeMap::new(),
            value: value(&data["result"])?,
        }]),
        other => bail!("unsupported result type {other:?}: {body:.200}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vector_scalar_and_errors() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"j"},"value":[1.5,"1"]},
            {"metric":{},"value":[1.5,"NaN"]}]}}"#;
        let samples = parse_query_response(200, body).unwrap();
        assert_eq!(samples[0].labels["job"], "j");
        assert_eq!(samples[0].value, 1.0);
        assert!(samples[1].value.is_nan());
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}"#;
        assert_eq!(
            parse_query_response(200, scalar).unwrap()[0].value,
            f64::INFINITY
        );
        let bad = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        let err = parse_query_response(400, bad).unwrap_err().to_string();
        assert_eq!(err, "HTTP 400: parse error (bad_data)");
    }

    #[test]
    fn config_lists_targets() {
        let yaml = config_yaml(&["127.0.0.1:9".into()], Duration::from_secs(1));
        assert!(yaml.contains("scrape_interval: 1000ms"));
        assert!(yaml.contains(r#"- targets: ["127.0.0.1:9"]"#));
    }
}
