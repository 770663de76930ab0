//! The kinds: what each compares, in which unit, and how a stored trigger without a usable kind
//! is named.

use serde_json::json;

use super::{Current, kind::TriggerKind};
use crate::{crd::Trigger, engine::scaling::Sample};

/// A trigger of the kind in `kind`, with the fields its kind needs.
fn trigger(kind: serde_json::Value) -> Trigger {
    let mut object = json!({"name": "t"});
    let extra = match kind
        .as_object()
        .and_then(|k| k.keys().next())
        .map(String::as_str)
    {
        Some("cpu") => json!({
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
            "replicas": {"min": 1, "max": 10}
        }),
        Some("kafkaLag") => json!({"partitions": {"max": 12}}),
        Some("databaseConnections") => json!({"rdsResize": {
            "dbInstanceIdentifier": "db", "classLadder": ["small", "large"]
        }}),
        _ => json!({}),
    };
    let object_map = object.as_object_mut().unwrap();
    object_map.extend(kind.as_object().unwrap().clone());
    object_map.extend(extra.as_object().unwrap().clone());
    serde_json::from_value(object).unwrap()
}

fn unknown() -> Sample {
    Sample::unknown("prometheus http://p:9090", "query returned no series")
}

fn is_active(trigger: &Trigger, sample: &Sample) -> bool {
    trigger.kind().unwrap().is_active(sample)
}

fn threshold(trigger: &Trigger) -> f64 {
    trigger.kind().unwrap().threshold()
}

fn vet(trigger: &Trigger, sample: Sample, replicas: Option<i32>) -> Sample {
    let kind: TriggerKind = trigger.kind().unwrap();
    kind.vet(sample, replicas.map(Current::Replicas).as_ref())
}

#[test]
fn a_trigger_is_active_beyond_its_threshold_and_never_when_unknown() {
    let cpu = trigger(json!({"cpu": {"utilization": 70}}));
    let kafka = trigger(json!({"kafkaLag": {
        "bootstrapServers": "kafka:9092", "topic": "t", "consumerGroup": "g", "threshold": 50000
    }}));
    let db = trigger(json!({"databaseConnections": {"query": "q", "threshold": 700}}));
    let redis = trigger(json!({"redisMemory": {"query": "q", "threshold": 80}}));
    let cases = [
        ("cpu within the tolerance", &cpu, Sample::Value(77.0), false),
        ("cpu beyond the tolerance", &cpu, Sample::Value(78.0), true),
        ("cpu below the target", &cpu, Sample::Value(20.0), false),
        ("cpu unknown", &cpu, unknown(), false),
        (
            "lag at the threshold",
            &kafka,
            Sample::Value(50_000.0),
            false,
        ),
        (
            "lag above the threshold",
            &kafka,
            Sample::Value(50_001.0),
            true,
        ),
        ("lag unknown", &kafka, unknown(), false),
        (
            "connections above the threshold",
            &db,
            Sample::Value(701.0),
            true,
        ),
        ("connections NaN", &db, Sample::Value(f64::NAN), false),
        (
            "memory above the threshold",
            &redis,
            Sample::Value(80.5),
            true,
        ),
        (
            "memory at the threshold",
            &redis,
            Sample::Value(80.0),
            false,
        ),
    ];
    for (name, trigger, sample, active) in cases {
        assert_eq!(is_active(trigger, &sample), active, "{name}");
    }
}

#[test]
fn the_threshold_is_in_the_unit_of_the_sample() {
    let cpu = trigger(json!({"cpu": {}}));
    assert_eq!(threshold(&cpu), 70.0, "default utilization");
    assert_eq!(cpu.kind().unwrap().display(140.0), "140%");
    let db = trigger(json!({"databaseConnections": {"query": "q"}}));
    assert_eq!(threshold(&db), 700.0, "default threshold");
    assert_eq!(db.kind().unwrap().display(701.0), "701");
    let redis = trigger(json!({"redisMemory": {"query": "q", "threshold": 85}}));
    assert_eq!(threshold(&redis), 85.0);
}

#[test]
fn a_sample_that_cannot_be_a_measurement_is_unknown_with_the_reason() {
    let cpu = trigger(json!({"cpu": {"utilization": 70}}));
    let kafka = trigger(json!({"kafkaLag": {
        "bootstrapServers": "kafka:9092", "topic": "t", "consumerGroup": "g"
    }}));
    let db = trigger(json!({"databaseConnections": {"query": "q"}}));
    let error = |s: Sample| match s {
        Sample::Unknown { error, .. } => error,
        Sample::Value(v) => panic!("{v} was kept as a measurement"),
    };
    // The report: 1e308 % CPU asked for 2,147,483,647 replicas and scaled 3 → 7.
    assert!(error(vet(&cpu, Sample::Value(1e308), Some(3))).contains("plausible maximum"));
    // Plausible on its own, but the replicas it implies overflow.
    let implied = error(vet(&cpu, Sample::Value(90_000.0), Some(2_000_000)));
    assert!(
        implied.contains("implies 2.571e9 replicas, more than a workload can have"),
        "{implied}"
    );
    assert_eq!(
        vet(&cpu, Sample::Value(99_999.0), Some(100_000)),
        Sample::Value(99_999.0)
    );
    assert_eq!(vet(&cpu, Sample::Value(95.0), Some(3)), Sample::Value(95.0));
    assert!(error(vet(&cpu, Sample::Value(-1.0), Some(3))).contains("negative"));
    assert!(error(vet(&kafka, Sample::Value(1e19), None)).contains("Kafka lag"));
    assert_eq!(vet(&kafka, Sample::Value(1e12), None), Sample::Value(1e12));
    assert!(error(vet(&db, Sample::Value(2e6), None)).contains("connection count"));
    // Unknown stays unknown, with its own reason.
    assert_eq!(vet(&db, unknown(), None), unknown());
}

proptest::proptest! {
    /// Whatever a source returns, what survives vetting is a finite, non-negative value whose
    /// implied replica count fits a workload.
    #[test]
    fn vetted_cpu_samples_are_always_actionable(v in proptest::num::f64::ANY, current in 0i32..=100_000) {
        let cpu = trigger(json!({"cpu": {"utilization": 1}}));
        if let Sample::Value(kept) = vet(&cpu, Sample::Value(v), Some(current)) {
            proptest::prop_assert!(kept.is_finite() && kept >= 0.0);
            proptest::prop_assert!(f64::from(current) * kept <= f64::from(i32::MAX));
        }
    }
}

#[test]
fn each_kind_has_its_name_and_default_cooldown() {
    let minutes = |m: u64| std::time::Duration::from_secs(m * 60);
    let cases = [
        (json!({"cpu": {}}), "cpu", minutes(0)),
        (
            json!({"kafkaLag": {"bootstrapServers": "k:9092", "topic": "t", "consumerGroup": "g"}}),
            "kafkaLag",
            minutes(10),
        ),
        (
            json!({"databaseConnections": {"query": "q"}}),
            "databaseConnections",
            minutes(60),
        ),
        (
            json!({"redisMemory": {"query": "q"}}),
            "redisMemory",
            minutes(10),
        ),
    ];
    for (spec, name, cooldown) in cases {
        let t = trigger(spec);
        let kind = t.kind().unwrap();
        assert_eq!(kind.as_str(), name);
        assert_eq!(kind.cooldown(), cooldown, "{name}");
    }
    let mut set = trigger(json!({"redisMemory": {"query": "q"}}));
    set.cooldown = Some("90s".parse().unwrap());
    assert_eq!(
        set.kind().unwrap().cooldown(),
        std::time::Duration::from_secs(90)
    );
}

/// Everything the CRD refuses about a trigger's kind, stored anyway under an older CRD, is
/// refused by `kind()` with the CRD's own words.
#[test]
fn a_trigger_without_a_usable_kind_is_refused_with_the_crds_message() {
    let problem = |value: serde_json::Value| {
        let mut object = json!({"name": "t"});
        object
            .as_object_mut()
            .unwrap()
            .extend(value.as_object().unwrap().clone());
        let t: Trigger = serde_json::from_value(object).unwrap();
        t.kind().err().map(|e| e.to_string()).unwrap_or_default()
    };
    let lag = json!({"bootstrapServers": "k:9092", "topic": "t", "consumerGroup": "g"});
    let consumers = json!({"scaleTargetRef": {"kind": "Deployment", "name": "workers"}, "lagPerReplica": 1000, "max": 3});
    let cache = json!({"replicationGroupId": "sessions", "nodeTypeLadder": ["cache.r7g.large", "cache.r7g.xlarge"]});
    let cases = [
        (
            json!({}),
            "sets no metric: set exactly one of cpu, kafkaLag",
        ),
        (
            json!({"cpu": {}, "redisMemory": {"query": "q"}}),
            "sets cpu and redisMemory: set exactly one",
        ),
        (json!({"cpu": {}}), "a cpu trigger needs scaleTargetRef"),
        (
            json!({"kafkaLag": lag}),
            "a kafkaLag trigger needs partitions",
        ),
        (
            json!({"databaseConnections": {"query": "q"}}),
            "needs rdsResize",
        ),
        (
            json!({"databaseConnections": {"query": "q"}, "rdsResize": {
                "dbInstanceIdentifier": "db", "classLadder": ["a", "b"]}}),
            "",
        ),
        (
            json!({"databaseConnections": {}, "rdsResize": {
                "dbInstanceIdentifier": "db", "classLadder": ["a", "b"]}}),
            "set exactly one of query or postgres in databaseConnections",
        ),
        (
            json!({"redisMemory": {}}),
            "set exactly one of addressSecretRef or query",
        ),
        (
            json!({"redisMemory": {"query": "q"}, "scaleTargetRef": {"kind": "StatefulSet", "name": "r"}}),
            "with a scaleTargetRef needs replicas.max",
        ),
        (
            json!({"redisMemory": {"query": "q"}, "partitions": {"max": 3}}),
            "partitions only applies to kafkaLag triggers",
        ),
        (
            json!({"redisMemory": {"query": "q"}, "cacheResize": cache}),
            "",
        ),
        (
            json!({"kafkaLag": lag, "partitions": {"max": 3}, "consumers": consumers}),
            "",
        ),
        (
            json!({"cpu": {}, "scaleTargetRef": {"kind": "Deployment", "name": "api"},
                   "replicas": {"max": 3}, "consumers": consumers}),
            "consumers only applies to kafkaLag triggers",
        ),
        (
            json!({"redisMemory": {"query": "q"}, "cacheResize": cache,
                   "scaleTargetRef": {"kind": "StatefulSet", "name": "r"}, "replicas": {"max": 3}}),
            "either a StatefulSet (scaleTargetRef) or an ElastiCache node type (cacheResize), not both",
        ),
        (
            json!({"databaseConnections": {"query": "q"}, "rdsResize": {
                "dbInstanceIdentifier": "db", "classLadder": ["a", "b"]}, "cacheResize": cache}),
            "cacheResize only applies to redisMemory triggers",
        ),
        (
            json!({"kafkaLag": lag, "partitions": {"max": 3}, "replicas": {"max": 3}}),
            "replicas only applies to cpu and redisMemory triggers",
        ),
    ];
    for (spec, expected) in cases {
        let got = problem(spec.clone());
        match expected {
            "" => assert_eq!(got, "", "{spec}"),
            _ => assert!(
                got.starts_with("trigger \"t\": ") && got.contains(expected),
                "{spec}: {got}"
            ),
        }
    }
}
