// Included with `#[path = "support/clients.rs"] mod clients;` beside `mod support;`; not every
// test uses every helper.
#![allow(dead_code)]

//! Small HTTP clients of the three layers for tests that run `cairn gateway` as a process: a
//! request with a timeout (status 0 when there is no answer), a chat completion, the tools an MCP
//! session lists.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::time::Duration;

/// A request with a JSON body to `url`: (status, headers, body); status 0 when no answer came
/// within 10 s.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, HeaderMapLite, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let req = req.header("content-type", "application/json").body(Full::new(body)).unwrap();
    match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
        Ok(Ok(resp)) => {
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect();
            let body = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            (status, headers, String::from_utf8_lossy(&body).into_owned())
        }
        _ => (0, vec![], String::new()),
    }
}

/// Response headers as (name, value) pairs.
pub type HeaderMapLite = Vec<(String, String)>;

/// A GET: (status, body).
pub async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let (s, _, b) = request("GET", url, headers, None).await;
    (s, b)
}

/// A chat completion of `model` on the gateway at `port`: the status.
pub async fn chat(port: u16, model: &str) -> u16 {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    request("POST", &format!("http://127.0.0.1:{port}/v1/chat/completions"), &[], Some(body)).await.0
}

/// The tool names an MCP session on the gateway lists (none when it cannot).
pub async fn mcp_tools(port: u16) -> Vec<String> {
    let url = format!("http://127.0.0.1:{port}/mcp");
    let accept = ("accept", "application/json, text/event-stream");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, headers, _) = request("POST", &url, &[accept], Some(init)).await;
    let Some(id) = headers.iter().find(|(k, _)| k == "mcp-session-id").map(|(_, v)| v.clone()) else {
        return vec![];
    };
    if status != 200 {
        return vec![];
    }
    let session = [accept, ("mcp-session-id", id.as_str()), ("mcp-protocol-version", "2025-06-18")];
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (_, _, body) = request("POST", &url, &session, Some(list)).await;
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    v["result"]["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}
