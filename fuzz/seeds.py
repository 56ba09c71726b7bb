#!/usr/bin/env python3
"""Writes the checked-in seed corpus under fuzz/seeds/<target>/seed-* from the repository's own
examples, fixtures and snapshots (run from anywhere; rewrites only seed-* files). The seeds give
each target a start inside its input's grammar; libFuzzer's own corpus grows beside them (in the
fuzz target directory, never checked in)."""
import gzip, hashlib, json, pathlib, shutil

FUZZ = pathlib.Path(__file__).resolve().parent
REPO = FUZZ.parent
SEEDS = FUZZ / "seeds"


def put(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data if isinstance(data, bytes) else data.encode())


for d in SEEDS.glob("*/seed-*"):
    d.unlink()

# manifest: every example file, and the fixtures of the cross-object stage (valid documents that
# compile to diagnostics), plus a few schema/CEL ones.
for f in sorted(REPO.glob("examples/*/*.yaml")):
    put("manifest", f"{f.parent.name}-{f.name}", f.read_bytes())
for f in sorted((REPO / "tests/fixtures/invalid").glob("*.yaml")):
    if f.name.startswith(("cross-egress", "cross-two", "cel-all-zero", "schema-", "cross-route")):
        put("manifest", f.name, f.read_bytes())

# gateway_config and packed: the compiled configs of the examples, as the snapshots hold them.
configs = []
for f in sorted((REPO / "tests/snapshots").glob("*.json")):
    for gw in json.loads(f.read_text())["gateways"]:
        text = json.dumps(gw["config"], indent=2)
        name = gw["config"]["gateway"]["name"]
        put("gateway_config", f"{f.stem}-{name}.json", text)
        configs.append((f"{f.stem}-{name}", text))


def manifest(encoding, text, packed, parts=1, size=None):
    return json.dumps({
        "format": 1,
        "configHash": hashlib.sha256(text.encode()).hexdigest(),
        "credentialsDigest": "0" * 64,
        "encoding": encoding,
        "parts": parts,
        "size": len(text.encode()) if size is None else size,
        "packedSize": len(packed),
    }, separators=(",", ":"))


name, text = configs[0]
put("packed", f"identity-{name}", manifest("identity", text, text.encode()) + "\n" + text)
gz = gzip.compress(text.encode(), mtime=0)
put("packed", f"gzip-{name}", manifest("gzip", text, gz).encode() + b"\n" + gz)
put("packed", f"gzip-3-parts-{name}", manifest("gzip", text, gz, parts=3).encode() + b"\n" + gz)
zeros = gzip.compress(b"\0" * (1 << 20), mtime=0)
put("packed", "gzip-bomb-claims-small", manifest("gzip", "x" * 100, zeros).encode() + b"\n" + zeros)

# egress: URL, CIDR, flags.
for i, line in enumerate([
    "http://169.254.169.254/latest/meta-data\n169.254.0.0/16\n",
    "http://2852039166/\n10.0.0.0/8\np",
    "http://0xa9.0xfe.0xa9.0xfe/\n\nl",
    "http://0251.0376.0251.0376:80/x\n127.0.0.1\npl",
    "http://[::ffff:169.254.169.254]/\n::ffff:0:0/96\n",
    "http://[64:ff9b::a9fe:a9fe]/\nfe80::/10\n",
    "http://[fd00:ec2::254]/\nfd00::/8\np",
    "http://localhost:8080/\n::1\nl",
    "http://metadata.google.internal/\n169.254.169.254/32\n",
    "https://api.openai.com/v1\n0.0.0.0/0\np",
]):
    put("egress", f"{i:02}", line)

# sse: a chunk-size byte, then an upstream's event stream.
openai_stream = "".join(
    "data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}]}) + "\n\n"
    for i in range(3)
) + 'data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}\n\ndata: [DONE]\n\n'
anthropic_stream = (
    'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"usage":{"input_tokens":11,"output_tokens":1}}}\n\n'
    'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}\n\n'
    'event: ping\ndata: {"type": "ping"}\n\n'
    'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}\n\n'
    'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)
for i, stream in enumerate([
    openai_stream,
    anthropic_stream,
    "\ufeff: a comment\r\nid: 7\r\nretry: 1500\r\nevent: update\r\ndata: line one\r\ndata: line two\r\n\r\ndata:no space\n\n",
    "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\nid: 3\ndata: x\rdata: y\r\r",
    "data: unterminated",
]):
    put("sse", f"{i:02}", bytes([i * 5]) + stream.encode())

# mcp_jsonrpc: what clients and servers send an MCP gateway.
for i, msg in enumerate([
    {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "gh__search_code", "arguments": {"q": "x", "n": [1, 2]}}},
    {"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": {"_meta": {"progressToken": 1}, "name": "gh__echo", "arguments": {}}},
    {"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "found"}], "isError": False}},
    {"jsonrpc": "2.0", "id": 7, "result": {"content": [], "resultType": "complete"}},
    {"jsonrpc": "2.0", "id": 7, "error": {"code": -32602, "message": "bad", "data": {"x": 1}}},
    [{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}],
]):
    put("mcp_jsonrpc", f"{i:02}", json.dumps(msg, separators=(",", ":")) if i % 2 else json.dumps(msg))

# a2a_jsonrpc: calls (JSON-RPC and REST bodies) and agents' answers.
message = {"messageId": "m1", "role": "ROLE_USER", "taskId": "t1", "parts": [{"text": "hi"}], "metadata": {"skill": "refund"}}
for i, msg in enumerate([
    {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message, "configuration": {"taskPushNotificationConfig": {"url": "https://hooks.example.com/x", "token": "t"}}}},
    {"jsonrpc": "2.0", "id": "g", "method": "GetTask", "params": {"id": "t1", "historyLength": 2}},
    {"jsonrpc": "2.0", "id": 2, "method": "tasks/pushNotificationConfig/set", "params": {"taskId": "t1", "pushNotificationConfig": {"url": "http://2852039166/"}}},
    {"jsonrpc": "2.0", "id": 3, "method": "CreateTaskPushNotificationConfig", "params": {"taskId": "t1", "config": {"url": "http://[::ffff:169.254.169.254]/"}}},
    {"message": message, "metadata": {"skill": "lookup"}},
    {"jsonrpc": "2.0", "id": 1, "result": {"task": {"id": "t1", "contextId": "c1", "status": {"state": "TASK_STATE_WORKING"}}}},
    {"jsonrpc": "2.0", "id": 1, "result": {"kind": "status-update", "taskId": "t1", "final": True}},
    {"jsonrpc": "2.0", "id": 1, "error": {"code": -32001, "message": "task not found"}},
    {"statusUpdate": {"taskId": "t1", "status": {"state": "TASK_STATE_COMPLETED"}}},
]):
    put("a2a_jsonrpc", f"{i:02}", json.dumps(msg))

# translate: requests, responses and errors of both APIs.
for i, doc in enumerate([
    {"model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True}, "max_completion_tokens": 50, "stop": ["\n"], "temperature": 1.5, "user": "u1",
     "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                  {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]},
                  {"role": "tool", "tool_call_id": "call_1", "content": "42"}],
     "tools": [{"type": "function", "function": {"name": "lookup", "description": "d", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
     "tool_choice": {"type": "function", "function": {"name": "lookup"}}, "parallel_tool_calls": False, "reasoning_effort": "low"},
    {"model": "claude-haiku-4-5", "max_tokens": 100, "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}], "top_k": 5,
     "thinking": {"type": "enabled", "budget_tokens": 1024}, "metadata": {"user_id": "u"},
     "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}, {"type": "tool_use", "id": "tu_1", "name": "lookup", "input": {"q": "x"}}]},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": [{"type": "text", "text": "42"}], "is_error": False}]}],
     "tools": [{"name": "lookup", "input_schema": {"type": "object"}}], "tool_choice": {"type": "any"}},
    {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [{"type": "text", "text": "hi"}, {"type": "tool_use", "id": "tu", "name": "f", "input": {"a": 1}}],
     "stop_reason": "tool_use", "usage": {"input_tokens": 11, "output_tokens": 7, "cache_read_input_tokens": 3}},
    {"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}],
     "usage": {"prompt_tokens": 11, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 2}}},
    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    {"error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}},
    [{"error": {"code": 400, "message": "gemini"}}],
]):
    put("translate", f"{i:02}", bytes([i * 37 % 256]) + json.dumps(doc).encode())

# translate_stream: lines of `event<TAB>data` (Anthropic) or data (OpenAI).
put("translate_stream", "00", "\n".join(
    line[len("event: "):].replace("\ndata: ", "\t") for line in anthropic_stream.strip().split("\n\n")))
put("translate_stream", "01", "\n".join(
    l[len("data: "):] for l in openai_stream.strip().split("\n\n")))
put("translate_stream", "02", "\n".join([
    json.dumps({"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}]}}]}),
    json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}}]}),
    json.dumps({"choices": [{"index": 0, "delta": {"reasoning_content": "think"}}]}),
    json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
    json.dumps({"error": {"message": "boom", "type": "server_error"}}),
]))

# guardrails: a detector mask, then text (or a JSON body).
for i, text in enumerate([
    "mail me at jane.doe+x@example.co.uk or call +1 (415) 555-0100",
    "card 4111 1111 1111 1111, iban GB82 WEST 1234 5698 7654 32, ssn 123-45-6789, secret-ab12",
    json.dumps({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "ssn 078-05-1120 mail a@b.io"}]}],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"description": "4111111111111111"}}}]}),
    json.dumps({"choices": [{"delta": {"content": "call 415-555-0100"}, "index": 0}], "input": {"card": "5500 0000 0000 0004"}}),
    "ｆｕｌｌｗｉｄｔｈ １２３-４５-６７８９ and 4111-1111-1111-1111x",
]):
    put("guardrails", f"{i:02}", bytes([0x1f if i % 2 else 0x15]) + text.encode())

# sealed: a flip position, then what a client might send back (ids, cursors, JSON).
for i, text in enumerate([
    "c1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "c1.",
    "not-a-session",
    json.dumps({"u": "alice", "v": "2025-06-18", "t": 1700000000, "r": 42, "b": {"gh": {"s": "abc", "v": "2025-03-26"}}}),
    json.dumps({"lm": "tools/list", "lo": 100, "lk": "gh__z"}),
]):
    put("sealed", f"{i:02}", bytes([i * 11]) + text.encode())

print("seeds written under", SEEDS)
