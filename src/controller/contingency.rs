//! Kill switches at the edges: the commands read from annotations, the gates that tripped in
//! this reconcile, the flagd flags published once status records the switches, and the
//! Events and messages that announce every flip.
//!
//! | Annotation | Value | Does |
//! | --- | --- | --- |
//! | `liftoff.dev/kill-switch` | switch names separated by commas, optionally `@token` | switch them off |
//! | `liftoff.dev/restore-switch` | the same | switch them back on |

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::{ResourceExt, runtime::events::EventType};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::{Context, events, memory::PolicyMemory, rollout};
use crate::{
    actuators::configmap,
    crd::{ContingencySpec, HoldCause, KillSwitchStatus, LaunchPolicy},
    engine::{
        contingency::{self, Decision, SwitchCommand, Tripped},
        rollout::EventKind,
    },
    triggers::{Current, Planning},
};

pub const KILL: &str = "liftoff.dev/kill-switch";
pub const RESTORE: &str = "liftoff.dev/restore-switch";

/// The kill and restore commands the annotations carry.
pub fn commands(policy: &LaunchPolicy) -> Vec<SwitchCommand> {
    let empty = BTreeMap::new();
    let annotations = policy.metadata.annotations.as_ref().unwrap_or(&empty);
    let managed = policy
        .metadata
        .managed_fields
        .as_deref()
        .unwrap_or_default();
    [(KILL, true), (RESTORE, false)]
        .into_iter()
        .filter_map(|(key, off)| {
            let value = annotations.get(key)?;
            let names = value.split_once('@').map_or(value.as_str(), |(n, _)| n);
            Some(SwitchCommand {
                id: format!("{key}={value}"),
                by: rollout::commands::issuer(key, managed),
                off,
                names: names
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// Decides the switches of `policy` at `now`, given the rollout evaluated in this reconcile
/// (whose tripped gate, if any, switches off what lists it). `None` without a contingency plan.
pub fn step<'p>(
    policy: &'p LaunchPolicy,
    plans: &'p [Planning<'_>],
    evaluation: Option<&'p rollout::Evaluation>,
    now: Timestamp,
) -> Option<Decision> {
    let spec = policy.spec.contingency.as_ref()?;
    let status = policy.status.as_ref();
    let previous = status
        .map(|s| s.kill_switches.as_slice())
        .unwrap_or_default();
    let applied = status
        .map(|s| s.applied_switch_commands.as_slice())
        .unwrap_or_default();
    let mut tripped: Vec<Tripped<'_>> = evaluation
        .filter(|e| e.events.iter().any(|e| e.kind == EventKind::GateFailed))
        .and_then(|e| e.fresh.state.hold.as_ref())
        .filter(|h| h.cause == HoldCause::Gate)
        .and_then(|h| {
            Some(Tripped::Gate {
                gate: h.by.as_deref()?,
                evidence: &h.detail,
            })
        })
        .into_iter()
        .collect();
    tripped.extend(plans.iter().filter_map(at_max));
    if policy.spec.suspend {
        // Suspended: Liftoff takes no action of its own; a person's command still applies.
        tripped.clear();
    }
    Some(contingency::decide(
        spec,
        previous,
        applied,
        &commands(policy),
        &tripped,
        now,
    ))
}

/// A trigger sampled in this reconcile that is beyond its threshold with nothing left to add:
/// replicas at `replicas.max`, partitions at `partitions.max`, the last class of the ladder.
fn at_max<'p>(p: &'p Planning<'_>) -> Option<Tripped<'p>> {
    let reading = p.reading.as_ref()?;
    if !p.plan.status.active {
        return None;
    }
    let t = p.kind.trigger();
    let limit = match reading.current.as_ref().ok()? {
        Current::Replicas(n) => {
            let max = t.replicas.as_ref()?.max;
            (*n >= max).then(|| format!("replicas.max {max}"))
        }
        Current::Partitions(n) => {
            let max = t.partitions.as_ref()?.max;
            (*n >= max).then(|| format!("partitions.max {max}"))
        }
        Current::Consumed {
            partitions,
            consumers,
        } => {
            let max = t.partitions.as_ref()?.max;
            let most = t.consumers.as_ref()?.max.min(max);
            (*partitions >= max && *consumers >= most)
                .then(|| format!("partitions.max {max} with {consumers} consumers"))
        }
        Current::Class(class) => {
            let rds = t.rds_resize.as_ref().map(|r| &r.class_ladder);
            let ladder = rds.or(t.cache_resize.as_ref().map(|c| &c.node_type_ladder))?;
            (ladder.last() == Some(class)).then(|| format!("the last class of its ladder, {class}"))
        }
        Current::Nothing => None,
    }?;
    Some(Tripped::AtMax {
        trigger: &t.name,
        evidence: format!(
            "trigger {} is beyond its threshold ({}) at {limit}",
            t.name, p.plan.status.threshold
        ),
    })
}

/// The flagd flag definitions of the switches: one boolean flag each, `on` while the feature
/// may run.
pub fn flags(spec: &ContingencySpec, switches: &[KillSwitchStatus]) -> Value {
    let flags: serde_json::Map<String, Value> = spec
        .kill_switches
        .iter()
        .map(|s| {
            let on = switches
                .iter()
                .find(|st| st.name == s.name)
                .is_none_or(|st| st.enabled);
            let flag = json!({
                "state": "ENABLED",
                "variants": {"on": true, "off": false},
                "defaultVariant": if on { "on" } else { "off" },
            });
            (s.flag_key().to_string(), flag)
        })
        .collect();
    json!({"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": flags})
}

/// Publishes the switches that status now records, unless this process already published them.
/// A failure is an Event (`KillSwitchesNotPublished`) and is retried on the next reconcile.
pub async fn publish(
    ctx: &Context,
    policy: &LaunchPolicy,
    memory: &mut PolicyMemory,
    switches: &[KillSwitchStatus],
) {
    let Some(spec) = &policy.spec.contingency else {
        return;
    };
    let text = serde_json::to_string_pretty(&flags(spec, switches)).unwrap_or_default();
    let signature = format!("{}\n{text}", spec.config_map);
    if memory.published_switches.as_deref() == Some(signature.as_str()) {
        return;
    }
    let namespace = policy.namespace().unwrap_or_default();
    let owner = configmap::owned_by(policy);
    let data = BTreeMap::from([(rollout::cohort::FLAGD_KEY.to_string(), text)]);
    match configmap::apply(
        &ctx.client,
        &namespace,
        &spec.config_map,
        owner.as_ref(),
        data,
    )
    .await
    {
        Ok(()) => {
            info!(config_map = %spec.config_map, "kill switches published");
            memory.published_switches = Some(signature);
        }
        Err(e) => {
            warn!(error = %e, "kill switches not published");
            let note = format!(
                "cannot publish the kill switches to ConfigMap {}: {e}",
                spec.config_map
            );
            let warning = EventType::Warning;
            events::publish(
                &ctx.recorder,
                policy,
                warning,
                "KillSwitchesNotPublished",
                &note,
            )
            .await;
        }
    }
}

/// Announces every flip (an Event; the war room hears of it from the journal) and
/// every command that could not be used, once status records them.
pub async fn report(ctx: &Context, policy: &LaunchPolicy, decision: &Decision) {
    for flip in &decision.flips {
        let (type_, reason) = match flip.on {
            false => (EventType::Warning, "KillSwitchOff"),
            true => (EventType::Normal, "KillSwitchOn"),
        };
        info!(switch = %flip.name, on = flip.on, "{}", flip.message);
        events::publish(&ctx.recorder, policy, type_, reason, &flip.message).await;
    }
    for problem in &decision.problems {
        let warning = EventType::Warning;
        events::publish(&ctx.recorder, policy, warning, "CommandIgnored", problem).await;
    }
}
