//! `sources::postgres` against a real PostgreSQL.

use std::time::Duration;

use liftoff::sources::address::AddressPolicy;
use liftoff::sources::postgres::{PgError, connection_count};
use liftoff_testenv::Postgres;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Client sessions as the server counts them itself (psql's own session included).
async fn server_side_count(pg: &Postgres) -> i64 {
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'";
    pg.psql(sql).await.unwrap().trim().parse().unwrap()
}

#[tokio::test]
async fn postgres_counts_each_held_session_exactly() {
    let pg = Postgres::start().await.expect("postgres starts");
    let before = connection_count(&pg.url(), TIMEOUT, &AddressPolicy::allow_all())
        .await
        .unwrap();
    // Our own sampling connection is a client session too.
    assert!(before >= 1, "{before}");

    const HELD: i64 = 7;
    let mut sessions = Vec::new();
    for _ in 0..HELD {
        sessions.push(pg.connect().await.unwrap());
    }
    let held = connection_count(&pg.url(), TIMEOUT, &AddressPolicy::allow_all())
        .await
        .unwrap();
    assert_eq!(held, before + HELD);
    assert_eq!(server_side_count(&pg).await, held, "same count as psql's");

    drop(sessions);
    // Backends exit asynchronously after their client goes away.
    let after = super::eventually(TIMEOUT, "sessions released", || async {
        let n = connection_count(&pg.url(), TIMEOUT, &AddressPolicy::allow_all())
            .await
            .unwrap();
        (n == before).then_some(n)
    })
    .await;
    assert_eq!(after, before);
    pg.stop().await;
}

/// Password authentication for role `app` over TCP (the harness trusts everyone otherwise),
/// with `privileged` deciding whether `app` may see other roles' sessions.
async fn require_password_for_app(pg: &Postgres, password: &str, privileged: bool) {
    let hba = pg.dir().join("data/pg_hba.conf");
    std::fs::write(
        &hba,
        "local all all trust\nhost all postgres 127.0.0.1/32 trust\n\
         host all app 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
    let grant = if privileged {
        "GRANT pg_monitor TO app;"
    } else {
        ""
    };
    pg.psql(&format!(
        "CREATE ROLE app LOGIN PASSWORD '{password}'; {grant} SELECT pg_reload_conf();"
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn postgres_wrong_password_is_an_error_without_the_password() {
    let pg = Postgres::start().await.expect("postgres starts");
    require_password_for_app(&pg, "Right-Pw-123", true).await;
    let port = pg.port();

    let wrong = format!("postgres://app:Wrong-Pw-456@127.0.0.1:{port}/postgres");
    let err = connection_count(&wrong, TIMEOUT, &AddressPolicy::allow_all())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PgError::Connect { .. }), "{err:?}");
    assert_eq!(
        text,
        format!(
            "could not connect to PostgreSQL at 127.0.0.1:{port}: \
             the user name or password was refused (SQLSTATE 28P01)"
        )
    );
    assert!(!format!("{err:?}").contains("Wrong-Pw-456"));

    // The right password and pg_monitor: the same count as the superuser sees.
    let right = format!("postgres://app:Right-Pw-123@127.0.0.1:{port}/postgres");
    let _held = [pg.connect().await.unwrap(), pg.connect().await.unwrap()];
    let as_app = connection_count(&right, TIMEOUT, &AddressPolicy::allow_all())
        .await
        .unwrap();
    let as_superuser = connection_count(&pg.url(), TIMEOUT, &AddressPolicy::allow_all())
        .await
        .unwrap();
    assert_eq!(as_app, as_superuser);
    pg.stop().await;
}

#[tokio::test]
async fn postgres_role_without_pg_monitor_misses_other_roles_sessions() {
    let pg = Postgres::start().await.expect("postgres starts");
    require_password_for_app(&pg, "Pw-789", false).await;
    let url = format!("postgres://app:Pw-789@127.0.0.1:{}/postgres", pg.port());
    let _held = [pg.connect().await.unwrap(), pg.connect().await.unwrap()];
    let as_app = connection_count(&url, TIMEOUT, &AddressPolicy::allow_all())
        .await
        .unwrap();
    let as_superuser = connection_count(&pg.url(), TIMEOUT, &AddressPolicy::allow_all())
        .await
        .unwrap();
    // What the module docs warn about: grant pg_monitor to the role Liftoff uses.
    assert!(as_app < as_superuser, "{as_app} vs {as_superuser}");
    pg.stop().await;
}

#[tokio::test]
async fn postgres_stopped_is_a_connect_error() {
    let pg = Postgres::start().await.expect("postgres starts");
    let url = pg.url();
    pg.stop().await;
    let err = connection_count(&url, TIMEOUT, &AddressPolicy::allow_all())
        .await
        .unwrap_err();
    assert!(matches!(err, PgError::Connect { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("could not connect to PostgreSQL at 127.0.0.1:"),
        "{err}"
    );
}
