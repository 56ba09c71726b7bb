# Shell helpers shared by the benchmark scripts (benches/run.sh, benches/mcp.sh); sourced, not run.
# The caller sets BENCH (the bench binary, which has an `rss` subcommand) and RESULTS (the JSON
# lines file) before calling rss.

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# Processes started by the script, stopped on exit.
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

rss() { # label phase pids...
    local label=$1 phase=$2
    shift 2
    local a=()
    for p in "$@"; do a+=(--pid "$p"); done
    "$BENCH" rss --label "$label" --phase "$phase" "${a[@]}" >>"$RESULTS"
}

children() { # pid -> pid and its descendants
    local p=$1 c
    echo "$p"
    for c in $(pgrep -P "$p" || true); do children "$c"; done
}

stop() { # pids...: stops them and waits until they are gone
    local p
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do
        while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
    done
}

# The newest executable of a bench target in $CARGO_TARGET_DIR: built now, or (SKIP_BUILD=1) the
# last build's.
bench_binary() { # name
    if [[ -z "${SKIP_BUILD:-}" ]]; then
        cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null |
            jq -r "select(.reason == \"compiler-artifact\" and .target.name == \"$1\" and .executable != null) | .executable" | tail -1
    else
        find "$CARGO_TARGET_DIR/release/deps" -maxdepth 1 -type f -executable -name "$1-*" -printf '%T@ %p\n' |
            sort -n | tail -1 | cut -d' ' -f2-
    fi
}

# Sets CAIRN (the release cairn binary, built now unless SKIP_BUILD=1: then the last build's, e.g.
# while the tree does not compile) and BENCH (the executable of bench target $1).
build_binaries() { # bench-name
    CAIRN=$CARGO_TARGET_DIR/release/cairn
    if [[ -z "${SKIP_BUILD:-}" ]]; then
        log "building (release) into $CARGO_TARGET_DIR"
        cargo build --release --bin cairn >&2
    fi
    BENCH=$(bench_binary "$1")
    [[ -x "$BENCH" ]] || { echo "could not find the $1 bench binary" >&2; exit 1; }
}

# "- machine: …" and "- load average at start: …" lines of a report header.
# Starts the bare proxy ($BENCH proxy) in front of $1; sets `port` and `pid` (also in PIDS).
start_bare_proxy() { # upstream
    port=$(free_port)
    "$BENCH" proxy --port "$port" --upstream "$1" 2>"$OUT/proxy.log" &
    pid=$!
    PIDS+=("$pid")
}

machine_lines() {
    echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
    echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    if [[ "${IDLE_POLL:-}" == 1 ]]; then
        echo "- idle poll: on (benches/idle-poll.sh: one SCHED_IDLE spinner per CPU, so no vCPU halts between hops)"
    fi
}

# "- commit: …" line of a report header ($1: the cairn binary).
commit_line() {
    echo "- commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml || echo ' (+ uncommitted changes in src/)')${SKIP_BUILD:+ (binaries of the last build: cairn built $(date -u -r "$1" '+%H:%M UTC'))}"
}
