#!/usr/bin/env bash
# Runs every cargo fuzz target (fuzz/fuzz_targets) for SECONDS each (default 60) with libFuzzer,
# starting from and adding to the kept corpus (fuzz/corpus/<target>), and prints one summary
# line per target: executions, time and whether it found a crash. Needs a nightly toolchain
# (libFuzzer's sanitizer flags); installs cargo-fuzz if missing. The same entry points run on
# stable in `cargo test` (src/fuzzing.rs), which replays the corpus on every test run.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(policy prometheus_response kafka_lag duration annotations)
fi

rustup toolchain list | grep -q '^nightly' ||
  die "cargo fuzz needs a nightly toolchain: rustup toolchain install nightly --profile minimal"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  step "Installing cargo-fuzz (first time only)"
  cargo install cargo-fuzz --locked
fi

step "Building the fuzz targets (nightly, address sanitizer)"
(cd fuzz && cargo +nightly fuzz build >/dev/null)

failed=0
for target in "${targets[@]}"; do
  step "cargo fuzz run $target for ${seconds}s"
  log="$(mktemp)"
  if (cd fuzz && cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
    -print_final_stats=1) >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    failed=1
    tail -40 "$log" >&2
  fi
  runs="$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
  corpus="$(find "fuzz/corpus/$target" -type f | wc -l)"
  printf '%-20s %-6s %10s executions in %ss, corpus %s inputs\n' "$target" "$result" "$runs" "$seconds" "$corpus"
  rm -f "$log"
done
exit "$failed"
