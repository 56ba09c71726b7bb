//! A small, fast MCP server over streamable HTTP (protocol 2025-03-26 … 2025-11-25) for the
//! benchmark: one process serves several servers, one per port (the gateway's "10 MCPServers").
//!
//! Hand-written rather than rmcp's `StreamableHttpService` (which the tests use): rmcp answers
//! every request of a stateful session as an SSE stream fed through a per-session worker task and
//! channels, and parses every message into its typed model; its cost per call is then of the order
//! of the gateway's own, so the backend, not the gateway, would set the pace and the "added"
//! figures would carry its noise. Here each answer is pre-serialised and only the request's `id`
//! and `method` are read (a borrowed serde struct, the rest of the body skipped); answers are one
//! JSON body. It is still a real MCP session server: `initialize` hands out an `Mcp-Session-Id`
//! that every later request must carry (`400` without, `404` for an unknown or deleted one),
//! notifications get `202`, `DELETE` ends the session, `GET` is `405` (no standalone stream).
//!
//! Tools: `echo` (answers a fixed text of `--result-bytes`), and a few more in `tools/list` so
//! that list is of a realistic size. Every `tools/call` gets the `echo` answer.

use bytes::{BufMut, Bytes, BytesMut};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// What the benchmark's driver looks for in a tool result (so an error page does not count).
pub const MARKER: &str = "bench-ok";

const VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// One server's canned answers and its open sessions.
struct Server {
    name: String,
    /// `"result":{…}}` of a tools/call (the id goes before it).
    call_result: Bytes,
    list_result: Bytes,
    sessions: Mutex<HashSet<String>>,
    next: AtomicU64,
    port: u16,
}

/// The part of a message the server reads.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    params: Option<InitParams<'a>>,
}

#[derive(Deserialize)]
struct InitParams<'a> {
    #[serde(borrow, default, rename = "protocolVersion")]
    protocol_version: Option<Cow<'a, str>>,
}

fn canned(name: &str, result_bytes: usize, port: u16) -> Server {
    let pad = result_bytes.saturating_sub(MARKER.len() + 1);
    let text = format!("{MARKER} {}", "x".repeat(pad));
    let call = json!({"content": [{"type": "text", "text": text}], "isError": false});
    let schema = |props: Value| json!({"type": "object", "properties": props});
    let tools = json!({"tools": [
        {"name": "echo", "description": "Answers a fixed text.", "inputSchema": schema(json!({"text": {"type": "string"}, "n": {"type": "integer"}}))},
        {"name": "search", "description": "Searches the benchmark corpus.", "inputSchema": schema(json!({"query": {"type": "string"}, "limit": {"type": "integer"}}))},
        {"name": "get_item", "description": "Reads one item by id.", "inputSchema": schema(json!({"id": {"type": "string"}}))},
        {"name": "list_items", "description": "Lists items, paginated.", "inputSchema": schema(json!({"cursor": {"type": "string"}}))},
        {"name": "delete_item", "description": "Deletes an item.", "inputSchema": schema(json!({"id": {"type": "string"}}))},
    ]});
    let tail = |v: &Value| Bytes::from(format!(",\"result\":{v}}}"));
    Server {
        name: name.to_string(),
        call_result: tail(&call),
        list_result: tail(&tools),
        sessions: Mutex::new(HashSet::new()),
        next: AtomicU64::new(1),
        port,
    }
}

/// `{"jsonrpc":"2.0","id":ID` + `tail`.
fn answer(id: &Value, tail: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(32 + tail.len());
    b.put_slice(br#"{"jsonrpc":"2.0","id":"#);
    let _ = serde_json::to_writer((&mut b).writer(), id);
    b.put_slice(tail);
    b.freeze()
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    if status == StatusCode::OK {
        r.headers_mut()
            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    }
    r
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r
}

async fn handle(s: Arc<Server>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let session = req.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    // `None`: the session is open; else the answer to send.
    let refuse = |id: &Option<String>| match id {
        None => Some(plain(StatusCode::BAD_REQUEST, "Bad Request: Mcp-Session-Id header is required")),
        Some(id) if s.sessions.lock().expect("sessions").contains(id) => None,
        Some(_) => Some(plain(StatusCode::NOT_FOUND, "Session not found")),
    };
    match *req.method() {
        Method::POST => {}
        Method::DELETE => {
            if let Some(r) = refuse(&session) {
                return r;
            }
            s.sessions.lock().expect("sessions").remove(session.as_deref().unwrap_or_default());
            return reply(StatusCode::NO_CONTENT, Bytes::new());
        }
        _ => return plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
    }
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return plain(StatusCode::BAD_REQUEST, "Bad Request: unreadable body");
    };
    let Ok(head) = serde_json::from_slice::<Head>(&body) else {
        return reply(
            StatusCode::BAD_REQUEST,
            Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#,
            ),
        );
    };
    let method = head.method.as_deref().unwrap_or_default();
    if method == "initialize" {
        let Some(id) = head.id else { return plain(StatusCode::BAD_REQUEST, "initialize needs an id") };
        let asked = head.params.and_then(|p| p.protocol_version);
        let version = asked.as_deref().filter(|v| VERSIONS.contains(v)).unwrap_or("2025-11-25");
        let sid = format!("{:04x}-{:016x}", s.port, s.next.fetch_add(1, Ordering::Relaxed));
        s.sessions.lock().expect("sessions").insert(sid.clone());
        let result = json!({
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": s.name, "version": "1.0.0"}
        });
        let mut r = reply(StatusCode::OK, answer(&id, format!(",\"result\":{result}}}").as_bytes()));
        r.headers_mut().insert("mcp-session-id", sid.parse().expect("visible ASCII"));
        return r;
    }
    if let Some(r) = refuse(&session) {
        return r;
    }
    let Some(id) = head.id else {
        // A notification (or a response to a server request, which this server never sends).
        return reply(StatusCode::ACCEPTED, Bytes::new());
    };
    let tail: Bytes = match method {
        "tools/call" => s.call_result.clone(),
        "tools/list" => s.list_result.clone(),
        "ping" => Bytes::from_static(br#","result":{}}"#),
        _ => Bytes::from(format!(
            r#","error":{{"code":-32601,"message":"Method not found: {}"}}}}"#,
            method.replace(['"', '\\'], "")
        )),
    };
    reply(StatusCode::OK, answer(&id, &tail))
}

/// Serves one MCP server per port until the process is stopped.
pub async fn run(ports: &[u16], result_bytes: usize) -> std::io::Result<()> {
    let mut tasks = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let s = Arc::new(canned(&format!("bench-{i}"), result_bytes, port));
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(handle(s, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn answers_carry_the_id() {
        let b = super::answer(&serde_json::json!(7), br#","result":{}}"#);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["id"], 7);
        let b = super::answer(&serde_json::json!("a\"b"), br#","result":{}}"#);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["id"], "a\"b");
    }
}
