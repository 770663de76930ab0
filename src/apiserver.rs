//! The operator's client of the apiserver: kube's, with a bound on the requests awaiting an
//! answer at once.
//!
//! kube's client sends each request in flight on its own HTTP/1.1 connection and keeps every
//! connection it opened in its pool until the apiserver closes it (after 90 s idle; the pool
//! has no idle timer of its own). A start over 2,000 stored copies of the example, up to
//! `--concurrency` reconciles reading and writing at once, left ~485 open with their buffers
//! and TLS state, ~18 MiB; one over 10,000 left 255, and 72 with the bound
//! (docs/benchmarks.md). Bounding the requests in flight bounds the connections, and the burst
//! the apiserver sees, to what one apiserver serves at once anyway; the others wait in line,
//! first come first served.
//!
//! A request holds its turn until the answer's headers arrive: a watch gives it back when its
//! stream begins, and a long answer's body is read without one (its connection stays busy
//! meanwhile, so the connections can exceed the bound by the bodies being read).

use kube::client::{ClientBuilder, retry::RetryPolicy};
use tower::{buffer::BufferLayer, limit::ConcurrencyLimitLayer, retry::RetryLayer};

/// `--api-requests-in-flight`'s default: twice the writes the operator sends at once
/// ([`crate::controller::events::WRITES_IN_FLIGHT`]), so that reads are not held behind writes.
pub const DEFAULT_REQUESTS_IN_FLIGHT: u16 = 64;

/// Requests waiting for a turn, beyond which callers wait to join the line (kube's own client
/// queue is as long).
const LINE: usize = 1024;

/// kube's client for `config`, sending at most `in_flight` requests at a time.
///
/// kube retries an answer of 429, 503 or 504 inside its stack, up to 15 times with a backoff of
/// up to minutes; a request waiting out its backoff there would keep its turn, and a few dozen
/// reads of an aggregated API that is down (the metrics API without metrics-server) would stall
/// every other request. So kube's retry is turned off inside, and the same retry wraps the bound
/// from outside: a request gives its turn back while it waits to retry.
pub fn client(mut config: kube::Config, in_flight: u16) -> kube::Result<kube::Client> {
    let retry = std::mem::replace(&mut config.default_retry, false);
    let bounded = ClientBuilder::try_from(config)?
        .with_layer(&ConcurrencyLimitLayer::new(usize::from(in_flight.max(1))))
        // The retry clones the service it wraps; the line makes the bounded stack cloneable.
        .with_layer(&BufferLayer::new(LINE));
    Ok(match retry {
        true => bounded
            .with_layer(&RetryLayer::new(RetryPolicy::server_retry()))
            .build(),
        false => bounded.build(),
    })
}
