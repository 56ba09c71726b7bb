#!/usr/bin/env bash
# Instructions per chat completion through the AI gateway (Cairn as benches/run.sh runs it:
# benches/cairn/gateway.yaml) and through the bare proxy, counted by valgrind's callgrind: the
# deterministic measure of CPU per request on a shared, noisy machine (docs/benchmarks.md). The
# AI counterpart of benches/mcp-callgrind.sh, the same method.
#
#   benches/ai-callgrind.sh                  # builds in release, then a few minutes
#   SKIP_BUILD=1 TARGETS=cairn benches/ai-callgrind.sh
#   STREAM=1 SKIP_BUILD=1 benches/ai-callgrind.sh    # streamed completions (19 SSE events each)
#
# Each target runs twice under `valgrind --tool=callgrind`, driven with N1 and then N2 sequential
# requests on one connection (`ai_gateway drive … calls --count N`); the instructions per
# request are (Ir(N2) − Ir(N1)) / (N2 − N1), so start-up, config compilation and shutdown cancel
# out. Mock upstream and driver run natively. Knobs: N1 (500), N2 (2500), TARGETS
# ("cairn bare-proxy"), STREAM, OUT, CAIRN (another cairn binary to measure, e.g. a build of an
# older commit). The callgrind files stay in $OUT (`callgrind_annotate --inclusive=yes
# $OUT/cairn-2500.out` shows where the instructions go). Not a test.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/bench}
OUT=${OUT:-$CARGO_TARGET_DIR/results/ai-callgrind-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
N1=${N1:-500} N2=${N2:-2500}
TARGETS=${TARGETS:-"cairn bare-proxy"}
KEY=cairn-vk-bench-0123456789abcdef0123
STREAM_FLAG=${STREAM:+--stream}
MEASURED=${CAIRN:-}

source "$ROOT/benches/lib.sh"

build_binaries ai_gateway
CAIRN=${MEASURED:-$CAIRN}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

ready() { # url seconds [key]
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        curl -fsS -o /dev/null -m 2 -H 'content-type: application/json' ${3:+-H "authorization: Bearer $3"} \
            -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ready?"}]}' \
            "$1/v1/chat/completions" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

MOCK_PORT=$(free_port)
"$BENCH" mock --port "$MOCK_PORT" 2>"$OUT/mock.log" &
PIDS+=($!)
ready "http://127.0.0.1:$MOCK_PORT" 10 || { echo "mock did not start" >&2; exit 1; }

# Runs target under callgrind with n requests; sets IR to the run's total instructions.
count() { # target n
    local target=$1 n=$2 port pid url key="" out=$OUT/$1-$2.out
    port=$(free_port)
    local vg=(valgrind --tool=callgrind --dump-instr=no ${VALGRIND_ARGS:-} --callgrind-out-file="$out")
    case $target in
    cairn)
        mkdir -p "$OUT/cairn"
        sed -e "s/@PORT@/$port/" -e "s/@MOCK@/$MOCK_PORT/" -e "s/@KEY@/$KEY/" \
            "$ROOT/benches/cairn/gateway.yaml" >"$OUT/cairn/gateway.yaml"
        "${vg[@]}" "$CAIRN" run -f "$OUT/cairn" --admin-port "$(free_port)" 2>"$OUT/cairn-$n.log" &
        key=$KEY
        ;;
    bare-proxy)
        "${vg[@]}" "$BENCH" proxy --port "$port" --upstream "http://127.0.0.1:$MOCK_PORT" \
            2>"$OUT/bare-proxy-$n.log" &
        ;;
    *) echo "unknown target $target" >&2; exit 1 ;;
    esac
    pid=$!
    PIDS+=($pid)
    url=http://127.0.0.1:$port
    ready "$url" 120 "$key" || { echo "$target did not start:" >&2; cat "$OUT/$target-$n.log" >&2; exit 1; }
    "$BENCH" drive --label "$target" --url "$url" ${key:+--key "$key"} calls --count "$n" $STREAM_FLAG \
        >"$OUT/$target-$n.json"
    jq -e '.errors.total == 0' "$OUT/$target-$n.json" >/dev/null ||
        { echo "$target: requests failed: $(cat "$OUT/$target-$n.json")" >&2; exit 1; }
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    IR=$(awk '/^(totals|summary):/ {print $2; exit}' "$out")
}

{
    echo "## AI gateway: instructions per ${STREAM:+streamed }chat completion (callgrind) — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    commit_line "$CAIRN"
    echo "- $(valgrind --version); N1 = $N1, N2 = $N2 requests; files in $OUT"
    echo
    echo "| target | Ir ($N1) | Ir ($N2) | instructions per request |"
    echo "|---|---:|---:|---:|"
}
for target in $TARGETS; do
    log "$target: $N1 requests under callgrind"
    count "$target" "$N1"
    a=$IR
    log "$target: $N2 requests under callgrind"
    count "$target" "$N2"
    b=$IR
    per=$(((b - a) / (N2 - N1)))
    echo "| $target | $a | $b | **$per** |"
    echo "{\"kind\":\"callgrind\",\"label\":\"$target\",\"stream\":${STREAM:+true}${STREAM:-false},\"n1\":$N1,\"ir1\":$a,\"n2\":$N2,\"ir2\":$b,\"ir_per_request\":$per}" >>"$OUT/results.jsonl"
done
log "raw results: $OUT/results.jsonl"
