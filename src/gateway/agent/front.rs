//! The front of the agent gateway: which of its paths a request asks for (the JWKS, the
//! directory, an agent's card, or an A2A call on either binding), and for calls the first
//! stages — caller, agent, body, the binding's own checks — before [`super::forward`].

use super::audit::{audit_for, fail};
use super::authorize::caller;
use super::call::{Call, CallError, jsonrpc_call, rest_call};
use super::directory::{directory, serve_card};
use super::error::{A2aError, Binding, json_response};
use super::forward::forward;
use super::method::{self, RestRoute};
use super::runtime::AgentRuntime;
use crate::config::{A2aAgentConfig, Layer};
use crate::gateway::admission;
use crate::gateway::limits;
use crate::gateway::response::Body;
use crate::gateway::server::{self, BodyError};
use crate::gateway::telemetry::span;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use serde_json::Value;
use std::sync::Arc;

/// Serves one request on an agent gateway. Never fails: every error becomes a response in the
/// caller's binding.
pub async fn handle<B>(rt: Arc<AgentRuntime>, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path().to_string();
    let is_get = req.method() == http::Method::GET;
    // Refusals before the call is read are answered in the binding the request speaks: JSON-RPC
    // is a POST to the agent's own path.
    let binding = || {
        let agent_path =
            path.strip_prefix("/agents/").is_some_and(|n| !n.trim_end_matches('/').contains('/'));
        if req.method() == http::Method::POST && agent_path { Binding::JsonRpc } else { Binding::Rest }
    };
    if let Err(e) = limits::check_headers(req.headers()) {
        return A2aError::from(e).response(binding(), &Value::Null);
    }
    if let Err(e) = crate::gateway::origin::check(&req, &rt.layer.allowed_origins) {
        return A2aError::Forbidden(e.to_string()).response(binding(), &Value::Null);
    }
    if path == "/.well-known/jwks.json" {
        if !is_get {
            return A2aError::NotFound(format!("{} {path}", req.method()))
                .response(Binding::Rest, &Value::Null);
        }
        let mut resp = json_response(StatusCode::OK, &rt.signer.jwks());
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
        return resp;
    }
    let Some(rest) = path.strip_prefix("/agents") else {
        return A2aError::NotFound(path.clone()).response(Binding::Rest, &Value::Null);
    };
    if rest.is_empty() || rest == "/" {
        if !is_get {
            return A2aError::NotFound(format!("{} {path}", req.method()))
                .response(Binding::Rest, &Value::Null);
        }
        // Boxed, as is `serve_card`: rarer than calls, and large; unboxed they would make every
        // call's future as large (it is moved into the connection's dispatcher).
        return Box::pin(directory(&rt, req)).await;
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return A2aError::NotFound(path.clone()).response(Binding::Rest, &Value::Null);
    };
    let (name, sub) = match rest.split_once('/') {
        Some((n, s)) => (n.to_string(), format!("/{s}")),
        None => (rest.to_string(), String::new()),
    };
    let rest_route = match sub.as_str() {
        "" | "/" if req.method() == http::Method::POST => None,
        "/.well-known/agent-card.json" | "/.well-known/agent.json" if is_get => {
            return Box::pin(serve_card(&rt, &name, req)).await;
        }
        _ => Some(sub.as_str()),
    };
    // One await of `serve_call` (two would each keep room for it in this future).
    serve_call(&rt, &name, rest_route, req).await
}

async fn read_body<B>(body: B, max: u64) -> Result<Bytes, A2aError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match server::read_body(body, usize::try_from(max).unwrap_or(usize::MAX)).await {
        Ok(b) => {
            limits::check_json_depth(&b)?;
            Ok(b)
        }
        Err(BodyError::TooLarge(_)) => Err(A2aError::PayloadTooLarge(max)),
        Err(BodyError::Read(e)) => {
            Err(A2aError::InvalidRequest(format!("reading the request body failed: {e}")))
        }
    }
}

/// Serves an A2A call: JSON-RPC when `sub` is `None` (a POST to the agent's URL), else the REST
/// route `sub` below it. Identification, the agent, the body and the binding's own checks come
/// first; then [`forward`].
async fn serve_call<B>(rt: &AgentRuntime, agent: &str, sub: Option<&str>, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let binding = if sub.is_some() { Binding::Rest } else { Binding::JsonRpc };
    let (parts, body) = req.into_parts();
    let mut audit = audit_for(rt, agent, "unknown", binding);
    let result: Result<(&A2aAgentConfig, Call), CallError> = async {
        let null = |e: A2aError| Box::new((e, Value::Null));
        let subject = match caller(rt, &parts.headers).await {
            Ok(s) => s,
            Err(e) => {
                let denials = &rt.shared.metrics.denials;
                admission::refused("unauthenticated", &audit.span, denials, &rt.gateway_label, Layer::Agent);
                return Err(null(e));
            }
        };
        span::subject(&audit.span, &subject);
        audit.subject = Arc::from(subject);
        let agent_cfg =
            rt.agents.get(agent).ok_or_else(|| null(A2aError::UnknownAgent(agent.to_string())))?;
        let call = match sub {
            None => {
                let bytes = read_body(body, rt.max_body).await.map_err(null)?;
                let call = jsonrpc_call(bytes)?;
                audit.method = call.method.as_str();
                method::version(&parts.headers).map_err(|e| Box::new((e, call.rpc_id.clone())))?;
                call
            }
            Some(sub) => {
                let RestRoute { method: m, task_id } =
                    method::rest_route(&parts.method, sub).ok_or_else(|| {
                        null(A2aError::NotFound(format!("{} /agents/{agent}{sub}", parts.method)))
                    })?;
                audit.method = m.as_str();
                method::version(&parts.headers).map_err(null)?;
                let bytes = read_body(body, rt.max_body).await.map_err(null)?;
                let rest_path = match parts.uri.query() {
                    Some(q) => format!("{sub}?{q}"),
                    None => sub.to_string(),
                };
                rest_call(m, task_id, bytes, rest_path, parts.method.clone()).map_err(null)?
            }
        };
        if call.method.sends() && !call.facts.message_is_object {
            let field = if sub.is_some() { "'message'" } else { "'params.message'" };
            return Err(Box::new((
                A2aError::InvalidParams(format!("{field} must be an object")),
                call.rpc_id,
            )));
        }
        Ok((agent_cfg, call))
    }
    .await;
    match result {
        Ok((agent_cfg, call)) => forward(rt, agent_cfg, call, &parts.headers, audit).await,
        Err(b) => fail(audit, &rt.shared.metrics, b.0, binding, &b.1),
    }
}
