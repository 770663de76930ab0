//! Each trigger source started for real, used for real, stopped, and gone afterwards
//! (needs scripts/install-test-deps.sh). Start-up times and RSS are printed (`--nocapture`).

use std::time::{Duration, Instant};

use liftoff_testenv::{Kafka, MetricsExporter, Postgres, Prometheus, Redis, Reply};

/// Resident memory of the processes in `pids`, in MiB (from /proc/<pid>/status).
fn rss_mib(pids: &[u32]) -> f64 {
    let kib: u64 = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum();
    kib as f64 / 1024.0
}

/// Live processes whose `/proc/<pid>/stat` field `field` (after the command name: 0 state,
/// 1 ppid, 2 pgrp) is `value`.
fn processes_where(field: usize, value: u32) -> Vec<u32> {
    let entries = std::fs::read_dir("/proc").expect("reading /proc");
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            after.split_whitespace().nth(field) == Some(&value.to_string())
        })
        .collect()
}

/// The server's process group (the harness makes each server a group leader).
fn group_members(pgid: u32) -> Vec<u32> {
    processes_where(2, pgid)
}

/// The server and its direct children (PostgreSQL's backends lead groups of their own).
fn family(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    pids.extend(processes_where(1, pid));
    pids
}

fn alive(pid: u32) -> bool {
    // kill(pid, 0) fails with ESRCH once the process is gone and reaped.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// The server process (and anything it forked into its group) no longer exists, and nothing
/// accepts connections on its port.
fn assert_gone(what: &str, pid: u32, port: u16) {
    assert!(!alive(pid), "{what} pid {pid} still exists");
    let members = group_members(pid);
    assert!(
        members.is_empty(),
        "{what} left processes behind: {members:?}"
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let refused = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err();
    assert!(refused, "{what} port {port} still accepts connections");
}

#[tokio::test]
async fn prometheus_scrapes_exporter_across_a_restart() -> anyhow::Result<()> {
    let exporter = MetricsExporter::start().await?;
    exporter.set("app_cpu_utilization", &[("pod", "web-0")], 85.0);

    let started = Instant::now();
    let mut prom = Prometheus::start(&[exporter.target()], Duration::from_secs(1)).await?;
    let ready = started.elapsed();
    let query = r#"app_cpu_utilization{pod="web-0"}"#;
    let samples = prom.wait_for_query(query).await?;
    eprintln!(
        "prometheus: ready after {ready:?}, first sample after {:?}, RSS {:.0} MiB",
        started.elapsed(),
        rss_mib(&[prom.pid().unwrap()])
    );
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert_eq!(samples[0].value, 85.0);
    assert_eq!(samples[0].labels["job"], "liftoff-test");
    assert!(exporter.scrapes() >= 1);

    // A value the test changes at run time reaches Prometheus on a later scrape.
    exporter.set("app_cpu_utilization", &[("pod", "web-0")], 42.5);
    let deadline = Instant::now() + Duration::from_secs(30);
    while prom.query(query).await?.first().map(|s| s.value) != Some(42.5) {
        assert!(Instant::now() < deadline, "42.5 never showed up");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // An outage: queries fail while it is down; it comes back on the same port with its data.
    let (port, old_pid) = (prom.port(), prom.pid().unwrap());
    prom.stop().await;
    assert_gone("stopped prometheus", old_pid, port);
    assert!(
        prom.query(query).await.is_err(),
        "query worked while stopped"
    );
    let restarting = Instant::now();
    prom.restart().await?;
    eprintln!("prometheus: restart took {:?}", restarting.elapsed());
    assert_eq!(prom.port(), port);
    let history = prom
        .wait_for_query(&format!("max_over_time({query}[10m])"))
        .await?;
    assert_eq!(
        history[0].value, 85.0,
        "data from before the restart is kept"
    );
    prom.wait_for_query(query).await?;
    assert!(
        prom.query("sum(").await.is_err(),
        "a PromQL syntax error is an error"
    );

    let pid = prom.pid().unwrap();
    drop(prom);
    assert_gone("prometheus", pid, port);
    Ok(())
}

#[tokio::test]
async fn redis_runs_with_the_requested_maxmemory() -> anyhow::Result<()> {
    let started = Instant::now();
    let redis = Redis::start("2mb").await?;
    let pid = redis.pid().unwrap();
    eprintln!(
        "redis: ready after {:?}, RSS {:.0} MiB",
        started.elapsed(),
        rss_mib(&[pid])
    );
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));

    let info = redis.command(&["INFO", "memory"]).await?;
    let info = info.as_text().expect("INFO replies with a bulk string");
    assert!(
        info.lines().any(|l| l.trim() == "maxmemory:2097152"),
        "INFO memory: {info}"
    );
    assert_eq!(
        redis.command(&["SET", "k", "v"]).await?,
        Reply::Simple("OK".into())
    );
    assert_eq!(
        redis.command(&["GET", "k"]).await?,
        Reply::Bulk(Some(b"v".to_vec()))
    );

    let port = redis.port();
    redis.stop().await;
    assert_gone("redis", pid, port);
    Ok(())
}

#[tokio::test]
async fn postgres_accepts_exactly_max_connections() -> anyhow::Result<()> {
    const MAX: u32 = 10;
    let started = Instant::now();
    let pg = Postgres::start_with_max_connections(MAX).await?;
    let pid = pg.pid().unwrap();
    eprintln!(
        "postgres: ready after {:?} (initdb included), RSS {:.0} MiB in {} processes",
        started.elapsed(),
        rss_mib(&family(pid)),
        family(pid).len()
    );
    assert_eq!(pg.psql("SHOW max_connections").await?.trim(), "10");
    assert_eq!(pg.psql("SELECT current_user").await?.trim(), "postgres");

    // The superuser may use every slot: MAX sessions open, the next one is refused.
    let mut sessions = Vec::new();
    for _ in 0..MAX {
        sessions.push(pg.connect().await?);
    }
    let clients = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'";
    let refused = pg.connect().await.err().expect("one session too many");
    assert!(
        format!("{refused:#}").contains("too many clients"),
        "{refused:#}"
    );
    drop(sessions.pop());
    // The freed slot is reused once its backend has exited.
    let deadline = Instant::now() + Duration::from_secs(10);
    let count = loop {
        match pg.psql(clients).await {
            Ok(out) => break out,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => return Err(e),
        }
    };
    assert_eq!(count.trim(), MAX.to_string(), "9 idle sessions + psql");

    let port = pg.port();
    let processes = family(pid);
    assert!(
        processes.len() > MAX as usize,
        "postmaster, helpers, 9 backends: {processes:?}"
    );
    let stopping = Instant::now();
    pg.stop().await;
    eprintln!("postgres: stop took {:?}", stopping.elapsed());
    assert_gone("postgres", pid, port);
    let left: Vec<u32> = processes.into_iter().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "postgres processes left: {left:?}");
    drop(sessions);
    Ok(())
}

#[tokio::test]
async fn kafka_creates_a_topic_with_three_partitions() -> anyhow::Result<()> {
    let started = Instant::now();
    let kafka = Kafka::start().await?;
    let pid = kafka.pid().unwrap();
    eprintln!(
        "kafka: ready after {:?} (format included), JVM RSS {:.0} MiB",
        started.elapsed(),
        rss_mib(&[pid])
    );

    let creating = Instant::now();
    kafka.create_topic("orders", 3).await?;
    eprintln!("kafka: create_topic took {:?}", creating.elapsed());
    assert_eq!(kafka.partitions("orders").await?, 3);
    let missing = kafka.partitions("no-such-topic").await;
    assert!(missing.is_err(), "{missing:?}");

    let port: u16 = kafka.bootstrap().rsplit(':').next().unwrap().parse()?;
    let stopping = Instant::now();
    kafka.stop().await;
    eprintln!("kafka: stop took {:?}", stopping.elapsed());
    assert_gone("kafka", pid, port);
    Ok(())
}

#[tokio::test]
async fn postgres_drop_ends_the_server_and_its_backends() -> anyhow::Result<()> {
    let pg = Postgres::start().await?;
    assert_eq!(pg.psql("SHOW max_connections").await?.trim(), "100");
    let _sessions = [pg.connect().await?, pg.connect().await?];
    let (pid, port) = (pg.pid().unwrap(), pg.port());
    let processes = family(pid);
    let dropping = Instant::now();
    drop(pg);
    eprintln!("postgres: drop took {:?}", dropping.elapsed());
    assert_gone("postgres", pid, port);
    let left: Vec<u32> = processes.into_iter().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "postgres processes left: {left:?}");
    Ok(())
}

#[tokio::test]
async fn a_script_sets_an_exporter_gauge_with_a_put() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exporter = MetricsExporter::start().await?;
    let put = |path: &'static str| {
        let target = exporter.target();
        async move {
            let mut stream = tokio::net::TcpStream::connect(target).await?;
            let request = format!("PUT {path} HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
            stream.write_all(request.as_bytes()).await?;
            let mut response = String::new();
            stream.read_to_string(&mut response).await?;
            anyhow::Ok(response)
        }
    };
    assert!(
        put("/set/api_cpu_percent/95.5")
            .await?
            .starts_with("HTTP/1.1 200")
    );
    assert!(exporter.render().contains("api_cpu_percent 95.5"));
    assert!(
        put("/set/api_cpu_percent/hot")
            .await?
            .starts_with("HTTP/1.1 400")
    );
    assert!(put("/set/not a name/1").await?.starts_with("HTTP/1.1 400"));
    assert!(exporter.render().contains("api_cpu_percent 95.5"));
    Ok(())
}
