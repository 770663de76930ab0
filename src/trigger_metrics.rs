//! Per-trigger metrics: live samples go here, not to status. Names and labels are part of the
//! public interface (docs/metrics.md, the chart's alerts and dashboard).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use prometheus::{IntCounterVec, Opts, core::Desc};

use crate::metrics::{Registrar, for_each_chunked, write_family, write_sample};

const TRIGGER: &[&str] = &["namespace", "policy", "trigger"];

/// Triggers written per lock of the table by a scrape.
const ROWS_PER_LOCK: usize = 1024;

/// `liftoff_trigger_value`, `liftoff_trigger_threshold` and `liftoff_trigger_source_up`, kept as
/// one table of each trigger's last sample and written straight into the text of `/metrics`.
///
/// A labelled series of the prometheus crate keeps its own copy of its metric's description
/// (name, help, label names): three gauges cost about 1.5 KiB per trigger, most of a one-trigger
/// policy's memory after its cached object. A row here is about 150 bytes, and a scrape writes
/// its lines without first building the crate's model of every series (30,000 of them for
/// 10,000 triggers).
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

    /// Appends the three gauges to `out` in the Prometheus text format, as the prometheus
    /// crate's encoder writes a gauge (a family with no series is left out).
    ///
    /// The table is locked for [`ROWS_PER_LOCK`] triggers at a time, so that samples recorded
    /// during a scrape of thousands of triggers do not wait for all of it.
    pub fn write_text(&self, out: &mut String) {
        let values: [fn(&Last) -> Option<f64>; 3] = [
            |l| l.value,
            |l| Some(l.threshold),
            |l| Some(f64::from(u8::from(l.value.is_some()))),
        ];
        // In the order of their names, as the registry writes its families.
        let mut families: Vec<_> = self.descs.iter().zip(values).collect();
        families.sort_by(|(a, _), (b, _)| a.fq_name.cmp(&b.fq_name));
        let mut lines = String::new();
        for (desc, value) in families {
            lines.clear();
            for_each_chunked(
                &self.last,
                ROWS_PER_LOCK,
                |[namespace, policy, trigger], row| {
                    let Some(v) = value(row) else { return };
                    let labels = [
                        ("namespace", &**namespace),
                        ("policy", &**policy),
                        ("trigger", &**trigger),
                    ];
                    write_sample(&mut lines, &desc.fq_name, &labels, v);
                },
            );
            write_family(out, desc, &lines);
        }
    }

    /// The metrics' descriptions, for the catalog in docs/metrics.md.
    pub fn descs(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }
}

/// Samples, thresholds and actions of every trigger.
#[derive(Clone)]
pub struct TriggerMetrics {
    /// `liftoff_trigger_value` (the last sample, absent while the source is unreadable),
    /// `liftoff_trigger_threshold` and `liftoff_trigger_source_up` (1 when the last sample was
    /// read, 0 when its source failed); rendered by [`crate::metrics::Metrics::render`].
    pub gauges: TriggerGauges,
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
            gauges: {
                let gauges = TriggerGauges::new();
                registry.document("gauge", gauges.descs());
                gauges
            },
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
    use super::*;
    use crate::metrics::Metrics;

    const GAUGES: [&str; 3] = [
        "liftoff_trigger_value",
        "liftoff_trigger_threshold",
        "liftoff_trigger_source_up",
    ];

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

    /// The table writes exactly what the prometheus crate's encoder writes for the same gauges
    /// (escaping included), so scrapers, alerts and dashboards see no difference.
    #[test]
    fn the_text_is_the_crates_own_encoding() {
        let m = Metrics::default();
        let crate_gauges = prometheus::Registry::new();
        let rows: [([&str; 3], Option<f64>, f64); 4] = [
            (["emr", "launch", "api-cpu"], Some(82.5), 70.0),
            (["emr", "launch", "lag"], None, 50_000.0),
            (["a", "b", "odd\\\"name\n"], Some(0.001), 1e9),
            (["a", "a", "z"], Some(-3.0), 0.0),
        ];
        for desc in m.triggers.gauges.descs() {
            let vec = prometheus::GaugeVec::new(
                Opts::new(desc.fq_name.clone(), desc.help.clone()),
                TRIGGER,
            )
            .unwrap();
            for (labels, value, threshold) in rows {
                let v = match desc.fq_name.as_str() {
                    "liftoff_trigger_value" => value,
                    "liftoff_trigger_threshold" => Some(threshold),
                    _ => Some(f64::from(u8::from(value.is_some()))),
                };
                if let Some(v) = v {
                    vec.with_label_values(&labels).set(v);
                }
            }
            crate_gauges.register(Box::new(vec)).unwrap();
        }
        for (labels, value, threshold) in rows {
            m.triggers.sampled(labels, value, threshold);
        }
        let expected = prometheus::TextEncoder::new()
            .encode_to_string(&crate_gauges.gather())
            .unwrap();
        let mut ours = String::new();
        m.triggers.gauges.write_text(&mut ours);
        assert_eq!(ours, expected);
    }

    /// A scrape reads the table a chunk at a time: every trigger once, whatever the chunks.
    #[test]
    fn every_trigger_is_written_once_across_chunks() {
        let m = Metrics::default();
        let n = 2 * ROWS_PER_LOCK + 7;
        for i in 0..n {
            m.triggers
                .sampled(["emr", &format!("p-{i:05}"), "cpu"], Some(1.0), 70.0);
        }
        for name in GAUGES {
            let lines = series(&m, name);
            let distinct: std::collections::HashSet<_> = lines.iter().collect();
            assert_eq!((lines.len(), distinct.len()), (n, n), "{name}");
        }
    }

    #[test]
    fn a_forgotten_trigger_leaves_no_series() {
        let m = Metrics::default();
        m.triggers
            .sampled(["emr", "launch", "api-cpu"], Some(1.0), 70.0);
        m.triggers
            .sampled(["emr", "other", "api-cpu"], Some(2.0), 70.0);
        m.triggers.forget(["emr", "launch", "api-cpu"]);
        for name in GAUGES {
            let left = series(&m, name);
            assert_eq!(left.len(), 1, "{name}: {left:?}");
            assert!(left[0].contains(r#"policy="other""#));
        }
    }
}
