//! Per-trigger metrics: live samples go here, not to status. Names and labels are part of the
//! public interface (docs/metrics.md, the chart's alerts and dashboard).

use prometheus::{GaugeVec, IntCounterVec, Opts};

use crate::metrics::Registrar;

const TRIGGER: &[&str] = &["namespace", "policy", "trigger"];

/// Samples, thresholds and actions of every trigger.
#[derive(Clone)]
pub struct TriggerMetrics {
    /// `liftoff_trigger_value`: the last sample (absent while the source is unreadable).
    pub value: GaugeVec,
    /// `liftoff_trigger_threshold`: the threshold the sample is compared with.
    pub threshold: GaugeVec,
    /// `liftoff_trigger_source_up`: 1 when the last sample was read, 0 when its source failed.
    pub source_up: GaugeVec,
    /// `liftoff_actions_total{action}`: actions taken (ScaleUp, ScaleDown, AddPartitions,
    /// ResizeDatabase, ResizeCache, RecommendResize, MemoryHigh).
    pub actions: IntCounterVec,
    /// `liftoff_action_failures_total{action}`: actions the target's API rejected.
    pub action_failures: IntCounterVec,
    /// `liftoff_actions_refused_total{reason}`: decisions to act that were not carried out
    /// (Conflict: an HPA or an older policy scales the target; Suspended; NotReady; Paused).
    pub refused: IntCounterVec,
}

impl TriggerMetrics {
    pub fn register(registry: &Registrar) -> Self {
        let gauge = |name: &str, help: &str| {
            registry.add(
                "gauge",
                GaugeVec::new(Opts::new(name, help), TRIGGER).unwrap(),
            )
        };
        let counter = |name: &str, help: &str, extra: &str| {
            let labels = [TRIGGER, &[extra]].concat();
            registry.add(
                "counter",
                IntCounterVec::new(Opts::new(name, help), &labels).unwrap(),
            )
        };
        Self {
            value: gauge(
                "liftoff_trigger_value",
                "The last sample (percent for cpu and redisMemory); absent while the source is unreadable",
            ),
            threshold: gauge(
                "liftoff_trigger_threshold",
                "The threshold a trigger's sample is compared with",
            ),
            source_up: gauge(
                "liftoff_trigger_source_up",
                "1 when the trigger's last sample was read, 0 when its source failed",
            ),
            actions: counter(
                "liftoff_actions_total",
                "Actions taken: ScaleUp, ScaleDown, AddPartitions, ResizeDatabase, ResizeCache, RecommendResize, MemoryHigh",
                "action",
            ),
            action_failures: counter(
                "liftoff_action_failures_total",
                "Actions the target's API rejected",
                "action",
            ),
            refused: counter(
                "liftoff_actions_refused_total",
                "Decisions to act not carried out, per sample: Conflict (an HPA or an older policy), Suspended, NotReady, Paused (an annotation)",
                "reason",
            ),
        }
    }

    /// Records one sample; `None` when the source failed.
    pub fn sampled(&self, labels: [&str; 3], value: Option<f64>, threshold: f64) {
        match value {
            Some(v) => {
                self.value.with_label_values(&labels).set(v);
                self.source_up.with_label_values(&labels).set(1.0);
            }
            None => {
                let _ = self.value.remove_label_values(&labels);
                self.source_up.with_label_values(&labels).set(0.0);
            }
        }
        self.threshold.with_label_values(&labels).set(threshold);
    }

    /// Drops every series of a trigger (the trigger or its policy is gone).
    pub fn forget(&self, labels: [&str; 3]) {
        for g in [&self.value, &self.threshold, &self.source_up] {
            let _ = g.remove_label_values(&labels);
        }
    }
}
