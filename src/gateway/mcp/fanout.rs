//! Calls fanned out to every backend of a gateway: `initialize` (a backend session per server,
//! their capabilities and instructions merged), the pooled backend sessions that serve
//! stateless-era clients, and subscribing a resource on its server.

use super::protocol::{self};
use super::replies::UpstreamError;
use super::runtime::McpRuntime;
use super::session::BackendSession;
use super::upstream::Upstream;
use crate::gateway::jsonrpc::Request;
use crate::gateway::telemetry::span;
use futures_util::future::join_all;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::Instrument;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// An id for a request the gateway makes of its own (`cairn-<n>`).
pub(super) fn internal_id() -> Value {
    Value::from(format!("cairn-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)))
}

/// Runs `call`, the part of a fanned-out `method` that goes to server `server`, in a client span
/// of its own (`initialize kb`, `tools/list kb`), a child of the request's span: a slow or
/// failing server shows in the trace. The trace context sent to the server is that span's.
pub(super) async fn to_server<T>(
    rt: &McpRuntime,
    method: &str,
    server: &str,
    call: impl Future<Output = Result<T, UpstreamError>>,
) -> Result<T, UpstreamError> {
    let up = span::upstream(&tracing::Span::current(), &rt.gateway, &format!("{method} {server}"));
    span::attr(&up, "mcp.method.name", method.to_string());
    span::attr(&up, "cairn.mcp.server", server.to_string());
    let r = call.instrument(up.clone()).await;
    if let Err(e) = &r {
        span::failed(&up, "backend_error", e.to_string());
    }
    r
}

/// The capabilities and instructions merged over `initialize` results.
pub(super) fn merge_init(results: &[(String, Value)]) -> (Value, Option<String>) {
    let has = |k: &str| results.iter().any(|(_, r)| r.get("capabilities").and_then(|c| c.get(k)).is_some());
    let mut caps = Map::new();
    caps.insert("tools".into(), json!({"listChanged": true}));
    caps.insert("prompts".into(), json!({"listChanged": true}));
    let subscribe = results
        .iter()
        .any(|(_, r)| r.pointer("/capabilities/resources/subscribe").and_then(Value::as_bool) == Some(true));
    caps.insert("resources".into(), json!({"listChanged": true, "subscribe": subscribe}));
    if has("logging") {
        caps.insert("logging".into(), json!({}));
    }
    if has("completions") {
        caps.insert("completions".into(), json!({}));
    }
    let instructions: Vec<String> = results
        .iter()
        .filter_map(|(p, r)| r.get("instructions").and_then(Value::as_str).map(|i| format!("[{p}] {i}")))
        .collect();
    (Value::Object(caps), (!instructions.is_empty()).then(|| instructions.join("\n\n")))
}

pub(super) fn server_info() -> Value {
    json!({"name": "cairn", "title": "Cairn MCP gateway", "version": env!("CARGO_PKG_VERSION")})
}

/// Initializes every backend (concurrently, each within its timeout) for a new client session;
/// returns the merged result and the backend sessions that opened.
pub async fn initialize(
    rt: &McpRuntime,
    params: &Value,
    version: &str,
) -> (Value, BTreeMap<String, BackendSession>) {
    let mut up_params = params.clone();
    if let Some(o) = up_params.as_object_mut() {
        o.insert("protocolVersion".into(), version.into());
        o.entry("capabilities").or_insert(json!({}));
        o.entry("clientInfo").or_insert(json!({"name": "cairn", "version": env!("CARGO_PKG_VERSION")}));
    }
    let futs = rt.upstreams.iter().map(|u| {
        let p = up_params.clone();
        async move { (u.clone(), to_server(rt, "initialize", &u.name, u.initialize(p)).await) }
    });
    let mut results = Vec::new();
    let mut sessions = BTreeMap::new();
    for (u, r) in join_all(futs).await {
        match r {
            Ok((result, s)) => {
                results.push((u.prefix.clone(), result));
                sessions.insert(u.prefix.clone(), s);
            }
            Err(e) => rt.metrics.backend_error(&rt.gateway, &u.name, "initialize", &e),
        }
    }
    let (caps, instructions) = merge_init(&results);
    let mut out = json!({"protocolVersion": version, "capabilities": caps, "serverInfo": server_info()});
    if let Some(i) = instructions {
        out["instructions"] = i.into();
    }
    (out, sessions)
}

/// The pooled backend sessions for stateless clients, opening the missing ones.
pub async fn pooled(rt: &McpRuntime) -> BTreeMap<String, BackendSession> {
    let have = rt.state.pool.lock().await.clone();
    let missing: Vec<&Arc<Upstream>> =
        rt.upstreams.iter().filter(|u| !have.contains_key(&u.prefix)).collect();
    let mut out: BTreeMap<String, BackendSession> =
        have.into_iter().filter(|(p, _)| rt.server_index(p).is_some()).collect();
    if missing.is_empty() {
        return out;
    }
    let params = json!({
        "protocolVersion": protocol::LATEST_SESSION_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "cairn", "version": env!("CARGO_PKG_VERSION")}
    });
    let futs = missing.iter().map(|u| {
        let p = params.clone();
        async move { (u, to_server(rt, "initialize", &u.name, u.initialize(p)).await) }
    });
    let opened = join_all(futs).await;
    let mut pool = rt.state.pool.lock().await;
    for (u, r) in opened {
        match r {
            Ok((_, s)) => {
                pool.insert(u.prefix.clone(), s.clone());
                out.insert(u.prefix.clone(), s);
            }
            Err(e) => rt.metrics.backend_error(&rt.gateway, &u.name, "initialize", &e),
        }
    }
    out
}

/// Subscribes `uri` (a gateway URI, `prefix+uri`) at the server owning it, over `backends`, for
/// `subject` (who must be allowed to see the server); whether the server accepted.
pub async fn subscribe_resource(
    rt: &McpRuntime,
    subject: &str,
    backends: &BTreeMap<String, BackendSession>,
    uri: &str,
) -> bool {
    let Some((i, orig)) = rt.route_uri(uri).filter(|(i, _)| rt.server_visible(subject, *i)) else {
        return false;
    };
    let u = &rt.upstreams[i];
    let Some(s) = backends.get(&u.prefix) else { return false };
    let req = Request::new(internal_id(), "resources/subscribe", Some(json!({ "uri": orig })));
    let answer = tokio::time::timeout(u.timeout, async {
        let mut rx = u.request(s, req).await?;
        super::replies::final_response(&mut rx).await
    })
    .await
    .unwrap_or(Err(UpstreamError::Timeout));
    match answer {
        Ok(resp) => resp.outcome.is_ok(),
        Err(e) => {
            rt.metrics.backend_error(&rt.gateway, &u.name, "resources/subscribe", &e);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_capabilities_and_instructions() {
        let (caps, ins) = merge_init(&[
            ("a".into(), json!({"capabilities": {"logging": {}}, "instructions": "use a"})),
            ("b".into(), json!({"capabilities": {"resources": {"subscribe": true}}})),
        ]);
        assert_eq!(caps["resources"]["subscribe"], true);
        assert!(caps.get("logging").is_some());
        assert_eq!(ins.as_deref(), Some("[a] use a"));
    }
}
