//! `sources::prometheus` against a real Prometheus scraping a `MetricsExporter`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use liftoff::sources::prometheus::{Client, QueryError};
use liftoff_testenv::{MetricsExporter, Prometheus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_secs(5);

/// An exporter with `liftoff_test_cpu{pod="a"} 73.5` and `{pod="b"} 20`, scraped every second,
/// and a Prometheus that already holds both series.
async fn prometheus_with_two_series() -> (MetricsExporter, Prometheus, Client) {
    let exporter = MetricsExporter::start().await.expect("exporter starts");
    exporter.set("liftoff_test_cpu", &[("pod", "a")], 73.5);
    exporter.set("liftoff_test_cpu", &[("pod", "b")], 20.0);
    let prom = Prometheus::start(&[exporter.target()], Duration::from_secs(1))
        .await
        .expect("prometheus starts");
    prom.wait_for_query("count(liftoff_test_cpu) == 2")
        .await
        .expect("both series scraped");
    let client = Client::new(&prom.url(), None, TIMEOUT).expect("valid address");
    (exporter, prom, client)
}

#[tokio::test]
async fn prometheus_query_gives_the_single_series_value_and_names_each_bad_shape() {
    let (_exporter, prom, client) = prometheus_with_two_series().await;
    assert_eq!(client.address(), prom.url());

    let one = client.query_value(r#"liftoff_test_cpu{pod="a"}"#).await;
    assert_eq!(one, Ok(73.5));
    assert_eq!(client.query_value("sum(liftoff_test_cpu)").await, Ok(93.5));
    let scalar = client.query_value("scalar(max(liftoff_test_cpu))").await;
    assert_eq!(scalar, Ok(73.5));

    let empty = client.query_value(r#"liftoff_test_cpu{pod="gone"}"#).await;
    assert_eq!(empty, Err(QueryError::NoSeries));
    assert_eq!(empty.unwrap_err().to_string(), "query returned no series");

    let many = client.query_value("liftoff_test_cpu").await.unwrap_err();
    assert_eq!(many, QueryError::ManySeries { count: 2 });
    assert_eq!(
        many.to_string(),
        "query returned 2 series; aggregate it to one, e.g. with sum() or max()"
    );

    let nan = client.query_value("sum(liftoff_test_cpu) * 0 / 0").await;
    assert_eq!(nan, Err(QueryError::NotFinite { value: "NaN" }));
    let inf = client.query_value("sum(liftoff_test_cpu) / 0").await;
    assert_eq!(inf, Err(QueryError::NotFinite { value: "+Inf" }));

    let matrix = client
        .query_value("liftoff_test_cpu[1m]")
        .await
        .unwrap_err();
    assert!(
        matches!(&matrix, QueryError::UnsupportedResultType { result_type } if *result_type == "matrix"),
        "{matrix:?}"
    );

    let syntax = client.query_value("sum(").await.unwrap_err();
    let QueryError::Http { status, .. } = &syntax else {
        panic!("{syntax:?}")
    };
    assert_eq!(*status, 400);
    // Told by its class; Prometheus's own words stay out of status (docs/security.md).
    assert_eq!(
        syntax.to_string(),
        format!(
            "Prometheus at {} answered HTTP 400: a bad request, usually a query that is not valid PromQL",
            prom.url()
        )
    );
}

#[tokio::test]
async fn prometheus_stopped_is_a_transport_error_not_zero_and_recovery_is_automatic() {
    let (_exporter, mut prom, client) = prometheus_with_two_series().await;
    let query = r#"liftoff_test_cpu{pod="a"}"#;
    assert_eq!(client.query_value(query).await, Ok(73.5));

    prom.stop().await;
    let down = client.query_value(query).await.unwrap_err();
    assert!(
        matches!(&down, QueryError::Transport { address, .. } if *address == prom.url()),
        "{down:?}"
    );
    let text = down.to_string();
    assert!(
        text.starts_with(&format!("could not reach Prometheus at {}: ", prom.url())),
        "{text}"
    );
    assert!(text.to_lowercase().contains("connection refused"), "{text}");

    // The same client (same pooled connections) works again once the server is back.
    prom.restart().await.expect("prometheus restarts");
    let value = super::eventually(Duration::from_secs(30), "value after restart", || async {
        client.query_value(query).await.ok()
    })
    .await;
    assert_eq!(value, 73.5);
}

#[tokio::test]
async fn server_that_never_answers_is_a_timeout_error() {
    // A listener that accepts and then says nothing, like a wedged server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let client = Client::new(&address, None, Duration::from_millis(500)).unwrap();
    let err = client.query_value("up").await.unwrap_err();
    assert_eq!(
        err,
        QueryError::Timeout {
            address: address.clone(),
            timeout: Duration::from_millis(500)
        }
    );
    assert_eq!(
        err.to_string(),
        format!("Prometheus at {address} did not answer within 500ms")
    );
    held.abort();
}

#[tokio::test]
async fn https_client_works_next_to_kube_without_a_crypto_provider_panic() {
    // kube's client and reqwest both use rustls with `ring`: a TLS connection attempt must not
    // panic choosing a process-wide provider. Nothing listens on port 1: a transport error.
    let kube_config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
    let _kube = kube::Client::try_from(kube_config).expect("kube client with rustls builds");
    let client = Client::new("https://user:pw@127.0.0.1:1", None, TIMEOUT).unwrap();
    let err = client.query_value("up").await.unwrap_err();
    assert!(
        matches!(&err, QueryError::Transport { address, .. } if address == "https://127.0.0.1:1"),
        "{err:?}"
    );
    assert!(!err.to_string().contains("pw"), "{err}");
}

/// A server that answers every query after `delay`, counting how many it holds at once.
async fn slow_server(delay: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen = most.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (now, most) = (now.clone(), most.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let held = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(held, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                now.fetch_sub(1, Ordering::SeqCst);
                let body = r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"1"]}}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (address, seen)
}

#[tokio::test]
async fn queries_beyond_the_bound_wait_their_turn_without_timing_out() {
    // 8 queries, 2 at a time, 300 ms each: the last ones finish after 1.2 s. Each request takes
    // 300 ms, within the 1 s timeout; only the wait for a turn is longer, and it does not count.
    let (address, most) = slow_server(Duration::from_millis(300)).await;
    let limit = Arc::new(tokio::sync::Semaphore::new(2));
    let client = Client::new(&address, None, Duration::from_secs(1))
        .unwrap()
        .with_limit(limit.clone());
    // A second client of the same server (another namespace) shares the bound.
    let other = Client::new(&address, None, Duration::from_secs(1))
        .unwrap()
        .with_limit(limit);
    let started = std::time::Instant::now();
    let results = futures::future::join_all((0..8).map(|i| {
        let c = if i % 2 == 0 { &client } else { &other };
        c.query_value("up")
    }))
    .await;
    assert!(results.iter().all(|r| *r == Ok(1.0)), "{results:?}");
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "never more than the bound at once"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1100),
        "{:?}",
        started.elapsed()
    );
}
