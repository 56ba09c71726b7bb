#!/usr/bin/env bash
# Cargo-installed tools the checks need, built once from crates.io (--locked) into
# ~/.cache/cairn-tools and reused while the pinned version is there:
#   tests/support/cargo-tools.sh cargo-deny     → prints the binary's path
# Pinned versions live here, so every machine runs the same checks.
set -euo pipefail
ROOT="${CAIRN_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn-tools}"
tool="${1:?usage: cargo-tools.sh cargo-deny|cargo-fuzz}"
case "$tool" in
  cargo-deny) version=0.20.2; toolchain=stable ;;
  cargo-fuzz) version=0.13.2; toolchain=stable ;;
  *) echo "cargo-tools.sh: unknown tool $tool" >&2; exit 2 ;;
esac
bin="$ROOT/bin/$tool"
installed="$("$bin" --version 2>/dev/null || true)"
if [[ "$installed" != "$tool $version" ]]; then
  echo "cargo-tools.sh: building $tool $version into $ROOT (once per machine; a few minutes)" >&2
  started=$(date +%s)
  cargo "+$toolchain" install --locked --quiet --force --root "$ROOT" "$tool" --version "=$version" >&2
  echo "cargo-tools.sh: $tool $version built in $(( $(date +%s) - started ))s" >&2
fi
echo "$bin"
