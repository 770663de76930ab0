//! Prometheus metrics. Their names are part of Liftoff's public interface (see README).

use std::time::Instant;

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

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
    /// `liftoff_leader`: 1 while this replica holds the leader Lease (always 1 without election).
    pub leader: IntGauge,
    /// `liftoff_invalid_policies{namespace,policy}`: 1 for each stored policy the operator cannot
    /// read (its `Ready` condition, reason `InvalidSpec`, names the field); absent otherwise.
    pub invalid_policies: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounter::new(
            "liftoff_reconciles_total",
            "Reconciles run, successful or not",
        )
        .unwrap();
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "liftoff_reconcile_errors_total",
                "Failed reconciles by error category",
            ),
            &["reason"],
        )
        .unwrap();
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new(
                "liftoff_reconcile_duration_seconds",
                "Time spent per reconcile",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )
        .unwrap();
        let status_writes = IntCounter::new(
            "liftoff_status_writes_total",
            "Status patches sent to the apiserver",
        )
        .unwrap();
        let status_writes_skipped = IntCounter::new(
            "liftoff_status_writes_skipped_total",
            "Reconciles whose status was already up to date (no write sent)",
        )
        .unwrap();
        let status_conflicts = IntCounter::new(
            "liftoff_status_conflicts_total",
            "Status writes refused because the policy changed since it was read (retried)",
        )
        .unwrap();
        let ready = IntGauge::new(
            "liftoff_ready",
            "1 once caches are synced and the operator reconciles",
        )
        .unwrap();
        let leader = IntGauge::new(
            "liftoff_leader",
            "1 while this replica leads (holds the Lease) and may act",
        )
        .unwrap();
        let invalid_policies = IntGaugeVec::new(
            Opts::new(
                "liftoff_invalid_policies",
                "1 for each stored LaunchPolicy that cannot be read (see its Ready condition)",
            ),
            &["namespace", "policy"],
        )
        .unwrap();
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(invalid_policies.clone()),
            Box::new(reconcile_errors.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(status_writes.clone()),
            Box::new(status_writes_skipped.clone()),
            Box::new(status_conflicts.clone()),
            Box::new(ready.clone()),
            Box::new(leader.clone()),
        ] {
            registry.register(c).unwrap();
        }
        let triggers = crate::trigger_metrics::TriggerMetrics::register(&registry);
        let rollouts = crate::rollout_metrics::RolloutMetrics::register(&registry);
        let notifications_failed = IntCounter::new(
            "liftoff_notifications_failed_total",
            "Webhook notifications not delivered after every retry",
        )
        .unwrap();
        registry
            .register(Box::new(notifications_failed.clone()))
            .unwrap();
        Self {
            invalid_policies,
            notifications_failed,
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

    /// The text exposition format served on `/metrics`.
    pub fn render(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
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
