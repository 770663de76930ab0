//! Clients to metric sources, kept across reconciles: one Prometheus HTTP client per address and
//! credentials, one Kafka cluster handle per bootstrap list and settings. A client is rebuilt when
//! the Secret it was built from changes (its resourceVersion), so rotated credentials are used.
//! Kafka handles hold broker connections and threads, so those left unused for [`IDLE`] (their
//! triggers deleted or changed) are closed by [`Pools::prune`].

use ::prometheus as prometheus_metrics;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{lookup::KubeLookup, secrets::SecretData};
use crate::{
    crd::{KafkaLagTrigger, PrometheusSource, SecretRef},
    sources::{
        address::{AddressPolicy, Destination, Refusal, kafka_bootstrap},
        coalesce::Coalescer,
        kafka::Cluster,
        prometheus::{self, Auth},
        redact_url,
    },
};

/// How long a Kafka cluster or consumer-group handle may go unused before it is closed: many
/// sampling intervals, so a live trigger never loses its handle.
pub const IDLE: Duration = Duration::from_secs(15 * 60);

/// Why a source left without an address (a `sourceRef` that cannot be used, an address the
/// operator refuses to take from a policy) is not read.
const UNRESOLVED: &str = "no usable address (see the Ready condition)";

/// The Secret `r` names: in the policy's namespace, or a LaunchSource's in the namespace it
/// names.
async fn secret(lookup: &KubeLookup<'_>, r: &SecretRef) -> Result<Arc<SecretData>, String> {
    let namespace = r.namespace.as_deref().unwrap_or(lookup.namespace);
    lookup
        .secrets
        .get(namespace, &r.name)
        .await?
        .ok_or_else(|| format!("Secret {} not found", r.name))
}

/// Cached clients, keyed by what they were built from.
#[derive(Default)]
pub struct Pools {
    /// Which addresses clients may contact.
    policy: AddressPolicy,
    prometheus: Mutex<HashMap<String, (String, prometheus::Client)>>,
    /// The bound on queries in flight, shared by every client of one Prometheus address.
    prometheus_in_flight: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// Identical Prometheus queries in flight and their recent answers, for every client: one
    /// query per distinct (address, credentials, query).
    prometheus_shared: Arc<Coalescer>,
    kafka: Mutex<HashMap<String, (String, Cluster, Instant)>>,
    /// Counts the Kafka clusters' lag reads, sent or shared.
    kafka_lag_reads: Option<prometheus_metrics::IntCounterVec>,
}

impl Pools {
    /// Pools for clients under `policy`; Prometheus answers are counted in `queries`, Kafka lag
    /// reads in `lag_reads`.
    pub fn new(
        policy: AddressPolicy,
        queries: prometheus_metrics::IntCounterVec,
        lag_reads: prometheus_metrics::IntCounterVec,
    ) -> Pools {
        Pools {
            policy,
            prometheus: Default::default(),
            prometheus_in_flight: Default::default(),
            prometheus_shared: Arc::new(Coalescer::counted(queries)),
            kafka: Default::default(),
            kafka_lag_reads: Some(lag_reads),
        }
    }

    /// The address policy the clients obey.
    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// The client for `spec.prometheus`, with its credentials from `authSecretRef`.
    pub async fn prometheus(
        &self,
        lookup: &KubeLookup<'_>,
        spec: &PrometheusSource,
    ) -> Result<prometheus::Client, String> {
        if spec.address.is_empty() {
            return Err(UNRESOLVED.to_string());
        }
        let (auth, version) = match &spec.auth_secret_ref {
            None => (None, String::new()),
            Some(r) => {
                let secret = secret(lookup, r).await?;
                let auth = match (
                    secret.text("token"),
                    secret.text("username"),
                    secret.text("password"),
                ) {
                    (Some(token), _, _) => Auth::Bearer(token),
                    (None, Some(username), Some(password)) => Auth::Basic { username, password },
                    _ => {
                        return Err(format!(
                            "Secret {} needs a token key, or username and password keys",
                            r.name
                        ));
                    }
                };
                (Some(auth), format!("{}@{}", r.name, secret.version))
            }
        };
        let timeout: Duration = spec.timeout.into();
        let key = format!("{}|{}", lookup.namespace, spec.address);
        let version = format!("{version}|{}", timeout.as_millis());
        if let Some((built_from, client)) = self.prometheus.lock().unwrap().get(&key)
            && *built_from == version
        {
            return Ok(client.clone());
        }
        self.policy
            .check_url(Destination::Prometheus, &spec.address)
            .await
            .map_err(|e| format!("{}: {e}", redact_url(&spec.address)))?;
        let client = prometheus::Client::with_policy(&spec.address, auth, timeout, &self.policy)
            .map_err(|e| {
                format!(
                    "cannot build a client for {}: {e}",
                    redact_url(&spec.address)
                )
            })?;
        let in_flight = self
            .prometheus_in_flight
            .lock()
            .unwrap()
            .entry(client.address().to_string())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Semaphore::new(
                    prometheus::MAX_QUERIES_IN_FLIGHT,
                ))
            })
            .clone();
        let client = client
            .with_limit(in_flight)
            .with_shared(self.prometheus_shared.clone());
        self.prometheus
            .lock()
            .unwrap()
            .insert(key, (version, client.clone()));
        Ok(client)
    }

    /// The cluster handle for a kafkaLag trigger, with settings from `authSecretRef`.
    pub async fn kafka(
        &self,
        lookup: &KubeLookup<'_>,
        spec: &KafkaLagTrigger,
    ) -> Result<Cluster, String> {
        if spec.bootstrap_servers.is_empty() {
            return Err(UNRESOLVED.to_string());
        }
        let (settings, version) = match &spec.auth_secret_ref {
            None => (Default::default(), String::new()),
            Some(r) => {
                let secret = secret(lookup, r).await?;
                (secret.texts(), format!("{}@{}", r.name, secret.version))
            }
        };
        let key = format!("{}|{}", lookup.namespace, spec.bootstrap_servers);
        if let Some((built_from, cluster, used)) = self.kafka.lock().unwrap().get_mut(&key)
            && *built_from == version
        {
            *used = Instant::now();
            return Ok(cluster.clone());
        }
        // Every bootstrap server the policy refuses fails the trigger; one that does not resolve
        // is left to librdkafka, which tolerates a stale entry among good ones.
        for (host, port) in kafka_bootstrap(&spec.bootstrap_servers) {
            match self.policy.resolve(Destination::Kafka, host, port).await {
                Err(Refusal::Denied(denied)) => return Err(format!("bootstrap server {denied}")),
                Ok(_) | Err(Refusal::Unresolved) => {}
            }
        }
        let cluster = Cluster::connect_counted(
            &spec.bootstrap_servers,
            &settings,
            self.kafka_lag_reads.clone(),
        )
        .map_err(|e| e.to_string())?;
        self.kafka
            .lock()
            .unwrap()
            .insert(key, (version, cluster.clone(), Instant::now()));
        Ok(cluster)
    }

    /// Closes Kafka handles unused for `idle`: whole clusters, and the consumer-group handles
    /// of the clusters still in use. Returns the clusters and group handles left open.
    ///
    /// Closing a librdkafka client blocks until its threads stop, so handles are closed after
    /// the locks are released; call it from a blocking context.
    pub fn prune(&self, idle: Duration) -> (usize, usize) {
        let (closing, kept): (Vec<_>, Vec<_>) = {
            let mut kafka = self.kafka.lock().unwrap();
            let idle_keys: Vec<String> = kafka
                .iter()
                .filter(|(_, (_, _, used))| used.elapsed() >= idle)
                .map(|(k, _)| k.clone())
                .collect();
            let closing = idle_keys.iter().filter_map(|k| kafka.remove(k)).collect();
            let kept = kafka.values().map(|(_, c, _)| c.clone()).collect();
            (closing, kept)
        };
        drop(closing);
        let groups = kept.iter().map(|c| c.forget_idle_groups(idle)).sum();
        (kept.len(), groups)
    }
}
