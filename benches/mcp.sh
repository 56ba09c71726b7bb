#!/usr/bin/env bash
# The MCP gateway benchmark: the driver straight to a backend, a bare HTTP proxy (the ceiling),
# Cairn (`cairn run -f`) over 1 and over 10 MCPServers, and mcp-proxy (crates.io, pinned) over 1
# and over 10 backends, side by side in one run, everything on loopback. Prints markdown tables on stdout; progress on stderr; raw
# JSON lines in $OUT/results.jsonl.
#
#   benches/mcp.sh                 # the full run (about 6 minutes plus builds)
#   QUICK=1 benches/mcp.sh         # short smoke run
#   TARGETS="direct cairn cairn-10" benches/mcp.sh
#   SKIP_BUILD=1 benches/mcp.sh    # use the binaries of the last build
#
# Knobs (environment): SERIAL_S (5), SETUP_S (5), CONNS (32), CLOSED_S (5), LADDER_START (2000),
# STEP_S (3), BOUND_MS (50: the p99 bound of the rate ladder), SESSIONS (1000: sessions opened
# for the memory figure), RESULT_BYTES (512: size of a tool result), OUT.
# Not a test: nothing here asserts on time. See docs/benchmarks.md.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/bench}
OUT=${OUT:-$CARGO_TARGET_DIR/results/mcp-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

TARGETS=${TARGETS:-"direct bare-proxy cairn cairn-10 mcp-proxy mcp-proxy-10"}
if [[ -n "${QUICK:-}" ]]; then
    SERIAL_S=${SERIAL_S:-2} SETUP_S=${SETUP_S:-2} CLOSED_S=${CLOSED_S:-2} STEP_S=${STEP_S:-1}
fi
SERIAL_S=${SERIAL_S:-5} SETUP_S=${SETUP_S:-5} CONNS=${CONNS:-32} CLOSED_S=${CLOSED_S:-5}
LADDER_START=${LADDER_START:-2000} STEP_S=${STEP_S:-3} BOUND_MS=${BOUND_MS:-50}
SESSIONS=${SESSIONS:-1000} RESULT_BYTES=${RESULT_BYTES:-512}

# mcp-proxy (joshrotenberg/mcp-proxy): a Rust MCP gateway built on tower-mcp that aggregates
# stdio/HTTP/WebSocket MCP servers behind one streamable-HTTP endpoint, with namespacing, bearer /
# JWT auth with per-token tool scoping, audit logging and metrics. Installed once, pinned, with
# its lock file and default features, into a cache directory.
MCP_PROXY_VERSION=0.6.0
MCP_PROXY_ROOT=${MCP_PROXY_ROOT:-$HOME/.cache/cairn-bench/mcp-proxy-$MCP_PROXY_VERSION}
MCP_PROXY=$MCP_PROXY_ROOT/bin/mcp-proxy

KEY=cairn-vk-bench-0123456789abcdef0123
BACKENDS=10

source "$ROOT/benches/lib.sh"
source "$ROOT/benches/mcp_lib.sh"

# --- build -------------------------------------------------------------------------------------
build_binaries mcp_gateway

if [[ " $TARGETS " == *" mcp-proxy"* && ! -x "$MCP_PROXY" ]]; then
    log "installing mcp-proxy $MCP_PROXY_VERSION into $MCP_PROXY_ROOT (once; cached; takes minutes)"
    cargo install --locked --version "$MCP_PROXY_VERSION" --root "$MCP_PROXY_ROOT" mcp-proxy >&2
fi

# --- the machine -------------------------------------------------------------------------------
{
    echo "## MCP gateway benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    commit_line "$CAIRN"
    machine_lines
    echo "- backends: $BACKENDS MCP servers in one process (benches/mcp_gateway/backend.rs, one thread), pre-serialised answers, tool result $RESULT_BYTES bytes"
    echo "- everything on loopback and on the same $(nproc) cores (driver, backends, target); targets run one after another"
    echo
} >"$OUT/header.md"

PORTS=()
for ((i = 0; i < BACKENDS; i++)); do PORTS+=("$(free_port)"); done
pargs=()
for p in "${PORTS[@]}"; do pargs+=(--port "$p"); done
"$BENCH" backend "${pargs[@]}" --result-bytes "$RESULT_BYTES" 2>"$OUT/backend.log" &
PIDS+=($!)

wait_mcp "http://127.0.0.1:${PORTS[0]}/mcp" 10 || { echo "backend did not start" >&2; exit 1; }

drive() { # label url tool key backends pids... -- scenario args
    local label=$1 url=$2 tool=$3 key=$4 n=$5
    shift 5
    local args=(--label "$label" --url "$url" --tool "$tool" --backends "$n")
    [[ -n "$key" ]] && args+=(--key "$key")
    while [[ $# -gt 0 && $1 != -- ]]; do args+=(--pid "$1"); shift; done
    shift
    "$BENCH" drive "${args[@]}" "$@"
}

run_target() { # label url tool key backends pids...
    local label=$1 url=$2 tool=$3 key=$4 n=$5
    shift 5
    local pids=("$@") d=(drive "$label" "$url" "$tool" "$key" "$n")
    if [[ ${#pids[@]} -gt 0 ]]; then
        # First, on a fresh process: what load would blur.
        log "$label: memory per open session ($SESSIONS sessions)"
        "${d[@]}" "${pids[@]}" -- sessions --count "$SESSIONS" >>"$RESULTS"
    fi
    log "$label: warm-up"
    "${d[@]}" -- closed --conns 8 --duration-s 2 >/dev/null
    log "$label: tools/call at one connection, ${SERIAL_S} s"
    "${d[@]}" "${pids[@]}" -- serial --duration-s "$SERIAL_S" >>"$RESULTS"
    log "$label: session set-up, ${SETUP_S} s"
    "${d[@]}" "${pids[@]}" -- setup --duration-s "$SETUP_S" >>"$RESULTS"
    log "$label: closed loop, $CONNS sessions, ${CLOSED_S} s"
    "${d[@]}" "${pids[@]}" -- closed --conns "$CONNS" --duration-s "$CLOSED_S" >>"$RESULTS"
    sleep 1
    log "$label: rate ladder from ${LADDER_START}/s, p99 ≤ ${BOUND_MS} ms"
    "${d[@]}" "${pids[@]}" -- ladder --start "$LADDER_START" --step-s "$STEP_S" --p99-bound-ms "$BOUND_MS" >>"$RESULTS"
    log "$label: done (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    echo "{\"kind\":\"load\",\"label\":\"$label\",\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$RESULTS"
}

# mcp-proxy's config: the same backends, namespaced with the same separator as Cairn's, a bearer
# token scoped to b0's echo tool, audit and metrics on. Log level warn: at info it logs two lines
# per session, which Cairn does not. (Its audit middleware runs, but the binary's log filter,
# `tower_mcp=LEVEL,mcp_proxy=LEVEL`, drops the `mcp::audit` events, so it writes no audit lines.)
mcp_proxy_config() { # port n
    local port=$1 n=$2 i
    cat <<EOF
[proxy]
name = "bench"
separator = "__"

[proxy.listen]
host = "127.0.0.1"
port = $port

[auth]
type = "bearer"
tokens = []

[[auth.scoped_tokens]]
token = "$KEY"
allow_tools = ["b0__echo"]

[observability]
audit = true
log_level = "warn"

[observability.metrics]
enabled = true
EOF
    for ((i = 0; i < n; i++)); do
        printf '\n[[backends]]\nname = "b%d"\ntransport = "http"\nurl = "http://127.0.0.1:%s/mcp"\n' "$i" "${PORTS[$i]}"
    done
}

for target in $TARGETS; do
    case $target in
    direct)
        run_target direct "http://127.0.0.1:${PORTS[0]}/mcp" echo "" 1
        ;;
    bare-proxy)
        start_bare_proxy "http://127.0.0.1:${PORTS[0]}"
        wait_mcp "http://127.0.0.1:$port/mcp" 10 || { echo "bare proxy did not start" >&2; exit 1; }
        sleep 1
        rss bare-proxy started "$pid"
        run_target bare-proxy "http://127.0.0.1:$port/mcp" echo "" 1 "$pid"
        stop "$pid"
        ;;
    cairn | cairn-10)
        n=1
        [[ $target == cairn-10 ]] && n=$BACKENDS
        port=$(free_port) admin=$(free_port)
        mkdir -p "$OUT/$target"
        cairn_manifests "$port" "$n" >"$OUT/$target/gateway.yaml"
        # Audit lines (one JSON object per tool call) go to stdout: to a file here.
        "$CAIRN" run -f "$OUT/$target" --admin-port "$admin" >"$OUT/$target-audit.jsonl" 2>"$OUT/$target.log" &
        pid=$!
        PIDS+=($pid)
        wait_mcp "http://127.0.0.1:$port/mcp" 30 "$KEY" ||
            { echo "cairn did not start:" >&2; cat "$OUT/$target.log" >&2; exit 1; }
        sleep 1
        rss "$target" started "$pid"
        run_target "$target" "http://127.0.0.1:$port/mcp" b0__echo "$KEY" "$n" "$pid"
        curl -s "http://127.0.0.1:$admin/metrics" >"$OUT/$target-metrics.txt" || true
        stop "$pid"
        ;;
    mcp-proxy | mcp-proxy-10)
        n=1
        [[ $target == mcp-proxy-10 ]] && n=$BACKENDS
        port=$(free_port)
        mcp_proxy_config "$port" "$n" >"$OUT/$target.toml"
        "$MCP_PROXY" --config "$OUT/$target.toml" >"$OUT/$target.log" 2>&1 &
        pid=$!
        PIDS+=($pid)
        wait_mcp "http://127.0.0.1:$port/" 30 "$KEY" ||
            { echo "mcp-proxy did not start:" >&2; tail -30 "$OUT/$target.log" >&2; exit 1; }
        sleep 1
        rss "$target" started "$pid"
        run_target "$target" "http://127.0.0.1:$port/" b0__echo "$KEY" "$n" "$pid"
        stop "$pid"
        ;;
    *) echo "unknown target $target" >&2; exit 1 ;;
    esac
done

{
    echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- Cairn: \`cairn run -f\`, virtual-key auth, \`defaultAction: Deny\`, an AgentPolicy granting b0's echo tool, audit lines (stdout) to a file per target in $OUT"
    echo "- mcp-proxy $MCP_PROXY_VERSION (crates.io, \`cargo install --locked\`, default features): bearer auth with a token scoped to b0__echo, \`audit = true\` (no lines written: see benches/mcp.sh), metrics on, log level warn"
    echo
} >>"$OUT/header.md"
cat "$OUT/header.md"
"$BENCH" report "$RESULTS"
log "raw results: $RESULTS"
