#!/usr/bin/env bash
# Builds helm from its Go module (helm.sh/helm/v3, pinned in scripts/versions.env) into a
# version-keyed cache ($LIFTOFF_CACHE/helm-$HELM_VERSION). No Debian package ships helm.
# Skips the build when it is cached. Prints LIFTOFF_HELM= (eval-able); progress goes to stderr.
source "$(dirname "$0")/lib.sh"

build_helm() {
  if [[ -x "$HELM_BIN_DIR/helm" ]]; then
    note "helm $HELM_VERSION: cached in $HELM_BIN_DIR"
    return
  fi
  need_go
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  step "Building helm $HELM_VERSION from the Go module proxy (first time only)"
  (
    cd "$work"
    go mod init liftoff.dev/helm-build >/dev/null 2>&1
    note "go get helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    go get "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    # As helm's Makefile does: the default Kubernetes version (for `helm template` and lint) is
    # the one of the client-go it is built with (client-go v0.X.Y -> Kubernetes 1.X).
    local client_go k8s_minor pkg=helm.sh/helm/v3
    client_go="$(go list -f '{{.Version}}' -m k8s.io/client-go)"
    k8s_minor="$(echo "$client_go" | cut -d. -f2)"
    note "go build helm (default Kubernetes version 1.$k8s_minor)"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X $pkg/internal/version.version=$HELM_VERSION \
      -X $pkg/pkg/lint/rules.k8sVersionMajor=1 -X $pkg/pkg/lint/rules.k8sVersionMinor=$k8s_minor \
      -X $pkg/pkg/chartutil.k8sVersionMajor=1 -X $pkg/pkg/chartutil.k8sVersionMinor=$k8s_minor" \
      -o "$work/helm" $pkg/cmd/helm
  )
  mkdir -p "$HELM_BIN_DIR"
  mv "$work/helm" "$HELM_BIN_DIR/helm"
  note "built into $HELM_BIN_DIR"
}

build_helm
echo "LIFTOFF_HELM=$HELM_BIN_DIR/helm"
