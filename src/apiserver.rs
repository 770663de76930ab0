//! The operator's client of the apiserver: kube's stack over a connection pool that lets idle
//! connections go, with a bound on the requests awaiting an answer at once.
//!
//! kube's client sends each request in flight on its own HTTP/1.1 connection. The pool kube
//! builds keeps every connection it ever opened until the apiserver closes it (after 90 s idle;
//! that pool has no idle timer): a start over 2,000 stored copies of the example, up to
//! `--concurrency` reconciles reading and writing at once, left ~485 open with their buffers and
//! TLS state, ~18 MiB; one over 1,000 one-trigger policies left 38 (~1.5 MiB) for the 90 s after
//! it (docs/benchmarks.md). So the pool is built here, with kube's own TLS, authentication,
//! headers, timeouts and failure logging, and closes a connection 1–2 × [`IDLE_FOR`] after its
//! last use (the pool looks for idle connections once per [`IDLE_FOR`]).
//!
//! Bounding the requests in flight bounds the connections in use, and the burst the apiserver
//! sees, to what one apiserver serves at once anyway; the others wait in line, first come first
//! served. A request holds its turn until the answer's headers arrive: a watch gives it back
//! when its stream begins, and a long answer's body is read without one (its connection stays
//! busy meanwhile, so the connections can exceed the bound by the bodies being read).

use std::time::Duration;

use ::http::Request;
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::{self, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ClientBuilder, ConfigExt, retry::RetryPolicy};
use tower::{BoxError, ServiceBuilder};
use tower::{buffer::BufferLayer, limit::ConcurrencyLimitLayer, retry::RetryLayer};
use tower_http::classify::{ServerErrorsAsFailures, ServerErrorsFailureClass, SharedClassifier};
use tower_http::trace::TraceLayer;
use tracing::Span;

/// `--api-requests-in-flight`'s default: twice the writes the operator sends at once
/// ([`crate::controller::events::WRITES_IN_FLIGHT`]), so that reads are not held behind writes.
pub const DEFAULT_REQUESTS_IN_FLIGHT: u16 = 64;

/// How long an idle connection is kept: a burst's connections are reused for as long as it
/// lasts, and closed 15–30 s after it (the apiserver would close them after 90 s).
const IDLE_FOR: Duration = Duration::from_secs(15);

/// Requests waiting for a turn, beyond which callers wait to join the line (kube's own client
/// queue is as long).
const LINE: usize = 1024;

/// kube's client for `config`, sending at most `in_flight` requests at a time.
///
/// kube retries an answer of 429, 503 or 504 inside its stack, up to 15 times with a backoff of
/// up to minutes; a request waiting out its backoff there would keep its turn, and a few dozen
/// reads of an aggregated API that is down (the metrics API without metrics-server) would stall
/// every other request. So the retry wraps the bound from outside: a request gives its turn
/// back while it waits to retry.
pub fn client(config: kube::Config, in_flight: u16) -> kube::Result<kube::Client> {
    if let Some(proxy_url) = config.proxy_url.clone() {
        // Built without kube's proxy features, as kube's own builder would refuse it.
        return Err(kube::Error::ProxyProtocolUnsupported {
            proxy_url: Box::new(proxy_url),
        });
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let mut connector = TimeoutConnector::new(config.rustls_https_connector_with_connector(http)?);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let in_flight = usize::from(in_flight.max(1));
    let pool = legacy::Client::builder(TokioExecutor::new())
        // As many as may be in use at once: a connection returned past a smaller cap would be
        // closed while the next request opens a new one (a TLS handshake per request).
        .pool_max_idle_per_host(in_flight)
        .pool_idle_timeout(IDLE_FOR)
        .pool_timer(TokioTimer::new())
        .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .layer(failures_logged())
        .map_err(BoxError::from)
        .service(pool);
    let bounded = ClientBuilder::new(service, config.default_namespace.clone())
        .with_layer(&ConcurrencyLimitLayer::new(in_flight))
        // The retry clones the service it wraps; the line makes the bounded stack cloneable.
        .with_layer(&BufferLayer::new(LINE));
    Ok(match config.default_retry {
        true => bounded
            .with_layer(&RetryLayer::new(RetryPolicy::server_retry()))
            .build(),
        false => bounded.build(),
    })
}

/// Every answer of 5xx and every failed connection logged at `error`, as kube's own stack does
/// (its callers see the error too; the log says which request and when, retries included).
fn failures_logged() -> FailuresLogged {
    TraceLayer::new_for_http()
        .make_span_with(span as fn(&Request<Body>) -> Span)
        .on_request(())
        .on_response(())
        .on_body_chunk(())
        .on_eos(())
        .on_failure(log_failure as fn(ServerErrorsFailureClass, Duration, &Span))
}

type FailuresLogged = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request<Body>) -> Span,
    (),
    (),
    (),
    (),
    fn(ServerErrorsFailureClass, Duration, &Span),
>;

/// The request a failure is logged in: its method and path (no query string, no header). At
/// `error`, so that it exists whenever the failure's line is logged, under any filter.
fn span(request: &Request<Body>) -> Span {
    tracing::error_span!(
        "apiserver",
        method = %request.method(),
        path = request.uri().path()
    )
}

fn log_failure(failure: ServerErrorsFailureClass, latency: Duration, _: &Span) {
    tracing::error!(%failure, ?latency, "apiserver request failed");
}
