#!/usr/bin/env bash
# Runs a benchmark command with one SCHED_IDLE spinner per CPU, so that no vCPU halts between
# two hops of a request (what the kernel's `idle=poll` does, without rebooting). Every process of
# the benchmark preempts a spinner at once; CPU-per-call figures are per target process and do
# not include them. On a VM whose idle vCPUs wake slowly (this one: a request that crosses three
# processes waits for several wake-ups), it separates what the proxies cost from what the
# hypervisor's wake-ups cost. Reports say `idle poll: on` in their machine lines.
#
#   benches/idle-poll.sh SKIP_BUILD=1 benches/mcp.sh      # env assignments first, then the command
#   benches/idle-poll.sh cargo bench --bench agent_gateway
set -euo pipefail
spinners=()
stop() { kill "${spinners[@]}" 2>/dev/null || true; }
trap stop EXIT INT TERM
for _ in $(seq "$(nproc)"); do
    chrt --idle 0 sh -c 'while :; do :; done' &
    spinners+=($!)
done
export IDLE_POLL=1
env "$@"
