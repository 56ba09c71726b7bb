#!/usr/bin/env bash
# The operator benchmark (see docs/benchmarks.md, "Operator"): apply → config written and apply →
# first request served by `cairn gateway` in cluster mode (p50/p99 over EDITS edits at 10, 100 and
# 1,000 routes), operator RSS and CPU at 1,000 and 5,000 resources, and an empty cluster → every
# example Ready. Runs the release binary against its own control plane
# (tests/support/platform.sh up target/bench-platform), stopped at the end.
# Prints markdown tables on stdout; progress on stderr. Not a test: nothing here asserts on time.
#
#   benches/operator.sh              # everything (about 10 minutes plus the build)
#   PARTS="latency" benches/operator.sh
#   SKIP_BUILD=1 benches/operator.sh
#   PARTS=scale SCALE_ARGS=--cluster-wide benches/operator.sh
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PARTS=${PARTS:-"latency scale examples"}
EDITS=${EDITS:-50}
RUN_DIR=$ROOT/target/bench-platform

if [[ -z "${SKIP_BUILD:-}" ]]; then
    echo "building the release binary and the bench driver" >&2
    nice -n 10 cargo build --release --bin cairn >&2
    nice -n 10 cargo bench --bench operator --no-run >&2
fi
eval "$(tests/support/platform.sh up "$RUN_DIR")"
trap 'tests/support/platform.sh down "$RUN_DIR" >&2' EXIT
"$CAIRN_TEST_PLATFORM_BIN/kubectl" apply --server-side -f crds/ >/dev/null
for crd in $(ls crds | sed 's/\.yaml$//'); do
    "$CAIRN_TEST_PLATFORM_BIN/kubectl" wait --for=condition=Established "crd/$crd.cairn.dev" --timeout=60s >/dev/null
done
bench() { cargo bench -q --bench operator -- "$@" --cairn "$ROOT/target/release/cairn"; }

echo "machine: $(nproc) cores, $(uname -r); kube-apiserver $("$CAIRN_TEST_PLATFORM_BIN/kube-apiserver" --version)"
if [[ " $PARTS " == *" latency "* ]]; then
    echo
    echo "| routes | edits | written p50 ms | written p99 ms | served p50 ms | served p99 ms | served max ms | written → served p50 ms | compile ms (mean) | gateway reconcile ms (mean) | operator RSS MiB |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for n in 10 100 1000; do bench latency --routes "$n" --edits "$EDITS" --served; done
fi
if [[ " $PARTS " == *" scale "* ]]; then
    echo
    echo "| resources | namespaces | all configs written s | reconciles | writes | CPU s | CPU ms / reconcile | peak RSS MiB | settled RSS MiB |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    # SCALE_ARGS=--cluster-wide: the operator watches the whole cluster, not each namespace.
    for n in 1000 5000; do bench scale --resources "$n" ${SCALE_ARGS:-}; done
fi
if [[ " $PARTS " == *" examples "* ]]; then
    echo
    echo "| examples | all Programmed | all Ready |"
    echo "|---|---:|---:|"
    bench examples
fi
