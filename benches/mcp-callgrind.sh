#!/usr/bin/env bash
# Instructions per tools/call of the MCP gateway (Cairn over one MCPServer, the set-up of
# benches/mcp.sh's `cairn` target) and of the bare proxy, counted by valgrind's callgrind: the
# deterministic measure of CPU per call on a shared, noisy machine (docs/benchmarks.md).
#
#   benches/mcp-callgrind.sh                 # builds in release, then a few minutes
#   SKIP_BUILD=1 TARGETS=cairn benches/mcp-callgrind.sh
#   STRACE=1 SKIP_BUILD=1 benches/mcp-callgrind.sh   # system calls per call instead (strace -f -c)
#
# Each target runs twice under `valgrind --tool=callgrind`, once driven with N1 and once with N2
# sequential tools/call on one session (`mcp_gateway drive … calls --count N`); the instructions
# per call are (Ir(N2) − Ir(N1)) / (N2 − N1), so start-up, config compilation, the session's
# set-up and shutdown cancel out. Backends and driver run natively. Knobs: N1 (500), N2 (2500),
# TARGETS ("cairn bare-proxy"), OUT, VALGRIND_ARGS (e.g. --demangle=no), CAIRN (another cairn
# binary to measure, e.g. a build of an older commit). The callgrind files
# stay in $OUT (`callgrind_annotate --inclusive=yes $OUT/cairn-2500.out` shows where the
# instructions go). With STRACE=1 the targets run natively under `strace -f -c` instead and the
# table gives system calls per call the same way (futex calls are cross-thread wake-ups). Not a
# test.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/bench}
OUT=${OUT:-$CARGO_TARGET_DIR/results/mcp-callgrind-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
N1=${N1:-500} N2=${N2:-2500}
TARGETS=${TARGETS:-"cairn bare-proxy"}
KEY=cairn-vk-bench-0123456789abcdef0123
MEASURED=${CAIRN:-}

source "$ROOT/benches/lib.sh"
source "$ROOT/benches/mcp_lib.sh"

build_binaries mcp_gateway
CAIRN=${MEASURED:-$CAIRN}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

PORTS=("$(free_port)")
"$BENCH" backend --port "${PORTS[0]}" 2>"$OUT/backend.log" &
PIDS+=($!)
wait_mcp "http://127.0.0.1:${PORTS[0]}/mcp" 10 || { echo "backend did not start" >&2; exit 1; }

# Runs target under callgrind (strace with STRACE=1) with n calls; sets IR to the run's total
# instructions (its callgrind file is $OUT/target-n.out; strace's summary is there with STRACE).
count() { # target n
    local target=$1 n=$2 port pid url tool key="" out=$OUT/$1-$2.out
    port=$(free_port)
    local vg=(valgrind --tool=callgrind --dump-instr=no ${VALGRIND_ARGS:-} --callgrind-out-file="$out")
    [[ -n "${STRACE:-}" ]] && vg=(strace -f -c -o "$out")
    case $target in
    cairn)
        mkdir -p "$OUT/cairn"
        cairn_manifests "$port" 1 >"$OUT/cairn/gateway.yaml"
        "${vg[@]}" "$CAIRN" run -f "$OUT/cairn" --admin-port "$(free_port)" \
            >"$OUT/cairn-$n-audit.jsonl" 2>"$OUT/cairn-$n.log" &
        url=http://127.0.0.1:$port/mcp tool=b0__echo key=$KEY
        ;;
    bare-proxy)
        "${vg[@]}" "$BENCH" proxy --port "$port" --upstream "http://127.0.0.1:${PORTS[0]}" \
            2>"$OUT/bare-proxy-$n.log" &
        url=http://127.0.0.1:$port/mcp tool=echo
        ;;
    *) echo "unknown target $target" >&2; exit 1 ;;
    esac
    pid=$!
    PIDS+=($pid)
    wait_mcp "$url" 120 "$key" || { echo "$target did not start:" >&2; cat "$OUT/$target-$n.log" >&2; exit 1; }
    local args=(drive --label "$target" --url "$url" --tool "$tool" ${key:+--key "$key"} calls --count "$n")
    "$BENCH" "${args[@]}" >"$OUT/$target-$n.json"
    jq -e '.errors.total == 0' "$OUT/$target-$n.json" >/dev/null ||
        { echo "$target: calls failed: $(cat "$OUT/$target-$n.json")" >&2; exit 1; }
    if [[ -n "${STRACE:-}" ]]; then
        kill -TERM "$(pgrep -P "$pid")" # the target; strace writes its summary when it is gone
    else
        kill -TERM "$pid"
    fi
    wait "$pid" 2>/dev/null || true
    # "totals: <Ir>" (or "summary:") is the whole process's instruction count.
    IR=$(awk '/^(totals|summary):/ {print $2; exit}' "$out")
}

# strace's summary as "syscall calls" lines.
syscalls() { # file
    awk '$1 ~ /^[0-9.]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {print $NF, $4}' "$1" | sort
}

if [[ -n "${STRACE:-}" ]]; then
    command -v strace >/dev/null || { echo "strace is not installed" >&2; exit 1; }
    echo "## MCP gateway: system calls per tools/call (strace -f -c) — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    commit_line "$CAIRN"
    echo "- N1 = $N1, N2 = $N2 calls; files in $OUT"
    echo
    echo "| target | system calls per call (≥ 0.05) |"
    echo "|---|---|"
    for target in $TARGETS; do
        log "$target: $N1 and $N2 calls under strace"
        count "$target" "$N1"
        count "$target" "$N2"
        per=$(join -a1 -a2 -e0 -o0,1.2,2.2 <(syscalls "$OUT/$target-$N1.out") <(syscalls "$OUT/$target-$N2.out") |
            awk -v d=$((N2 - N1)) '{x = ($3 - $2) / d; if (x >= 0.05) printf "%s %.2f, ", $1, x}' | sed 's/, $//')
        echo "| $target | $per |"
    done
    exit 0
fi

{
    echo "## MCP gateway: instructions per tools/call (callgrind) — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    commit_line "$CAIRN"
    echo "- $(valgrind --version); N1 = $N1, N2 = $N2 calls; files in $OUT"
    echo
    echo "| target | Ir ($N1 calls) | Ir ($N2 calls) | instructions per call |"
    echo "|---|---:|---:|---:|"
}
for target in $TARGETS; do
    log "$target: $N1 calls under callgrind"
    count "$target" "$N1"
    a=$IR
    log "$target: $N2 calls under callgrind"
    count "$target" "$N2"
    b=$IR
    per=$(((b - a) / (N2 - N1)))
    echo "| $target | $a | $b | **$per** |"
    echo "{\"kind\":\"callgrind\",\"label\":\"$target\",\"n1\":$N1,\"ir1\":$a,\"n2\":$N2,\"ir2\":$b,\"ir_per_call\":$per}" >>"$OUT/results.jsonl"
done
log "raw results: $OUT/results.jsonl"
