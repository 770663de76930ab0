//! Metric sources: the readers behind the scaling triggers.
//!
//! Each source reads one number from a real system and returns it, or a typed error saying what
//! failed. A source never turns a failure into a made-up value (no "0 because Prometheus was
//! down"): the engine treats an error as *unknown input* and takes no action in either direction,
//! and the controller shows the error's text in `status.triggers[].error`.
//!
//! | module | reads | value |
//! | --- | --- | --- |
//! | [`prometheus`] | an instant PromQL query (`/api/v1/query`) | the single series' value |
//! | [`kafka`] | committed offsets of a consumer group vs. the partitions' watermarks | total lag, per partition |
//! | [`postgres`] | `pg_stat_activity` | client connections |
//! | [`redis`] | `INFO memory` | `used_memory` as % of `maxmemory` |
//! | [`metrics_api`] | `metrics.k8s.io/v1beta1` PodMetrics | CPU usage as % of requests, over ready pods |
//!
//! Error texts are written for the platform engineer reading `kubectl describe lp`: one sentence
//! naming what failed and where. They never carry secret material: passwords, tokens and Kafka
//! client settings are kept out, and URLs are printed through [`redact_url`]. Nor do they carry
//! what a server sent: a failure is described by its class (see [`connect_failure`]), since a
//! policy's address can point at any server the operator reaches. Which servers those may be is
//! the operator's [`address`] policy.

pub mod address;
pub mod coalesce;
pub mod kafka;
pub mod metrics_api;
pub mod postgres;
pub mod prometheus;
pub mod redis;
mod turns;

/// `url` with its credentials hidden, for error messages and logs: the userinfo (`user:pass@`)
/// becomes `***@` and a query string becomes `?***`. Works on strings that do not parse as URLs
/// too, so a malformed address can be quoted safely.
///
/// ```
/// use liftoff::sources::redact_url;
/// assert_eq!(redact_url("postgres://app:s3cret@db:5432/emr"), "postgres://***@db:5432/emr");
/// assert_eq!(redact_url("http://prom:9090/api?token=abc"), "http://prom:9090/api?***");
/// assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
/// ```
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    let tail = match tail.find('?') {
        Some(q) => format!("{}?***", &tail[..q]),
        None => tail.to_string(),
    };
    format!("{scheme}{host}{tail}")
}

/// `host:port` of a URL, for messages that must not show the rest (user, password, database).
/// Falls back to the redacted URL when it does not parse.
pub(crate) fn host_port(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) if u.host_str().is_some() => {
            let host = u.host_str().unwrap_or_default();
            match u.port_or_known_default() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            }
        }
        _ => redact_url(url),
    }
}

/// The text of `err` and of every error it wraps, joined by `": "`, skipping a wrapped error
/// whose text the previous one already contains.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text = format!("{text}: {inner_text}");
        }
        source = inner.source();
    }
    text
}

/// The class of a failure to reach a server, for status and Events: never the error's own
/// text, which can carry what the server sent (a TLS certificate's names, a protocol greeting).
/// The full chain belongs in the operator's debug log.
pub(crate) fn connect_failure(err: &(dyn std::error::Error + 'static)) -> &'static str {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut chain = String::new();
    while let Some(e) = source {
        if e.downcast_ref::<address::Refusal>().is_some()
            || e.downcast_ref::<address::Denied>().is_some()
        {
            return "the address is refused by the operator's address policy";
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused => return "connection refused",
                ConnectionReset | ConnectionAborted | BrokenPipe => {
                    return "the connection was closed by the server";
                }
                TimedOut => return "the connection timed out",
                HostUnreachable | NetworkUnreachable => return "the host is unreachable",
                _ => {}
            }
        }
        chain.push_str(&e.to_string().to_lowercase());
        chain.push(' ');
        source = e.source();
    }
    let has = |words: &[&str]| words.iter().any(|w| chain.contains(w));
    if has(&["operator's address policy"]) {
        "the address is refused by the operator's address policy"
    } else if has(&[
        "dns error",
        "failed to lookup",
        "name or service not known",
        "no such host",
    ]) {
        "the host name does not resolve"
    } else if has(&["certificate", "tls", "handshake", "ssl"]) {
        "the TLS handshake failed (check https:// against http:// and the server's certificate)"
    } else if has(&["connection refused"]) {
        "connection refused"
    } else if has(&["timed out", "timeout"]) {
        "the connection timed out"
    } else if has(&[
        "invalid http",
        "parse",
        "protocol",
        "unexpected",
        "incomplete",
    ]) {
        "the server does not speak the expected protocol"
    } else if has(&["closed", "reset", "broken pipe", "eof"]) {
        "the connection was closed by the server"
    } else {
        "the connection failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_userinfo_and_query_only() {
        assert_eq!(redact_url("https://u:p@h:1/x/y"), "https://***@h:1/x/y");
        assert_eq!(redact_url("https://u@h"), "https://***@h");
        assert_eq!(redact_url("u:p@h:1"), "***@h:1");
        assert_eq!(redact_url("http://h/p?q=1#f"), "http://h/p?***");
        assert_eq!(redact_url("http://h:9090/"), "http://h:9090/");
        // An `@` in the path is not userinfo.
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
        assert_eq!(
            redact_url("redis://:pw@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
    }

    #[test]
    fn host_port_shows_neither_user_nor_database() {
        assert_eq!(
            host_port("postgres://app:pw@db.svc:5433/emr"),
            "db.svc:5433"
        );
        assert_eq!(host_port("redis://:pw@cache"), "cache");
        assert_eq!(host_port("http://prom"), "prom:80");
        assert_eq!(host_port("not a url user:pw@x"), "***@x");
    }
}
