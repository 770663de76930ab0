//! The operator's client of the apiserver: kube's, with a bound on the requests awaiting an
//! answer at once.
//!
//! kube's client sends each request in flight on its own HTTP/1.1 connection and keeps every
//! connection it ever opened in its pool (the pool has no idle timer, so an idle connection is
//! closed only by the server). A start over 2,000 stored copies of the example, up to
//! `--concurrency` reconciles reading and writing at once, left ~485 open with their buffers
//! and TLS state, ~18 MiB; one over 10,000 left 255, and 72 with the bound
//! (docs/benchmarks.md). Bounding the requests in flight bounds the connections, and the burst
//! the apiserver sees, to what one apiserver serves at once anyway; the others wait in line,
//! first come first served.
//!
//! A request holds its turn until the answer's headers arrive: a watch gives it back when its
//! stream begins, and a long answer's body is read without one.

use tower::limit::ConcurrencyLimitLayer;

/// `--api-requests-in-flight`'s default: twice the writes the operator sends at once
/// ([`crate::controller::events::WRITES_IN_FLIGHT`]), so that reads are not held behind writes.
pub const DEFAULT_REQUESTS_IN_FLIGHT: u16 = 64;

/// kube's client for `config`, sending at most `in_flight` requests at a time.
pub fn client(config: kube::Config, in_flight: u16) -> kube::Result<kube::Client> {
    let limit = ConcurrencyLimitLayer::new(usize::from(in_flight.max(1)));
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&limit)
        .build())
}
