#!/usr/bin/env bash
# Checks the Helm chart by hand: builds helm if missing (cached), lints it and renders it with the
# default and with non-default values (namespaced mode, monitoring on) into target/chart/, then
# runs tests/chart.rs, which applies the chart to a real kube-apiserver (server-side dry run and
# for real) and runs the operator as the chart's ServiceAccount. scripts/test.sh runs that test too.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

eval "$(scripts/build-helm.sh)"
scripts/build-control-plane.sh >/dev/null
helm() { "$LIFTOFF_HELM" "$@"; }
out=target/chart
mkdir -p "$out"
non_default=(--set watchNamespace=team-a --set monitoring.serviceMonitor.enabled=true
  --set monitoring.prometheusRule.enabled=true --set monitoring.dashboard.enabled=true)

step "helm lint"
helm lint --strict charts/liftoff
helm lint --strict charts/liftoff "${non_default[@]}"

step "helm template (default values -> $out/default.yaml, non-default -> $out/namespaced-monitoring.yaml)"
helm template liftoff charts/liftoff -n liftoff-system --include-crds --kube-version "$K8S_VERSION" >"$out/default.yaml"
helm template liftoff charts/liftoff -n liftoff-system --include-crds --kube-version "$K8S_VERSION" \
  "${non_default[@]}" >"$out/namespaced-monitoring.yaml"
note "$(grep -c '^kind:' "$out/default.yaml") and $(grep -c '^kind:' "$out/namespaced-monitoring.yaml") objects"

step "tests/chart.rs (real kube-apiserver + etcd)"
LIFTOFF_HELM="$LIFTOFF_HELM" cargo test --locked --test chart -- --test-threads="${LIFTOFF_TEST_THREADS:-2}"
