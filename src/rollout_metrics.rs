//! Per-rollout metrics: where each launch is, and its gates' live samples (status shows them
//! at a coarse cadence; these follow every evaluation). Names and labels are part of the public
//! interface (docs/metrics.md, the chart's alerts and dashboard).
//!
//! They are kept as one row per policy (its phase, stage and users, a row per gate check and
//! per kill switch) and written straight into the text of `/metrics`, like the trigger gauges
//! ([`crate::trigger_metrics`]): the full example exports about 65 series (7 phases, 12 gates
//! with value, passing, up and bounds, 2 kill switches), and a labelled series of the
//! prometheus crate costs about 0.5 KiB (its own copy of the metric's description), which for
//! 10,000 such policies would be some 300 MiB of metrics alone.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use prometheus::core::Desc;

use crate::{
    crd::{GateState, KillSwitchStatus, Phase, RolloutState, Users},
    metrics::{Registrar, for_each_chunked, write_family, write_sample},
};

const PHASES: [Phase; 7] = [
    Phase::Pending,
    Phase::AwaitingApproval,
    Phase::Baking,
    Phase::Paused,
    Phase::RolledBack,
    Phase::Completed,
    Phase::Aborted,
];

/// One exported metric.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Family {
    GateBound,
    GatePassing,
    GateUp,
    GateValue,
    KillSwitch,
    Phase,
    Stage,
    Users,
}

impl Family {
    /// In the order of their names, the order they are written in.
    const ALL: [Family; 8] = [
        Family::GateBound,
        Family::GatePassing,
        Family::GateUp,
        Family::GateValue,
        Family::KillSwitch,
        Family::Phase,
        Family::Stage,
        Family::Users,
    ];
    /// In the order docs/metrics.md has always listed them.
    const CATALOG: [Family; 8] = [
        Family::Phase,
        Family::Stage,
        Family::Users,
        Family::GateValue,
        Family::GateBound,
        Family::GatePassing,
        Family::GateUp,
        Family::KillSwitch,
    ];

    fn desc(self) -> Desc {
        let (name, help, labels): (&str, &str, &[&str]) = match self {
            Family::GateBound => (
                "liftoff_gate_bound",
                "A gate check's bound: `min` or `max` (the dashboard draws it beside the value)",
                &["namespace", "policy", "gate", "bound"],
            ),
            Family::GatePassing => (
                "liftoff_gate_passing",
                "1 when a gate check's last value was within bounds, 0 when not; absent while unreadable",
                &["namespace", "policy", "gate"],
            ),
            Family::GateUp => (
                "liftoff_gate_up",
                "1 when a gate check's query was answered (a value, or no series that onNoData \
                 decides), 0 while it cannot be read",
                &["namespace", "policy", "gate"],
            ),
            Family::GateValue => (
                "liftoff_gate_value",
                "A gate check's last value, at every evaluation; absent while unreadable",
                &["namespace", "policy", "gate"],
            ),
            Family::KillSwitch => (
                "liftoff_kill_switch_enabled",
                "1 while a kill switch's feature may run, 0 once it is switched off",
                &["namespace", "policy", "switch"],
            ),
            Family::Phase => (
                "liftoff_rollout_phase",
                "1 for the rollout's current phase (Pending, AwaitingApproval, Baking, Paused, \
                 RolledBack, Completed, Aborted), 0 for the others",
                &["namespace", "policy", "phase"],
            ),
            Family::Stage => (
                "liftoff_rollout_stage",
                "The current stage's position, 1 = first; 0 before the first",
                &["namespace", "policy"],
            ),
            Family::Users => (
                "liftoff_rollout_users",
                "Users admitted now; -1 = everyone",
                &["namespace", "policy"],
            ),
        };
        Desc::new(
            name.into(),
            help.into(),
            labels.iter().map(|l| l.to_string()).collect(),
            Default::default(),
        )
        .expect("valid constant metric description")
    }
}

/// Policies written per lock of the table by a scrape.
const ROWS_PER_LOCK: usize = 256;

/// Every policy's row, by namespace and name.
type Rows = BTreeMap<(Box<str>, Box<str>), Row>;

/// What is exported of one policy.
#[derive(Clone, Debug, Default, PartialEq)]
struct Row {
    /// Phase, stage position (1 = first, 0 before it) and users (-1 = everyone), while the
    /// policy has a rollout.
    rollout: Option<(Phase, i64, i64)>,
    gates: Vec<GateRow>,
    /// Each kill switch, and whether its feature may run.
    switches: Vec<(Box<str>, bool)>,
}

/// A gate check's last evaluation.
#[derive(Clone, Debug, PartialEq)]
struct GateRow {
    name: Box<str>,
    /// Value and verdict, when the query gave one.
    value: Option<(f64, bool)>,
    up: bool,
    min: Option<f64>,
    max: Option<f64>,
}

impl From<&GateState> for GateRow {
    fn from(g: &GateState) -> Self {
        GateRow {
            name: g.name.as_str().into(),
            value: g.value.zip(g.passing),
            up: g.error.is_none(),
            min: g.min,
            max: g.max,
        }
    }
}

/// Position, users and gates of every rollout.
#[derive(Clone)]
pub struct RolloutMetrics {
    /// Each family's description, in [`Family::ALL`]'s order.
    descs: Arc<Vec<Desc>>,
    rows: Arc<Mutex<Rows>>,
}

impl RolloutMetrics {
    pub fn register(registry: &Registrar) -> Self {
        let catalog: Vec<Desc> = Family::CATALOG.iter().map(|f| f.desc()).collect();
        registry.document("gauge", catalog.iter().collect());
        Self {
            descs: Arc::new(Family::ALL.iter().map(|f| f.desc()).collect()),
            rows: Arc::default(),
        }
    }

    /// Changes the row of a policy, creating it, and drops it once it exports nothing.
    fn with_row(&self, namespace: &str, policy: &str, change: impl FnOnce(&mut Row)) {
        let mut rows = self.rows.lock().unwrap();
        let key: (Box<str>, Box<str>) = (namespace.into(), policy.into());
        let row = rows.entry(key.clone()).or_default();
        change(row);
        if *row == Row::default() {
            rows.remove(&key);
        }
    }

    /// Records a rollout's state after an evaluation (gates it does not list keep their series
    /// until [`Self::forget_gates`]).
    pub fn record(&self, namespace: &str, policy: &str, state: &RolloutState) {
        let stage = state.stage.map_or(0, |i| i64::from(i) + 1);
        let users = match state.users {
            Users::Count(n) => i64::try_from(n).unwrap_or(i64::MAX),
            Users::All => -1,
        };
        self.with_row(namespace, policy, |row| {
            row.rollout = Some((state.phase, stage, users));
            for g in &state.gates {
                let fresh = GateRow::from(g);
                match row.gates.iter_mut().find(|r| r.name == fresh.name) {
                    Some(known) => *known = fresh,
                    None => row.gates.push(fresh),
                }
            }
        });
    }

    /// Drops every series of a policy's rollout (the policy or its rollout is gone).
    pub fn forget(&self, namespace: &str, policy: &str, gates: &[String]) {
        self.with_row(namespace, policy, |row| row.rollout = None);
        self.forget_gates(namespace, policy, gates);
    }

    /// Drops the series of gate checks (removed from the spec, or their policy is gone).
    pub fn forget_gates(&self, namespace: &str, policy: &str, gates: &[String]) {
        self.with_row(namespace, policy, |row| {
            row.gates
                .retain(|g| !gates.iter().any(|name| **name == *g.name));
        });
    }

    /// Records the kill switches of a policy, and drops those no longer in it.
    pub fn record_switches(
        &self,
        namespace: &str,
        policy: &str,
        switches: &[KillSwitchStatus],
        dropped: &[String],
    ) {
        self.with_row(namespace, policy, |row| {
            for k in switches {
                match row.switches.iter_mut().find(|(n, _)| **n == *k.name) {
                    Some((_, enabled)) => *enabled = k.enabled,
                    None => row.switches.push((k.name.as_str().into(), k.enabled)),
                }
            }
            row.switches
                .retain(|(n, _)| !dropped.iter().any(|d| **d == **n));
        });
    }

    /// Appends every family to `out` in the Prometheus text format (label pairs in the order
    /// of their names, as the prometheus crate writes them; a family with no series is left
    /// out).
    ///
    /// The table is locked for [`ROWS_PER_LOCK`] policies at a time: a scrape of 10,000
    /// rollouts writes some 650,000 lines, and every evaluation waits for the lock to record.
    pub fn write_text(&self, out: &mut String) {
        let mut lines = String::new();
        for (family, desc) in Family::ALL.into_iter().zip(self.descs.iter()) {
            lines.clear();
            for_each_chunked(&self.rows, ROWS_PER_LOCK, |(ns, policy), row| {
                row.write(&mut lines, family, &desc.fq_name, ns, policy);
            });
            write_family(out, desc, &lines);
        }
    }
}

/// The labels of a gate check's series, in the order of their names.
fn gate_labels<'a>(g: &'a GateRow, ns: &'a str, policy: &'a str) -> [(&'static str, &'a str); 3] {
    [("gate", &g.name), ("namespace", ns), ("policy", policy)]
}

impl Row {
    /// Writes this policy's series of `family`, named `name`.
    fn write(&self, out: &mut String, family: Family, name: &str, ns: &str, policy: &str) {
        let flag = |on: bool| f64::from(u8::from(on));
        let gate = |g| gate_labels(g, ns, policy);
        let of_policy = [("namespace", ns), ("policy", policy)];
        match family {
            Family::GateBound => {
                for g in &self.gates {
                    for (bound, v) in [("max", g.max), ("min", g.min)] {
                        let Some(v) = v else { continue };
                        let [gate, ns, policy] = gate(g);
                        write_sample(out, name, &[("bound", bound), gate, ns, policy], v);
                    }
                }
            }
            Family::GatePassing | Family::GateValue => {
                for g in &self.gates {
                    let Some((value, passing)) = g.value else {
                        continue;
                    };
                    let v = match family {
                        Family::GatePassing => flag(passing),
                        _ => value,
                    };
                    write_sample(out, name, &gate(g), v);
                }
            }
            Family::GateUp => {
                for g in &self.gates {
                    write_sample(out, name, &gate(g), flag(g.up));
                }
            }
            Family::KillSwitch => {
                for (switch, enabled) in &self.switches {
                    let labels = [("namespace", ns), ("policy", policy), ("switch", &**switch)];
                    write_sample(out, name, &labels, flag(*enabled));
                }
            }
            Family::Phase => {
                let Some((current, _, _)) = self.rollout else {
                    return;
                };
                for phase in PHASES {
                    let labels = [
                        ("namespace", ns),
                        ("phase", phase.as_str()),
                        ("policy", policy),
                    ];
                    write_sample(out, name, &labels, flag(phase == current));
                }
            }
            Family::Stage | Family::Users => {
                let Some((_, stage, users)) = self.rollout else {
                    return;
                };
                let v = if family == Family::Stage {
                    stage
                } else {
                    users
                };
                write_sample(out, name, &of_policy, v as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn a_paused_rollout_shows_its_phase_stage_users_and_gates_and_is_forgotten_whole() {
        let metrics = crate::metrics::Metrics::default();
        let m = &metrics.rollouts;
        let state = RolloutState {
            phase: Phase::Paused,
            stage: Some(1),
            users: Users::Count(500),
            gates: vec![
                GateState {
                    name: "p95".into(),
                    max: Some(0.5),
                    value: Some(0.62),
                    passing: Some(false),
                    ..Default::default()
                },
                GateState {
                    name: "errors".into(),
                    error: Some("timeout".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        m.record("emr", "launch", &state);
        let switch = |enabled| KillSwitchStatus {
            name: "reports".into(),
            enabled,
            ..Default::default()
        };
        m.record_switches("emr", "launch", &[switch(false)], &[]);
        let text = metrics.render();
        for line in [
            r#"liftoff_rollout_phase{namespace="emr",phase="Paused",policy="launch"} 1"#,
            r#"liftoff_rollout_phase{namespace="emr",phase="Baking",policy="launch"} 0"#,
            r#"liftoff_rollout_stage{namespace="emr",policy="launch"} 2"#,
            r#"liftoff_rollout_users{namespace="emr",policy="launch"} 500"#,
            r#"liftoff_gate_value{gate="p95",namespace="emr",policy="launch"} 0.62"#,
            r#"liftoff_gate_passing{gate="p95",namespace="emr",policy="launch"} 0"#,
            r#"liftoff_gate_up{gate="p95",namespace="emr",policy="launch"} 1"#,
            r#"liftoff_gate_bound{bound="max",gate="p95",namespace="emr",policy="launch"} 0.5"#,
            r#"liftoff_gate_up{gate="errors",namespace="emr",policy="launch"} 0"#,
            r#"liftoff_kill_switch_enabled{namespace="emr",policy="launch",switch="reports"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(
            !text.contains(r#"liftoff_gate_value{gate="errors""#)
                && !text.contains(r#"liftoff_gate_passing{gate="errors""#),
            "unknown is absent, not 0"
        );
        assert!(!text.contains(r#"bound="min""#), "no min, no series");
        m.record_switches("emr", "launch", &[], &["reports".into()]);
        assert!(!metrics.render().contains("liftoff_kill_switch_enabled{"));

        let everyone = RolloutState {
            phase: Phase::Completed,
            users: Users::All,
            ..state
        };
        m.record("emr", "launch", &everyone);
        assert!(
            metrics
                .render()
                .contains(r#"liftoff_rollout_users{namespace="emr",policy="launch"} -1"#)
        );

        m.forget("emr", "launch", &["p95".into(), "errors".into()]);
        assert!(!metrics.render().contains("launch"));
    }

    /// The rows write the same series as the prometheus crate's gauges did for the same
    /// calls (compared line by line: the order of series inside a family does not matter to a
    /// scraper), so alerts and dashboards see no difference.
    #[test]
    fn the_text_has_the_series_the_crates_gauges_had() {
        let metrics = crate::metrics::Metrics::default();
        let gate = |name: &str, value, passing, error: Option<&str>| GateState {
            name: name.into(),
            min: Some(0.9),
            max: (name == "p95").then_some(0.5),
            value,
            passing,
            error: error.map(Into::into),
            ..Default::default()
        };
        let state = RolloutState {
            phase: Phase::Baking,
            stage: Some(0),
            users: Users::Count(100),
            gates: vec![
                gate("p95", Some(0.2), Some(true), None),
                gate("logins", None, None, Some("no data")),
            ],
            ..Default::default()
        };
        let m = &metrics.rollouts;
        m.record("emr", "launch", &state);
        m.record(
            "ads",
            "beta",
            &RolloutState {
                users: Users::All,
                ..state.clone()
            },
        );
        let switch = |name: &str, enabled| KillSwitchStatus {
            name: name.into(),
            enabled,
            ..Default::default()
        };
        m.record_switches(
            "emr",
            "launch",
            &[switch("pdf", true), switch("live", false)],
            &[],
        );
        let mut ours: Vec<String> = metrics.render().lines().map(str::to_string).collect();

        let expected = prometheus::Registry::new();
        let vec = |name: &str, labels: &[&str]| {
            let help = Family::ALL
                .iter()
                .map(|f| f.desc())
                .find(|d| d.fq_name == name)
                .unwrap()
                .help;
            let v = prometheus::GaugeVec::new(prometheus::Opts::new(name, help), labels).unwrap();
            expected.register(Box::new(v.clone())).unwrap();
            v
        };
        let phase = vec("liftoff_rollout_phase", &["namespace", "policy", "phase"]);
        let stage = vec("liftoff_rollout_stage", &["namespace", "policy"]);
        let users = vec("liftoff_rollout_users", &["namespace", "policy"]);
        let value = vec("liftoff_gate_value", &["namespace", "policy", "gate"]);
        let passing = vec("liftoff_gate_passing", &["namespace", "policy", "gate"]);
        let up = vec("liftoff_gate_up", &["namespace", "policy", "gate"]);
        let bound = vec(
            "liftoff_gate_bound",
            &["namespace", "policy", "gate", "bound"],
        );
        let switches = vec(
            "liftoff_kill_switch_enabled",
            &["namespace", "policy", "switch"],
        );
        for (ns, policy, all) in [("emr", "launch", 100.0), ("ads", "beta", -1.0)] {
            for p in PHASES {
                let on = f64::from(u8::from(p == Phase::Baking));
                phase.with_label_values(&[ns, policy, p.as_str()]).set(on);
            }
            stage.with_label_values(&[ns, policy]).set(1.0);
            users.with_label_values(&[ns, policy]).set(all);
            value.with_label_values(&[ns, policy, "p95"]).set(0.2);
            passing.with_label_values(&[ns, policy, "p95"]).set(1.0);
            up.with_label_values(&[ns, policy, "p95"]).set(1.0);
            up.with_label_values(&[ns, policy, "logins"]).set(0.0);
            for (gate, b, v) in [
                ("p95", "min", 0.9),
                ("p95", "max", 0.5),
                ("logins", "min", 0.9),
            ] {
                bound.with_label_values(&[ns, policy, gate, b]).set(v);
            }
        }
        switches
            .with_label_values(&["emr", "launch", "pdf"])
            .set(1.0);
        switches
            .with_label_values(&["emr", "launch", "live"])
            .set(0.0);
        let mut theirs: Vec<String> = prometheus::TextEncoder::new()
            .encode_to_string(&expected.gather())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        ours.retain(|l| {
            l.contains("liftoff_rollout_")
                || l.contains("liftoff_gate_")
                || l.contains("liftoff_kill_switch")
        });
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs);
    }

    /// A scrape reads the table a chunk at a time: every policy once, whatever the chunks.
    #[test]
    fn every_policy_is_written_once_across_chunks() {
        let metrics = crate::metrics::Metrics::default();
        let n = 2 * ROWS_PER_LOCK + 3;
        for i in 0..n {
            let state = RolloutState {
                phase: Phase::Baking,
                ..Default::default()
            };
            metrics.rollouts.record("emr", &format!("p-{i:05}"), &state);
        }
        let text = metrics.render();
        let stages: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("liftoff_rollout_stage{"))
            .collect();
        let distinct: std::collections::HashSet<_> = stages.iter().collect();
        assert_eq!((stages.len(), distinct.len()), (n, n));
        assert_eq!(
            text.matches("# TYPE liftoff_rollout_stage gauge").count(),
            1
        );
    }

    #[test]
    fn a_policy_with_nothing_left_to_export_leaves_no_row() {
        let metrics = crate::metrics::Metrics::default();
        let m = &metrics.rollouts;
        m.record("emr", "launch", &RolloutState::default());
        m.forget("emr", "launch", &[]);
        assert!(m.rows.lock().unwrap().is_empty());
    }
}
