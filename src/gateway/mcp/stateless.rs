//! The stateless era (2026-07-28): every request carries its version and routing headers and is
//! served over backend sessions pooled per replica; `subscriptions/listen` is its long-lived
//! stream of list changes and resource updates.

use super::answer::answer;
use super::ctx::Ctx;
use super::fanout;
use super::protocol::{self, Era};
use super::reply::{KEEP_ALIVE, empty, rpc_error, sse_event, sse_response, stateless_status};
use super::runtime::McpRuntime;
use crate::gateway::jsonrpc::{self, INVALID_REQUEST, Message, Request, RpcError};
use crate::gateway::response::Body;
use crate::gateway::sse::encode_comment;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;

pub(super) async fn post_stateless(
    rt: Arc<McpRuntime>,
    subject: String,
    headers: HeaderMap,
    msg: Message,
) -> Response<Body> {
    let r = match msg {
        Message::Request(r) => r,
        Message::Notification(n) => {
            // Notifications carry no routing headers to check beyond the version.
            if let Err(e) = protocol::check_stateless_headers(&headers, &n.method, n.params.as_ref())
                && e.code != jsonrpc::INVALID_PARAMS
            {
                return rpc_error(StatusCode::BAD_REQUEST, Value::Null, e);
            }
            return empty(StatusCode::ACCEPTED);
        }
        Message::Response(_) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                RpcError::new(INVALID_REQUEST, "clients send no responses in protocol version 2026-07-28"),
            );
        }
    };
    if let Err(e) = protocol::check_stateless_headers(&headers, &r.method, r.params.as_ref()) {
        return rpc_error(StatusCode::BAD_REQUEST, r.id.clone(), e);
    }
    if r.method == "initialize" {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            r.id.clone(),
            RpcError::new(INVALID_REQUEST, "initialize is not part of protocol version 2026-07-28"),
        );
    }
    if r.method == "subscriptions/listen" {
        return listen(rt, subject, r).await;
    }
    rt.metrics
        .sessions
        .get_or_create(&super::audit::SessionLabels { gateway: rt.gateway.clone(), era: "stateless".into() })
        .inc();
    let backends = if r.method == "server/discover" || r.method == "ping" {
        Default::default()
    } else {
        fanout::pooled(&rt).await
    };
    let ctx = Ctx { rt, subject, era: Era::Stateless, session: None, backends: Arc::new(backends.into()) };
    let id = r.id.clone();
    answer(ctx.handle(r).await, id, Era::Stateless, &headers, None).await
}

/// `subscriptions/listen` (2026-07-28): a long-lived SSE answer carrying the list-changed
/// notifications the client opted in to and the updates of the resources it subscribed to
/// (`resourceSubscriptions`, gateway URIs), each tagged with the subscription id (the request's
/// id), after one `notifications/subscriptions/acknowledged` naming what was accepted (a
/// resource its server refused, or one the caller may not see, is left out). The gateway opens
/// backend sessions of its own for the stream (their standalone streams are where backends
/// announce changes), subscribes the resources there under their own URIs, and ends the
/// sessions when the client goes.
async fn listen(rt: Arc<McpRuntime>, subject: String, r: Request) -> Response<Body> {
    const KINDS: [(&str, &str); 3] = [
        ("toolsListChanged", "notifications/tools/list_changed"),
        ("promptsListChanged", "notifications/prompts/list_changed"),
        ("resourcesListChanged", "notifications/resources/list_changed"),
    ];
    const UPDATED: &str = "notifications/resources/updated";
    let wanted = r.params.as_ref().and_then(|p| p.get("notifications")).cloned().unwrap_or_else(|| json!({}));
    let resources: Vec<String> = match wanted.get("resourceSubscriptions") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            a.iter().filter_map(Value::as_str).map(str::to_string).collect()
        }
        Some(_) => {
            let e = RpcError::new(
                jsonrpc::INVALID_PARAMS,
                "subscriptions/listen: notifications.resourceSubscriptions must be a list of resource URIs",
            );
            return rpc_error(stateless_status(&e), r.id.clone(), e);
        }
    };
    let mut accepted = serde_json::Map::new();
    let mut methods = Vec::new();
    for (key, method) in KINDS {
        if wanted.get(key).and_then(Value::as_bool) == Some(true) {
            accepted.insert(key.into(), true.into());
            methods.push(method);
        }
    }
    let params = json!({
        "protocolVersion": protocol::LATEST_SESSION_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "cairn", "version": env!("CARGO_PKG_VERSION")}
    });
    let (_, backends) = fanout::initialize(&rt, &params, protocol::LATEST_SESSION_VERSION).await;
    let (merged_tx, mut merged) = mpsc::unbounded_channel::<Message>();
    for u in &rt.upstreams {
        let Some(s) = backends.get(&u.prefix) else { continue };
        match u.listen(s).await {
            Ok(Some(mut rx)) => {
                let tx = merged_tx.clone();
                let prefix = u.prefix.clone();
                tokio::spawn(async move {
                    while let Some(m) = rx.recv().await {
                        if tx.send(super::names::rewrite_from_backend(&prefix, m)).is_err() {
                            return;
                        }
                    }
                });
            }
            Ok(None) => {}
            Err(e) => rt.metrics.backend_error(&rt.gateway, &u.name, "subscriptions/listen", &e),
        }
    }
    drop(merged_tx);
    // Subscribed after the streams are open, so no update falls in between.
    let oks = futures_util::future::join_all(
        resources.iter().map(|uri| fanout::subscribe_resource(&rt, &subject, &backends, uri)),
    )
    .await;
    let subscribed: std::collections::HashSet<String> =
        resources.into_iter().zip(oks).filter(|(_, ok)| *ok).map(|(u, _)| u).collect();
    if !subscribed.is_empty() {
        let mut list: Vec<&String> = subscribed.iter().collect();
        list.sort();
        accepted.insert("resourceSubscriptions".into(), json!(list));
    }
    let sub_id = r.id.clone();
    let tag = move |method: &str, params: Option<Value>| {
        let mut p = match params {
            Some(Value::Object(o)) => o,
            _ => serde_json::Map::new(),
        };
        let meta = p.entry("_meta").or_insert_with(|| json!({}));
        if !meta.is_object() {
            *meta = json!({});
        }
        meta["io.modelcontextprotocol/subscriptionId"] = sub_id.clone();
        jsonrpc::Notification::new(method, Some(Value::Object(p)))
    };
    let mut ack = tag("notifications/subscriptions/acknowledged", None);
    ack.params.as_mut().expect("params")["notifications"] = Value::Object(accepted);
    let (tx, out) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let close =
            |rt: Arc<McpRuntime>,
             backends: std::collections::BTreeMap<String, super::session::BackendSession>| async move {
                for u in &rt.upstreams {
                    if let Some(s) = backends.get(&u.prefix) {
                        u.close(s).await;
                    }
                }
            };
        if tx.send(sse_event(&Message::Notification(ack))).await.is_err() {
            return close(rt, backends).await;
        }
        let mut tick = tokio::time::interval(KEEP_ALIVE);
        tick.tick().await;
        loop {
            let first = tokio::select! {
                m = merged.recv() => match m { Some(m) => m, None => break },
                _ = tick.tick() => {
                    if tx.send(encode_comment("keep-alive")).await.is_err() { break; }
                    continue;
                }
                _ = tx.closed() => break,
            };
            let mut batch = vec![first];
            while let Ok(m) = merged.try_recv() {
                batch.push(m);
            }
            // Of the messages already waiting, each list change (and each resource's update) goes
            // out once.
            let mut seen = std::collections::HashSet::new();
            for m in batch {
                let Message::Notification(n) = m else { continue };
                let out = if n.method == UPDATED {
                    let uri = n.params.as_ref().and_then(|p| p.get("uri")).and_then(Value::as_str);
                    match uri {
                        Some(u) if subscribed.contains(u) && seen.insert(format!("{UPDATED} {u}")) => {
                            tag(UPDATED, n.params)
                        }
                        _ => continue,
                    }
                } else if methods.contains(&n.method.as_str()) && seen.insert(n.method.clone()) {
                    tag(&n.method, None)
                } else {
                    continue;
                };
                if tx.send(sse_event(&Message::Notification(out))).await.is_err() {
                    return close(rt, backends).await;
                }
            }
        }
        close(rt, backends).await;
    });
    sse_response(out)
}
