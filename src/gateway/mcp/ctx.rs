//! The context of one client request on an MCP gateway ([`Ctx`]: who asks, in which era, over
//! which backend sessions) and what every method needs of it: reaching a server (a pooled
//! session the backend lost opened again once, for stateless clients), a request of the
//! gateway's own, forwarding a client's request and relaying what comes back.

use super::names::rewrite_from_backend;
use super::protocol::Era;
use super::replies::{Replies, UpstreamError};
use super::runtime::McpRuntime;
use super::session::{Backends, OpenSession};
use super::upstream::{Outgoing, Upstream};
use super::wire::ToolCallRequest;
use crate::gateway::jsonrpc::{INTERNAL_ERROR, Message, Request, Response, RpcError};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;

use super::fanout::pooled;

/// Who is asking, in which era, over which backend sessions.
pub struct Ctx {
    /// The runtime.
    pub rt: Arc<McpRuntime>,
    /// Caller.
    pub subject: String,
    /// Era.
    pub era: Era,
    /// The client's session (session era).
    pub session: Option<Arc<OpenSession>>,
    /// Backend sessions by prefix (session era: the sealed ones; stateless: pooled).
    pub backends: Arc<Backends>,
}

/// A client's `tools/call`: read into a request (the general path), or in its wire form.
pub enum ToolCallIn<'a> {
    /// Read into a request.
    Request(Request),
    /// Viewed in its wire form ([`super::wire`]).
    Wire(ToolCallRequest<'a>),
}

/// What a request produced: a response now, or a stream of messages ending with one.
pub enum Outcome {
    /// The response.
    Done(Response),
    /// Messages relayed from a backend, the response last.
    Stream(Replies),
    /// The backend no longer knows the session: the client must initialize again (`404`).
    SessionGone,
}

pub(super) fn err(req: &Request, code: i64, msg: impl Into<String>) -> Outcome {
    fail(&req.id, code, msg)
}

/// The error answering the request with `id`.
pub(super) fn fail(id: &Value, code: i64, msg: impl Into<String>) -> Outcome {
    Outcome::Done(Response::error(id.clone(), RpcError::new(code, msg)))
}

pub(super) fn upstream_error(e: &UpstreamError) -> RpcError {
    RpcError::new(INTERNAL_ERROR, e.to_string())
}

impl Ctx {
    pub(super) fn upstream(&self, i: usize) -> &Arc<Upstream> {
        &self.rt.upstreams[i]
    }

    /// Sends a request to server `i`; for stateless clients a pooled session the backend lost is
    /// opened again once.
    pub(super) async fn request(&self, i: usize, req: Outgoing) -> Result<Replies, UpstreamError> {
        let up = self.upstream(i);
        let Some(s) = self.backends.get(&up.prefix) else {
            return Err(UpstreamError::Connect("the server was unavailable when this session opened".into()));
        };
        if self.era != Era::Stateless {
            return up.request(s, req).await;
        }
        match up.request(s, req.clone()).await {
            Err(UpstreamError::SessionGone) => {
                self.rt.state.pool.lock().await.remove(&up.prefix);
                let fresh = pooled(&self.rt).await;
                let s = fresh.get(&up.prefix).ok_or(UpstreamError::SessionGone)?;
                up.request(s, req).await
            }
            r => r,
        }
    }

    pub(super) async fn call(&self, i: usize, req: Request) -> Result<Response, UpstreamError> {
        let timeout = self.upstream(i).timeout;
        let fut = async {
            let mut rx = self.request(i, req.into()).await?;
            super::replies::final_response(&mut rx).await
        };
        tokio::time::timeout(timeout, fut).await.map_err(|_| UpstreamError::Timeout)?
    }

    /// The request `method` with `params` (already rewritten) to send on for the client's request
    /// `id`.
    pub(super) fn outgoing(&self, id: &Value, method: &str, mut params: Value) -> Request {
        if self.era == Era::Stateless {
            // The backend is spoken to in the session era: per-request protocol metadata is the
            // gateway's to consume.
            if let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) {
                meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
                if meta.is_empty() {
                    params.as_object_mut().expect("object").remove("_meta");
                }
            }
        }
        Request::new(id.clone(), method, Some(params))
    }

    /// Sends `out` (the client's request `id` of `method`) to server `i`; relays what it sends.
    pub(super) async fn forward(&self, i: usize, id: &Value, method: &str, out: Outgoing) -> Outcome {
        match self.request(i, out).await {
            Ok(rx) => Outcome::Stream(rx),
            Err(UpstreamError::SessionGone) => Outcome::SessionGone,
            Err(e) => {
                self.rt.metrics.backend_error(&self.rt.gateway, &self.rt.servers[i].name, method, &e);
                Outcome::Done(Response::error(id.clone(), upstream_error(&e)))
            }
        }
    }
}

/// The messages of an answer that is all in, up to and with its response, rewritten for the
/// client (what the relay tasks do for streams); `judge` of the response, `None` without one.
pub(super) fn ready<T>(
    prefix: &str,
    messages: VecDeque<Message>,
    judge: impl Fn(&Response) -> T,
) -> (VecDeque<Message>, Option<T>) {
    let mut out = VecDeque::with_capacity(messages.len() + 1);
    for m in messages {
        let verdict = match &m {
            Message::Response(r) => Some(judge(r)),
            _ => None,
        };
        out.push_back(rewrite_from_backend(prefix, m));
        if verdict.is_some() {
            return (out, verdict);
        }
    }
    (out, None)
}
