#!/usr/bin/env bash
# Builds the fuzz targets (cargo-fuzz, nightly, libFuzzer) and runs each for a bounded time:
#   fuzz/run.sh                         every target, FUZZ_SECONDS (default 15) each — what CI runs
#   FUZZ_SECONDS=600 fuzz/run.sh packed one target for ten minutes
#   FUZZ_RUNS=1000000 fuzz/run.sh       every target for a million executions each
# Each target starts from its checked-in seeds (fuzz/seeds/<target>) and the corpus it grew in
# earlier runs on this machine (<target dir>/corpus/<target>, never checked in). A crash stops the
# script with the input's path and its bytes in base64: turn it into a regression test in the
# normal suite (see fuzz/README.md), then fix it. Prints one line per target with its figures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$(dirname "$(tests/support/cargo-tools.sh cargo-fuzz)"):$PATH"
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal >&2
fi
dir="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
# The fuzz workspace's lock starts as the main one, so every crate both use is fuzzed at the
# version Cairn ships; cargo adds the fuzz-only ones (libfuzzer-sys, pinned in fuzz/Cargo.toml).
cp Cargo.lock fuzz/Cargo.lock
seconds="${FUZZ_SECONDS:-15}"
all=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^cairn-fuzz$')
targets="${*:-$all}"
# No sanitizer: Cairn forbids `unsafe`, so the findings are panics, aborts, stack overflows,
# timeouts and memory blow-ups, which libFuzzer catches on its own; instrumenting for
# AddressSanitizer would halve the executions per second for nothing.
build=(cargo +nightly fuzz build --sanitizer none --target-dir "$dir")
started=$(date +%s)
"${build[@]}" >&2
echo "fuzz: built in $(( $(date +%s) - started ))s" >&2
for t in $targets; do
  corpus="$dir/corpus/$t"
  artifacts="$dir/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  # The corpus grows with every run; past a few thousand inputs, loading it would eat a short run's
  # time, so it is minimised first (libFuzzer's merge keeps one input per coverage feature).
  if (( $(ls "$corpus" | wc -l) > 2000 )); then
    cargo +nightly fuzz cmin --sanitizer none --target-dir "$dir" "$t" "$corpus" >"$dir/$t.cmin.log" 2>&1 ||
      { tail -20 "$dir/$t.cmin.log" >&2; exit 1; }
  fi
  if [[ -n "${FUZZ_RUNS:-}" ]]; then limit=(-runs="$FUZZ_RUNS"); else limit=(-max_total_time="$seconds"); fi
  log="$dir/$t.log"
  # -timeout: one input taking 10 s is a finding; -rss_limit_mb: so is growing past 2 GiB.
  if ! cargo +nightly fuzz run --sanitizer none --target-dir "$dir" "$t" "$corpus" "fuzz/seeds/$t" -- \
      "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts" -print_final_stats=1 \
      >"$log" 2>&1; then
    tail -40 "$log" >&2
    # (cargo-fuzz passes its own -artifact_prefix, fuzz/artifacts/<target>/, before ours.)
    for a in "$artifacts"* "fuzz/artifacts/$t/"*; do
      [[ -f "$a" ]] || continue
      echo "fuzz: $t: crash input $a (base64):" >&2
      base64 -w0 "$a" >&2; echo >&2
    done
    echo "fuzz: $t FAILED (log: $log)"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  echo "fuzz: $t ok: ${runs:-?} executions in ${secs:-?}s (${speed:-?}/s), ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) inputs, 0 crashes"
done
