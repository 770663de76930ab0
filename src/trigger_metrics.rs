//! Per-trigger metrics: live samples go here, not to status. Names and labels are part of the
//! public interface (docs/metrics.md, the chart's alerts and dashboard).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use prometheus::{
    IntCounterVec, Opts,
    core::{Collector, Desc},
    proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType},
};

use crate::metrics::Registrar;

const TRIGGER: &[&str] = &["namespace", "policy", "trigger"];

/// `liftoff_trigger_value`, `liftoff_trigger_threshold` and `liftoff_trigger_source_up`, kept as
/// one table of each trigger's last sample and rendered when `/metrics` is scraped.
///
/// A labelled series of the prometheus crate keeps its own copy of its metric's description
/// (name, help, label names): three gauges cost about 1.3 KiB per trigger, most of a one-trigger
/// policy's memory after its cached object. A row here is about 150 bytes.
#[derive(Clone)]
pub struct TriggerGauges {
    descs: Arc<[Desc; 3]>,
    last: Arc<Mutex<BTreeMap<[Box<str>; 3], Last>>>,
}

/// A trigger's last sample (`None`: its source failed) and its threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Last {
    value: Option<f64>,
    threshold: f64,
}

impl TriggerGauges {
    fn new() -> Self {
        let desc = |name: &str, help: &str| {
            Desc::new(
                name.into(),
                help.into(),
                TRIGGER.iter().map(|l| l.to_string()).collect(),
                Default::default(),
            )
            .expect("valid constant metric description")
        };
        Self {
            descs: Arc::new([
                desc(
                    "liftoff_trigger_value",
                    "The last sample (percent for cpu and redisMemory); absent while the source is unreadable",
                ),
                desc(
                    "liftoff_trigger_threshold",
                    "The threshold a trigger's sample is compared with",
                ),
                desc(
                    "liftoff_trigger_source_up",
                    "1 when the trigger's last sample was read, 0 when its source failed",
                ),
            ]),
            last: Arc::default(),
        }
    }

    fn set(&self, labels: [&str; 3], last: Last) {
        self.last
            .lock()
            .unwrap()
            .insert(labels.map(Box::from), last);
    }

    fn remove(&self, labels: [&str; 3]) {
        self.last.lock().unwrap().remove(&labels.map(Box::from));
    }
}

impl Collector for TriggerGauges {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut series: [Vec<Metric>; 3] = Default::default();
        for (labels, last) in self.last.lock().unwrap().iter() {
            let [value, threshold, up] = &mut series;
            if let Some(v) = last.value {
                value.push(gauge(labels, v));
            }
            threshold.push(gauge(labels, last.threshold));
            up.push(gauge(labels, f64::from(u8::from(last.value.is_some()))));
        }
        self.descs
            .iter()
            .zip(series)
            .filter(|(_, metrics)| !metrics.is_empty())
            .map(|(desc, metrics)| {
                let mut family = MetricFamily::default();
                family.set_name(desc.fq_name.clone());
                family.set_help(desc.help.clone());
                family.set_field_type(MetricType::GAUGE);
                family.set_metric(metrics);
                family
            })
            .collect()
    }
}

/// One gauge series of a trigger.
fn gauge(labels: &[Box<str>; 3], value: f64) -> Metric {
    let pairs = TRIGGER
        .iter()
        .zip(labels)
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name(name.to_string());
            pair.set_value(value.to_string());
            pair
        })
        .collect();
    let mut g = Gauge::default();
    g.set_value(value);
    let mut metric = Metric::from_gauge(g);
    metric.set_label(pairs);
    metric
}

/// Samples, thresholds and actions of every trigger.
#[derive(Clone)]
pub struct TriggerMetrics {
    /// `liftoff_trigger_value` (the last sample, absent while the source is unreadable),
    /// `liftoff_trigger_threshold` and `liftoff_trigger_source_up` (1 when the last sample was
    /// read, 0 when its source failed).
    gauges: TriggerGauges,
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
        let counter = |name: &str, help: &str, extra: &str| {
            let labels = [TRIGGER, &[extra]].concat();
            registry.add(
                "counter",
                IntCounterVec::new(Opts::new(name, help), &labels).unwrap(),
            )
        };
        Self {
            gauges: registry.add("gauge", TriggerGauges::new()),
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
        self.gauges.set(labels, Last { value, threshold });
    }

    /// Drops every gauge of a trigger (the trigger or its policy is gone).
    pub fn forget(&self, labels: [&str; 3]) {
        self.gauges.remove(labels);
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::Metrics;

    fn series(m: &Metrics, name: &str) -> Vec<String> {
        m.render()
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_sample_its_threshold_and_its_source_are_three_series() {
        let m = Metrics::default();
        m.triggers
            .sampled(["emr", "launch", "api-cpu"], Some(82.5), 70.0);
        m.triggers
            .sampled(["emr", "launch", "lag"], Some(10.0), 50_000.0);
        let labels = r#"{namespace="emr",policy="launch",trigger="api-cpu"}"#;
        assert_eq!(
            series(&m, "liftoff_trigger_value")[0],
            format!("liftoff_trigger_value{labels} 82.5")
        );
        assert_eq!(
            series(&m, "liftoff_trigger_threshold")[0],
            format!("liftoff_trigger_threshold{labels} 70")
        );
        assert_eq!(
            series(&m, "liftoff_trigger_source_up")[0],
            format!("liftoff_trigger_source_up{labels} 1")
        );
        assert!(m.render().contains("# TYPE liftoff_trigger_value gauge"));
        assert_eq!(series(&m, "liftoff_trigger_value").len(), 2);
    }

    #[test]
    fn an_unreadable_source_has_no_value_and_is_down() {
        let m = Metrics::default();
        let labels = ["emr", "launch", "api-cpu"];
        m.triggers.sampled(labels, Some(82.5), 70.0);
        m.triggers.sampled(labels, None, 70.0);
        assert!(series(&m, "liftoff_trigger_value").is_empty());
        assert_eq!(series(&m, "liftoff_trigger_threshold").len(), 1);
        assert!(series(&m, "liftoff_trigger_source_up")[0].ends_with(" 0"));
    }

    #[test]
    fn a_forgotten_trigger_leaves_no_series() {
        let m = Metrics::default();
        m.triggers
            .sampled(["emr", "launch", "api-cpu"], Some(1.0), 70.0);
        m.triggers
            .sampled(["emr", "other", "api-cpu"], Some(2.0), 70.0);
        m.triggers.forget(["emr", "launch", "api-cpu"]);
        for name in [
            "liftoff_trigger_value",
            "liftoff_trigger_threshold",
            "liftoff_trigger_source_up",
        ] {
            let left = series(&m, name);
            assert_eq!(left.len(), 1, "{name}: {left:?}");
            assert!(left[0].contains(r#"policy="other""#));
        }
    }
}
