//! Prometheus instant queries: one PromQL expression in, one number out.
//!
//! [`Client::query_value`] runs `GET <address>/api/v1/query?query=…` and accepts exactly two
//! shapes of answer: a **scalar**, or an **instant vector with exactly one series**. Everything
//! else is a distinct [`QueryError`] whose text tells the user what to change:
//!
//! | answer | error text (abridged) |
//! | --- | --- |
//! | no series (e.g. the metric is not scraped yet) | `query returned no series` |
//! | N > 1 series | `query returned N series; aggregate it to one, e.g. with sum() or max()` |
//! | `NaN`, `+Inf`, `-Inf` (e.g. a division by zero) | `query returned NaN, …` |
//! | a range vector (matrix) or a string | `query returned a matrix result; …` |
//! | HTTP 3xx/4xx/5xx | `Prometheus at … answered HTTP 400: a bad request, usually …` |
//! | `"status":"error"` with HTTP 2xx | `Prometheus rejected the query (bad_data): <hint>` |
//! | body that is not a query result | `the server at … is not a Prometheus query API: …` |
//! | connection refused, DNS, TLS | `could not reach Prometheus at …: <class>` |
//!
//! No error quotes what the server sent (a policy's address can point anywhere the operator
//! reaches; its status must not become a way to read other servers): the class of the failure
//! is in the text, and a bounded excerpt of the answer in the operator's debug log. Redirects
//! are not followed.
//! | no answer within the timeout | `Prometheus at … did not answer within …` |
//!
//! Authentication is optional: a bearer token or basic auth ([`Auth`]), typically read from a
//! Secret by the controller. Credentials in the address itself (`https://user:pass@host`) are
//! taken as basic auth and removed from the URL. Neither ever appears in an error text or in
//! `Debug` output; [`Client::address`] is the address without credentials or query string.
//!
//! TLS uses rustls with the `ring` provider (the one kube uses) and trusts both the system's CA
//! bundle and the Mozilla roots, so an in-cluster Prometheus behind a private CA works when its
//! CA is in the operator image's `/etc/ssl/certs`.
//!
//! At most [`MAX_QUERIES_IN_FLIGHT`] queries run at once per client ([`Client::with_limit`] shares
//! one bound between clients of the same server); the rest wait their turn, and the wait does not
//! count against the request's timeout, which measures the server. A query that waits a whole
//! timeout for its turn fails as `Busy` (the server is too slow for the load), so nothing waits
//! without end. Without it, an operator starting over
//! 10,000 policies sent 10,000 queries at once, Prometheus could not answer them all within the
//! timeout, and thousands of policies reported their source as failed.
//!
//! [`parse_response`] is the pure half (status code + body → value), unit-tested on JSON strings.

use std::{fmt, sync::Arc, time::Duration};

use reqwest::Url;
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::{
    address::{AddressPolicy, Destination, PolicyResolver},
    coalesce::{self, Coalescer},
    error_chain, redact_url,
};

/// How the client authenticates to Prometheus (or to the proxy in front of it).
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic …`.
    Basic { username: String, password: String },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// Why a [`Client`] could not be built (a configuration problem, not an outage).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Prometheus address {address:?} is not a valid URL ({reason})")]
    InvalidAddress { address: String, reason: String },
    #[error("Prometheus address {address:?} must start with http:// or https://")]
    UnsupportedScheme { address: String },
    #[error("could not set up the HTTP client for Prometheus: {0}")]
    HttpClient(String),
    #[error(transparent)]
    Denied(#[from] super::address::Denied),
}

/// Why a query gave no usable value. Each variant's text is one sentence for `status`.
///
/// The text describes a failure by its class and never quotes the server's answer: an address
/// in a policy can point anywhere the operator reaches, and whatever a server sends back must not
/// become readable through the policy's status, Events or messages (see `docs/security.md`).
/// The operator's debug log keeps a bounded excerpt.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("could not reach Prometheus at {address}: {class}")]
    Transport {
        address: String,
        class: &'static str,
    },
    #[error("Prometheus at {address} did not answer within {timeout:?}")]
    Timeout { address: String, timeout: Duration },
    #[error(
        "Prometheus at {address} is busy: the query waited {timeout:?} for one of Liftoff's {MAX_QUERIES_IN_FLIGHT} queries in flight to it"
    )]
    Busy { address: String, timeout: Duration },
    #[error("Prometheus at {address} answered HTTP {status}: {}", http_meaning(*status))]
    Http { address: String, status: u16 },
    #[error("the server at {address} is not a Prometheus query API: {reason}")]
    InvalidBody {
        address: String,
        reason: &'static str,
    },
    #[error("Prometheus rejected the query ({}): {}", error_type.as_str(), error_type.hint())]
    Rejected { error_type: ApiErrorType },
    #[error("query returned no series")]
    NoSeries,
    #[error("query returned {count} series; aggregate it to one, e.g. with sum() or max()")]
    ManySeries { count: usize },
    #[error(
        "query returned {value}, not a number a threshold can be compared with (check for a division by zero)"
    )]
    NotFinite { value: &'static str },
    #[error(
        "query returned a {result_type} result; use an expression that gives an instant vector or a scalar (no [5m] range at the top level)"
    )]
    UnsupportedResultType { result_type: &'static str },
    #[error(
        "query returned a native histogram; reduce it to a number, e.g. with histogram_quantile()"
    )]
    Histogram,
}

/// Prometheus's `errorType`, from its fixed set (anything else is `Unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorType {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Internal,
    Unavailable,
    NotFound,
    NotAcceptable,
    Unknown,
}

impl ApiErrorType {
    fn parse(text: Option<&str>) -> ApiErrorType {
        match text {
            Some("bad_data") => ApiErrorType::BadData,
            Some("execution") => ApiErrorType::Execution,
            Some("timeout") => ApiErrorType::Timeout,
            Some("canceled") => ApiErrorType::Canceled,
            Some("internal") => ApiErrorType::Internal,
            Some("unavailable") => ApiErrorType::Unavailable,
            Some("not_found") => ApiErrorType::NotFound,
            Some("not_acceptable") => ApiErrorType::NotAcceptable,
            _ => ApiErrorType::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ApiErrorType::BadData => "bad_data",
            ApiErrorType::Execution => "execution",
            ApiErrorType::Timeout => "timeout",
            ApiErrorType::Canceled => "canceled",
            ApiErrorType::Internal => "internal",
            ApiErrorType::Unavailable => "unavailable",
            ApiErrorType::NotFound => "not_found",
            ApiErrorType::NotAcceptable => "not_acceptable",
            ApiErrorType::Unknown => "unknown",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            ApiErrorType::BadData => {
                "the query is not valid PromQL; run it in the Prometheus UI to see where"
            }
            ApiErrorType::Execution => "the query failed while Prometheus evaluated it",
            ApiErrorType::Timeout => "Prometheus gave up on the query (its --query.timeout)",
            ApiErrorType::Canceled => "Prometheus canceled the query",
            ApiErrorType::Internal => "Prometheus had an internal error",
            ApiErrorType::Unavailable => "Prometheus is not ready to answer queries",
            ApiErrorType::NotFound | ApiErrorType::NotAcceptable => {
                "the query API refused the request"
            }
            ApiErrorType::Unknown => "the answer gives no reason Liftoff knows",
        }
    }
}

/// What an HTTP status says about a Prometheus query, without the server's own words.
fn http_meaning(status: u16) -> &'static str {
    match status {
        300..=399 => "a redirect, which Liftoff does not follow: set the address it points to",
        400 => "a bad request, usually a query that is not valid PromQL",
        401 | 403 => "not authorized: check spec.prometheus.authSecretRef",
        404 => "no query API at this address (check its path prefix)",
        422 => "the query could not be evaluated",
        429 => "too many requests",
        500..=599 => "a server error",
        _ => "an unexpected status",
    }
}

/// Queries one Prometheus server runs at once for Liftoff (Prometheus itself evaluates 20 at a
/// time by default, `--query.max-concurrency`, and queues the rest).
pub const MAX_QUERIES_IN_FLIGHT: usize = 64;

/// A Prometheus HTTP API client for one server. Cheap to clone (connections are pooled and
/// shared between clones, and so is the bound on queries in flight).
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    query_url: Url,
    address: String,
    auth: Option<Auth>,
    timeout: Duration,
    in_flight: Arc<Semaphore>,
    /// Identical queries in flight and recent answers, shared with every client of the pool.
    shared: Arc<Coalescer>,
}

impl Client {
    /// A client for `address` (`http(s)://host:port`, optionally with a path prefix such as
    /// `/prometheus`). `timeout` bounds each query end to end (connect, send, wait, read).
    /// Nothing is contacted here. Any address may be contacted: see [`Client::with_policy`].
    pub fn new(address: &str, auth: Option<Auth>, timeout: Duration) -> Result<Client, Error> {
        Client::with_policy(address, auth, timeout, &AddressPolicy::allow_all())
    }

    /// [`Client::new`] under the operator's address policy: an address written as an IP is
    /// refused here, and a name on every connection, once resolved.
    pub fn with_policy(
        address: &str,
        auth: Option<Auth>,
        timeout: Duration,
        policy: &AddressPolicy,
    ) -> Result<Client, Error> {
        let shown = redact_url(address.trim());
        let mut url = Url::parse(address.trim()).map_err(|e| Error::InvalidAddress {
            address: shown.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::UnsupportedScheme { address: shown });
        }
        let mut auth = auth;
        if !url.username().is_empty() || url.password().is_some() {
            let username = percent_decode(url.username());
            let password = url.password().map(percent_decode).unwrap_or_default();
            auth = auth.or(Some(Auth::Basic { username, password }));
            // Cannot fail for http(s) URLs, which always have a host.
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        url.set_query(None);
        url.set_fragment(None);
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        policy.check_host(Destination::Prometheus, host, port)?;
        let address = url.as_str().trim_end_matches('/').to_string();
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let query_url = url
            .join("api/v1/query")
            .map_err(|e| Error::InvalidAddress {
                address: shown,
                reason: e.to_string(),
            })?;
        let resolver = PolicyResolver {
            policy: policy.clone(),
            destination: Destination::Prometheus,
        };
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(resolver))
            .redirect(reqwest::redirect::Policy::none())
            // Straight to the address the policy checked, never through an environment proxy
            // (which would see, and resolve, the name instead).
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("liftoff/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::HttpClient(error_chain(&e.without_url())))?;
        Ok(Client {
            http,
            query_url,
            address,
            auth,
            timeout,
            in_flight: Arc::new(Semaphore::new(MAX_QUERIES_IN_FLIGHT)),
            shared: Arc::new(Coalescer::default()),
        })
    }

    /// Shares `in_flight` as the bound on queries running at once, e.g. with every client of the
    /// same server (one per namespace and credentials).
    pub fn with_limit(mut self, in_flight: Arc<Semaphore>) -> Client {
        self.in_flight = in_flight;
        self
    }

    /// Shares `shared` (identical queries in flight, recent answers) with other clients.
    pub fn with_shared(mut self, shared: Arc<Coalescer>) -> Client {
        self.shared = shared;
        self
    }

    /// The server's address without credentials, for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Runs `promql` as an instant query (evaluated "now" by the server) and returns the value
    /// of the scalar or of the single series it yields.
    pub async fn query_value(&self, promql: &str) -> Result<f64, QueryError> {
        let (status, body) = self
            .get(self.query_url.clone(), &[("query", promql)])
            .await?;
        parse_response(status, &body).map_err(|e| self.unusable(e, status, &body))
    }

    /// [`Client::query_value`], answered by an identical query to the same server with the same
    /// credentials that is in flight or was sent at most `reuse` ago, if there is one
    /// (see [`coalesce`](super::coalesce)).
    pub async fn query_shared(&self, promql: &str, reuse: Duration) -> Result<f64, QueryError> {
        let credentials = self.auth.as_ref().map(|a| match a {
            Auth::Bearer(token) => format!("bearer {token}"),
            Auth::Basic { username, password } => format!("basic {username}:{password}"),
        });
        let key = coalesce::key(&self.address, credentials.as_deref(), self.timeout, promql);
        self.shared
            .answer(key, reuse, self.query_value(promql))
            .await
    }

    /// A GET of `url` with `params` and the client's credentials, within one of the turns the
    /// server is given: the answer's HTTP status and body.
    async fn get(&self, url: Url, params: &[(&str, &str)]) -> Result<(u16, String), QueryError> {
        // The wait for a turn is bounded by the timeout too, but not counted in the request's:
        // a slow server makes queued queries report it busy rather than wait without end.
        let _turn = match tokio::time::timeout(self.timeout, self.in_flight.acquire()).await {
            Ok(turn) => turn,
            Err(_) => {
                return Err(QueryError::Busy {
                    address: self.address.clone(),
                    timeout: self.timeout,
                });
            }
        };
        let mut request = self.http.get(url).query(params);
        request = match &self.auth {
            Some(Auth::Bearer(token)) => request.bearer_auth(token),
            Some(Auth::Basic { username, password }) => {
                request.basic_auth(username, Some(password))
            }
            None => request,
        };
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| self.transport(e))?;
        Ok((status, body))
    }

    /// A parse error of an answer, with the server's address filled in.
    fn unusable(&self, e: QueryError, status: u16, body: &str) -> QueryError {
        if matches!(e, QueryError::Http { .. } | QueryError::InvalidBody { .. }) {
            // For the operator's eyes only: the policy's status says what class it was.
            tracing::debug!(address = %self.address, status, body = %quote(body), "unusable answer from Prometheus");
        }
        e.at(&self.address)
    }

    fn transport(&self, err: reqwest::Error) -> QueryError {
        if err.is_timeout() {
            return QueryError::Timeout {
                address: self.address.clone(),
                timeout: self.timeout,
            };
        }
        let err = err.without_url();
        tracing::debug!(address = %self.address, error = %error_chain(&err), "cannot reach Prometheus");
        QueryError::Transport {
            address: self.address.clone(),
            class: super::connect_failure(&err),
        }
    }
}

/// `%40` → `@` etc. in URL userinfo; invalid escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The most of a body quoted in an error.
const BODY_QUOTE_CHARS: usize = 200;

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    value: Option<(serde_json::Value, String)>,
    #[serde(default)]
    histogram: Option<serde::de::IgnoredAny>,
}

/// Turns an `/api/v1/query` answer (HTTP status code and body) into the query's single value.
/// Errors that name the server carry an empty address here; [`Client::query_value`] fills it in.
/// No error quotes the body.
pub fn parse_response(status: u16, body: &str) -> Result<f64, QueryError> {
    if !(200..300).contains(&status) {
        return Err(QueryError::Http {
            address: String::new(),
            status,
        });
    }
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|_| invalid("the answer is not JSON"))?;
    let response: ApiResponse = serde_json::from_value(value)
        .map_err(|_| invalid("the JSON is not a Prometheus API response"))?;
    if response.status != "success" {
        return Err(QueryError::Rejected {
            error_type: ApiErrorType::parse(response.error_type.as_deref()),
        });
    }
    let data = response
        .data
        .ok_or_else(|| invalid("\"data\" is missing"))?;
    match data.result_type.as_str() {
        "scalar" => {
            let (_, value): (serde_json::Value, String) = serde_json::from_value(data.result)
                .map_err(|_| invalid("the scalar result is malformed"))?;
            finite(&value)
        }
        "vector" => {
            let samples: Vec<VectorSample> = serde_json::from_value(data.result)
                .map_err(|_| invalid("the vector result is malformed"))?;
            match samples.as_slice() {
                [] => Err(QueryError::NoSeries),
                [sample] => match (&sample.value, &sample.histogram) {
                    (Some((_, value)), _) => finite(value),
                    (None, Some(_)) => Err(QueryError::Histogram),
                    (None, None) => Err(invalid("the series has no \"value\"")),
                },
                many => Err(QueryError::ManySeries { count: many.len() }),
            }
        }
        "matrix" => Err(QueryError::UnsupportedResultType {
            result_type: "matrix",
        }),
        "string" => Err(QueryError::UnsupportedResultType {
            result_type: "string",
        }),
        _ => Err(invalid("the result type is not one Prometheus has")),
    }
}

/// Parses a sample value as Prometheus spells it and refuses NaN and ±Inf.
fn finite(text: &str) -> Result<f64, QueryError> {
    let value: f64 = text
        .parse()
        .map_err(|_| invalid("a sample value is not a number"))?;
    match value {
        v if v.is_finite() => Ok(v),
        v if v.is_nan() => Err(QueryError::NotFinite { value: "NaN" }),
        v if v > 0.0 => Err(QueryError::NotFinite { value: "+Inf" }),
        _ => Err(QueryError::NotFinite { value: "-Inf" }),
    }
}

fn invalid(reason: &'static str) -> QueryError {
    QueryError::InvalidBody {
        address: String::new(),
        reason,
    }
}

/// `body` shortened to a quotable length, on one line.
fn quote(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut chars = one_line.chars();
    let head: String = chars.by_ref().take(BODY_QUOTE_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

impl QueryError {
    /// Fills in the server address of errors produced by [`parse_response`].
    fn at(self, server: &str) -> QueryError {
        match self {
            QueryError::Http { status, .. } => QueryError::Http {
                address: server.to_string(),
                status,
            },
            QueryError::InvalidBody { reason, .. } => QueryError::InvalidBody {
                address: server.to_string(),
                reason,
            },
            other => other,
        }
    }
}

#[path = "prometheus_range.rs"]
pub mod range;

#[cfg(test)]
#[path = "prometheus_tests.rs"]
mod tests;
