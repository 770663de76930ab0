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
    note "go build helm"
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
      -o "$work/helm" helm.sh/helm/v3/cmd/helm
  )
  mkdir -p "$HELM_BIN_DIR"
  mv "$work/helm" "$HELM_BIN_DIR/helm"
  note "built into $HELM_BIN_DIR"
}

build_helm
echo "LIFTOFF_HELM=$HELM_BIN_DIR/helm"
