#!/usr/bin/env bash
# Benchmark (not part of the test suite): the chaos soak of benches/chaos_soak.rs. The example
# launch (four stages, CPU and Kafka-lag scaling) runs against real servers while the operator is
# SIGKILLed at random at least LIFTOFF_SOAK_KILLS times (default 100) and kube-apiserver, etcd,
# Prometheus and Kafka fail in turn; it counts, from the servers' side, stages repeated or
# skipped, scale-downs, actions decided twice, status writes after the end and operator panics,
# all of which must be 0 (the script fails otherwise).
#
#   scripts/chaos-soak.sh                                  # ~11 min after the build
#   LIFTOFF_SOAK_KILLS=20 LIFTOFF_SOAK_BAKE=10s scripts/chaos-soak.sh
#   LIFTOFF_SOAK_SEED=1796385959 scripts/chaos-soak.sh     # repeat a run's sequence of faults
#
# Prints a Markdown block (machine, date, commit, command, results) for docs/benchmarks.md and
# keeps it in target/bench/. The operator under test is the debug binary (slower, so races
# have more room).
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

step "Control plane binaries (kube-apiserver, etcd, kubectl)"
scripts/build-control-plane.sh >/dev/null
step "Test servers (Prometheus, Redis, PostgreSQL, Kafka)"
scripts/install-test-deps.sh

mkdir -p target/bench
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
results="target/bench/chaos-soak-$stamp.results.md"
report="target/bench/chaos-soak-$stamp.md"

step "Building"
cargo build --locked --bins --bench chaos_soak
step "Chaos soak"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
status=0
cargo bench --profile dev --locked --bench chaos_soak >"$results" || status=$?

commit="$(git rev-parse --short HEAD)"
git diff --quiet HEAD -- src tests benches Cargo.toml Cargo.lock || commit="$commit + uncommitted changes"
{
  echo "- Machine: $(machine); load average when the run started: $load"
  echo "- Commit: $commit"
  echo "- Command: \`${LIFTOFF_SOAK_KILLS:+LIFTOFF_SOAK_KILLS=$LIFTOFF_SOAK_KILLS }${LIFTOFF_SOAK_BAKE:+LIFTOFF_SOAK_BAKE=$LIFTOFF_SOAK_BAKE }scripts/chaos-soak.sh\`"
  echo
  cat "$results"
} >"$report"
step "Report ($report)"
cat "$report"
exit "$status"
