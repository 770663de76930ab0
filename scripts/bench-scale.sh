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
# policies before the operator starts, and time Ready from its start), LIFTOFF_BENCH_ROLLOUT=1 (every
# policy also has the example's rollout: 4 stages, 12 gate checks), LIFTOFF_BENCH_QUERY_REUSE (the
# operator's --query-reuse, e.g. 15s; its default when unset), LIFTOFF_BENCH_FULL=1 (every policy a
# whole copy of examples/emr-platform.yaml with its own workloads, over real Kafka and Redis and a
# local webhook receiver: benches/scale/example_fleet.rs), LIFTOFF_BENCH_HEAPTRACK=1 (run
# each operator the bench starts under heaptrack, built with the C library's malloc and symbols, and
# print the biggest allocation sites at the peak and what was still allocated when it was killed —
# the first is killed with SIGKILL after the steady window, so that is its steady-state heap; the
# timings are then the profiler's, not the operator's), LIFTOFF_BENCH_APISERVER_PROFILE=1 (with
# PRESTORED: 10 s CPU profiles of the apiserver during the operator's ramp and during a plain
# client's status writes, kept in target/bench/ with their top functions). The operator reads its
# own settings from the environment too: LIFTOFF_API_REQUESTS_IN_FLIGHT (its
# --api-requests-in-flight) is passed through and named in the report.
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

features=()
if [[ -n "${LIFTOFF_BENCH_HEAPTRACK:-}" ]]; then
  command -v heaptrack >/dev/null || apt-get install -y -q heaptrack >/dev/null
  features=(--features system-allocator)
  export CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
  export LIFTOFF_OPERATOR_WRAPPER="$PWD/scripts/heaptrack-exec.sh"
  export HEAPTRACK_DIR="$PWD/target/bench/heaptrack-$stamp"
  mkdir -p "$HEAPTRACK_DIR"
fi

if [[ -n "${LIFTOFF_BENCH_APISERVER_PROFILE:-}" ]]; then
  export LIFTOFF_BENCH_PROFILE_DIR="$PWD/target/bench/apiserver-$stamp"
  mkdir -p "$LIFTOFF_BENCH_PROFILE_DIR"
fi

step "Building (release)"
cargo bench --locked --bench scale --no-run "${features[@]}"
step "Benchmark: $LIFTOFF_BENCH_POLICIES policies"
started="$(date -u '+%Y-%m-%d %H:%M UTC')"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --locked --bench scale "${features[@]}"
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"

commit="$(git rev-parse --short HEAD)"
git diff --quiet HEAD -- src tests benches Cargo.toml Cargo.lock || commit="$commit + uncommitted changes"
{
  echo "### $started, N = $LIFTOFF_BENCH_POLICIES"
  echo
  echo "- Machine: $(machine); load average when the run started: $load, when it ended: $load_end"
  echo "- Commit: $commit"
  echo "- Command: \`LIFTOFF_BENCH_POLICIES=$LIFTOFF_BENCH_POLICIES LIFTOFF_BENCH_READY_CAP=$LIFTOFF_BENCH_READY_CAP LIFTOFF_BENCH_STEADY=$LIFTOFF_BENCH_STEADY${LIFTOFF_BENCH_LOG:+ LIFTOFF_BENCH_LOG=$LIFTOFF_BENCH_LOG}${LIFTOFF_BENCH_PRESTORED:+ LIFTOFF_BENCH_PRESTORED=$LIFTOFF_BENCH_PRESTORED}${LIFTOFF_BENCH_ROLLOUT:+ LIFTOFF_BENCH_ROLLOUT=$LIFTOFF_BENCH_ROLLOUT}${LIFTOFF_BENCH_FULL:+ LIFTOFF_BENCH_FULL=$LIFTOFF_BENCH_FULL}${LIFTOFF_BENCH_HEAPTRACK:+ LIFTOFF_BENCH_HEAPTRACK=$LIFTOFF_BENCH_HEAPTRACK}${LIFTOFF_BENCH_QUERY_REUSE:+ LIFTOFF_BENCH_QUERY_REUSE=$LIFTOFF_BENCH_QUERY_REUSE}${LIFTOFF_BENCH_APISERVER_PROFILE:+ LIFTOFF_BENCH_APISERVER_PROFILE=$LIFTOFF_BENCH_APISERVER_PROFILE}${LIFTOFF_API_REQUESTS_IN_FLIGHT:+ LIFTOFF_API_REQUESTS_IN_FLIGHT=$LIFTOFF_API_REQUESTS_IN_FLIGHT} scripts/bench-scale.sh\`"
  echo
  cat "$results"
} >"$report"
step "Report ($report)"
cat "$report"
if [[ -n "${LIFTOFF_BENCH_HEAPTRACK:-}" ]]; then
  step "Heap profiles at their peak ($HEAPTRACK_DIR)"
  for raw in "$HEAPTRACK_DIR"/*.raw; do
    /usr/lib/heaptrack/libexec/heaptrack_interpret <"$raw" | zstd -q -c >"${raw%.raw}.zst"
    rm "$raw"
    heaptrack_print --print-peaks 1 --print-allocators 0 --print-temporary 0 --print-leaks 1 \
      --peak-limit 25 --sub-peak-limit 8 "${raw%.raw}.zst" >"${raw%.raw}.peaks.txt"
    echo "${raw%.raw}.peaks.txt"
  done
fi
if [[ -n "${LIFTOFF_BENCH_PROFILE_DIR:-}" ]]; then
  step "apiserver CPU profiles ($LIFTOFF_BENCH_PROFILE_DIR)"
  go="$(command -v go || echo /usr/local/go/bin/go)"
  for profile in "$LIFTOFF_BENCH_PROFILE_DIR"/*.pprof; do
    [[ -s "$profile" ]] || continue
    "$go" tool pprof -top -nodecount=40 "$profile" >"${profile%.pprof}.top.txt" 2>&1
    "$go" tool pprof -top -cum -nodecount=60 "$profile" >"${profile%.pprof}.cum.txt" 2>&1
    echo "${profile%.pprof}.top.txt ${profile%.pprof}.cum.txt"
  done
fi
