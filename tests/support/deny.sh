#!/usr/bin/env bash
# Supply-chain checks of deny.toml (cargo-deny): licences, banned and duplicate crates, sources
# always; security advisories where the RustSec advisory database is at hand.
#
# The advisory database is a git repository on a host these machines cannot reach, and cargo-deny
# cannot fetch it here. When a copy is in cargo-deny's database folder (deny.toml's `db-path`:
# ~/.cache/cairn-tools/advisory-dbs/advisory-db-3157b0e258782691, a clone of
# rustsec/advisory-db), advisories are checked against it offline and the copy's date printed;
# otherwise the step says it skipped them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
deny="$(tests/support/cargo-tools.sh cargo-deny)"
"$deny" --locked check licenses bans sources
db="${XDG_CACHE_HOME:-$HOME/.cache}/cairn-tools/advisory-dbs/advisory-db-3157b0e258782691"
if git -C "$db" rev-parse --verify -q HEAD >/dev/null 2>&1; then
  echo "deny.sh: advisories against the RustSec database of $(git -C "$db" show -s --format=%cs HEAD) ($db)" >&2
  "$deny" --offline check advisories
else
  echo "deny.sh: advisories skipped: no RustSec advisory database at $db (it cannot be fetched from these machines)" >&2
fi
