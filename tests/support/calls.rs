//! Calls to a running gateway as the fault and reload tests make them: an MCP session (opened,
//! then `tools/call`), the JSON-RPC answer of a JSON or SSE reply, an A2A `SendMessage`.

use super::http::{Resp, request};
use serde_json::{Value, json};

/// The `accept` header the streamable HTTP transport asks for.
const ACCEPT: (&str, &str) = ("accept", "application/json, text/event-stream");
/// The MCP version these calls speak.
const VERSION: &str = "2025-06-18";

/// An initialized MCP session at `url` (`http://host:port/mcp`), as a bearer key's holder.
pub struct McpSession {
    pub url: String,
    pub id: String,
    bearer: Option<String>,
}

impl McpSession {
    /// Initializes a session (with `Authorization: Bearer <key>` when given); fails the test
    /// unless the gateway accepts it.
    pub async fn open(url: &str, key: Option<&str>) -> McpSession {
        let bearer = key.map(|k| format!("Bearer {k}"));
        let mut h = vec![ACCEPT];
        if let Some(b) = &bearer {
            h.push(("authorization", b));
        }
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "cairn-tests", "version": "1"}}});
        let r = request("POST", url, &h, init.to_string()).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        let id = r.headers["mcp-session-id"].to_str().unwrap().to_string();
        let s = McpSession { url: url.to_string(), id, bearer };
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(s.post(&note).await.status, 202);
        s
    }

    /// Posts one JSON-RPC message in the session.
    pub async fn post(&self, msg: &Value) -> Resp {
        let mut h = vec![ACCEPT, ("mcp-session-id", self.id.as_str()), ("mcp-protocol-version", VERSION)];
        if let Some(b) = &self.bearer {
            h.push(("authorization", b));
        }
        request("POST", &self.url, &h, msg.to_string()).await
    }

    /// `tools/call` of `name` with `arguments` as request `id`: the reply and its JSON-RPC answer.
    pub async fn call(&self, id: u64, name: &str, arguments: Value) -> (Resp, Value) {
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": name, "arguments": arguments}});
        let r = self.post(&call).await;
        let answer = rpc_answer(&r);
        (r, answer)
    }
}

/// The JSON-RPC response in a JSON or SSE reply (`null` when there is none).
pub fn rpc_answer(r: &Resp) -> Value {
    if r.body.is_object() {
        return r.body.clone();
    }
    r.raw
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| m.get("id").is_some())
        .unwrap_or(Value::Null)
}

/// An A2A `SendMessage` (JSON-RPC binding, A2A 1.0) of the text `hi` to `url`, as request `n`.
pub async fn send_message(url: &str, n: u64) -> Resp {
    let msg = json!({"jsonrpc": "2.0", "id": n, "method": "SendMessage", "params": {"message": {
        "messageId": format!("m{n}"), "role": "ROLE_USER", "parts": [{"text": "hi"}]}}});
    request("POST", url, &[("a2a-version", "1.0")], msg.to_string()).await
}
