//! Building a `Cluster` from settings (no broker contacted).

use super::*;

fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn unknown_setting_is_named_without_its_value() {
    let err =
        Cluster::connect("127.0.0.1:9", &settings(&[("sasl.pasword", "hunter22")])).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("invalid Kafka client settings: sasl.pasword"),
        "{text}"
    );
    assert!(!text.contains("hunter22"), "{text}");
}

#[test]
fn invalid_value_is_not_echoed() {
    let err =
        Cluster::connect("127.0.0.1:9", &settings(&[("security.protocol", "s3cr3t")])).unwrap_err();
    assert!(matches!(err, KafkaError::InvalidSettings { .. }), "{err:?}");
    assert!(!err.to_string().contains("s3cr3t"), "{err}");
    assert!(err.to_string().contains("security.protocol"), "{err}");
}

#[test]
fn valid_settings_connect_without_contacting_the_broker() {
    let s = settings(&[
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "liftoff"),
        ("sasl.password", "pw-123456"),
        ("group.id", "ignored"),
    ]);
    let cluster = Cluster::connect("127.0.0.1:9", &s).expect("SASL_SSL + SCRAM are built in");
    assert_eq!(cluster.bootstrap_servers(), "127.0.0.1:9");
    assert!(!format!("{cluster:?}").contains("pw-123456"));
    assert_eq!(cluster.inner.secrets, ["pw-123456", "liftoff"]);
    assert_eq!(
        scrub("auth failed for pw-123456", &cluster.inner.secrets),
        "auth failed for ***"
    );
}

#[test]
fn cluster_is_shareable() {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<Cluster>();
}

#[test]
fn idle_group_handles_are_closed_and_used_ones_kept() {
    let cluster = Cluster::connect("127.0.0.1:9", &settings(&[])).unwrap();
    cluster
        .inner
        .group_consumer("old-workers", "orders")
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    cluster
        .inner
        .group_consumer("task-workers", "orders")
        .unwrap();
    assert_eq!(cluster.forget_idle_groups(Duration::from_secs(60)), 2);
    assert_eq!(cluster.forget_idle_groups(Duration::from_millis(40)), 1);
    let left: Vec<String> = cluster
        .inner
        .groups
        .lock()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(left, ["task-workers"]);
    assert_eq!(cluster.forget_idle_groups(Duration::ZERO), 0);
}

#[tokio::test]
async fn an_unreachable_cluster_holds_at_most_a_few_blocking_threads() {
    let cluster = Cluster::connect("127.0.0.1:9", &settings(&[])).unwrap();
    let timeout = Duration::from_millis(300);
    let calls = (0..3 * MAX_CALLS_IN_FLIGHT).map(|i| {
        let cluster = cluster.clone();
        async move { cluster.lag("orders", &format!("group-{i}"), timeout).await }
    });
    let results = futures::future::join_all(calls).await;
    let queued = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.to_string().contains("waiting behind 4 calls")))
        .count();
    assert!(
        results.iter().all(|r| r.is_err()),
        "nothing answers on port 9"
    );
    assert!(
        queued >= MAX_CALLS_IN_FLIGHT,
        "calls beyond the bound wait for a slot and time out waiting: {results:?}"
    );
}
