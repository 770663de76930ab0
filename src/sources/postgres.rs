//! PostgreSQL connection count: the stand-in for an RDS instance's `DatabaseConnections`.
//!
//! [`connection_count`] opens one connection, runs
//!
//! ```sql
//! SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'
//! ```
//!
//! and closes it. That counts every **client session** on the server, in all databases and of
//! all users, idle or busy — including the one Liftoff itself uses for the query — and leaves out
//! the server's own processes (autovacuum, WAL writer, checkpointer, replication senders,
//! parallel workers). It is what CloudWatch's `DatabaseConnections` reports for RDS PostgreSQL
//! and what `max_connections` limits (`superuser_reserved_connections` aside).
//!
//! The role in the URL needs to see other users' sessions: a superuser, or a role granted
//! `pg_monitor` (or `pg_read_all_stats`). PostgreSQL shows any role every session's row, but
//! hides its `backend_type` from roles without those grants, so the count would miss sessions.
//!
//! The URL is a libpq-style connection string or `postgres://user:password@host:port/db`,
//! typically from a Secret. The connection is made **without TLS** (`NoTls`); a URL with
//! `sslmode=require` is refused by the client. Run the operator next to the database (or
//! through a TLS-terminating proxy such as the RDS proxy) until TLS support is added here.
//! Error texts name the server as `host:port` and never contain the password.
//!
//! `timeout` bounds the whole sample: connect, authenticate, query. At most
//! [`MAX_SAMPLES_IN_FLIGHT`] samples of one server run at once; the wait for a turn is not part of
//! the timeout.

use std::{sync::LazyLock, time::Duration};

use tokio_postgres::NoTls;

use super::{
    address::{AddressPolicy, Destination},
    turns::Turns,
};
use tokio_postgres::config::Host;

/// The query behind [`connection_count`].
pub const CONNECTION_COUNT_SQL: &str =
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'";

/// Why the connection count could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PgError {
    #[error("the PostgreSQL connection string is not valid: {reason}")]
    InvalidUrl { reason: String },
    #[error("could not connect to PostgreSQL at {server}: {class}")]
    Connect { server: String, class: String },
    #[error("PostgreSQL at {server} did not answer within {timeout:?}")]
    Timeout { server: String, timeout: Duration },
    #[error(
        "PostgreSQL at {server} is busy: the sample waited {timeout:?} for one of Liftoff's {MAX_SAMPLES_IN_FLIGHT} connections to it"
    )]
    Busy { server: String, timeout: Duration },
    #[error("counting connections on PostgreSQL at {server} failed: {class}")]
    Query { server: String, class: String },
    #[error("PostgreSQL at {server}: {why}")]
    Refused { server: String, why: String },
}

/// The number of client sessions on the server (see the module docs for what is counted).
pub async fn connection_count(
    url: &str,
    timeout: Duration,
    policy: &AddressPolicy,
) -> Result<i64, PgError> {
    let mut config: tokio_postgres::Config =
        url.parse()
            .map_err(|e: tokio_postgres::Error| PgError::InvalidUrl {
                reason: scrub(&e.to_string(), url, None),
            })?;
    config.connect_timeout(timeout);
    let password = config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let server = server_name(&config);
    // The address policy decides where the connection goes. Addresses the string gives itself
    // (`hostaddr`, which the client connects to whatever the host says) are checked as they
    // are; otherwise each host is resolved here and the connection made to the allowed address
    // (`hostaddr`), so it cannot resolve elsewhere in between.
    let refused = |e: super::address::Refusal| PgError::Refused {
        server: server.clone(),
        why: e.to_string(),
    };
    let hosts = config.get_hosts().to_vec();
    let ports = config.get_ports().to_vec();
    let port_of = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let given = config.get_hostaddrs().to_vec();
    if !given.is_empty() {
        for (i, ip) in given.iter().enumerate() {
            let addr = std::net::SocketAddr::new(*ip, port_of(i));
            policy
                .check(Destination::Postgres, addr)
                .map_err(|e| refused(e.into()))?;
        }
    } else {
        let mut pinned = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            let Host::Tcp(name) = host else { continue };
            let allowed = policy
                .resolve(Destination::Postgres, name, port_of(i))
                .await
                .map_err(refused)?;
            pinned.extend(allowed.first().map(|a| a.ip()));
        }
        if pinned.len() == hosts.len() {
            for ip in pinned {
                config.hostaddr(ip);
            }
        }
    }
    let sample = async {
        let (client, connection) = config.connect(NoTls).await.map_err(|e| {
            let error = scrub(&super::error_chain(&e), url, password.as_deref());
            tracing::debug!(%server, %error, "cannot connect to PostgreSQL");
            PgError::Connect {
                server: server.clone(),
                class: failure(&e),
            }
        })?;
        // Closes the connection however this sample ends, also when the timeout drops it
        // mid-query: the turn it held must not outlive its connection.
        let _driver = AbortOnDrop(tokio::spawn(connection));
        let row = client
            .query_one(CONNECTION_COUNT_SQL, &[])
            .await
            .map_err(|e| {
                let error = scrub(&super::error_chain(&e), url, password.as_deref());
                tracing::debug!(%server, %error, "counting connections failed");
                PgError::Query {
                    server: server.clone(),
                    class: failure(&e),
                }
            });
        drop(client);
        row?.try_get::<_, i64>(0).map_err(|_| PgError::Query {
            server: server.clone(),
            class: "the count is not a 64-bit integer".into(),
        })
    };
    let Some(_turn) = TURNS.take_within(&server, timeout).await else {
        return Err(PgError::Busy {
            server: server.clone(),
            timeout,
        });
    };
    match tokio::time::timeout(timeout, sample).await {
        Ok(result) => result,
        Err(_) => Err(PgError::Timeout { server, timeout }),
    }
}

/// Aborts the connection's driver task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// At most this many samples of one server at once (each opens a connection).
pub const MAX_SAMPLES_IN_FLIGHT: usize = 4;

static TURNS: LazyLock<Turns> = LazyLock::new(|| Turns::new(MAX_SAMPLES_IN_FLIGHT));

/// `host:port` of the first host in the config (what the client tries first).
fn server_name(config: &tokio_postgres::Config) -> String {
    let port = config.get_ports().first().copied().unwrap_or(5432);
    match config.get_hosts().first() {
        Some(Host::Tcp(host)) => format!("{host}:{port}"),
        Some(Host::Unix(path)) => format!("{}:{port}", path.display()),
        None => format!("localhost:{port}"),
    }
}

/// The class of a failure, never the server's own words (see `docs/security.md`): for an
/// error the server reported, what its SQLSTATE means; else how the connection failed.
fn failure(err: &tokio_postgres::Error) -> String {
    let Some(db) = err.as_db_error() else {
        return super::connect_failure(err).to_string();
    };
    let code = db.code().code();
    let meaning = match code {
        "28P01" | "28000" => "the user name or password was refused",
        "3D000" => "the database does not exist",
        "53300" => "the server has no free connection slot",
        "42501" => "the user may not read pg_stat_activity",
        "57P03" => "the server is starting up or shutting down",
        _ => "the server refused the request",
    };
    // A SQLSTATE is five digits or capital letters; anything else is not shown.
    let shown = code.len() == 5
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    match shown {
        true => format!("{meaning} (SQLSTATE {code})"),
        false => meaning.to_string(),
    }
}

/// Keeps the password (and the connection string, which may hold it) out of a message.
fn scrub(text: &str, url: &str, password: Option<&str>) -> String {
    let mut text = text.replace(url, &super::redact_url(url));
    if let Some(password) = password.filter(|p| !p.is_empty()) {
        text = text.replace(password, "***");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_is_named_by_host_and_port_only() {
        let config: tokio_postgres::Config =
            "postgres://app:pw@db.internal:6543/emr".parse().unwrap();
        assert_eq!(server_name(&config), "db.internal:6543");
        let config: tokio_postgres::Config = "host=db user=app password=pw".parse().unwrap();
        assert_eq!(server_name(&config), "db:5432");
    }

    #[test]
    fn scrub_removes_password_and_url() {
        let url = "postgres://app:pw-9@db/emr";
        assert_eq!(
            scrub("bad pw-9 in postgres://app:pw-9@db/emr", url, Some("pw-9")),
            "bad *** in postgres://***@db/emr"
        );
    }

    /// A connection string can name the address itself (`hostaddr`), which the client connects
    /// to whatever the host says: it is checked as written, before anything is contacted.
    #[tokio::test]
    async fn an_address_given_in_the_connection_string_obeys_the_address_policy() {
        let policy = AddressPolicy::new(&[], &[], &[]);
        for url in [
            "postgres://app:pw@/emr?hostaddr=169.254.169.254",
            "host=/tmp hostaddr=169.254.169.254 user=app",
            "host=db.internal hostaddr=169.254.169.254 port=5432 user=app",
        ] {
            let err = connection_count(url, Duration::from_secs(1), &policy)
                .await
                .unwrap_err();
            assert!(matches!(err, PgError::Refused { .. }), "{url}: {err:?}");
            assert!(
                err.to_string()
                    .contains("refused by the operator's address policy"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn invalid_connection_string_is_refused_before_connecting() {
        let err = connection_count(
            "postgres://app:secret@db:notaport/x",
            Duration::from_secs(1),
            &AddressPolicy::allow_all(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, PgError::InvalidUrl { .. }), "{err:?}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
