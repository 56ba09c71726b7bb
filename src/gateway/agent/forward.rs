//! Forwarding a call to its agent: authorized first ([`super::authorize`]), then sent with the
//! caller's A2A headers (never its credentials), the identity token and the trace context, to the
//! endpoint the agent's card names. Streams are relayed frame by frame ([`super::stream`]);
//! whole answers are read, their task claimed for the caller, and rewritten only where the
//! gateway must: ListTasks filtered to the caller's tasks, the extended card published as the
//! gateway's ([`super::directory`]).

use super::audit::{Audit, fail};
use super::authorize::{authorize, claim, owned_by};
use super::call::Call;
use super::card::{self, Endpoints, public_base};
use super::directory::{publish_card, visible_skills};
use super::error::{A2aError, Binding};
use super::method::Method;
use super::runtime::AgentRuntime;
use super::stream::{Relay, StreamCtx};
use super::token::identity_token;
use super::view;
use crate::config::A2aAgentConfig;
use crate::gateway::http_client::failure;
use crate::gateway::response::{Body, full};
use crate::gateway::telemetry::span;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// Largest non-streaming answer read from an agent.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Longest wait for an agent's response headers.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(300);

/// revalidated when they are served, not on every call), else a fetch.
async fn endpoints(rt: &AgentRuntime, agent: &A2aAgentConfig) -> Arc<Endpoints> {
    let url = AgentRuntime::card_url(agent);
    if let Some(e) = rt.shared.cards.peek_endpoints(&url) {
        return e;
    }
    // Boxed: a card fetch is rare and its future large.
    match Box::pin(rt.shared.cards.get(&rt.client, &agent.name, &url)).await {
        Ok(c) => Arc::new(card::endpoints(&c, &agent.url)),
        Err(_) => Arc::default(),
    }
}

/// Headers passed from the caller to the agent; everything else (credentials, cookies,
/// hop-by-hop headers) stays at the gateway.
const FORWARD_HEADERS: [HeaderName; 5] = [
    HeaderName::from_static("a2a-version"),
    HeaderName::from_static("a2a-extensions"),
    header::ACCEPT_LANGUAGE,
    HeaderName::from_static("tracestate"),
    header::USER_AGENT,
];
/// Headers passed from the agent to the caller besides `content-type`.
const RETURN_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("a2a-version"),
    HeaderName::from_static("a2a-extensions"),
    header::CACHE_CONTROL,
];

/// Forwards an identified, parsed call to its agent: authorized, sent with the identity token and
/// the trace context of its upstream span, its answer relayed (streams) or read, inspected for task ownership and
/// rewritten where the gateway must (ListTasks filtered, the extended card published).
pub(super) async fn forward(
    rt: &AgentRuntime,
    agent: &A2aAgentConfig,
    call: Call,
    headers: &HeaderMap,
    mut audit: Audit,
) -> Response<Body> {
    let binding = call.binding;
    let owner = match authorize(rt, &agent.name, &call, &mut audit).await {
        Ok(o) => o,
        Err(e) => return fail(audit, &rt.shared.metrics, e, binding, &call.rpc_id),
    };
    let ep = endpoints(rt, agent).await;
    let target = match binding {
        Binding::JsonRpc => match &ep.jsonrpc_target {
            Some(t) => Ok(t.clone()),
            None => card::target(&agent.url),
        },
        Binding::Rest => card::target(&format!(
            "{}{}",
            ep.rest.as_deref().unwrap_or(&agent.url).trim_end_matches('/'),
            call.rest_path
        )),
    };
    let (uri, host) = match target {
        Ok(t) => t,
        Err(detail) => {
            let e = A2aError::Unreachable {
                agent: agent.name.clone(),
                detail: format!("bad upstream request: {detail}"),
            };
            return fail(audit, &rt.shared.metrics, e, binding, &call.rpc_id);
        }
    };
    let mut up = Request::new(Full::new(call.body.clone()));
    *up.method_mut() = match binding {
        Binding::JsonRpc => http::Method::POST,
        Binding::Rest => call.http_method.clone(),
    };
    let url = uri.to_string();
    *up.uri_mut() = uri;
    let h = up.headers_mut();
    h.reserve(10);
    h.insert(header::HOST, host);
    for name in &FORWARD_HEADERS {
        for v in headers.get_all(name) {
            h.append(name.clone(), v.clone());
        }
    }
    if !call.body.is_empty() {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/json"));
        h.insert(header::CONTENT_TYPE, content_type);
    }
    let accept = match (headers.get(header::ACCEPT), call.method.streams()) {
        (Some(a), _) => a.clone(),
        (None, true) => HeaderValue::from_static("text/event-stream"),
        (None, false) => HeaderValue::from_static("application/json"),
    };
    h.insert(header::ACCEPT, accept);
    let upstream =
        span::upstream(&audit.span, &rt.gateway, &format!("{} {}", call.method.as_str(), agent.name));
    span::attr(&upstream, "a2a.method", call.method.as_str());
    span::attr(&upstream, "a2a.agent", agent.name.clone());
    span::subject(&upstream, &audit.subject);
    span::decision(&upstream, true, "granted");
    span::inject(&upstream, h);
    let token = identity_token(rt, &audit.subject, &agent.name, &owner, audit.task_id.as_deref());
    match HeaderValue::from_str(&token) {
        Ok(t) => h.insert(rt.token_header.clone(), t),
        Err(e) => {
            let e = A2aError::Unreachable {
                agent: agent.name.clone(),
                detail: format!("bad upstream request: {e}"),
            };
            return fail(audit, &rt.shared.metrics, e, binding, &call.rpc_id);
        }
    };
    let sent =
        tokio::time::timeout(RESPONSE_TIMEOUT, rt.client.request(up)).instrument(upstream.clone()).await;
    if let Ok(Ok(r)) = &sent {
        span::attr(&upstream, "http.response.status_code", i64::from(r.status().as_u16()));
    } else {
        span::failed(&upstream, "unreachable", format!("agent {} did not answer", agent.name));
    }
    drop(upstream);
    let resp = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let e = A2aError::Unreachable { agent: agent.name.clone(), detail: failure(&e, &url) };
            return fail(audit, &rt.shared.metrics, e, binding, &call.rpc_id);
        }
        Err(_) => {
            let e = A2aError::Unreachable { agent: agent.name.clone(), detail: "no response in time".into() };
            return fail(audit, &rt.shared.metrics, e, binding, &call.rpc_id);
        }
    };
    let (parts, body) = resp.into_parts();
    let is_sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
    let mut out = Response::builder().status(parts.status);
    for name in std::iter::once(&header::CONTENT_TYPE).chain(&RETURN_HEADERS) {
        for v in parts.headers.get_all(name) {
            out = out.header(name, v);
        }
    }
    audit.status = parts.status.as_u16();
    if is_sse {
        out = out.header("x-accel-buffering", "no");
        if !parts.headers.contains_key(header::CACHE_CONTROL) {
            out = out.header(header::CACHE_CONTROL, "no-cache");
        }
        if !parts.status.is_success() {
            audit.outcome = "agent_error";
        }
        let relay = Relay::new(
            body,
            StreamCtx {
                metrics: rt.shared.metrics.clone(),
                gateway: rt.gateway.clone(),
                agent: agent.name.clone(),
                owner,
                ttl: Duration::from_millis(rt.layer.task_ownership_ttl_ms),
                store: rt.store.clone(),
                claims: call.method.sends() && audit.task_id.is_none(),
                binding,
                rpc_id: call.rpc_id.clone(),
                audit,
            },
        );
        return out.body(relay.boxed()).unwrap_or_else(|_| Response::new(full("")));
    }
    let bytes = match Limited::new(body, MAX_RESPONSE_BYTES).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let e = A2aError::InvalidAgentResponse {
                agent: agent.name.clone(),
                detail: format!("reading the answer failed: {e}"),
            };
            return fail(audit, &rt.shared.metrics, e, binding, &call.rpc_id);
        }
    };
    let rpc = binding == Binding::JsonRpc;
    let Ok(facts) = view::answer_facts(rpc, &bytes) else {
        let detail = format!("HTTP {} with a body that is not JSON", parts.status.as_u16());
        let e = A2aError::InvalidAgentResponse { agent: agent.name.clone(), detail };
        return fail(audit, &rt.shared.metrics, e, binding, &call.rpc_id);
    };
    // The answer proper: a JSON-RPC result, or a successful REST body.
    let answered = match (&facts.error, rpc) {
        (Some(message), true) => {
            audit.outcome = "agent_error";
            audit.error = message.clone();
            false
        }
        (None, true) => facts.has_result,
        (_, false) if parts.status.is_success() => true,
        (message, false) => {
            audit.outcome = "agent_error";
            audit.error = message.clone().flatten();
            false
        }
    };
    let mut body = bytes;
    if answered {
        if audit.context_id.is_none() {
            audit.context_id = facts.context_id.clone();
        }
        if call.method.sends()
            && audit.task_id.is_none()
            && let Some(t) = facts.task_id
        {
            claim(rt, &agent.name, &t, &owner).await;
            audit.task_id = Some(t);
        }
        if matches!(call.method, Method::ListTasks | Method::GetExtendedAgentCard) {
            // The two answers the gateway rewrites: only here is the answer built as a document.
            // (It was read as JSON above; never relay it unfiltered should building it fail.)
            let mut v = match serde_json::from_slice::<Value>(&body) {
                Ok(v) => v,
                Err(e) => {
                    let detail = format!("the answer cannot be read: {e}");
                    let e = A2aError::InvalidAgentResponse { agent: agent.name.clone(), detail };
                    return fail(audit, &rt.shared.metrics, e, binding, &call.rpc_id);
                }
            };
            let answer = if rpc { v.get_mut("result") } else { Some(&mut v) };
            if let Some(answer) = answer {
                match call.method {
                    Method::ListTasks => {
                        let ids: Vec<String> = answer
                            .get("tasks")
                            .or(Some(&*answer))
                            .and_then(Value::as_array)
                            .map(|ts| {
                                ts.iter().filter_map(|t| t.get("id")?.as_str().map(str::to_string)).collect()
                            })
                            .unwrap_or_default();
                        let checks = ids.iter().map(|t| owned_by(rt, &agent.name, t, &audit.subject));
                        let mut mine = std::collections::HashSet::new();
                        for (t, r) in ids.iter().zip(futures_util::future::join_all(checks).await) {
                            match r {
                                Ok(_) => {
                                    mine.insert(t.clone());
                                }
                                Err(A2aError::TaskNotFound(_)) => {}
                                Err(e) => return fail(audit, &rt.shared.metrics, e, binding, &call.rpc_id),
                            }
                        }
                        filter_tasks(answer, |t| mine.contains(t));
                    }
                    _ if answer.is_object() => {
                        let base = public_base(headers, &http::Uri::default());
                        let visible = visible_skills(&rt.policy, &audit.subject, &agent.name, answer);
                        *answer = publish_card(rt, answer, &agent.name, &base, &visible).1;
                    }
                    _ => {}
                }
                body = Bytes::from(v.to_string());
            }
        }
    }
    audit.finish(&rt.shared.metrics);
    out.body(full(body)).unwrap_or_else(|_| Response::new(full("")))
}

/// Keeps only the tasks `keep` accepts in a ListTasks answer; `totalSize` becomes the number kept.
fn filter_tasks(answer: &mut Value, keep: impl Fn(&str) -> bool) {
    if let Some(Value::Array(tasks)) = answer.get_mut("tasks") {
        tasks.retain(|t| t.get("id").and_then(Value::as_str).is_some_and(&keep));
        let n = tasks.len();
        if answer.get("totalSize").is_some() {
            answer["totalSize"] = json!(n);
        }
    } else if let Value::Array(tasks) = answer {
        tasks.retain(|t| t.get("id").and_then(Value::as_str).is_some_and(&keep));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_answers_keep_only_the_callers_tasks() {
        let mut v =
            json!({"tasks": [{"id": "a"}, {"id": "b"}, {"id": "c"}], "totalSize": 3, "nextPageToken": ""});
        filter_tasks(&mut v, |t| t != "b");
        assert_eq!(v["tasks"], json!([{"id": "a"}, {"id": "c"}]));
        assert_eq!(v["totalSize"], 2);
    }
}
