//! Prometheus metrics. Their names are part of Liftoff's public interface (see docs/metrics.md).

use std::{
    cell::RefCell, collections::BTreeMap, fmt::Write as _, ops::Bound, sync::Mutex, time::Instant,
};

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    core::Collector,
};

/// One exported metric, as `docs/metrics.md` lists it (generated from the registry).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricDoc {
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    pub labels: Vec<String>,
    pub help: String,
}

/// Registers collectors and records what each exports: every metric is registered through
/// here, so the documented list cannot miss one.
pub struct Registrar {
    registry: Registry,
    docs: RefCell<Vec<MetricDoc>>,
}

impl Registrar {
    fn new() -> Self {
        Registrar {
            registry: Registry::new(),
            docs: RefCell::default(),
        }
    }

    /// Registers `collector` (of `kind`) and returns it.
    pub fn add<C: Collector + Clone + 'static>(&self, kind: &'static str, collector: C) -> C {
        self.document(kind, collector.desc());
        self.registry
            .register(Box::new(collector.clone()))
            .expect("metric names are unique constants");
        collector
    }

    /// Lists metrics that [`Metrics::render`] writes itself, outside the registry.
    pub fn document(&self, kind: &'static str, descs: Vec<&prometheus::core::Desc>) {
        for desc in descs {
            self.docs.borrow_mut().push(MetricDoc {
                name: desc.fq_name.clone(),
                kind,
                labels: desc.variable_labels.clone(),
                help: desc.help.clone(),
            });
        }
    }
}

/// Every metric the operator exports, registered in its own registry.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `liftoff_reconciles_total`: reconciles run, successful or not.
    pub reconciles: IntCounter,
    /// `liftoff_reconcile_errors_total{reason}`: failed reconciles by error category.
    pub reconcile_errors: IntCounterVec,
    /// `liftoff_reconcile_duration_seconds`: time spent per reconcile.
    pub reconcile_duration: Histogram,
    /// `liftoff_status_writes_total`: status patches sent to the apiserver.
    pub status_writes: IntCounter,
    /// `liftoff_status_writes_skipped_total`: reconciles that found nothing to write.
    pub status_writes_skipped: IntCounter,
    /// `liftoff_status_conflicts_total`: status writes refused because the policy had changed
    /// since it was read (reconciled again from the new version; not an error).
    pub status_conflicts: IntCounter,
    /// `liftoff_ready`: 1 once the operator's caches are synced and it is reconciling.
    pub ready: IntGauge,
    /// Per-trigger samples and actions.
    pub triggers: crate::trigger_metrics::TriggerMetrics,
    /// Per-rollout position and gate samples.
    pub rollouts: crate::rollout_metrics::RolloutMetrics,
    /// `liftoff_notifications_failed_total`: webhook messages not delivered after every retry.
    pub notifications_failed: IntCounter,
    /// `liftoff_prometheus_queries_total{answer}`: instant queries of triggers and gates, by
    /// whether they were `sent` to Prometheus or `shared` (answered by an identical query).
    pub prometheus_queries: IntCounterVec,
    /// `liftoff_kafka_lag_reads_total{answer}`: consumer-lag reads of Kafka triggers, by whether
    /// they were `sent` to the broker or `shared` (answered by an identical read).
    pub kafka_lag_reads: IntCounterVec,
    /// `liftoff_leader`: 1 while this replica holds the leader Lease (always 1 without election).
    pub leader: IntGauge,
    /// `liftoff_invalid_policies{namespace,policy}`: 1 for each stored policy the operator cannot
    /// read (its `Ready` condition, reason `InvalidSpec`, names the field); absent otherwise.
    pub invalid_policies: IntGaugeVec,
    /// Every metric above, as `docs/metrics.md` lists it.
    pub catalog: Vec<MetricDoc>,
}

impl Default for Metrics {
    fn default() -> Self {
        let r = Registrar::new();
        let counter =
            |name: &str, help: &str| r.add("counter", IntCounter::new(name, help).unwrap());
        let gauge = |name: &str, help: &str| r.add("gauge", IntGauge::new(name, help).unwrap());
        let reconciles = counter(
            "liftoff_reconciles_total",
            "Reconciles run, successful or not",
        );
        let reconcile_errors = r.add(
            "counter",
            IntCounterVec::new(
                Opts::new(
                    "liftoff_reconcile_errors_total",
                    "Failed reconciles by error category (ApiRequestFailed, CohortUnreadable, InvalidObject)",
                ),
                &["reason"],
            )
            .unwrap(),
        );
        let status_conflicts = counter(
            "liftoff_status_conflicts_total",
            "Status writes refused (HTTP 409) because the policy changed after it was read; the \
             policy is reconciled again from the new version, so a decision is never recorded \
             over a state it did not see",
        );
        let reconcile_duration = r.add(
            "histogram",
            Histogram::with_opts(
                HistogramOpts::new(
                    "liftoff_reconcile_duration_seconds",
                    "Time spent per reconcile",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )
            .unwrap(),
        );
        let status_writes = counter(
            "liftoff_status_writes_total",
            "Status patches sent to the apiserver",
        );
        let status_writes_skipped = counter(
            "liftoff_status_writes_skipped_total",
            "Reconciles that found the status already right (no write sent)",
        );
        let ready = gauge(
            "liftoff_ready",
            "1 once caches are synced; with --leader-election, once the replica knows its role \
             (standby or leader)",
        );
        let leader = gauge(
            "liftoff_leader",
            "1 while this replica holds the Lease and acts; always 1 without --leader-election",
        );
        let invalid_policies = r.add(
            "gauge",
            IntGaugeVec::new(
                Opts::new(
                    "liftoff_invalid_policies",
                    "1 for each stored LaunchPolicy Liftoff cannot read (Ready=False InvalidSpec \
                     names the field); absent otherwise",
                ),
                &["namespace", "policy"],
            )
            .unwrap(),
        );
        let triggers = crate::trigger_metrics::TriggerMetrics::register(&r);
        let notifications_failed = counter(
            "liftoff_notifications_failed_total",
            "Webhook messages not delivered after every retry",
        );
        let prometheus_queries = r.add(
            "counter",
            IntCounterVec::new(
                Opts::new(
                    "liftoff_prometheus_queries_total",
                    "Instant queries of triggers and gates, by answer: sent (an HTTP request to \
                     Prometheus) or shared (answered by an identical query to the same server \
                     with the same credentials, in flight or within --query-reuse)",
                ),
                &["answer"],
            )
            .unwrap(),
        );
        let kafka_lag_reads = r.add(
            "counter",
            IntCounterVec::new(
                Opts::new(
                    "liftoff_kafka_lag_reads_total",
                    "Consumer-lag reads of Kafka triggers, by answer: sent (offsets read from the \
                     brokers) or shared (answered by an identical read of the same topic and \
                     group, in the same namespace with the same credentials, in flight or within \
                     --query-reuse)",
                ),
                &["answer"],
            )
            .unwrap(),
        );
        let rollouts = crate::rollout_metrics::RolloutMetrics::register(&r);
        let Registrar { registry, docs } = r;
        Self {
            catalog: docs.into_inner(),
            invalid_policies,
            notifications_failed,
            prometheus_queries,
            kafka_lag_reads,
            triggers,
            rollouts,
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            status_writes,
            status_writes_skipped,
            status_conflicts,
            ready,
            leader,
        }
    }
}

impl Metrics {
    /// Counts a reconcile and times it until the returned guard drops (also on early return).
    pub fn reconcile_started(&self) -> ReconcileTimer {
        self.reconciles.inc();
        ReconcileTimer {
            start: Instant::now(),
            histogram: self.reconcile_duration.clone(),
        }
    }

    /// Drops `liftoff_invalid_policies` of policies whose `namespace/name` is not `live`.
    pub fn forget_invalid(&self, live: &std::collections::HashSet<String>) {
        use prometheus::core::Collector;
        for family in self.invalid_policies.collect() {
            for metric in family.get_metric() {
                let label = |name: &str| {
                    metric
                        .get_label()
                        .iter()
                        .find(|l| l.name() == name)
                        .map(|l| l.value().to_string())
                        .unwrap_or_default()
                };
                let (namespace, policy) = (label("namespace"), label("policy"));
                if !live.contains(&format!("{namespace}/{policy}")) {
                    self.invalid_policies
                        .remove_label_values(&[&namespace, &policy])
                        .ok();
                }
            }
        }
    }

    /// The text exposition format served on `/metrics`: the registry, then the per-trigger
    /// and per-rollout gauges, written from their tables (see [`crate::trigger_metrics`] and
    /// [`crate::rollout_metrics`]).
    pub fn render(&self) -> String {
        let mut text = prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default();
        self.triggers.gauges.write_text(&mut text);
        self.rollouts.write_text(&mut text);
        text
    }
}

/// Appends a gauge family written from a table: its `# HELP` and `# TYPE` lines, as the
/// prometheus crate's text encoder writes them, then `lines`; nothing when it has no series.
pub fn write_family(out: &mut String, desc: &prometheus::core::Desc, lines: &str) {
    if lines.is_empty() {
        return;
    }
    let name = &desc.fq_name;
    let help = desc.help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    out.push_str(lines);
}

/// Visits every entry of a metrics table in key order for a scrape, locking it for at most
/// `per_lock` entries at a time: samples recorded meanwhile never wait for the whole table.
pub fn for_each_chunked<K: Ord + Clone, V>(
    table: &Mutex<BTreeMap<K, V>>,
    per_lock: usize,
    mut visit: impl FnMut(&K, &V),
) {
    let mut after: Option<K> = None;
    loop {
        let rows = table.lock().unwrap();
        let from = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
        let mut read = 0;
        for (key, row) in rows.range::<K, _>((from, Bound::Unbounded)).take(per_lock) {
            visit(key, row);
            read += 1;
            after = Some(key.clone());
        }
        if read < per_lock {
            return;
        }
    }
}

/// Writes one sample line, as the prometheus crate's text encoder does; `labels` in the order
/// of their names.
pub fn write_sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    for (i, (label, v)) in labels.iter().enumerate() {
        out.push_str(if i == 0 { "{" } else { "," });
        let _ = write!(out, "{label}=\"{}\"", escape_label(v));
    }
    if !labels.is_empty() {
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape_label(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

/// Observes the reconcile duration when dropped.
pub struct ReconcileTimer {
    start: Instant,
    histogram: Histogram,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_public_metric() {
        let m = Metrics::default();
        drop(m.reconcile_started());
        m.reconcile_errors.with_label_values(&["Kube"]).inc();
        let text = m.render();
        for name in [
            "liftoff_reconciles_total 1",
            "liftoff_reconcile_errors_total{reason=\"Kube\"} 1",
            "liftoff_reconcile_duration_seconds_count 1",
            "liftoff_status_writes_total 0",
            "liftoff_status_writes_skipped_total 0",
            "liftoff_ready 0",
            "liftoff_leader 0",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
