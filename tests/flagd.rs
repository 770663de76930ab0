//! The cohort flag Liftoff publishes, evaluated the way the application evaluates it: by the
//! OpenFeature flagd in-process evaluator (`@openfeature/flagd-core`, run with Node.js; installed
//! by `scripts/install-flagd-core.sh`, which `scripts/test.sh` runs) over 20,000 targeting keys.
//! The admitted count stays within the binomial bounds docs/rollout.md states, and a user
//! admitted at one stage is admitted at every later one.

mod support;

use std::{collections::BTreeSet, io::Write, path::PathBuf, process::Stdio};

use liftoff::{
    controller::rollout::cohort::flagd_definition,
    crd::{FlagdCohort, Users},
};
use liftoff_testenv::{cache_dir, pinned_version};
use serde_json::Value;
use support::repo_path;

const POPULATION: u64 = 20_000;
const FLAG: &str = "new-platform";

/// Where `@openfeature/flagd-core` is installed: `LIFTOFF_FLAGD_CORE`, else the cache.
fn flagd_core() -> PathBuf {
    let dir = std::env::var_os("LIFTOFF_FLAGD_CORE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let version = pinned_version("FLAGD_CORE_VERSION").expect("FLAGD_CORE_VERSION");
            cache_dir().join(format!("flagd-core-{version}"))
        });
    assert!(
        dir.join("node_modules/@openfeature/flagd-core").is_dir(),
        "the flagd evaluator is not installed in {}: run scripts/install-flagd-core.sh",
        dir.display()
    );
    dir
}

/// For each flag configuration, the indices of the keys `user-<i>` (i < `count`) it admits.
fn evaluate(configs: &[Value], count: u64) -> Vec<BTreeSet<u64>> {
    let mut child = std::process::Command::new("node")
        .arg(repo_path("tests/flagd/evaluate.cjs"))
        .args([FLAG, &count.to_string()])
        .env("NODE_PATH", flagd_core().join("node_modules"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (Node.js is needed for the flagd evaluator)");
    let input = serde_json::to_vec(configs).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the evaluator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_published_flag_admits_each_stage_within_binomial_bounds_and_keeps_every_user() {
    let flag = FlagdCohort {
        config_map: "launch-flags".into(),
        flag_key: FLAG.into(),
        population: POPULATION as i64,
    };
    let stages = [
        Users::Count(0),
        Users::Count(100),
        Users::Count(500),
        Users::Count(1500),
        Users::All,
    ];
    let configs: Vec<Value> = stages
        .iter()
        .map(|users| flagd_definition(&flag, *users))
        .collect();
    let admitted = evaluate(&configs, POPULATION);

    assert!(admitted[0].is_empty(), "0 users: nobody");
    assert_eq!(admitted[4].len() as u64, POPULATION, "All: everyone");
    for (i, n) in [(1, 100u64), (2, 500), (3, 1500)] {
        // Binomial: mean n, σ = √(n (1 − n/P)); docs/rollout.md states ± 2σ.
        let (n_f, p_f) = (n as f64, POPULATION as f64);
        let two_sigma = 2.0 * (n_f * (1.0 - n_f / p_f)).sqrt();
        let got = admitted[i].len() as f64;
        eprintln!("{n} of {POPULATION}: flagd admitted {got} (bound ± {two_sigma:.1})");
        assert!(
            (got - n_f).abs() <= two_sigma,
            "{n} users: flagd admitted {got}, outside {n} ± {two_sigma:.1}"
        );
    }
    for later in 2..=4 {
        let dropped: Vec<_> = admitted[later - 1].difference(&admitted[later]).collect();
        assert!(
            dropped.is_empty(),
            "users admitted at stage {} but not at stage {later}: {dropped:?}",
            later - 1
        );
    }
}
