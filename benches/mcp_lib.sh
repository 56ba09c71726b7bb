# Shell helpers of the MCP benchmarks (benches/mcp.sh, benches/mcp-callgrind.sh); sourced, not
# run. The caller sets KEY (the agent's virtual key) and PORTS (the backends' ports).

# Waits until `initialize` at url answers 200.
wait_mcp() { # url seconds [key]
    local url=$1 secs=$2 key=${3:-} i
    for ((i = 0; i < secs * 10; i++)); do
        if curl -fsS -o /dev/null -m 2 -H 'content-type: application/json' \
            -H 'accept: application/json, text/event-stream' ${key:+-H "authorization: Bearer $key"} \
            -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"ready","version":"1"}}}' \
            "$url" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# Cairn manifests: an MCPGateway over the first n backends, virtual-key auth with default Deny,
# one Agent whose AgentPolicy grants it b0's echo tool.
cairn_manifests() { # port n
    local port=$1 n=$2 i
    cat <<EOF
apiVersion: cairn.dev/v1alpha1
kind: MCPGateway
metadata: {name: bench}
spec:
  listener: {port: $port}
  defaultAction: Deny
  auth: {allowAnonymous: false}
---
apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {agent: $KEY}
---
apiVersion: cairn.dev/v1alpha1
kind: Agent
metadata: {name: loadgen}
spec:
  identity:
    virtualKeys: [{secretRef: {name: keys, key: agent}}]
---
apiVersion: cairn.dev/v1alpha1
kind: AgentPolicy
metadata: {name: loadgen}
spec:
  subjects: {agents: [loadgen]}
  tools:
    - server: b0
      tools: [echo]
EOF
    for ((i = 0; i < n; i++)); do
        cat <<EOF
---
apiVersion: cairn.dev/v1alpha1
kind: MCPServer
metadata: {name: b$i}
spec:
  gatewayRefs: [{name: bench}]
  prefix: b$i
  url: http://127.0.0.1:${PORTS[$i]}/mcp
EOF
    done
}
