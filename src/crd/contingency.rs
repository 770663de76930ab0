//! `spec.contingency`: the launch plan's answer to "performance degrades" — kill switches, i.e.
//! feature flags a person (or a failing gate) turns off to shed heavy features.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The contingency plan.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContingencySpec {
    /// The ConfigMap (key `flags.flagd.json`) where Liftoff keeps one boolean OpenFeature flagd
    /// flag per kill switch: `true` while the feature may run, `false` once it is switched
    /// off. Use a ConfigMap of its own: Liftoff writes it whole.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub config_map: String,
    /// The switches. Each starts on; `kubectl annotate lp/NAME liftoff.dev/kill-switch=<name>`
    /// turns it off and `liftoff.dev/restore-switch=<name>` turns it back on (several names
    /// separated by commas; add `@token` to repeat a command).
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(validation = kube::core::Rule::new("self.all(a, self.exists_one(b, b.name == a.name))")
        .message("kill switch names must be unique within spec.contingency.killSwitches"))]
    pub kill_switches: Vec<KillSwitch>,
}

/// One feature the war room can switch off.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KillSwitch {
    /// Name used in annotations, status and Events, e.g. `report-export`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The flagd flag's key the application reads (default: the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub flag_key: Option<String>,
    /// What switching it off sheds, in the war room's words (in Events and messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub description: Option<String>,
    /// Gate checks (`spec.rollout.gates.checks[].name`) whose failure — `failureThreshold`
    /// evaluations in a row — switches this off at once. Only a person turns it back on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 63)))]
    pub off_on_gate_failure: Vec<String>,
    /// Scaling triggers (`spec.scaling.triggers[].name`) that switch this off when they are
    /// beyond their threshold with nothing left to add: replicas at `replicas.max`, partitions at
    /// `partitions.max`, the database on the last class of its ladder. Only a person turns it
    /// back on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 63)))]
    pub off_at_max: Vec<String>,
}

impl KillSwitch {
    /// The flagd flag's key.
    pub fn flag_key(&self) -> &str {
        self.flag_key.as_deref().unwrap_or(&self.name)
    }
}
