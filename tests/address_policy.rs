//! The operator's address policy against a real apiserver: destinations the operator is told to
//! refuse are never contacted, whatever a policy names. Listeners on refused addresses count
//! every connection; after the operator has reconciled the policies many times, each has
//! counted none. An address written as an IP is refused at once (`Ready=False AddressDenied`,
//! naming the field); a host name is refused once resolved (the trigger's error says so).

mod support;

use std::{sync::atomic::Ordering, time::Duration};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Secret};
use kube::Api;
use liftoff::crd::LaunchPolicy;
use serde_json::json;
use support::{
    Operator, control_plane, counting_listener, eventually,
    objects::{create, policy, ready, workload},
};

const WAIT: Duration = Duration::from_secs(60);

fn cpu(prometheus: String) -> serde_json::Value {
    json!({
        "prometheus": {"address": prometheus, "timeout": "1s"},
        "scaling": {"interval": "1s", "triggers": [{
            "name": "api-cpu", "cpu": {"query": "avg(cpu)"},
            "scaleTargetRef": {"kind": "Deployment", "name": "api"},
            "replicas": {"min": 1, "max": 4}
        }]}
    })
}

async fn trigger_error(api: &Api<LaunchPolicy>, name: &str) -> Option<String> {
    let status = api.get(name).await.ok()?.status?;
    status.triggers.into_iter().next()?.error
}

#[tokio::test]
async fn refused_addresses_are_never_contacted_by_ip_or_by_name() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("addresses").await.unwrap();
    // 127.0.0.2 stands in for a metadata address; "localhost" for a name that resolves to a
    // refused address.
    let (by_ip, ip_connections) = counting_listener("127.0.0.2").await;
    let (by_name, name_connections) = counting_listener("127.0.0.1").await;
    let op = Operator::start(&cp, &["--deny-address=127.0.0.2/32,127.0.0.1/32,::1/128"]).await;
    create::<Deployment>(&client, &ns, workload("Deployment", "api", 2)).await;
    let secret = |name: &str, url: String| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
               "stringData": {"url": url}})
    };
    create::<Secret>(
        &client,
        &ns,
        secret("hook", format!("http://127.0.0.2:{by_ip}/hook")),
    )
    .await;
    create::<Secret>(
        &client,
        &ns,
        secret("cache", format!("redis://localhost:{by_name}")),
    )
    .await;

    let api: Api<LaunchPolicy> = Api::namespaced(client.clone(), &ns);
    let literal = cpu(format!("http://127.0.0.2:{by_ip}"));
    create::<LaunchPolicy>(&client, &ns, policy("by-ip", literal)).await;
    let lag = json!({"scaling": {"interval": "1s", "triggers": [{
        "name": "lag", "partitions": {"max": 6},
        "kafkaLag": {"bootstrapServers": format!("127.0.0.2:{by_ip}"), "topic": "t", "consumerGroup": "g"}
    }]}});
    create::<LaunchPolicy>(&client, &ns, policy("kafka-by-ip", lag)).await;
    let named = cpu(format!("http://localhost:{by_name}"));
    create::<LaunchPolicy>(&client, &ns, policy("by-name", named)).await;
    let cache = json!({"scaling": {"interval": "1s", "triggers": [{
        "name": "cache", "redisMemory": {"addressSecretRef": {"name": "cache", "key": "url"}}
    }]}});
    create::<LaunchPolicy>(&client, &ns, policy("redis-by-name", cache)).await;
    let hook = json!({
        "notifications": [{"webhookSecretRef": {"name": "hook", "key": "url"}}],
        "rollout": {"stages": [{"name": "everyone", "users": "All"}]}
    });
    create::<LaunchPolicy>(&client, &ns, policy("webhook", hook)).await;

    // An IP is refused before anything is contacted, with the field named.
    for (name, field) in [
        ("by-ip", "spec.prometheus.address"),
        (
            "kafka-by-ip",
            "spec.scaling.triggers[0].kafkaLag.bootstrapServers",
        ),
    ] {
        let (_, reason, message) = eventually(WAIT, &format!("{name} refused"), || async {
            ready(&api, name).await.filter(|(s, _, _)| s == "False")
        })
        .await;
        assert_eq!(reason, "AddressDenied", "{name}: {message}");
        assert!(
            message.starts_with(&format!("{field}: 127.0.0.2:{by_ip} is refused by the operator's address policy (denied by 127.0.0.2/32)")),
            "{name}: {message}"
        );
    }
    // A name is refused once resolved: the trigger says so.
    for name in ["by-name", "redis-by-name"] {
        let error = eventually(WAIT, &format!("{name}'s trigger refused"), || async {
            trigger_error(&api, name).await
        })
        .await;
        assert!(
            error.contains("refused by the operator's address policy"),
            "{name}: {error}"
        );
        // Named as written: what the name resolved to is not shown.
        assert!(
            !error.contains(&format!("127.0.0.1:{by_name}")),
            "{name}: {error}"
        );
    }
    // The webhook of the stage the rollout entered was refused, not sent.
    eventually(WAIT, "the webhook to be refused", || async {
        (op.metric("liftoff_notifications_failed_total").await >= 1.0).then_some(())
    })
    .await;

    // Evidence the operator had every chance to connect: the 1 s triggers are reconciled again
    // and again. Still no connection on either listener.
    op.completes_reconciles(20).await;
    assert_eq!(
        ip_connections.load(Ordering::SeqCst),
        0,
        "connections to 127.0.0.2"
    );
    assert_eq!(
        name_connections.load(Ordering::SeqCst),
        0,
        "connections to localhost"
    );
}
