//! A real single-node Apache Kafka broker (KRaft, combined broker + controller) from the jars
//! that `scripts/install-test-deps.sh` fetches from Maven Central, run with `java` directly so
//! that the pid we keep is the JVM's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::binaries::{cache_dir, pinned_version};
use crate::process::Proc;
use crate::svc;

const START_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_GRACE: Duration = Duration::from_secs(15);
/// Bound on one CLI tool run (a JVM start is ~2–4 s here).
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// JVM flags for the broker: C1 only and the serial GC halve start-up here (measured ~15 s ->
/// ~8.5 s on a loaded 2-core machine); a test broker needs no peak throughput.
const BROKER_JVM_FLAGS: [&str; 3] = ["-Xmx512m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"];
/// JVM flags for the short-lived CLI tools: small heap, quick start.
const TOOL_JVM_FLAGS: [&str; 3] = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"];

/// A running broker. Dropping it SIGKILLs and reaps the JVM and removes the temp dir (unless
/// `LIFTOFF_KEEP_TESTENV=1`).
pub struct Kafka {
    proc: Option<Proc>,
    broker_port: u16,
    controller_port: u16,
    java: PathBuf,
    kafka_dir: PathBuf,
    dir_path: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl Kafka {
    /// Formats a fresh KRaft log dir and starts the broker on free ports; waits until it
    /// answers a Metadata request listing itself (it can then create topics).
    pub async fn start() -> Result<Kafka> {
        let java_home = std::env::var_os("JAVA_HOME").map(|home| PathBuf::from(home).join("bin"));
        let java = svc::find_binary("java", java_home.as_slice())?;
        let kafka_dir = kafka_dir();
        let libs = kafka_dir.join("libs");
        let has_jars = std::fs::read_dir(&libs).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("kafka_2.13-"))
        });
        if !has_jars {
            bail!(
                "Kafka jars not found in {}: {}",
                libs.display(),
                svc::INSTALL_HINT
            );
        }
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start(&java, &kafka_dir).await {
                Ok(kafka) => {
                    tracing::info!(bootstrap = %kafka.bootstrap(), elapsed = ?started.elapsed(), "kafka ready");
                    return Ok(kafka);
                }
                Err(e) if svc::is_port_conflict(&e) && attempt < svc::START_ATTEMPTS => {
                    tracing::warn!("kafka port conflict, retrying: {e:#}");
                }
                Err(e) => return Err(e.context("starting kafka")),
            }
        }
    }

    async fn try_start(java: &Path, kafka_dir: &Path) -> Result<Kafka> {
        let dir = svc::temp_dir("kafka", None)?;
        let [broker_port, controller_port] = svc::free_ports()?;
        let mut kafka = Kafka {
            proc: None,
            broker_port,
            controller_port,
            java: java.to_path_buf(),
            kafka_dir: kafka_dir.to_path_buf(),
            dir_path: dir.path().to_path_buf(),
            dir: Some(dir),
        };
        let config = kafka.dir_path.join("server.properties");
        std::fs::write(&config, kafka.server_properties()).context("writing server.properties")?;
        let config_arg = config.display().to_string();
        let id = cluster_id()?;
        kafka
            .run_tool(
                "kafka.tools.StorageTool",
                &["format", "-t", &id, "-c", &config_arg],
            )
            .await?;

        let mut args = kafka.jvm_args(&BROKER_JVM_FLAGS);
        args.extend(["kafka.Kafka".into(), config_arg.into()]);
        let log = kafka.dir_path.join("kafka.log");
        let proc = kafka.proc.insert(Proc::spawn("kafka", java, args, log)?);
        svc::wait_ready(proc, START_TIMEOUT, || async move {
            broker_count(broker_port).await.is_ok_and(|n| n > 0)
        })
        .await?;
        Ok(kafka)
    }

    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.broker_port)
    }

    /// The JVM's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// The temp dir holding `server.properties`, `kafka.log` and the log dir `data/`.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// Creates `name` with `partitions` partitions (replication factor 1).
    pub async fn create_topic(&self, name: &str, partitions: u32) -> Result<()> {
        self.topic_command(&[
            "--create",
            "--topic",
            name,
            "--partitions",
            &partitions.to_string(),
        ])
        .await
        .map(drop)
    }

    /// The partition count of `topic`, from `TopicCommand --describe`.
    pub async fn partitions(&self, topic: &str) -> Result<u32> {
        let out = self
            .topic_command(&["--describe", "--topic", topic])
            .await?;
        out.split_whitespace()
            .skip_while(|word| *word != "PartitionCount:")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no PartitionCount for {topic} in {out:?}"))
    }

    /// `org.apache.kafka.tools.TopicCommand --bootstrap-server <ours> <args…>`; returns stdout.
    pub async fn topic_command(&self, args: &[&str]) -> Result<String> {
        let bootstrap = self.bootstrap();
        let mut all = vec!["--bootstrap-server", &bootstrap];
        all.extend_from_slice(args);
        self.run_tool("org.apache.kafka.tools.TopicCommand", &all)
            .await
    }

    /// Runs a Kafka CLI class with the broker's classpath; fails with its output on error.
    pub async fn run_tool(&self, class: &str, args: &[&str]) -> Result<String> {
        let mut cmd = tokio::process::Command::new(&self.java);
        cmd.args(self.jvm_args(&TOOL_JVM_FLAGS))
            .arg(class)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(TOOL_TIMEOUT, cmd.output())
            .await
            .with_context(|| format!("{class} {args:?} timed out after {TOOL_TIMEOUT:?}"))?
            .with_context(|| format!("running {class} with {}", self.java.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "{class} {args:?} failed ({}):\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stdout)
    }

    /// Controlled shutdown (SIGTERM, up to 15 s, then SIGKILL) and cleanup.
    pub async fn stop(mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.terminate(STOP_GRACE).await;
        }
    }

    /// Stops the broker (SIGTERM, then SIGKILL) and keeps its config and log dir, so that
    /// [`Kafka::restart`] brings it back on the same port with the same topics and offsets.
    pub async fn stop_broker(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.terminate(STOP_GRACE).await;
        }
    }

    /// Starts the broker again (stopping it first if it runs) on the same ports and log dir.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop_broker().await;
        let config = self
            .dir_path
            .join("server.properties")
            .display()
            .to_string();
        let mut args = self.jvm_args(&BROKER_JVM_FLAGS);
        args.extend(["kafka.Kafka".into(), config.into()]);
        let log = self.dir_path.join("kafka.log");
        let broker_port = self.broker_port;
        let proc = self
            .proc
            .insert(Proc::spawn("kafka", &self.java, args, log)?);
        svc::wait_ready(proc, START_TIMEOUT, || async move {
            broker_count(broker_port).await.is_ok_and(|n| n > 0)
        })
        .await
    }

    /// `<flags> -Dlog4j2.configurationFile=… -cp <libs>/*` (java expands the `*` itself).
    fn jvm_args(&self, flags: &[&str]) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = flags.iter().map(Into::into).collect();
        let log4j = self.kafka_dir.join("log4j2.properties");
        if log4j.is_file() {
            args.push(format!("-Dlog4j2.configurationFile={}", log4j.display()).into());
        }
        args.push("-cp".into());
        args.push(self.kafka_dir.join("libs").join("*").into());
        args
    }

    fn server_properties(&self) -> String {
        let (b, c) = (self.broker_port, self.controller_port);
        let data = self.dir_path.join("data");
        format!(
            "process.roles=broker,controller\nnode.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{c}\n\
             listeners=PLAINTEXT://127.0.0.1:{b},CONTROLLER://127.0.0.1:{c}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{b}\n\
             controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n\
             listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
             offsets.topic.replication.factor=1\ntransaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\nshare.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\ngroup.initial.rebalance.delay.ms=0\n\
             num.partitions=1\nauto.create.topics.enable=false\nlog.dirs={}\n",
            data.display()
        )
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill_now();
        }
        svc::release_dir(self.dir.take());
    }
}

/// `$LIFTOFF_KAFKA_DIR`, else `<cache>/kafka-<KAFKA_VERSION>` as in `scripts/lib.sh`.
fn kafka_dir() -> PathBuf {
    match std::env::var_os("LIFTOFF_KAFKA_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let version = pinned_version("KAFKA_VERSION").expect("KAFKA_VERSION in versions.env");
            cache_dir().join(format!("kafka-{version}"))
        }
    }
}

/// A random cluster id as Kafka's `Uuid` prints it (22 chars of unpadded URL-safe base64 of
/// 16 bytes, not starting with `-`); saves a JVM start for `StorageTool random-uuid`.
fn cluster_id() -> Result<String> {
    use std::io::Read as _;
    let mut urandom = std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
    loop {
        let mut bytes = [0u8; 16];
        urandom
            .read_exact(&mut bytes)
            .context("reading /dev/urandom")?;
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        if !id.starts_with('-') {
            return Ok(id);
        }
    }
}

/// Sends a Metadata v4 request (no topics) and returns how many live brokers the answer lists.
async fn broker_count(port: u16) -> Result<i32> {
    let client_id = b"liftoff-testenv";
    let mut body = Vec::new();
    body.extend_from_slice(&3i16.to_be_bytes()); // api key: Metadata
    body.extend_from_slice(&4i16.to_be_bytes()); // api version (Kafka 4 serves 4..)
    body.extend_from_slice(&1i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    body.extend_from_slice(&0i32.to_be_bytes()); // topics: empty array (not all topics)
    body.push(0); // allow_auto_topic_creation = false
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(&(body.len() as i32).to_be_bytes()).await?;
        stream.write_all(&body).await?;
        let len = stream.read_i32().await?;
        let correlation_id = stream.read_i32().await?;
        let _throttle_ms = stream.read_i32().await?;
        let brokers = stream.read_i32().await?;
        if correlation_id != 1 || len < 12 {
            bail!("unexpected Metadata response (correlation id {correlation_id}, {len} bytes)");
        }
        Ok(brokers)
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .context("Metadata request timed out")?
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_ids_look_like_kafka_uuids() {
        let id = super::cluster_id().unwrap();
        assert_eq!(id.len(), 22);
        assert!(!id.starts_with('-'));
    }
}
