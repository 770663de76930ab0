#!/usr/bin/env bash
# Measures the operator's memory, which sizes the chart's resources: the release binary against a
# local control plane (as scripts/demo.sh), with the example launch plus N more policies
# (default 50) reconciled to Ready. Prints peak (VmHWM) and current (VmRSS) resident memory.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
N="${1:-50}"

eval "$(scripts/build-control-plane.sh)"
cargo build --quiet --release --locked --bin liftoff
cargo build --quiet -p liftoff-testenv --bin liftoff-testenv

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

export KUBECONFIG="$WORK/kubeconfig"
target/debug/liftoff-testenv up --kubeconfig-out "$KUBECONFIG" --crds crds >"$WORK/testenv.out" 2>"$WORK/testenv.log" &
PIDS+=($!)
for _ in $(seq 1 120); do grep -q '^READY' "$WORK/testenv.out" 2>/dev/null && break; sleep 0.5; done
grep -q '^READY' "$WORK/testenv.out" || { cat "$WORK/testenv.log"; die "the control plane did not start"; }
kubectl() { "$LIFTOFF_KUBECTL" "$@"; }

target/release/liftoff run --log-format=json --metrics-addr=127.0.0.1:0 >"$WORK/liftoff.log" 2>&1 &
OP=$!
PIDS+=($OP)
kubectl create namespace emr >/dev/null
kubectl apply -f examples/demo-workloads.yaml >/dev/null
kubectl apply -f examples/emr-platform.yaml >/dev/null
for i in $(seq 1 "$N"); do
  sed "s/name: emr-platform/name: launch-$i/" examples/emr-platform.yaml
  echo ---
done | kubectl apply -f - >/dev/null
step "waiting for $((N + 1)) policies to be Ready"
for _ in $(seq 1 240); do
  ready="$(kubectl get lp -n emr -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)"
  ((ready == N + 1)) && break
  sleep 0.5
done
((ready == N + 1)) || die "only $ready of $((N + 1)) policies became Ready"
grep -E '^(VmHWM|VmRSS)' "/proc/$OP/status" | sed 's/^/    /'
ticks="$(awk '{print $14 + $15}' "/proc/$OP/stat")"
note "CPU time so far: $(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }') s"
