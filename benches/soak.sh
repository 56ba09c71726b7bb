#!/usr/bin/env bash
# The soak: all three layers of one `cairn run` (benches/soak/soak.yaml) at a fixed rate for 30
# minutes against mock upstreams on loopback — the AI benchmark's mock OpenAI upstream, the MCP
# benchmark's MCP server, and a mock A2A agent (benches/soak/drive.py agent) — sampling the
# gateway process's RSS, open file descriptors and threads every 10 s. Not a test, not in CI.
#
#   benches/soak.sh                          # 30 minutes, 50 requests/s per layer
#   DURATION=120 RATE=20 benches/soak.sh     # a short try
#   SKIP_BUILD=1 benches/soak.sh             # the binaries of the last release build
#   PLOT=docs/soak.png benches/soak.sh       # also write the plot there (matplotlib, in a venv)
#
# Writes $OUT/samples.csv (one row per 10 s: see benches/soak/drive.py), $OUT/cairn.log (the
# gateway's logs and access log) and a summary on stdout. docs/reliability.md (Soak) has a run's
# figures.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/bench}
OUT=${OUT:-$CARGO_TARGET_DIR/soak/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
DURATION=${DURATION:-1800} RATE=${RATE:-50} WORKERS=${WORKERS:-8}
KEY=cairn-vk-soak-0123456789abcdef0123

source "$ROOT/benches/lib.sh"
build_binaries ai_gateway
AI_BENCH=$BENCH
MCP_BENCH=$(bench_binary mcp_gateway)
[[ -x "$MCP_BENCH" ]] || { echo "could not find the mcp_gateway bench binary" >&2; exit 1; }

LLM=$(free_port) MCP=$(free_port) AGENT=$(free_port)
AI_PORT=$(free_port) MCP_PORT=$(free_port) A2A_PORT=$(free_port) ADMIN=$(free_port)
"$AI_BENCH" mock --port "$LLM" 2>"$OUT/mock-llm.log" &
PIDS+=($!)
"$MCP_BENCH" backend --port "$MCP" 2>"$OUT/mock-mcp.log" &
PIDS+=($!)
python3 "$ROOT/benches/soak/drive.py" agent --port "$AGENT" 2>"$OUT/mock-agent.log" &
PIDS+=($!)
sed -e "s/@AI_PORT@/$AI_PORT/; s/@MCP_PORT@/$MCP_PORT/; s/@A2A_PORT@/$A2A_PORT/" \
    -e "s/@LLM@/$LLM/; s/@MCP@/$MCP/; s/@AGENT@/$AGENT/; s/@KEY@/$KEY/" \
    "$ROOT/benches/soak/soak.yaml" >"$OUT/soak.yaml"
"$CAIRN" run -f "$OUT/soak.yaml" --admin-port "$ADMIN" >"$OUT/cairn.log" 2>&1 &
CAIRN_PID=$!
PIDS+=("$CAIRN_PID")
for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN/readyz" 2>/dev/null && break
    sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN/readyz" || { tail -20 "$OUT/cairn.log" >&2; exit 1; }

log "soak: ${DURATION}s at $RATE requests/s per layer; samples in $OUT/samples.csv"
status=0
python3 "$ROOT/benches/soak/drive.py" drive --pid "$CAIRN_PID" --key "$KEY" --rate "$RATE" \
    --duration "$DURATION" --workers "$WORKERS" --out "$OUT/samples.csv" \
    --ai "http://127.0.0.1:$AI_PORT" --mcp "http://127.0.0.1:$MCP_PORT/mcp" \
    --a2a "http://127.0.0.1:$A2A_PORT" 2>"$OUT/drive.log" || status=$?
tail -3 "$OUT/drive.log" >&2

# Summary: RSS and fds at the start of the load, after the first tenth, and at the end.
python3 - "$OUT/samples.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def at(frac):
    return rows[min(len(rows) - 1, int(frac * (len(rows) - 1)))]
print("| point | t (s) | RSS (MiB) | open fds | threads |")
print("|---|---|---|---|---|")
for name, frac in (("before load", 0), ("10 %", 0.1), ("50 %", 0.5), ("end", 1)):
    r = at(frac)
    print(f"| {name} | {float(r['t_s']):.0f} | {int(r['rss_kib'])/1024:.1f} | {r['fds']} | {r['threads']} |")
rss = [int(r["rss_kib"]) for r in rows[1:]]
tenth = max(1, len(rss) // 10)
print(f"\nRSS max {max(rss)/1024:.1f} MiB; mean of the last tenth {sum(rss[-tenth:])/tenth/1024:.1f} MiB vs the second tenth {sum(rss[tenth:2*tenth])/tenth/1024:.1f} MiB")
for layer in ("ai", "mcp", "a2a"):
    ok = sum(int(r[f"{layer}_ok"]) for r in rows)
    err = sum(int(r[f"{layer}_err"]) for r in rows)
    late = sum(int(r[f"{layer}_late"]) for r in rows)
    p99 = max(float(r[f"{layer}_p99_ms"]) for r in rows)
    print(f"{layer}: {ok} ok, {err} failed, {late} sent >50 ms late, worst 10 s window p99 {p99:.1f} ms")
PY

if [[ -n "${PLOT:-}" ]]; then
    VENV=${SOAK_VENV:-$HOME/.cache/cairn-bench/soak-venv}
    [[ -x "$VENV/bin/python" ]] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q matplotlib; }
    "$VENV/bin/python" "$ROOT/benches/soak/plot.py" "$OUT/samples.csv" "$PLOT" \
        "Cairn soak: ${RATE} req/s per layer for $((DURATION / 60)) min ($(date -u +%F))"
    log "plot: $PLOT"
fi
exit "$status"
