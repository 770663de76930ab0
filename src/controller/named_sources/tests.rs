use kube::runtime::{reflector, watcher};
use serde_json::json;

use super::*;

fn source(name: &str, spec: serde_json::Value) -> LaunchSource {
    serde_json::from_value(json!({
        "apiVersion": "liftoff.dev/v1alpha1", "kind": "LaunchSource",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

fn sources(list: Vec<LaunchSource>, required: bool) -> NamedSources {
    let (store, mut writer) = reflector::store();
    for s in list {
        writer.apply_watcher_event(&watcher::Event::Apply(s));
    }
    NamedSources {
        store: Some(store),
        synced: None,
        required,
    }
}

fn platform() -> NamedSources {
    sources(
        vec![
            source(
                "metrics",
                json!({"namespaces": ["team-a"], "prometheus": {
                    "address": "http://prometheus.monitoring:9090",
                    "authSecretRef": {"namespace": "liftoff", "name": "prom-token"}}}),
            ),
            source(
                "events",
                json!({"namespaces": ["*"], "kafka": {"bootstrapServers": "kafka.data:9092"}}),
            ),
        ],
        false,
    )
}

fn policy(namespace: &str, spec: serde_json::Value) -> LaunchPolicy {
    serde_json::from_value(json!({
        "apiVersion": "liftoff.dev/v1alpha1", "kind": "LaunchPolicy",
        "metadata": {"name": "launch", "namespace": namespace}, "spec": spec
    }))
    .unwrap()
}

fn named(prometheus: &str, kafka: &str) -> serde_json::Value {
    json!({
        "prometheus": {"sourceRef": {"name": prometheus}},
        "scaling": {"triggers": [
            {"name": "cpu", "cpu": {"query": "avg(cpu)"},
             "scaleTargetRef": {"kind": "Deployment", "name": "api"}},
            {"name": "lag", "partitions": {"max": 6},
             "kafkaLag": {"sourceRef": {"name": kafka}, "topic": "t", "consumerGroup": "g"}}
        ]}
    })
}

fn reasons(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.reason).collect()
}

#[test]
fn a_policy_that_names_no_source_is_used_as_written() {
    let written = policy(
        "team-a",
        json!({"prometheus": {"address": "http://prom:9090"}}),
    );
    let (resolved, problems) = platform().resolve(&written);
    assert!(matches!(resolved, Cow::Borrowed(_)));
    assert!(problems.is_empty());
}

#[test]
fn a_named_source_fills_in_its_address_and_platform_credentials() {
    let written = policy("team-a", named("metrics", "events"));
    let (resolved, problems) = platform().resolve(&written);
    assert_eq!(problems, vec![]);
    let prometheus = resolved.spec.prometheus.as_ref().unwrap();
    assert_eq!(prometheus.address, "http://prometheus.monitoring:9090");
    let secret = prometheus.auth_secret_ref.as_ref().unwrap();
    assert_eq!(
        (secret.name.as_str(), secret.namespace.as_deref()),
        ("prom-token", Some("liftoff"))
    );
    let lag = resolved.spec.scaling.as_ref().unwrap().triggers[1]
        .kafka_lag
        .as_ref()
        .unwrap();
    assert_eq!(lag.bootstrap_servers, "kafka.data:9092");
    assert_eq!(lag.auth_secret_ref, None);
    // What the user wrote is untouched.
    assert_eq!(written.spec.prometheus.as_ref().unwrap().address, "");
}

#[test]
fn a_namespace_the_source_does_not_list_cannot_use_it() {
    let written = policy("team-b", named("metrics", "events"));
    let (resolved, problems) = platform().resolve(&written);
    assert_eq!(reasons(&problems), ["SourceNotAllowed"]);
    assert_eq!(
        problems[0].message,
        "spec.prometheus.sourceRef: LaunchSource metrics does not list namespace team-b; ask \
         the platform team to add it to the source's spec.namespaces"
    );
    // Left without an address: its samples are unknown, nothing is contacted.
    assert_eq!(resolved.spec.prometheus.as_ref().unwrap().address, "");
    // `*` lets every namespace use the Kafka source.
    let lag = resolved.spec.scaling.as_ref().unwrap().triggers[1]
        .kafka_lag
        .as_ref()
        .unwrap();
    assert_eq!(lag.bootstrap_servers, "kafka.data:9092");
}

#[test]
fn unknown_and_mismatched_sources_are_named_with_their_field() {
    let written = policy("team-a", named("nope", "metrics"));
    let (_, problems) = platform().resolve(&written);
    assert_eq!(reasons(&problems), ["SourceNotFound", "SourceMismatch"]);
    assert!(
        problems[0]
            .message
            .starts_with("spec.prometheus.sourceRef: LaunchSource nope does not exist")
    );
    assert_eq!(
        problems[1].message,
        "spec.scaling.triggers[1].kafkaLag.sourceRef: LaunchSource metrics is not a Kafka source"
    );
}

#[test]
fn without_launchsources_a_source_reference_says_how_to_install_them() {
    let written = policy("team-a", named("metrics", "events"));
    let (_, problems) = NamedSources::default().resolve(&written);
    assert_eq!(reasons(&problems), ["SourceNotFound", "SourceNotFound"]);
    assert!(problems[0].message.contains("is their CRD installed"));
}

#[test]
fn when_named_sources_are_required_written_addresses_are_refused() {
    let required = sources(vec![], true);
    let written = policy(
        "team-a",
        json!({
            "prometheus": {"address": "http://prom:9090"},
            "scaling": {"triggers": [{"name": "lag", "partitions": {"max": 6},
                "kafkaLag": {"bootstrapServers": "k:9092", "topic": "t", "consumerGroup": "g"}}]}
        }),
    );
    let (resolved, problems) = required.resolve(&written);
    assert_eq!(reasons(&problems), ["AddressDenied", "AddressDenied"]);
    // Nothing is left to contact.
    assert_eq!(resolved.spec.prometheus.as_ref().unwrap().address, "");
    let triggers = &resolved.spec.scaling.as_ref().unwrap().triggers;
    assert_eq!(
        triggers[0].kafka_lag.as_ref().unwrap().bootstrap_servers,
        ""
    );
    assert!(problems[0].message.starts_with(
        "spec.prometheus.address: this operator only accepts named sources; use the sourceRef"
    ));
    assert!(
        problems[1]
            .message
            .starts_with("spec.scaling.triggers[0].kafkaLag.bootstrapServers: ")
    );
    // Named sources are what such an operator accepts.
    let (_, problems) =
        sources(platform_list(), true).resolve(&policy("team-a", named("metrics", "events")));
    assert_eq!(problems, vec![]);
}

fn platform_list() -> Vec<LaunchSource> {
    let p = platform();
    p.store
        .unwrap()
        .state()
        .iter()
        .map(|s| (**s).clone())
        .collect()
}
