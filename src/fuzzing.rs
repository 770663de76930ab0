//! Fuzz entry points: each takes arbitrary bytes and runs a part of Liftoff that reads input it
//! does not control (a stored policy, a server's answer, an annotation). None may panic, for any
//! input. `fuzz/` drives them with cargo fuzz (libFuzzer); the unit tests below replay the kept
//! corpus (`fuzz/corpus/<target>/`) and a proptest run of each on every `cargo test`. See
//! `docs/fuzzing.md`.

use std::{collections::BTreeMap, time::Duration as StdDuration};

use arbitrary::Unstructured;
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry, jiff::Timestamp};

use crate::{
    controller::rollout::commands,
    crd::{Duration, LaunchPolicy, Trigger},
    engine::{
        rollout::{self as engine_rollout, GateReading, Inputs, RolloutState},
        scaling::{Sample, ScalingHistory},
    },
    sources::{kafka, prometheus},
    triggers::{
        TriggerKind,
        pause::Paused,
        plan::{self, Current, Facts, Hold, Reading},
    },
};

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// The targets, by name (the names of `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*`).
pub const TARGETS: [(&str, Target); 5] = [
    ("policy", policy),
    ("prometheus_response", prometheus_response),
    ("kafka_lag", kafka_lag),
    ("duration", duration),
    ("annotations", annotations),
];

/// A LaunchPolicy as JSON, then (after a NUL byte) the world it meets: samples, targets, gate
/// readings and commands. Deserializes the policy and runs both engines on it, twice in a row
/// each, the second time from the status the first produced.
pub fn policy(data: &[u8]) {
    let (json, world) = split(data);
    let Ok(policy) = serde_json::from_slice::<LaunchPolicy>(json) else {
        return;
    };
    let mut u = Unstructured::new(world);
    let now = time(&mut u);
    if let Some(scaling) = &policy.spec.scaling {
        let refresh = StdDuration::from(policy.spec.status_refresh);
        for trigger in &scaling.triggers {
            scale(
                trigger,
                &mut u,
                now,
                refresh,
                StdDuration::from(scaling.interval),
            );
        }
    }
    if let Some(spec) = &policy.spec.rollout {
        let annotations = policy.metadata.annotations.clone().unwrap_or_default();
        let managed = policy.metadata.managed_fields.clone().unwrap_or_default();
        let (commands, _) = commands::from_annotations(&annotations, &managed, spec);
        let mut state = RolloutState::default();
        let mut at = now;
        let steps = u.int_in_range(1..=8u8).unwrap_or(1);
        for _ in 0..steps {
            let mut inputs = Inputs {
                suspended: u.arbitrary().unwrap_or(false),
                unpublished: u.arbitrary().unwrap_or(false),
                ..Inputs::default()
            };
            if engine_rollout::gates_due(spec, &state, at) {
                for check in spec.gates.iter().flat_map(|g| &g.checks) {
                    inputs
                        .gates
                        .insert(check.name.clone(), gate_reading(&mut u));
                }
            }
            if u.arbitrary().unwrap_or(false) {
                inputs.commands = commands.clone();
            }
            let decision = engine_rollout::step(spec, &state, &inputs, at);
            let _ = serde_json::to_string(&decision.state).unwrap_or_default();
            state = decision.state;
            let wait = decision.requeue_after.unwrap_or(StdDuration::from_secs(60));
            at = at
                .checked_add(wait.min(StdDuration::from_secs(86_400 * 400)))
                .unwrap_or(at);
        }
    }
}

/// One trigger's plan for two samples in a row, the second from the first's status.
fn scale(
    trigger: &Trigger,
    u: &mut Unstructured<'_>,
    now: Timestamp,
    refresh: StdDuration,
    interval: StdDuration,
) {
    // A trigger without a usable kind is refused before it is planned (InvalidSpec).
    let Ok(kind) = trigger.kind() else {
        return;
    };
    let mut history = ScalingHistory::default();
    let hold = match u.int_in_range(0..=5u8).unwrap_or(0) {
        1 => Some(Hold::Suspended),
        2 => Some(Hold::NotReady),
        3 => Some(Hold::Paused(Paused::Both)),
        4 => Some(Hold::Paused(Paused::In)),
        5 => Some(Hold::Paused(Paused::Out)),
        _ => None,
    };
    let facts = Facts {
        now,
        status_refresh: refresh,
        interval,
        hold,
    };
    let first = plan::plan(&kind, None, &reading(&kind, u), &mut history, facts);
    let later = Facts {
        now: now.checked_add(interval).unwrap_or(now),
        ..facts
    };
    let second = plan::plan(
        &kind,
        Some(&first.status),
        &reading(&kind, u),
        &mut history,
        later,
    );
    let _ = serde_json::to_string(&second.status).unwrap_or_default();
}

fn reading(kind: &TriggerKind<'_>, u: &mut Unstructured<'_>) -> Reading {
    let sample = match u.int_in_range(0..=3u8).unwrap_or(0) {
        0 => Sample::Value(u.arbitrary().unwrap_or(0.0)),
        1 => Sample::Value(f64::from(u.arbitrary::<u32>().unwrap_or(0))),
        2 => Sample::unknown("fuzz", "unreadable"),
        _ => Sample::Value(kind.threshold()),
    };
    let current = match u.int_in_range(0..=5u8).unwrap_or(0) {
        0 => Ok(Current::Replicas(u.arbitrary().unwrap_or(1))),
        1 => Ok(Current::Partitions(u.arbitrary().unwrap_or(1))),
        2 => Ok(Current::Class(u.arbitrary().unwrap_or_default())),
        3 => Ok(Current::Nothing),
        4 => Ok(Current::Consumed {
            partitions: u.arbitrary().unwrap_or(1),
            consumers: u.arbitrary().unwrap_or(1),
        }),
        _ => Err("unreadable".to_string()),
    };
    let refusal = u
        .arbitrary::<bool>()
        .unwrap_or(false)
        .then(|| "an HPA also scales it".to_string());
    Reading {
        sample,
        current,
        refusal,
    }
    .vetted(kind)
}

fn gate_reading(u: &mut Unstructured<'_>) -> GateReading {
    match u.int_in_range(0..=3u8).unwrap_or(0) {
        0 => GateReading::Value(u.arbitrary().unwrap_or(0.0)),
        1 => GateReading::Value(f64::from(u.arbitrary::<u16>().unwrap_or(0)) / 1000.0),
        2 => GateReading::NoData,
        _ => GateReading::unknown("Prometheus is unreachable"),
    }
}

/// A time between 2027 and 2028, from the input.
fn time(u: &mut Unstructured<'_>) -> Timestamp {
    let offset = u.int_in_range(0..=31_536_000i64).unwrap_or(0);
    Timestamp::from_second(1_800_000_000 + offset).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// An HTTP status (2 bytes) and a body: the Prometheus query API's answer.
pub fn prometheus_response(data: &[u8]) {
    let (status, body) = match data {
        [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]) % 600, rest),
        _ => (200, data),
    };
    if let Ok(value) = prometheus::parse_response(status, &String::from_utf8_lossy(body)) {
        assert!(value.is_finite(), "a parsed value is a number: {value}");
    }
}

/// Partition offsets as a broker might report them: `(partition, committed, low, high)`.
pub fn kafka_lag(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let offsets: Vec<(i32, Option<i64>, i64, i64)> = u.arbitrary().unwrap_or_default();
    let lag = kafka::topic_lag(offsets);
    assert!(lag.total >= 0, "total lag is never negative");
    for p in &lag.partitions {
        assert!(
            (0..=p.high.max(0)).contains(&p.lag),
            "lag within 0..=high: {p:?}"
        );
    }
}

/// Any text as a duration.
pub fn duration(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(d) = text.parse::<Duration>() {
        assert!(d <= Duration::MAX, "{text:?} parsed beyond the ceiling");
        let shown: Duration = d.to_string().parse().expect("a shown duration parses");
        assert!(shown <= d, "{text:?} shown as {shown}");
    }
}

/// Annotations (a JSON object of strings) and managed fields, as the apiserver returns them,
/// read as rollout commands against the default stages.
pub fn annotations(data: &[u8]) {
    let (json, rest) = split(data);
    let annotations: BTreeMap<String, String> = serde_json::from_slice(json).unwrap_or_default();
    let managed: Vec<ManagedFieldsEntry> = serde_json::from_slice(rest).unwrap_or_default();
    let spec: crate::crd::RolloutSpec =
        serde_json::from_str("{}").expect("the default rollout spec deserializes");
    let (commands, problems) = commands::from_annotations(&annotations, &managed, &spec);
    assert!(commands.len() + problems.len() <= annotations.len());
}

/// The bytes before the first NUL, and those after it.
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Every input kept in `fuzz/corpus/<target>/` (seeds and what libFuzzer found interesting).
    #[test]
    fn the_kept_corpus_runs_without_a_panic() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let mut ran = 0;
        for (name, target) in TARGETS {
            let dir = root.join(name);
            let entries =
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            for entry in entries {
                let path = entry.unwrap().path();
                target(&std::fs::read(&path).unwrap());
                ran += 1;
            }
        }
        assert!(ran >= TARGETS.len() * 2, "only {ran} corpus inputs");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn any_bytes_run_every_target(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            for (_, target) in TARGETS {
                target(&data);
            }
        }

        /// The seed policies with arbitrary worlds behind them.
        #[test]
        fn the_example_policies_meet_any_world(world in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            for example in [
                include_str!("../examples/emr-platform.yaml"),
                include_str!("../examples/launch-week.yaml"),
            ] {
                let value: serde_json::Value = serde_yaml::from_str(example).unwrap();
                let mut data = serde_json::to_vec(&value).unwrap();
                let parsed: LaunchPolicy = serde_json::from_slice(&data).unwrap();
                proptest::prop_assert!(parsed.spec.rollout.is_some());
                data.push(0);
                data.extend_from_slice(&world);
                policy(&data);
            }
        }
    }
}
