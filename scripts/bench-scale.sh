#!/usr/bin/env bash
# Benchmark (not part of the test suite): how fast the operator brings N LaunchPolicies to Ready,
# and what N policies cost in steady state (benches/scale.rs). Builds in release
# mode, so the operator under test is the release binary.
#
#   scripts/bench-scale.sh                                   # 1000 policies
#   LIFTOFF_BENCH_POLICIES=10000 LIFTOFF_BENCH_READY_CAP=900 scripts/bench-scale.sh
#
# Environment: LIFTOFF_BENCH_POLICIES (default 1000), LIFTOFF_BENCH_READY_CAP (seconds to wait for
# all Ready, default 900), LIFTOFF_BENCH_STEADY (steady-state window in seconds, default 120),
# LIFTOFF_BENCH_LOG (the operator's RUST_LOG, default info), LIFTOFF_BENCH_PRESTORED=1 (store the N
# policies before the operator starts, and time Ready from its start).
#
# Prints a Markdown block (machine, date, commit, command, results) for docs/benchmarks.md and
# keeps it in target/bench/.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

export LIFTOFF_BENCH_POLICIES="${LIFTOFF_BENCH_POLICIES:-1000}"
export LIFTOFF_BENCH_READY_CAP="${LIFTOFF_BENCH_READY_CAP:-900}"
export LIFTOFF_BENCH_STEADY="${LIFTOFF_BENCH_STEADY:-120}"

step "Control plane binaries (kube-apiserver, etcd, kubectl)"
scripts/build-control-plane.sh >/dev/null
step "Test servers (Prometheus, Redis, PostgreSQL, Kafka)"
scripts/install-test-deps.sh

mkdir -p target/bench
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
results="target/bench/scale-$stamp.results.md"
report="target/bench/scale-$stamp.md"
export LIFTOFF_BENCH_OUT="$PWD/$results"

step "Building (release)"
cargo bench --locked --bench scale --no-run
step "Benchmark: $LIFTOFF_BENCH_POLICIES policies"
started="$(date -u '+%Y-%m-%d %H:%M UTC')"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --locked --bench scale
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"

commit="$(git rev-parse --short HEAD)"
git diff --quiet HEAD -- src tests benches Cargo.toml Cargo.lock || commit="$commit + uncommitted changes"
{
  echo "### $started, N = $LIFTOFF_BENCH_POLICIES"
  echo
  echo "- Machine: $(machine); load average when the run started: $load, when it ended: $load_end"
  echo "- Commit: $commit"
  echo "- Command: \`LIFTOFF_BENCH_POLICIES=$LIFTOFF_BENCH_POLICIES LIFTOFF_BENCH_READY_CAP=$LIFTOFF_BENCH_READY_CAP LIFTOFF_BENCH_STEADY=$LIFTOFF_BENCH_STEADY${LIFTOFF_BENCH_LOG:+ LIFTOFF_BENCH_LOG=$LIFTOFF_BENCH_LOG}${LIFTOFF_BENCH_PRESTORED:+ LIFTOFF_BENCH_PRESTORED=$LIFTOFF_BENCH_PRESTORED} scripts/bench-scale.sh\`"
  echo
  cat "$results"
} >"$report"
step "Report ($report)"
cat "$report"
