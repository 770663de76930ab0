#!/usr/bin/env bash
# Benchmark (not part of the test suite): breach-to-action latency of every scaling trigger kind
# against the real servers, and the operator's memory (benches/scaling_latency.rs).
# Builds in release mode, so the operator under test is the release binary.
#
#   scripts/bench-scaling.sh                       # 20 runs of each kind
#   LIFTOFF_BENCH_RUNS=5 LIFTOFF_BENCH_TRIGGERS=cpu,redisMemory scripts/bench-scaling.sh
#
# Prints a Markdown block (machine, date, commit, command, results) for docs/benchmarks.md and
# keeps it in target/bench/.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

export LIFTOFF_BENCH_RUNS="${LIFTOFF_BENCH_RUNS:-20}"
export LIFTOFF_BENCH_TRIGGERS="${LIFTOFF_BENCH_TRIGGERS:-}"

step "Control plane binaries (kube-apiserver, etcd, kubectl)"
scripts/build-control-plane.sh >/dev/null
step "Test servers (Prometheus, Redis, PostgreSQL, Kafka)"
scripts/install-test-deps.sh

mkdir -p target/bench
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
results="target/bench/scaling-$stamp.results.md"
report="target/bench/scaling-$stamp.md"
export LIFTOFF_BENCH_OUT="$PWD/$results"

step "Building (release)"
cargo bench --locked --bench scaling_latency --no-run
step "Benchmark: $LIFTOFF_BENCH_RUNS runs per trigger kind"
started="$(date -u '+%Y-%m-%d %H:%M UTC')"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --locked --bench scaling_latency

commit="$(git rev-parse --short HEAD)"
git diff --quiet HEAD -- src tests benches Cargo.toml Cargo.lock || commit="$commit + uncommitted changes"
{
  echo "### $started"
  echo
  echo "- Machine: $(machine); load average when the run started: $load"
  echo "- Commit: $commit"
  echo "- Command: \`LIFTOFF_BENCH_RUNS=$LIFTOFF_BENCH_RUNS${LIFTOFF_BENCH_TRIGGERS:+ LIFTOFF_BENCH_TRIGGERS=$LIFTOFF_BENCH_TRIGGERS} scripts/bench-scaling.sh\`"
  echo
  cat "$results"
} >"$report"
step "Report ($report)"
cat "$report"
