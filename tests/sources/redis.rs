//! `sources::redis` against a real Redis.

use std::time::Duration;

use liftoff::sources::address::AddressPolicy;
use liftoff::sources::redis::{RedisError, memory_percent, parse_info_memory};
use liftoff_testenv::{Redis, Reply};

const TIMEOUT: Duration = Duration::from_secs(5);

/// `used_memory / maxmemory × 100` as the server reports it right now.
async fn server_side_percent(redis: &Redis) -> f64 {
    let info = redis.command(&["INFO", "memory"]).await.unwrap();
    let memory = parse_info_memory(&info.as_text().unwrap()).unwrap();
    memory.used_memory as f64 / memory.maxmemory as f64 * 100.0
}

#[tokio::test]
async fn redis_filled_past_80_percent_reports_above_80() {
    let redis = Redis::start("2mb").await.expect("redis starts");
    let start = memory_percent(&redis.url(), None, TIMEOUT, &AddressPolicy::allow_all())
        .await
        .unwrap();
    assert!(start > 0.0 && start < 80.0, "{start}");

    let value = "x".repeat(40_000);
    let mut percent = start;
    for i in 0..100 {
        if percent > 80.0 {
            break;
        }
        let key = format!("session-{i}");
        let reply = redis.command(&["SET", &key, &value]).await.unwrap();
        assert_eq!(reply, Reply::Simple("OK".into()), "SET {key}");
        percent = memory_percent(&redis.url(), None, TIMEOUT, &AddressPolicy::allow_all())
            .await
            .unwrap();
    }
    assert!(percent > 80.0, "{percent}");
    assert!(
        percent < 100.0,
        "{percent}: noeviction would refuse writes above 100"
    );
    let server = server_side_percent(&redis).await;
    assert!((percent - server).abs() < 2.0, "{percent} vs {server}");
    redis.stop().await;
}

#[tokio::test]
async fn redis_without_maxmemory_is_the_clear_error_unless_overridden() {
    let redis = Redis::start("0").await.expect("redis starts");
    let err = memory_percent(&redis.url(), None, TIMEOUT, &AddressPolicy::allow_all())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "maxmemory is 0 (unset) on redis 127.0.0.1:{}; set maxmemory or \
             redisMemory.maxMemoryBytes",
            redis.port()
        )
    );
    // With the limit given by the policy, the same server gives a percentage.
    let percent = memory_percent(
        &redis.url(),
        Some(100 * 1024 * 1024),
        TIMEOUT,
        &AddressPolicy::allow_all(),
    )
    .await
    .unwrap();
    assert!(percent > 0.0 && percent < 5.0, "{percent}");
    redis.stop().await;
}

#[tokio::test]
async fn redis_wrong_password_and_outage_are_errors_without_the_password() {
    let redis = Redis::start("2mb").await.expect("redis starts");
    let port = redis.port();
    let set = redis
        .command(&["CONFIG", "SET", "requirepass", "Right-Pw-1"])
        .await
        .unwrap();
    assert_eq!(set, Reply::Simple("OK".into()));

    let wrong = format!("redis://:Wrong-Pw-2@127.0.0.1:{port}");
    let err = memory_percent(&wrong, None, TIMEOUT, &AddressPolicy::allow_all())
        .await
        .unwrap_err();
    assert!(matches!(err, RedisError::Connect { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("Wrong-Pw-2"), "{text}");
    assert_eq!(
        err.to_string(),
        format!(
            "could not connect to redis 127.0.0.1:{port}: the server refused the user name or password"
        )
    );
    let right = format!("redis://:Right-Pw-1@127.0.0.1:{port}");
    let percent = memory_percent(&right, None, TIMEOUT, &AddressPolicy::allow_all())
        .await
        .unwrap();
    assert!(percent > 0.0 && percent < 100.0, "{percent}");

    redis.stop().await;
    let down = memory_percent(&right, None, TIMEOUT, &AddressPolicy::allow_all())
        .await
        .unwrap_err();
    assert!(matches!(down, RedisError::Connect { .. }), "{down:?}");
    assert!(!format!("{down} {down:?}").contains("Right-Pw-1"), "{down}");
}
