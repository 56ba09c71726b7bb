#!/usr/bin/env bash
# The AI gateway benchmark: direct-to-mock, a bare hyper proxy (the ceiling), Cairn (`cairn run -f`)
# and LiteLLM (PyPI, pinned, no database), side by side in one run, everything on loopback.
# Prints markdown tables on stdout; progress on stderr; raw JSON lines in $OUT/results.jsonl.
#
#   benches/run.sh                 # the full run (about 6 minutes plus builds)
#   QUICK=1 benches/run.sh         # short smoke run (about 2 minutes)
#   TARGETS="direct cairn" benches/run.sh
#   SKIP_BUILD=1 benches/run.sh    # use the binaries of the last build
#
# Knobs (environment): RATE (3000), OPEN_S (10), SERIAL_S (5), STREAM_SERIAL_S (30), STREAM_RATE (200),
# LITELLM_STREAM_RATE (10), STREAM_S (10), CHUNKS (16), CHUNK_US (1000), CONNS (32), CLOSED_S (5),
# BOUND_MS (100: the p99 bound of the rate ladder), STEP_S (3), OUT.
# Not a test: nothing here asserts on time. See docs/benchmarks.md.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/bench}
OUT=${OUT:-$CARGO_TARGET_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

TARGETS=${TARGETS:-"direct bare-proxy cairn litellm"}
if [[ -n "${QUICK:-}" ]]; then
    SERIAL_S=${SERIAL_S:-2} STREAM_SERIAL_S=${STREAM_SERIAL_S:-5} OPEN_S=${OPEN_S:-3} STREAM_S=${STREAM_S:-3} CLOSED_S=${CLOSED_S:-2} STEP_S=${STEP_S:-1}
fi
RATE=${RATE:-3000} OPEN_S=${OPEN_S:-10} SERIAL_S=${SERIAL_S:-5} STREAM_SERIAL_S=${STREAM_SERIAL_S:-30}
STREAM_RATE=${STREAM_RATE:-200} STREAM_S=${STREAM_S:-10} CHUNKS=${CHUNKS:-16} CHUNK_US=${CHUNK_US:-1000}
CONNS=${CONNS:-32} CLOSED_S=${CLOSED_S:-5} BOUND_MS=${BOUND_MS:-100} STEP_S=${STEP_S:-3}
# LiteLLM serves a few dozen requests/s here: streams at STREAM_RATE would only measure its queue.
LITELLM_STREAM_RATE=${LITELLM_STREAM_RATE:-10}

LITELLM_VERSION=1.108.5
# certifi: LiteLLM 1.108.x asks for certifi>=2026.10.19, which the package index reachable here
# does not carry yet; 2026.10.18 (the newest there) is used instead. It only matters for TLS to
# the internet, which no part of this benchmark does.
LITELLM_OVERRIDES='certifi==2026.10.18'
LITELLM_VENV=${LITELLM_VENV:-$HOME/.cache/cairn-bench/litellm-$LITELLM_VERSION}
UV_VERSION=0.13.8

CAIRN_KEY=cairn-vk-bench-0123456789abcdef0123
LITELLM_KEY=sk-bench-litellm-master-key

source "$ROOT/benches/lib.sh"

wait_http() { # url, seconds, [auth header]
    local url=$1 secs=$2 auth=${3:-} i
    for ((i = 0; i < secs * 10; i++)); do
        if curl -fsS -o /dev/null -m 2 -H 'content-type: application/json' ${auth:+-H "$auth"} \
            -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ready?"}]}' "$url/v1/chat/completions" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# --- build -------------------------------------------------------------------------------------
build_binaries ai_gateway

if [[ " $TARGETS " == *" litellm "* && ! -x "$LITELLM_VENV/bin/litellm" ]]; then
    log "installing litellm[proxy]==$LITELLM_VERSION into $LITELLM_VENV (once; cached)"
    rm -rf "$LITELLM_VENV"
    python3 -m venv "$LITELLM_VENV"
    "$LITELLM_VENV/bin/pip" install -q "uv==$UV_VERSION"
    echo "$LITELLM_OVERRIDES" >"$LITELLM_VENV/overrides.txt"
    "$LITELLM_VENV/bin/uv" pip install -q --python "$LITELLM_VENV/bin/python" \
        --override "$LITELLM_VENV/overrides.txt" "litellm[proxy]==$LITELLM_VERSION" >&2
fi

# --- the machine -------------------------------------------------------------------------------
{
    echo "## AI gateway benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    commit_line "$CAIRN"
    machine_lines
    echo "- mock upstream: Rust (benches/ai_gateway/mock.rs), 0 ms latency; streams: $CHUNKS content chunks, ${CHUNK_US} µs apart"
    echo "- everything on loopback and on the same $(nproc) cores (driver, mock, target); targets run one after another"
    echo
} >"$OUT/header.md"

MOCK_PORT=$(free_port)
"$BENCH" mock --port "$MOCK_PORT" --chunks "$CHUNKS" --chunk-interval-us "$CHUNK_US" 2>"$OUT/mock.log" &
PIDS+=($!)
wait_http "http://127.0.0.1:$MOCK_PORT" 10 || { echo "mock did not start" >&2; exit 1; }

drive() { # label url key pids... -- scenario args
    local label=$1 url=$2 key=$3
    shift 3
    local args=(--label "$label" --url "$url")
    [[ -n "$key" ]] && args+=(--key "$key")
    while [[ $# -gt 0 && $1 != -- ]]; do args+=(--pid "$1"); shift; done
    shift
    "$BENCH" drive "${args[@]}" "$@"
}

# Waits (up to 60 s) until the target answers one request within a second again.
recover() { # url key
    local i
    for ((i = 0; i < 60; i++)); do
        curl -fsS -o /dev/null -m 1 -H 'content-type: application/json' ${2:+-H "authorization: Bearer $2"} \
            -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ready?"}]}' "$1/v1/chat/completions" 2>/dev/null && return 0
        sleep 1
    done
    log "target still not answering within 1 s after 60 s"
}

run_target() { # label url key ladder_start stream_rate pids...
    local label=$1 url=$2 key=$3 lstart=$4 srate=$5
    shift 5
    local pids=("$@")
    log "$label: warm-up"
    drive "$label" "$url" "$key" -- closed --conns 8 --duration-s 2 >/dev/null
    sleep 1
    [[ ${#pids[@]} -gt 0 ]] && rss "$label" idle "${pids[@]}"
    log "$label: one connection, ${SERIAL_S} s"
    drive "$label" "$url" "$key" "${pids[@]}" -- serial --duration-s "$SERIAL_S" >>"$RESULTS"
    log "$label: streams at one connection, ${STREAM_SERIAL_S} s"
    drive "$label" "$url" "$key" "${pids[@]}" -- serial --stream --duration-s "$STREAM_SERIAL_S" >>"$RESULTS"
    log "$label: streams ${srate}/s, ${STREAM_S} s"
    drive "$label" "$url" "$key" "${pids[@]}" -- open --stream --rate "$srate" --duration-s "$STREAM_S" >>"$RESULTS"
    recover "$url" "$key"
    log "$label: closed loop, $CONNS connections, ${CLOSED_S} s"
    drive "$label" "$url" "$key" "${pids[@]}" -- closed --conns "$CONNS" --duration-s "$CLOSED_S" >>"$RESULTS"
    recover "$url" "$key"
    log "$label: rate ladder from ${lstart}/s, p99 ≤ ${BOUND_MS} ms"
    drive "$label" "$url" "$key" "${pids[@]}" -- ladder --start "$lstart" --step-s "$STEP_S" --p99-bound-ms "$BOUND_MS" >>"$RESULTS"
    recover "$url" "$key"
    # Last: a target that cannot keep up is left with a backlog the others would suffer from.
    log "$label: open loop ${RATE}/s, ${OPEN_S} s"
    drive "$label" "$url" "$key" "${pids[@]}" -- open --rate "$RATE" --duration-s "$OPEN_S" >>"$RESULTS"
    recover "$url" "$key"
    if [[ ${#pids[@]} -gt 0 ]]; then
        sleep 5
        rss "$label" after "${pids[@]}"
    fi
    log "$label: done (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    echo "{\"kind\":\"load\",\"label\":\"$label\",\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$RESULTS"
}

for target in $TARGETS; do
    case $target in
    direct)
        run_target direct "http://127.0.0.1:$MOCK_PORT" "" 1000 "$STREAM_RATE"
        ;;
    bare-proxy)
        start_bare_proxy "http://127.0.0.1:$MOCK_PORT"
        wait_http "http://127.0.0.1:$port" 10 || { echo "bare proxy did not start" >&2; exit 1; }
        sleep 1
        rss bare-proxy started "$pid"
        run_target bare-proxy "http://127.0.0.1:$port" "" 1000 "$STREAM_RATE" "$pid"
        stop "$pid"
        ;;
    cairn)
        port=$(free_port) admin=$(free_port)
        mkdir -p "$OUT/cairn"
        sed -e "s/@PORT@/$port/" -e "s/@MOCK@/$MOCK_PORT/" -e "s/@KEY@/$CAIRN_KEY/" \
            "$ROOT/benches/cairn/gateway.yaml" >"$OUT/cairn/gateway.yaml"
        "$CAIRN" run -f "$OUT/cairn" --admin-port "$admin" 2>"$OUT/cairn.log" &
        pid=$!
        PIDS+=($pid)
        wait_http "http://127.0.0.1:$port" 30 "authorization: Bearer $CAIRN_KEY" ||
            { echo "cairn did not start:" >&2; cat "$OUT/cairn.log" >&2; exit 1; }
        sleep 1
        rss cairn started "$pid"
        run_target cairn "http://127.0.0.1:$port" "$CAIRN_KEY" 1000 "$STREAM_RATE" "$pid"
        curl -s "http://127.0.0.1:$admin/metrics" >"$OUT/cairn-metrics.txt" || true
        stop "$pid"
        ;;
    litellm)
        port=$(free_port)
        sed -e "s/@MOCK@/$MOCK_PORT/" -e "s/@KEY@/$LITELLM_KEY/" \
            "$ROOT/benches/litellm/config.yaml" >"$OUT/litellm.yaml"
        # No network beyond loopback: use the bundled model price map, no telemetry.
        LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR LITELLM_TELEMETRY=False \
            "$LITELLM_VENV/bin/litellm" --config "$OUT/litellm.yaml" --host 127.0.0.1 --port "$port" \
            --num_workers 2 >"$OUT/litellm.log" 2>&1 &
        pid=$!
        PIDS+=($pid)
        wait_http "http://127.0.0.1:$port" 300 "authorization: Bearer $LITELLM_KEY" ||
            { echo "litellm did not start:" >&2; tail -30 "$OUT/litellm.log" >&2; exit 1; }
        sleep 2
        mapfile -t lpids < <(children "$pid")
        rss litellm started "${lpids[@]}"
        run_target litellm "http://127.0.0.1:$port" "$LITELLM_KEY" 5 "$LITELLM_STREAM_RATE" "${lpids[@]}"
        stop "${lpids[@]}"
        ;;
    *) echo "unknown target $target" >&2; exit 1 ;;
    esac
done

{
    echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- LiteLLM: litellm[proxy]==$LITELLM_VERSION, DB-less, master-key auth, 2 workers; its streams at ${LITELLM_STREAM_RATE}/s"
    echo
} >>"$OUT/header.md"
cat "$OUT/header.md"
"$BENCH" report "$RESULTS"
log "raw results: $RESULTS"
