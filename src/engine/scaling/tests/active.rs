//! Whether a trigger is beyond its threshold, for status.

use serde_json::json;

use super::*;
use crate::crd::Trigger;

fn trigger(kind: serde_json::Value) -> Trigger {
    let mut object = json!({"name": "t"});
    object
        .as_object_mut()
        .unwrap()
        .extend(kind.as_object().unwrap().clone());
    serde_json::from_value(object).unwrap()
}

#[test]
fn a_trigger_is_active_beyond_its_threshold_and_never_when_unknown() {
    let cpu = trigger(json!({"cpu": {"utilization": 70}}));
    let kafka = trigger(json!({"kafkaLag": {
        "bootstrapServers": "kafka:9092", "topic": "t", "consumerGroup": "g", "threshold": 50000
    }}));
    let db = trigger(json!({"databaseConnections": {"query": "q", "threshold": 700}}));
    let redis = trigger(json!({"redisMemory": {"query": "q", "threshold": 80}}));
    let none = trigger(json!({}));
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
        ("no metric kind", &none, Sample::Value(1e9), false),
    ];
    for (name, trigger, sample, active) in cases {
        assert_eq!(is_active(trigger, &sample), active, "{name}");
    }
}

#[test]
fn the_threshold_is_in_the_unit_of_the_sample() {
    let cpu = trigger(json!({"cpu": {}}));
    assert_eq!(threshold(&cpu), Some(70.0), "default utilization");
    let db = trigger(json!({"databaseConnections": {"query": "q"}}));
    assert_eq!(threshold(&db), Some(700.0), "default threshold");
    let redis = trigger(json!({"redisMemory": {"query": "q", "threshold": 85}}));
    assert_eq!(threshold(&redis), Some(85.0));
    assert_eq!(threshold(&trigger(json!({}))), None);
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
