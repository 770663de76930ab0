#!/usr/bin/env bash
# Builds kube-apiserver, kubectl, kube-controller-manager (its garbage collector, for the tests
# that delete a policy and expect what it owns to go) and etcd from their Go modules into a
# version-keyed cache ($LIFTOFF_CACHE, default ~/.cache/liftoff). Skips whatever is already built.
# Prints LIFTOFF_KUBE_APISERVER=, LIFTOFF_KUBECTL=, LIFTOFF_KUBE_CONTROLLER_MANAGER= and
# LIFTOFF_ETCD= lines (eval-able); progress goes to stderr.
source "$(dirname "$0")/lib.sh"

build_k8s() {
  local commands=() c
  for c in kube-apiserver kubectl kube-controller-manager; do
    [[ -x "$K8S_BIN_DIR/$c" ]] || commands+=("$c")
  done
  if [[ ${#commands[@]} -eq 0 ]]; then
    note "kube-apiserver, kubectl, kube-controller-manager $K8S_VERSION: cached in $K8S_BIN_DIR"
    return
  fi
  need_go
  local work minor
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  step "Building ${commands[*]} $K8S_VERSION from the Go module proxy (first time only: ~8 min, ~2 GB RAM)"
  (
    cd "$work"
    go mod init liftoff.dev/k8s-build >/dev/null 2>&1
    note "resolving k8s.io/kubernetes@$K8S_VERSION"
    gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    [[ -f "$gomod" ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION"
    # Every staging module must be replaced with its published v0.Y.Z tag.
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk '{print $1}' | sort -u | while read -r m; do
      echo "replace $m => $m v0.$minor.${K8S_VERSION##*.}"
    done >> go.mod
    note "go get (module graph, ~1 min)"
    # Getting the packages (not just the module) records go.sum entries for all their imports.
    local packages=()
    for c in "${commands[@]}"; do packages+=("k8s.io/kubernetes/cmd/$c@$K8S_VERSION"); done
    go get "${packages[@]}"
    local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
    mkdir -p "$work/out"
    for c in "${commands[@]}"; do
      note "go build $c"
      CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$work/out/$c" "k8s.io/kubernetes/cmd/$c"
    done
  )
  mkdir -p "$K8S_BIN_DIR"
  for c in "${commands[@]}"; do mv "$work/out/$c" "$K8S_BIN_DIR/"; done
  note "built into $K8S_BIN_DIR"
}

build_etcd() {
  if [[ -x "$ETCD_BIN_DIR/etcd" ]]; then
    note "etcd $ETCD_VERSION: cached in $ETCD_BIN_DIR"
    return
  fi
  need_go
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  step "Building etcd $ETCD_VERSION from the Go module proxy (first time only: ~1 min)"
  (
    cd "$work"
    go mod init liftoff.dev/etcd-build >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/etcd" go.etcd.io/etcd/server/v3
  )
  mkdir -p "$ETCD_BIN_DIR"
  mv "$work/etcd" "$ETCD_BIN_DIR/etcd"
  note "built into $ETCD_BIN_DIR"
}

build_etcd
build_k8s
echo "LIFTOFF_KUBE_APISERVER=$K8S_BIN_DIR/kube-apiserver"
echo "LIFTOFF_KUBECTL=$K8S_BIN_DIR/kubectl"
echo "LIFTOFF_KUBE_CONTROLLER_MANAGER=$K8S_BIN_DIR/kube-controller-manager"
echo "LIFTOFF_ETCD=$ETCD_BIN_DIR/etcd"
