#!/usr/bin/env bash
# The Liftoff demo: a local control plane (real etcd + kube-apiserver) and a real Prometheus, the
# CRD installed, the operator running, the example launch applied, then a launch week compressed
# into seconds (a 100-user canary, the Go/No-Go, then 500 → 1,500 → everyone), with
# `kubectl get lp` on screen; during the 500-user stage the API's CPU breaches its threshold: the
# API is scaled up and no more users are admitted until the load is handled.
# Ctrl-C stops everything this script started. `--once` prints the result and exits (used by CI).
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
ONCE=false
[[ "${1:-}" == "--once" ]] && ONCE=true

step "Control plane binaries (kube-apiserver, etcd, kubectl)"
eval "$(scripts/build-control-plane.sh)"
step "Building Liftoff"
cargo build --quiet --bins --workspace

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  trap - EXIT INT TERM
  step "Stopping the demo"
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

step "Starting etcd + kube-apiserver and installing crds/"
export KUBECONFIG="$WORK/kubeconfig"
target/debug/liftoff-testenv up --kubeconfig-out "$KUBECONFIG" --crds crds --prometheus >"$WORK/testenv.out" 2>"$WORK/testenv.log" &
PIDS+=($!)
for _ in $(seq 1 120); do grep -q '^READY' "$WORK/testenv.out" 2>/dev/null && break; sleep 0.5; done
grep -q '^READY' "$WORK/testenv.out" || { cat "$WORK/testenv.log"; die "the control plane did not start"; }
note "$(cat "$WORK/testenv.out")  (KUBECONFIG=$KUBECONFIG)"
PROMETHEUS_URL="$(awk '/^PROMETHEUS/ {print $2}' "$WORK/testenv.out")"
EXPORTER_URL="$(awk '/^EXPORTER/ {print $2}' "$WORK/testenv.out")"
cpu() { curl -fsS -X PUT "$EXPORTER_URL/set/api_cpu_percent/$1" >/dev/null; }
kubectl() { "$LIFTOFF_KUBECTL" "$@"; }

step "Starting the operator (logs: $WORK/liftoff.log)"
target/debug/liftoff run --log-format=text --metrics-addr=127.0.0.1:0 >"$WORK/liftoff.log" 2>&1 &
PIDS+=($!)

step "Creating the workloads and Secrets the example refers to"
kubectl create namespace emr >/dev/null
kubectl apply -f examples/demo-workloads.yaml

step "Applying examples/emr-platform.yaml"
kubectl apply -f examples/emr-platform.yaml
for _ in $(seq 1 60); do
  [[ "$(kubectl get lp emr-platform -n emr -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]] && break
  sleep 0.5
done

step "kubectl get lp -n emr"
kubectl get lp -n emr -o wide
kubectl get lp emr-platform -n emr -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -q True \
  || { tail -20 "$WORK/liftoff.log"; die "the example policy did not become Ready"; }

step "A launch week in seconds: examples/launch-week.yaml (Prometheus at $PROMETHEUS_URL)"
kubectl create namespace launch-week >/dev/null
kubectl create deployment api -n launch-week --image=registry.k8s.io/pause:3.10 --replicas=2 >/dev/null
sed "s|PROMETHEUS_URL|$PROMETHEUS_URL|" examples/launch-week.yaml | kubectl apply -f -
phase() { kubectl get lp launch-week -n launch-week -o jsonpath='{.status.rollout.phase}'; }
note "the canary (internal-beta, 100 users) starts at once and bakes with healthy gates"
for _ in $(seq 1 120); do [[ "$(phase)" == AwaitingApproval ]] && break; sleep 0.5; done
[[ "$(phase)" == AwaitingApproval ]] || { tail -20 "$WORK/liftoff.log"; die "the canary did not reach the Go/No-Go"; }
kubectl get lp -n launch-week
note "$(kubectl get lp launch-week -n launch-week -o jsonpath='{.status.rollout.message}')"

step "Go/No-Go: kubectl annotate lp/launch-week liftoff.dev/approve=gradual"
kubectl annotate lp/launch-week -n launch-week liftoff.dev/approve=gradual >/dev/null
last=""
show() {
  now="$(kubectl get lp launch-week -n launch-week -o jsonpath='{.status.rollout.stageName} {.status.rollout.users} {.status.rollout.phase} {.status.rollout.waitingOn.summary}')"
  now="$now | api replicas: $(kubectl get deploy api -n launch-week -o jsonpath='{.spec.replicas}')"
  if [[ "$now" != "$last" ]]; then
    note "$(date +%T)  stage/users/phase/waiting: $now   cohort maxUsers=$(kubectl get cm launch-cohort -n launch-week -o jsonpath='{.data.maxUsers}' 2>/dev/null)"
    last="$now"
  fi
}
for _ in $(seq 1 60); do show; [[ "$now" == gradual* ]] && break; sleep 0.5; done

step "CPU breach during the 500-user stage: the API's CPU goes to 95 % (threshold 70 %)"
cpu 95
for _ in $(seq 1 120); do
  show
  [[ "$(kubectl get deploy api -n launch-week -o jsonpath='{.spec.replicas}')" -gt 2 && "$now" == *"capacity: api-cpu"* ]] && break
  sleep 0.5
done
[[ "$now" == *"capacity: api-cpu"* ]] || { tail -20 "$WORK/liftoff.log"; die "the CPU breach did not hold the launch"; }
kubectl get deploy api -n launch-week
note "$(kubectl get lp launch-week -n launch-week -o jsonpath='{.status.rollout.message}')"

step "The scale-up handles the load: CPU back to 40 %; the launch goes on"
cpu 40
for _ in $(seq 1 240); do
  show
  [[ "$now" == *Completed* ]] && break
  sleep 0.5
done
[[ "$(phase)" == Completed ]] || { tail -20 "$WORK/liftoff.log"; die "the launch week did not complete"; }
kubectl get lp -A
kubectl get events -n launch-week --field-selector involvedObject.name=launch-week --sort-by=.lastTimestamp \
  -o custom-columns=REASON:.reason,MESSAGE:.message | head -30

step "The console: kubectl launch status and history (the kubectl-launch plugin, from target/debug)"
export PATH="$PWD/target/debug:$PATH"
kubectl launch -n launch-week status launch-week
kubectl launch -n launch-week history launch-week

if ! $ONCE; then
  step "Watching (Ctrl-C stops the operator and the control plane)"
  note "try: KUBECONFIG=$KUBECONFIG $LIFTOFF_KUBECTL describe lp -n launch-week launch-week"
  note "or:  KUBECONFIG=$KUBECONFIG PATH=$PWD/target/debug:\$PATH $LIFTOFF_KUBECTL launch -n launch-week status launch-week --watch"
  kubectl get lp -A --watch
fi
