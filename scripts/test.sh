#!/usr/bin/env bash
# Runs Liftoff's whole test suite: unit tests (no servers) and integration tests against a real
# kube-apiserver + etcd. Builds or installs whatever is missing first (cached, so fast next time).
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

step "Control plane binaries (kube-apiserver, etcd, kubectl)"
scripts/build-control-plane.sh >/dev/null
step "helm (tests/chart.rs renders and installs the chart)"
eval "$(scripts/build-helm.sh)"
export LIFTOFF_HELM
step "flagd evaluator (tests/flagd.rs evaluates the published cohort flag)"
eval "$(scripts/install-flagd-core.sh)"
export LIFTOFF_FLAGD_CORE
if [[ -x scripts/install-test-deps.sh ]]; then
  step "Test servers (Prometheus, Redis, PostgreSQL, Kafka)"
  scripts/install-test-deps.sh
fi

step "cargo test --workspace"
# Each integration test starts its own control plane; two at a time fit this 2-core machine.
cargo test --workspace --locked -- --test-threads="${LIFTOFF_TEST_THREADS:-2}" "$@"
