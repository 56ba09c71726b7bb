//! A client's `tools/call`: the server and its exposure checked, admitted (policy and limits:
//! [`crate::gateway::admission`]), audited, routed to the server with the tool's own name —
//! as the client's own bytes when the backend takes them — and the answer relayed.

use super::audit::{Arguments, ToolCall};
use super::names::rewrite_from_backend;
use super::replies::Replies;
use super::upstream::Outgoing;
use crate::config::Layer;
use crate::gateway::admission::{self, Refusal};
use crate::gateway::jsonrpc::{INTERNAL_ERROR, INVALID_PARAMS, Message, RATE_LIMITED, Response, RpcError};
use crate::gateway::telemetry::span;
use crate::policy::Target;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tracing::{Instrument, Span};

use super::ctx::{Ctx, Outcome, ToolCallIn, err, fail, ready};

impl Ctx {
    /// A client's `tools/call`: checked (server, exposure, policy, limits), audited, routed.
    pub async fn call_tool(&self, call: ToolCallIn<'_>) -> Outcome {
        let (id, name): (Value, Cow<str>) = match &call {
            ToolCallIn::Request(req) => match req.param_str("name") {
                Some(n) => (req.id.clone(), Cow::Owned(n.to_string())),
                None => return err(req, INVALID_PARAMS, "tools/call needs params.name"),
            },
            ToolCallIn::Wire(w) => (w.id.clone(), Cow::Borrowed(w.name)),
        };
        let id = &id;
        let Some((i, tool)) = self.rt.route_name(&name) else {
            return fail(id, INVALID_PARAMS, format!("Unknown tool: {name}"));
        };
        let server = &self.rt.servers[i];
        let started = Instant::now();
        // What the audit line keeps of the arguments, taken now: the params go on to the server.
        let args = match &call {
            ToolCallIn::Request(req) => {
                Arguments::new(req.params.as_ref().and_then(|p| p.get("arguments")), server.audit_arguments)
            }
            ToolCallIn::Wire(w) => Arguments::from_raw(w.arguments, server.audit_arguments),
        };
        let session = self.session.as_ref().map_or("", |s| s.digest.as_str());
        let req_span = Span::current();
        self.annotate(&req_span, &name, &server.name, tool, session, id);
        let subject_labels = self.rt.config.telemetry.subject_labels;
        let audit = |outcome: &'static str| {
            ToolCall {
                metrics: &self.rt.metrics,
                gateway: &self.rt.gateway,
                subject: &self.subject,
                session,
                server: &server.name,
                tool,
                arguments: &args,
                span: &req_span,
                subject_labels,
            }
            .finish(outcome, started.elapsed())
        };
        if !self.rt.server_exposes(i, tool) {
            audit("not_exposed");
            return fail(id, INVALID_PARAMS, format!("Unknown tool: {name}"));
        }
        let target = Target::Tool { server: &server.name, tool };
        let admitted = admission::admit(&self.subject, target, &self.rt.policy, &self.rt.store).await;
        let gateway: Arc<str> = Arc::from(self.rt.gateway.as_str());
        admission::record(
            admitted.as_ref().map(|a| a.by_default),
            &req_span,
            &self.rt.metrics.denials,
            &gateway,
            Layer::Mcp,
        );
        match admitted {
            Ok(_) => {}
            Err(Refusal::Forbidden(d)) => {
                audit("forbidden");
                let e = RpcError::new(INVALID_PARAMS, format!("Tool {name} is not allowed: {d}"))
                    .with_data(json!({"reason": d.reason.category()}));
                return Outcome::Done(Response::error(id.clone(), e));
            }
            Err(Refusal::RateLimited { limit, retry_after, .. }) => {
                audit("rate_limited");
                let e = RpcError::new(
                    RATE_LIMITED,
                    format!(
                        "Rate limit of {limit} calls per minute reached for {name}; retry in {retry_after}s"
                    ),
                )
                .with_data(json!({"retryAfterSeconds": retry_after}));
                return Outcome::Done(Response::error(id.clone(), e));
            }
            // Tool calls carry no budget.
            Err(Refusal::OverBudget { .. }) => {}
            Err(Refusal::StoreUnavailable(e)) => {
                audit("store_unavailable");
                return fail(id, INTERNAL_ERROR, admission::store_unavailable_message(&e));
            }
        }
        let wire = self.backends.get(&server.prefix).is_some_and(|s| self.upstream(i).takes_wire(s));
        let out = match call {
            // As the client sent it, the name unprefixed.
            ToolCallIn::Wire(w) if wire => {
                Outgoing::Wire { id: id.clone(), body: w.forward_body(tool).into() }
            }
            call => {
                let mut params = match call {
                    ToolCallIn::Request(mut req) => req.params.take(),
                    ToolCallIn::Wire(w) => w.params_value(),
                }
                .unwrap_or_else(|| json!({}));
                params["name"] = tool.into();
                Outgoing::ToolCall(self.outgoing(id, "tools/call", params))
            }
        };
        let upstream = span::upstream(&req_span, &self.rt.gateway, &format!("tools/call {tool}"));
        span::attr(&upstream, "mcp.method.name", "tools/call");
        span::attr(&upstream, "gen_ai.tool.name", tool.to_string());
        span::attr(&upstream, "cairn.mcp.server", server.name.clone());
        span::subject(&upstream, &self.subject);
        span::decision(&upstream, true, "granted");
        let forwarded = self.forward(i, id, "tools/call", out).instrument(upstream).await;
        match forwarded {
            Outcome::Stream(Replies::Raw(r)) => {
                // One successful response, no contents to rewrite: it goes to the client as sent.
                audit(if r.is_error { "tool_error" } else { "ok" });
                Outcome::Stream(Replies::Raw(r))
            }
            Outcome::Stream(Replies::Ready(messages)) => {
                // A JSON answer is all in: rewritten and audited here, no relay.
                let (mut out, outcome) = ready(&server.prefix, messages, call_outcome);
                if outcome.is_none() {
                    let e = RpcError::new(INTERNAL_ERROR, "MCP server closed the stream without answering");
                    out.push_back(Message::Response(Response::error(id.clone(), e)));
                }
                audit(outcome.unwrap_or("backend_error"));
                Outcome::Stream(Replies::Ready(out))
            }
            Outcome::Stream(Replies::Stream(mut rx)) => {
                // Audit when the response passes.
                let (tx, out) = mpsc::channel(64);
                let rt = self.rt.clone();
                let subject = self.subject.clone();
                let session = self.session.clone();
                let tool = tool.to_string();
                let id = id.clone();
                let req_span = req_span.clone();
                tokio::spawn(async move {
                    let server = &rt.servers[i];
                    let timeout =
                        tokio::time::sleep(std::time::Duration::from_millis(server.timeout_ms.max(1)));
                    tokio::pin!(timeout);
                    let mut outcome = "backend_error";
                    let mut answered = false;
                    loop {
                        let m = tokio::select! {
                            m = rx.recv() => m,
                            _ = &mut timeout => { outcome = "timeout"; break; }
                        };
                        let Some(m) = m else { break };
                        let last = matches!(m, Message::Response(_));
                        if let Message::Response(r) = &m {
                            answered = true;
                            outcome = call_outcome(r);
                        }
                        if tx.send(rewrite_from_backend(&server.prefix, m)).await.is_err() {
                            if !answered {
                                outcome = "client_gone";
                            }
                            break;
                        }
                        if last {
                            break;
                        }
                    }
                    if !answered {
                        let e = match outcome {
                            "timeout" => RpcError::new(INTERNAL_ERROR, "MCP server did not answer in time"),
                            _ => RpcError::new(
                                INTERNAL_ERROR,
                                "MCP server closed the stream without answering",
                            ),
                        };
                        let _ = tx.send(Message::Response(Response::error(id, e))).await;
                    }
                    ToolCall {
                        metrics: &rt.metrics,
                        gateway: &rt.gateway,
                        subject: &subject,
                        session: session.as_ref().map_or("", |s| s.digest.as_str()),
                        server: &server.name,
                        tool: &tool,
                        arguments: &args,
                        span: &req_span,
                        subject_labels,
                    }
                    .finish(outcome, started.elapsed());
                });
                Outcome::Stream(Replies::Stream(out))
            }
            Outcome::Done(r) => {
                audit("backend_error");
                Outcome::Done(r)
            }
            Outcome::SessionGone => {
                audit("session_gone");
                Outcome::SessionGone
            }
        }
    }
}

impl Ctx {
    /// The MCP attributes of a tool call's span (the session by its digest: ids are bearer
    /// secrets).
    fn annotate(&self, s: &Span, name: &str, server: &str, tool: &str, session: &str, id: &Value) {
        span::name(s, format!("tools/call {name}"));
        span::attr(s, "mcp.method.name", "tools/call");
        span::attr(s, "gen_ai.operation.name", "execute_tool");
        span::attr(s, "gen_ai.tool.name", tool.to_string());
        span::attr(s, "cairn.mcp.server", server.to_string());
        if !session.is_empty() {
            span::attr(s, "mcp.session.id", session.to_string());
        }
        span::attr(s, "jsonrpc.request.id", id.to_string());
    }
}

/// How a tool call ended, from its response.
fn call_outcome(r: &Response) -> &'static str {
    match &r.outcome {
        Ok(v) if v.get("isError").and_then(Value::as_bool) == Some(true) => "tool_error",
        Ok(_) => "ok",
        Err(_) => "error",
    }
}
