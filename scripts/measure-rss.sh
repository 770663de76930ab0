#!/usr/bin/env bash
# Measures the operator's memory and CPU, which size the chart's resources: the release binary
# against a local control plane (as scripts/demo.sh), reports its resident memory idle (no
# policies), once N policies are Ready (VmHWM is the peak, VmRSS the current), and after a steady
# window of sampling, with the CPU used in that window.
#
#   scripts/measure-rss.sh [N]                 # the example launch plus N copies (default 50); its
#                                              # sources are unreachable cluster addresses
#   scripts/measure-rss.sh N --prometheus      # N policies, each with one cpu trigger on its own
#                                              # Deployment, sampled every 15 s from a local
#                                              # Prometheus (liftoff-testenv --prometheus)
#
# LIFTOFF_MEASURE_WINDOW (seconds, default 60) is the steady window.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
N="${1:-50}"
MODE="${2:-example}"
WINDOW="${LIFTOFF_MEASURE_WINDOW:-60}"
[[ "$MODE" == example || "$MODE" == --prometheus ]] || die "usage: $0 [N] [--prometheus]"

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
testenv_args=(up --kubeconfig-out "$KUBECONFIG" --crds crds)
[[ "$MODE" == --prometheus ]] && testenv_args+=(--prometheus)
target/debug/liftoff-testenv "${testenv_args[@]}" >"$WORK/testenv.out" 2>"$WORK/testenv.log" &
PIDS+=($!)
for _ in $(seq 1 120); do grep -q '^READY' "$WORK/testenv.out" 2>/dev/null && break; sleep 0.5; done
grep -q '^READY' "$WORK/testenv.out" || { cat "$WORK/testenv.log"; die "the control plane did not start"; }
PROMETHEUS_URL="$(awk '/^PROMETHEUS/ {print $2}' "$WORK/testenv.out")"
kubectl() { "$LIFTOFF_KUBECTL" "$@"; }

target/release/liftoff run --log-format=json --metrics-addr=127.0.0.1:0 >"$WORK/liftoff.log" 2>&1 &
OP=$!
PIDS+=($OP)
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$OP/stat"; }
memory() {
  note "$1: $(grep -E '^(VmHWM|VmRSS|Threads)' "/proc/$OP/status" | tr -s ' \t' ' ' | paste -sd ' ')"
}
sleep 5
memory "idle, 5 s after start"

kubectl create namespace emr >/dev/null
if [[ "$MODE" == --prometheus ]]; then
  total="$N"
  for i in $(seq 1 "$N"); do
    cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: api-$i, namespace: emr}
spec:
  replicas: 1
  selector: {matchLabels: {app: api-$i}}
  template:
    metadata: {labels: {app: api-$i}}
    spec: {containers: [{name: api, image: registry.example/emr/api:1.0}]}
---
apiVersion: liftoff.dev/v1alpha1
kind: LaunchPolicy
metadata: {name: launch-$i, namespace: emr}
spec:
  prometheus: {address: "$PROMETHEUS_URL"}
  scaling:
    interval: 15s
    triggers:
      - name: api-cpu
        cpu: {utilization: 70, query: "100 * max(http_error_rate)"}
        scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api-$i}
        replicas: {min: 1, max: 3}
---
YAML
  done | kubectl apply -f - >/dev/null
else
  total=$((N + 1))
  kubectl apply -f examples/demo-workloads.yaml >/dev/null
  kubectl apply -f examples/emr-platform.yaml >/dev/null
  for i in $(seq 1 "$N"); do
    sed "s/name: emr-platform/name: launch-$i/" examples/emr-platform.yaml
    echo ---
  done | kubectl apply -f - >/dev/null
fi
step "waiting for $total policies to be Ready"
start="$(date +%s)"
for _ in $(seq 1 600); do
  ready="$(kubectl get lp -n emr -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)"
  ((ready == total)) && break
  sleep 1
done
((ready == total)) || die "only $ready of $total policies became Ready"
note "all Ready $(($(date +%s) - start)) s after they were applied; CPU time so far: $(cpu_seconds) s"
memory "$total policies Ready"

before="$(cpu_seconds)"
sleep "$WINDOW"
after="$(cpu_seconds)"
memory "after a ${WINDOW} s steady window"
note "CPU in the window: $(awk -v a="$after" -v b="$before" -v w="$WINDOW" 'BEGIN { printf "%.2f s = %.1f millicores", a - b, 1000 * (a - b) / w }')"
if [[ "$MODE" == --prometheus ]]; then
  sampled="$(kubectl get lp -n emr -o jsonpath='{range .items[*]}{.status.triggers[0].value}{"\n"}{end}' | grep -c . || true)"
  note "policies whose trigger has a sampled value: $sampled of $total"
fi
