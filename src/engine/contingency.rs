//! Kill switches: which features may run, decided from people's commands and failing gates.
//! Pure: the previous switches, the commands, the gates that tripped in this evaluation and
//! `now` in; the switches, the flips (who, when, why) and the commands applied out.
//!
//! Every switch starts on. A gate listed in a switch's `offOnGateFailure` that trips, or a
//! trigger listed in its `offAtMax` that is beyond its threshold at its maximum, turns it off;
//! only a person turns it back on. Each command id (`annotation=value`) is applied once;
//! a command naming no switch is reported and otherwise ignored. Gate trips are applied before
//! commands, so a person's restore given in the same evaluation wins.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

use crate::crd::{ContingencySpec, KillSwitch, KillSwitchStatus};

/// How many applied command ids are remembered.
pub const MAX_REMEMBERED: usize = 32;

/// A person's kill or restore of one or more switches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchCommand {
    /// Unique per issuance (`annotation=value`).
    pub id: String,
    /// Who issued it, when the apiserver tells.
    pub by: Option<String>,
    /// `true`: switch off; `false`: switch back on.
    pub off: bool,
    /// The switches it names.
    pub names: Vec<String>,
}

/// One switch flipped in this evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flip {
    pub name: String,
    pub on: bool,
    /// The flip as one sentence for an Event and the war room.
    pub message: String,
}

/// What one evaluation decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Every switch of the spec, in spec order.
    pub switches: Vec<KillSwitchStatus>,
    /// The command ids applied so far (bounded).
    pub applied: Vec<String>,
    pub flips: Vec<Flip>,
    /// Commands that could not be used, one sentence each.
    pub problems: Vec<String>,
}

/// A gate that tripped in this evaluation, or a trigger beyond its threshold at its maximum,
/// and the evidence.
pub enum Tripped<'a> {
    Gate { gate: &'a str, evidence: &'a str },
    AtMax { trigger: &'a str, evidence: String },
}

pub fn decide(
    spec: &ContingencySpec,
    previous: &[KillSwitchStatus],
    applied: &[String],
    commands: &[SwitchCommand],
    tripped: &[Tripped<'_>],
    now: Timestamp,
) -> Decision {
    let mut d = Decision {
        switches: spec
            .kill_switches
            .iter()
            .map(|s| match previous.iter().find(|p| p.name == s.name) {
                Some(p) => p.clone(),
                None => KillSwitchStatus {
                    name: s.name.clone(),
                    enabled: true,
                    ..Default::default()
                },
            })
            .collect(),
        applied: applied.to_vec(),
        ..Default::default()
    };
    let since = Some(Time(Timestamp::from_second(now.as_second()).unwrap_or(now)));
    for t in tripped {
        let evidence = t.evidence();
        for (switch, status) in spec.kill_switches.iter().zip(&mut d.switches) {
            if status.enabled && t.switches_off(switch) {
                status.enabled = false;
                status.since = since.clone();
                status.by = Some("liftoff".into());
                status.why = Some(evidence.to_string());
                let sheds = sheds(switch.description.as_deref());
                d.flips.push(Flip {
                    name: switch.name.clone(),
                    on: false,
                    message: format!(
                        "kill switch {} turned off{sheds}: {}",
                        switch.name, evidence
                    ),
                });
            }
        }
    }
    for command in commands {
        if d.applied.contains(&command.id) {
            continue;
        }
        remember(&mut d.applied, &command.id, commands);
        let by = command
            .by
            .as_deref()
            .map_or_else(String::new, |b| format!(" by {b}"));
        for name in &command.names {
            let Some(i) = spec.kill_switches.iter().position(|s| &s.name == name) else {
                let names: Vec<&str> = spec.kill_switches.iter().map(|s| s.name.as_str()).collect();
                d.problems.push(format!(
                    "{} names no kill switch {name:?}; the switches are {}",
                    command.id,
                    names.join(", ")
                ));
                continue;
            };
            let (switch, status) = (&spec.kill_switches[i], &mut d.switches[i]);
            if status.enabled != command.off {
                continue; // already as asked
            }
            status.enabled = !command.off;
            status.since = since.clone();
            status.by = command.by.clone();
            status.why = Some(match command.off {
                true => format!("switched off{by}"),
                false => format!("restored{by}"),
            });
            let message = match command.off {
                true => format!(
                    "kill switch {name} turned off{}{by}",
                    sheds(switch.description.as_deref())
                ),
                false => format!("kill switch {name} turned back on{by}"),
            };
            d.flips.push(Flip {
                name: name.clone(),
                on: status.enabled,
                message,
            });
        }
    }
    d
}

fn sheds(description: Option<&str>) -> String {
    description.map_or_else(String::new, |d| format!(" ({d})"))
}

impl Tripped<'_> {
    /// Whether `switch` lists this gate or trigger.
    fn switches_off(&self, switch: &KillSwitch) -> bool {
        match self {
            Tripped::Gate { gate, .. } => switch.off_on_gate_failure.iter().any(|g| g == gate),
            Tripped::AtMax { trigger, .. } => switch.off_at_max.iter().any(|t| t == trigger),
        }
    }

    fn evidence(&self) -> &str {
        match self {
            Tripped::Gate { evidence, .. } => evidence,
            Tripped::AtMax { evidence, .. } => evidence,
        }
    }
}

/// Remembers `id`; over capacity, forgets the oldest id no longer presented (a presented id must
/// stay remembered or it would apply again).
fn remember(applied: &mut Vec<String>, id: &str, presented: &[SwitchCommand]) {
    applied.push(id.to_string());
    if applied.len() > MAX_REMEMBERED {
        let stale = applied
            .iter()
            .position(|a| !presented.iter().any(|c| &c.id == a))
            .unwrap_or(0);
        applied.remove(stale);
    }
}

#[cfg(test)]
mod tests;
