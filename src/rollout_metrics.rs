//! Per-rollout metrics: where each launch is, and its gates' live samples (status shows them
//! at a coarse cadence; these follow every evaluation). Names and labels are part of the public
//! interface (docs/metrics.md, the chart's alerts and dashboard).

use prometheus::{GaugeVec, IntGaugeVec, Opts};

use crate::{
    crd::{KillSwitchStatus, Phase, RolloutState, Users},
    metrics::Registrar,
};

const POLICY: &[&str] = &["namespace", "policy"];
const PHASES: [Phase; 7] = [
    Phase::Pending,
    Phase::AwaitingApproval,
    Phase::Baking,
    Phase::Paused,
    Phase::RolledBack,
    Phase::Completed,
    Phase::Aborted,
];

/// Position, users and gates of every rollout.
#[derive(Clone)]
pub struct RolloutMetrics {
    /// `liftoff_rollout_phase{phase}`: 1 for the rollout's current phase, 0 for the others.
    pub phase: IntGaugeVec,
    /// `liftoff_rollout_stage`: the current stage's position, 1 = first; 0 before the first.
    pub stage: IntGaugeVec,
    /// `liftoff_rollout_users`: users admitted now; -1 = everyone.
    pub users: IntGaugeVec,
    /// `liftoff_gate_value{gate}`: a gate check's last value (absent while unreadable).
    pub gate_value: GaugeVec,
    /// `liftoff_gate_passing{gate}`: 1 when the last value was within bounds, 0 when not
    /// (absent while unreadable).
    pub gate_passing: IntGaugeVec,
    /// `liftoff_gate_up{gate}`: 1 when the gate's query was answered, 0 while it cannot be read.
    pub gate_up: IntGaugeVec,
    /// `liftoff_gate_bound{gate, bound}`: the check's `min` and `max`.
    pub gate_bound: GaugeVec,
    /// `liftoff_kill_switch_enabled{switch}`: 1 while the feature may run, 0 once switched off.
    pub kill_switch: IntGaugeVec,
}

impl RolloutMetrics {
    pub fn register(registry: &Registrar) -> Self {
        let int = |name: &str, help: &str, labels: &[&str]| {
            registry.add(
                "gauge",
                IntGaugeVec::new(Opts::new(name, help), labels).unwrap(),
            )
        };
        let phase = int(
            "liftoff_rollout_phase",
            "1 for the rollout's current phase (Pending, AwaitingApproval, Baking, Paused, \
             RolledBack, Completed, Aborted), 0 for the others",
            &[POLICY, &["phase"]].concat(),
        );
        let stage = int(
            "liftoff_rollout_stage",
            "The current stage's position, 1 = first; 0 before the first",
            POLICY,
        );
        let users = int(
            "liftoff_rollout_users",
            "Users admitted now; -1 = everyone",
            POLICY,
        );
        let gate_value = registry.add(
            "gauge",
            GaugeVec::new(
                Opts::new(
                    "liftoff_gate_value",
                    "A gate check's last value, at every evaluation; absent while unreadable",
                ),
                &[POLICY, &["gate"]].concat(),
            )
            .unwrap(),
        );
        let gate_bound = registry.add(
            "gauge",
            GaugeVec::new(
                Opts::new(
                    "liftoff_gate_bound",
                    "A gate check's bound: `min` or `max` (the dashboard draws it beside the value)",
                ),
                &[POLICY, &["gate", "bound"]].concat(),
            )
            .unwrap(),
        );
        Self {
            phase,
            stage,
            users,
            gate_value,
            gate_passing: int(
                "liftoff_gate_passing",
                "1 when a gate check's last value was within bounds, 0 when not; absent while unreadable",
                &[POLICY, &["gate"]].concat(),
            ),
            gate_up: int(
                "liftoff_gate_up",
                "1 when a gate check's query was answered (a value, or no series that onNoData \
                 decides), 0 while it cannot be read",
                &[POLICY, &["gate"]].concat(),
            ),
            gate_bound,
            kill_switch: int(
                "liftoff_kill_switch_enabled",
                "1 while a kill switch's feature may run, 0 once it is switched off",
                &[POLICY, &["switch"]].concat(),
            ),
        }
    }

    /// Records a rollout's state after an evaluation.
    pub fn record(&self, namespace: &str, policy: &str, state: &RolloutState) {
        for phase in PHASES {
            let name = phase.as_str();
            let on = i64::from(phase == state.phase);
            self.phase
                .with_label_values(&[namespace, policy, name])
                .set(on);
        }
        let stage = state.stage.map_or(0, |i| i64::from(i) + 1);
        self.stage
            .with_label_values(&[namespace, policy])
            .set(stage);
        let users = match state.users {
            Users::Count(n) => i64::try_from(n).unwrap_or(i64::MAX),
            Users::All => -1,
        };
        self.users
            .with_label_values(&[namespace, policy])
            .set(users);
        for g in &state.gates {
            let labels = [namespace, policy, g.name.as_str()];
            self.gate_up
                .with_label_values(&labels)
                .set(i64::from(g.error.is_none()));
            for (bound, value) in [("min", g.min), ("max", g.max)] {
                let labels = [namespace, policy, g.name.as_str(), bound];
                match value {
                    Some(v) => self.gate_bound.with_label_values(&labels).set(v),
                    None => {
                        let _ = self.gate_bound.remove_label_values(&labels);
                    }
                }
            }
            match (g.value, g.passing) {
                (Some(v), Some(pass)) => {
                    self.gate_value.with_label_values(&labels).set(v);
                    self.gate_passing
                        .with_label_values(&labels)
                        .set(i64::from(pass));
                }
                _ => {
                    let _ = self.gate_value.remove_label_values(&labels);
                    let _ = self.gate_passing.remove_label_values(&labels);
                }
            }
        }
    }

    /// Drops every series of a policy's rollout (the policy or its rollout is gone).
    pub fn forget(&self, namespace: &str, policy: &str, gates: &[String]) {
        for phase in PHASES {
            let name = phase.as_str();
            let _ = self.phase.remove_label_values(&[namespace, policy, name]);
        }
        let _ = self.stage.remove_label_values(&[namespace, policy]);
        let _ = self.users.remove_label_values(&[namespace, policy]);
        self.forget_gates(namespace, policy, gates);
    }

    /// Drops the series of gate checks (removed from the spec, or their policy is gone).
    pub fn forget_gates(&self, namespace: &str, policy: &str, gates: &[String]) {
        for gate in gates {
            let labels = [namespace, policy, gate.as_str()];
            let _ = self.gate_value.remove_label_values(&labels);
            let _ = self.gate_passing.remove_label_values(&labels);
            let _ = self.gate_up.remove_label_values(&labels);
            for bound in ["min", "max"] {
                let labels = [namespace, policy, gate.as_str(), bound];
                let _ = self.gate_bound.remove_label_values(&labels);
            }
        }
    }

    /// Records the kill switches of a policy, and drops those no longer in it.
    pub fn record_switches(
        &self,
        namespace: &str,
        policy: &str,
        switches: &[KillSwitchStatus],
        dropped: &[String],
    ) {
        for k in switches {
            let labels = [namespace, policy, k.name.as_str()];
            self.kill_switch
                .with_label_values(&labels)
                .set(i64::from(k.enabled));
        }
        for name in dropped {
            let _ = self
                .kill_switch
                .remove_label_values(&[namespace, policy, name.as_str()]);
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::engine::rollout::GateState;

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
}
