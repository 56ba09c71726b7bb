#!/usr/bin/env bash
# One call for test runners: installs missing system packages, builds (or reuses) the control-plane
# binaries, creates (or reuses) the Python venv, starts the control plane, and prints eval-able
# exports on stdout (progress goes to stderr). On failure it prints `false`, so that
#   eval "$(tests/support/env.sh)" && trap 'tests/support/platform.sh down' EXIT && cargo test
# stops there. An optional argument is the run directory (default target/test-platform).
set -euo pipefail
P="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/platform.sh"
"$P" deps >&2 || { echo false; exit 1; }
"$P" build >&2 || { echo false; exit 1; }
py_exports="$("$P" python)" || exit 1
printf '%s\n' "$py_exports"
eval "$py_exports"   # the tools read the kubernetes-validate wheel with the venv's pip
CAIRN_TEST_PYTHON="$CAIRN_TEST_PYTHON" "$P" tools || exit 1
# `up` picks free loopback ports just before binding them; on a busy machine another process can
# take one in between, so a failed start is retried on fresh ports.
for attempt in 1 2 3; do
  if out="$("$P" up "$@")"; then
    printf '%s\n' "$out"
    exit 0
  fi
  echo "env.sh: control plane start failed (attempt $attempt of 3)" >&2
done
echo false
exit 1
