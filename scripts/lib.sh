# Shared settings for Liftoff's scripts. Sourced, not executed.
# Versions are pinned here; binaries are cached per version outside the repo.
set -euo pipefail

# shellcheck source=versions.env
source "$(dirname "${BASH_SOURCE[0]}")/versions.env"

LIFTOFF_CACHE="${LIFTOFF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/liftoff}"
K8S_BIN_DIR="$LIFTOFF_CACHE/k8s-$K8S_VERSION"
ETCD_BIN_DIR="$LIFTOFF_CACHE/etcd-$ETCD_VERSION"
KAFKA_DIR="$LIFTOFF_CACHE/kafka-$KAFKA_VERSION"
HELM_BIN_DIR="$LIFTOFF_CACHE/helm-$HELM_VERSION"
FLAGD_CORE_DIR="$LIFTOFF_CACHE/flagd-core-$FLAGD_CORE_VERSION"

step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
# One line describing this machine, for benchmark reports: CPUs, model, RAM, kernel, VM or not.
machine() {
  printf '%s CPUs (%s), %s RAM, Linux %s%s' "$(nproc)" \
    "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sort -u | head -1)" \
    "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)" "$(uname -r)" \
    "$(grep -qw hypervisor /proc/cpuinfo && echo ", virtual machine")"
}

need_go() {
  command -v go >/dev/null 2>&1 || die "Go is not installed (needed to build kube-apiserver and etcd). Install Go >= 1.24 and re-run."
}
