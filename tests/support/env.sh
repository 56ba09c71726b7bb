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
"$P" python || exit 1
"$P" up "$@" || exit 1
