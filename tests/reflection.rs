//! A policy must not turn the operator into a proxy: whatever a server named in a policy sends
//! back never becomes readable through that policy. Every source and sink is pointed at a local
//! server that answers with a marker string (as a cloud metadata service would answer with its
//! secrets), in every way it can fail: an HTTP body that is not Prometheus's, an HTTP error
//! with a body, Prometheus-shaped JSON carrying the marker where text is expected, a redirect,
//! and raw bytes where Redis, PostgreSQL and Kafka expect their protocols. Each failure must be
//! recorded (the path ran), and the marker must appear in no status, condition, Event or metric.

mod support;

use std::time::Duration;

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Event};
use kube::{Api, api::ListParams};
use liftoff::crd::LaunchPolicy;
use serde_json::{Value, json};
use support::{
    Operator, control_plane, eventually,
    objects::{create, policy, workload},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

const MARKER: &str = "i-0SECRETSECRET-AKIAEXAMPLESECRET";
const WAIT: Duration = Duration::from_secs(60);

/// Answers every connection with the marker: an HTTP response chosen by the request's path for
/// HTTP clients, raw bytes for anything else. Returns its port.
async fn marker_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let read = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buf));
                let n = read.await.ok().and_then(Result::ok).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let reply = match request.split_whitespace().nth(1) {
                    Some(path) if request.starts_with("GET ") || request.starts_with("POST ") => {
                        http_reply(path, port)
                    }
                    _ => format!("-{MARKER}\r\n+{MARKER}\r\n{MARKER}"),
                };
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    port
}

fn http_reply(path: &str, port: u16) -> String {
    let vector = |value: &str| {
        json!({"status": "success", "data": {"resultType": "vector",
               "result": [{"metric": {}, "value": [1, value]}]}})
        .to_string()
    };
    let (status, extra, body) = match path.split('/').nth(1).unwrap_or_default() {
        "plain" => ("200 OK", String::new(), format!("instance-id: {MARKER}")),
        "error" => (
            "500 Internal Server Error",
            String::new(),
            MARKER.to_string(),
        ),
        "rejected" => (
            "400 Bad Request",
            String::new(),
            json!({"status": "error", "errorType": MARKER, "error": MARKER}).to_string(),
        ),
        "rejected-ok" => (
            "200 OK",
            String::new(),
            json!({"status": "error", "errorType": "bad_data", "error": MARKER}).to_string(),
        ),
        "value" => ("200 OK", String::new(), vector(MARKER)),
        "type" => (
            "200 OK",
            String::new(),
            json!({"status": "success", "data": {"resultType": MARKER, "result": []}}).to_string(),
        ),
        "redirect" => (
            "302 Found",
            format!("Location: http://127.0.0.1:{port}/plain/{MARKER}\r\n"),
            MARKER.to_string(),
        ),
        _ => ("404 Not Found", String::new(), MARKER.to_string()),
    };
    format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn cpu_policy(port: u16, prefix: &str) -> Value {
    json!({
        "prometheus": {"address": format!("http://127.0.0.1:{port}/{prefix}"), "timeout": "2s"},
        "scaling": {"interval": "2s", "triggers": [{
            "name": "api-cpu", "cpu": {"query": "avg(cpu)"},
            "scaleTargetRef": {"kind": "Deployment", "name": "api"},
            "replicas": {"min": 1, "max": 4}
        }]}
    })
}

#[tokio::test]
async fn no_answer_of_a_server_named_in_a_policy_is_readable_through_it() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("reflection").await.unwrap();
    let port = marker_server().await;
    create::<Deployment>(&client, &ns, workload("Deployment", "api", 2)).await;
    let secret = |name: &str, url: String| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
               "stringData": {"url": url}})
    };
    let address = format!("127.0.0.1:{port}");
    for (name, url) in [
        ("redis", format!("redis://{address}")),
        ("postgres", format!("postgres://app:pw@{address}/emr")),
        ("webhook", format!("http://{address}/error")),
    ] {
        create::<k8s_openapi::api::core::v1::Secret>(&client, &ns, secret(name, url)).await;
    }
    let op = Operator::start(&cp, &[]).await;

    let prometheus_paths = [
        "plain",
        "error",
        "rejected",
        "rejected-ok",
        "value",
        "type",
        "redirect",
    ];
    for prefix in prometheus_paths {
        let value = policy(&format!("prom-{prefix}"), cpu_policy(port, prefix));
        create::<LaunchPolicy>(&client, &ns, value).await;
    }
    let others = json!({
        "notifications": [{"webhookSecretRef": {"name": "webhook", "key": "url"}}],
        "scaling": {"interval": "2s", "triggers": [
            {"name": "cache", "redisMemory": {"addressSecretRef": {"name": "redis", "key": "url"}}},
            {"name": "db", "databaseConnections": {
                "postgres": {"connectionSecretRef": {"name": "postgres", "key": "url"}}},
             "rdsResize": {"dbInstanceIdentifier": "emr", "classLadder": ["small", "large"]}},
            {"name": "lag", "kafkaLag": {
                "bootstrapServers": address, "topic": "orders", "consumerGroup": "billing"},
             "partitions": {"max": 6}}
        ]},
        "prometheus": {"address": format!("http://127.0.0.1:{port}/plain"), "timeout": "2s"},
        "rollout": {
            // The triggers above all fail, which would keep the canary from starting; this
            // test needs the stage entered so that its gate and its webhook run.
            "holdWhileScaling": false,
            "stages": [{"name": "canary", "users": 100}, {"name": "all", "users": "All"}],
            "gates": {"interval": "2s", "checks": [{"name": "errors", "query": "errors", "max": 1}]}
        }
    });
    create::<LaunchPolicy>(&client, &ns, policy("others", others)).await;

    // Every path ran: each trigger reports its source failed, and the gate has no value.
    let api: Api<LaunchPolicy> = Api::namespaced(client.clone(), &ns);
    eventually(
        WAIT,
        "every trigger and gate to report its failure",
        || async {
            let policies = api.list(&ListParams::default()).await.ok()?;
            let all_failed = policies.items.iter().all(|p| {
                let Some(status) = &p.status else {
                    return false;
                };
                let wanted = p.spec.scaling.as_ref().map_or(0, |s| s.triggers.len());
                let triggers = status.triggers.len() == wanted
                    && status.triggers.iter().all(|t| t.error.is_some());
                let gates = match (&p.spec.rollout, &status.rollout) {
                    (None, _) => true,
                    (Some(_), Some(r)) => {
                        !r.state.gates.is_empty() && r.state.gates.iter().all(|g| g.error.is_some())
                    }
                    (Some(_), None) => false,
                };
                triggers && gates
            });
            (policies.items.len() == prometheus_paths.len() + 1 && all_failed).then_some(())
        },
    )
    .await;
    // …and the webhook was tried (a delivery that failed every retry is counted).
    eventually(WAIT, "the webhook to be given up on", || async {
        (op.metric("liftoff_notifications_failed_total").await >= 1.0).then_some(())
    })
    .await;

    let policies = serde_json::to_string(&api.list(&ListParams::default()).await.unwrap()).unwrap();
    let events = Api::<Event>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    let events = serde_json::to_string(&events).unwrap();
    let metrics = op.metrics().await;
    for (place, text) in [
        ("status", &policies),
        ("Events", &events),
        ("metrics", &metrics),
    ] {
        assert!(
            !text.contains(MARKER) && !text.contains("SECRETSECRET"),
            "the server's answer is readable in {place}:\n{text}"
        );
    }
    // The failures are still told apart by class.
    for class in [
        "answered HTTP 500: a server error",
        "answered HTTP 302: a redirect",
        "is not a Prometheus query API: the answer is not JSON",
        "Prometheus rejected the query (bad_data)",
        "a sample value is not a number",
    ] {
        assert!(policies.contains(class), "no {class:?} in\n{policies}");
    }
}
