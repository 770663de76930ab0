#!/usr/bin/env bash
# Installs the OpenFeature flagd in-process evaluator (@openfeature/flagd-core, pinned in
# scripts/versions.env) from the npm registry into a version-keyed cache
# ($LIFTOFF_CACHE/flagd-core-$FLAGD_CORE_VERSION), for tests/flagd.rs. Needs Node.js and npm.
# Skips the install when it is cached. Prints LIFTOFF_FLAGD_CORE= (eval-able).
source "$(dirname "$0")/lib.sh"

install_flagd_core() {
  if [[ -f "$FLAGD_CORE_DIR/node_modules/@openfeature/flagd-core/package.json" ]]; then
    note "@openfeature/flagd-core $FLAGD_CORE_VERSION: cached in $FLAGD_CORE_DIR"
    return
  fi
  command -v npm >/dev/null 2>&1 || die "npm is not installed (needed for the flagd evaluator). Install Node.js >= 18 with npm and re-run."
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  step "Installing @openfeature/flagd-core $FLAGD_CORE_VERSION from the npm registry (first time only)"
  (
    cd "$work"
    npm init -y >/dev/null
    npm install --no-audit --no-fund --save-exact \
      "@openfeature/flagd-core@$FLAGD_CORE_VERSION" "@openfeature/core@$OPENFEATURE_CORE_VERSION" >&2
  )
  mkdir -p "$(dirname "$FLAGD_CORE_DIR")"
  rm -rf "$FLAGD_CORE_DIR"
  mv "$work" "$FLAGD_CORE_DIR"
  trap - RETURN
  note "installed into $FLAGD_CORE_DIR"
}

install_flagd_core
echo "LIFTOFF_FLAGD_CORE=$FLAGD_CORE_DIR"
