//! Redis memory use as a percentage of its limit, from `INFO memory`.
//!
//! [`memory_percent`] connects, sends `INFO memory`, and returns
//! `used_memory / maxmemory × 100` — the measure Redis itself compares with `maxmemory` when it
//! decides to evict or refuse writes, so 100 % is where the eviction policy (or OOM errors under
//! `noeviction`) starts. `used_memory` is what the allocator handed out for data and overhead,
//! not the process RSS.
//!
//! **`maxmemory` 0 means "unset"** (no limit: Redis grows until the kernel or the container
//! limit stops it). A percentage of nothing is meaningless, so that is an error naming the fix,
//! unless the trigger supplies the limit (`max_memory_override`, the policy's
//! `redisMemory.maxMemoryBytes`). When given, the override is used instead of the server's
//! `maxmemory` — useful for managed Redis whose reported limit is not the one to scale on.
//!
//! The URL is `redis://[user:password@]host:port[/db]` (`rediss://` is refused: this build
//! has no TLS for Redis), typically from a Secret. Error texts name the server as `host:port`
//! only. `timeout` bounds connect + command. At most [`MAX_SAMPLES_IN_FLIGHT`] samples of one
//! server run at once; the wait for a turn is not part of the timeout.
//!
//! [`parse_info_memory`] and [`percent_of_limit`] are the pure, unit-tested halves.

use std::{sync::LazyLock, time::Duration};

use super::{
    address::{AddressPolicy, Destination},
    turns::Turns,
};

/// At most this many samples of one server at once (each opens a connection).
pub const MAX_SAMPLES_IN_FLIGHT: usize = 8;

static TURNS: LazyLock<Turns> = LazyLock::new(|| Turns::new(MAX_SAMPLES_IN_FLIGHT));

/// Why the memory percentage could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RedisError {
    #[error("the Redis URL {url} is not valid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("could not connect to redis {server}: {class}")]
    Connect { server: String, class: &'static str },
    #[error("redis {server} did not answer within {timeout:?}")]
    Timeout { server: String, timeout: Duration },
    #[error(
        "redis {server} is busy: the sample waited {timeout:?} for one of Liftoff's {MAX_SAMPLES_IN_FLIGHT} connections to it"
    )]
    Busy { server: String, timeout: Duration },
    #[error("INFO memory failed on redis {server}: {class}")]
    Command { server: String, class: &'static str },
    #[error("INFO memory from redis {server} has no usable {field} field")]
    MissingField { server: String, field: &'static str },
    #[error(
        "maxmemory is 0 (unset) on redis {server}; set maxmemory or redisMemory.maxMemoryBytes"
    )]
    MaxMemoryUnset { server: String },
    #[error("redisMemory.maxMemoryBytes must be greater than 0, not {value}")]
    InvalidOverride { value: i64 },
    #[error("redis {server}: {why}")]
    Refused { server: String, why: String },
}

/// The two fields of `INFO memory` the percentage needs, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryInfo {
    pub used_memory: i64,
    /// 0 when no limit is configured.
    pub maxmemory: i64,
}

/// `used_memory / limit × 100`, where the limit is `max_memory_override` if given, else the
/// server's `maxmemory`.
pub async fn memory_percent(
    url: &str,
    max_memory_override: Option<i64>,
    timeout: Duration,
    policy: &AddressPolicy,
) -> Result<f64, RedisError> {
    if let Some(value) = max_memory_override.filter(|v| *v <= 0) {
        return Err(RedisError::InvalidOverride { value });
    }
    let server = super::host_port(url);
    let password = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string));
    let scrub = |text: String| match password.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => text.replace(p, "***").replace(url, &super::redact_url(url)),
        None => text.replace(url, &super::redact_url(url)),
    };
    let client = redis::Client::open(url).map_err(|e| RedisError::InvalidUrl {
        url: super::redact_url(url),
        reason: scrub(e.to_string()),
    })?;
    // The address policy decides where the connection goes: a name is resolved here and the
    // connection made to the allowed address, so it cannot resolve elsewhere in between.
    let refused = |e: super::address::Refusal| RedisError::Refused {
        server: server.clone(),
        why: e.to_string(),
    };
    let info = client.get_connection_info().clone();
    let client = match info.addr().clone() {
        redis::ConnectionAddr::Tcp(host, port) => {
            let allowed = policy
                .resolve(Destination::Redis, &host, port)
                .await
                .map_err(refused)?;
            let pinned = redis::ConnectionAddr::Tcp(allowed[0].ip().to_string(), port);
            redis::Client::open(info.set_addr(pinned)).map_err(|e| RedisError::InvalidUrl {
                url: super::redact_url(url),
                reason: scrub(e.to_string()),
            })?
        }
        redis::ConnectionAddr::TcpTls { host, port, .. } => {
            // TLS verifies the name: checked, then connected by name.
            policy
                .resolve(Destination::Redis, &host, port)
                .await
                .map_err(refused)?;
            client
        }
        _ => client,
    };
    let sample = async {
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| {
                tracing::debug!(%server, error = %scrub(e.to_string()), "cannot connect to Redis");
                RedisError::Connect {
                    server: server.clone(),
                    class: failure(&e),
                }
            })?;
        redis::cmd("INFO")
            .arg("memory")
            .query_async::<String>(&mut connection)
            .await
            .map_err(|e| {
                tracing::debug!(%server, error = %scrub(e.to_string()), "INFO memory failed");
                RedisError::Command {
                    server: server.clone(),
                    class: failure(&e),
                }
            })
    };
    let Some(_turn) = TURNS.take_within(&server, timeout).await else {
        return Err(RedisError::Busy {
            server: server.clone(),
            timeout,
        });
    };
    let info = match tokio::time::timeout(timeout, sample).await {
        Ok(info) => info?,
        Err(_) => return Err(RedisError::Timeout { server, timeout }),
    };
    let memory = parse_info_memory(&info).map_err(|field| RedisError::MissingField {
        server: server.clone(),
        field,
    })?;
    percent_of_limit(memory, max_memory_override, &server)
}

/// The class of a Redis failure, never the server's own words (see `docs/security.md`).
fn failure(err: &redis::RedisError) -> &'static str {
    if err.is_io_error() || err.is_connection_refusal() || err.is_timeout() {
        return super::connect_failure(err);
    }
    match (err.code(), err.kind()) {
        (Some("NOAUTH"), _) => "the server requires a password (put it in the address URL)",
        (Some("WRONGPASS"), _) | (_, redis::ErrorKind::AuthenticationFailed) => {
            "the server refused the user name or password"
        }
        (Some("NOPERM"), _) => "the user may not run INFO memory",
        (Some("LOADING"), _) => "the server is loading its dataset",
        (Some(_), _) => "the server refused the command",
        (None, _) => "the server does not answer like Redis",
    }
}

/// Reads `used_memory` and `maxmemory` from an `INFO` reply; `Err` names a missing field.
pub fn parse_info_memory(info: &str) -> Result<MemoryInfo, &'static str> {
    let field = |name: &'static str| {
        info.lines()
            .filter_map(|line| line.trim().split_once(':'))
            .find(|(key, _)| *key == name)
            .and_then(|(_, value)| value.trim().parse::<i64>().ok())
            .filter(|v| *v >= 0)
            .ok_or(name)
    };
    Ok(MemoryInfo {
        used_memory: field("used_memory")?,
        maxmemory: field("maxmemory")?,
    })
}

/// The percentage for `memory`, with the override and the "maxmemory 0" guard applied.
pub fn percent_of_limit(
    memory: MemoryInfo,
    max_memory_override: Option<i64>,
    server: &str,
) -> Result<f64, RedisError> {
    let limit = match max_memory_override {
        Some(value) if value <= 0 => return Err(RedisError::InvalidOverride { value }),
        Some(value) => value,
        None if memory.maxmemory == 0 => {
            return Err(RedisError::MaxMemoryUnset {
                server: server.to_string(),
            });
        }
        None => memory.maxmemory,
    };
    Ok(memory.used_memory as f64 / limit as f64 * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Memory\r\nused_memory:1887436\r\nused_memory_human:1.80M\r\n\
        used_memory_rss:8388608\r\nused_memory_peak:1900000\r\nmaxmemory:2097152\r\n\
        maxmemory_human:2.00M\r\nmaxmemory_policy:noeviction\r\n";

    #[test]
    fn parses_used_and_max_memory_not_their_lookalikes() {
        assert_eq!(
            parse_info_memory(INFO),
            Ok(MemoryInfo {
                used_memory: 1_887_436,
                maxmemory: 2_097_152
            })
        );
    }

    #[test]
    fn missing_or_garbled_field_is_named() {
        assert_eq!(parse_info_memory("used_memory:10\r\n"), Err("maxmemory"));
        assert_eq!(
            parse_info_memory("used_memory:lots\r\nmaxmemory:5\r\n"),
            Err("used_memory")
        );
    }

    #[test]
    fn percent_is_used_over_max() {
        let memory = parse_info_memory(INFO).unwrap();
        let percent = percent_of_limit(memory, None, "r:6379").unwrap();
        assert!((percent - 90.0).abs() < 0.01, "{percent}");
    }

    #[test]
    fn maxmemory_zero_without_override_is_the_documented_error() {
        let memory = MemoryInfo {
            used_memory: 1000,
            maxmemory: 0,
        };
        let err = percent_of_limit(memory, None, "cache:6379").unwrap_err();
        assert_eq!(
            err.to_string(),
            "maxmemory is 0 (unset) on redis cache:6379; set maxmemory or redisMemory.maxMemoryBytes"
        );
    }

    #[tokio::test]
    async fn tls_urls_are_refused_before_connecting() {
        let err = memory_percent(
            "rediss://:pw-77@cache:6380",
            None,
            Duration::from_secs(1),
            &AddressPolicy::allow_all(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RedisError::InvalidUrl { .. }), "{err:?}");
        assert!(!err.to_string().contains("pw-77"), "{err}");
    }

    #[test]
    fn override_replaces_the_server_limit() {
        let memory = MemoryInfo {
            used_memory: 250,
            maxmemory: 0,
        };
        assert_eq!(percent_of_limit(memory, Some(1000), "r"), Ok(25.0));
        let limited = MemoryInfo {
            maxmemory: 500,
            ..memory
        };
        assert_eq!(percent_of_limit(limited, Some(1000), "r"), Ok(25.0));
        assert_eq!(
            percent_of_limit(memory, Some(0), "r"),
            Err(RedisError::InvalidOverride { value: 0 })
        );
    }
}
