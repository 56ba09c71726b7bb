//! Relaying an agent's event stream to the caller frame by frame, unchanged, inspecting the
//! events on the way: the first task id is claimed for the caller (task ownership), errors are
//! noted for the audit. A stream that breaks ends with one error event in the caller's binding.

use super::audit::Audit;
use super::error::{A2aError, Binding};
use super::metrics::AgentMetrics;
use super::owners::{self, Owner};
use super::view;
use crate::gateway::http_client::error_chain;
use crate::gateway::sse::{SseEvent, SseParser};
use crate::gateway::store::{Store, StoreError, StoreHandle};
use bytes::Bytes;
use futures_util::FutureExt;
use hyper::body::{Frame, Incoming};
use serde_json::Value;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// What a relayed stream needs when it inspects events and when it ends.
pub(super) struct StreamCtx {
    pub(super) metrics: AgentMetrics,
    pub(super) gateway: String,
    pub(super) agent: String,
    pub(super) owner: Owner,
    pub(super) ttl: Duration,
    /// Where task owners are kept.
    pub(super) store: StoreHandle,
    /// Whether the first task id seen is claimed for the caller.
    pub(super) claims: bool,
    pub(super) binding: Binding,
    pub(super) rpc_id: Value,
    pub(super) audit: Audit,
}

/// A claim in Redis that must finish before the event revealing the task is relayed.
type PendingClaim = tokio::task::JoinHandle<Result<Owner, StoreError>>;

impl StreamCtx {
    fn inspect(&mut self, ev: &SseEvent) -> Option<PendingClaim> {
        // Once the task is known only errors matter, and an event without the bytes `"error"`
        // has none: most events are relayed without being parsed.
        if self.audit.task_id.is_some() && !ev.data.contains("\"error\"") {
            return None;
        }
        let rpc = self.binding == Binding::JsonRpc;
        let Ok(facts) = view::answer_facts(rpc, ev.data.as_bytes()) else { return None };
        if let Some(message) = facts.error {
            self.audit.outcome = "agent_error";
            if rpc {
                self.audit.error = message;
            }
            return None;
        }
        let t = facts.task_id.filter(|_| self.audit.task_id.is_none())?;
        self.audit.task_id = Some(t.clone());
        if !self.claims {
            return None;
        }
        let (store, prefix, owner, ttl) =
            (self.store.store.clone(), self.store.prefix.clone(), self.owner.clone(), self.ttl);
        let key = owners::key(&self.gateway, &self.agent, &t);
        let claim = async move { owners::claim(&store, &prefix, &key, &owner, ttl).await };
        if let Store::Memory(_) = &self.store.store {
            // The memory store answers without waiting: no task, no held event.
            return match claim.now_or_never() {
                Some(Ok(_)) | None => None,
                Some(Err(e)) => {
                    tracing::warn!(gateway = %self.gateway, agent = %self.agent, error = %e, "recording the task's owner failed");
                    None
                }
            };
        }
        Some(tokio::spawn(claim))
    }
}

/// Relays an agent's SSE body to the caller frame by frame, unchanged, inspecting the events on
/// the way (task ids for ownership, errors for the audit). A stream that breaks ends with one
/// error event in the caller's binding.
pub(super) struct Relay {
    inner: Incoming,
    parser: SseParser,
    scratch: Vec<SseEvent>,
    ctx: Option<StreamCtx>,
    done: bool,
    /// A data frame held back until `pending` finishes.
    held: Option<Bytes>,
    pending: Option<PendingClaim>,
}

impl Relay {
    /// Relays `inner`, the agent's event stream, for the call `ctx` describes.
    pub(super) fn new(inner: Incoming, ctx: StreamCtx) -> Relay {
        Relay {
            inner,
            parser: SseParser::default(),
            scratch: Vec::new(),
            ctx: Some(ctx),
            done: false,
            held: None,
            pending: None,
        }
    }

    fn finish(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            ctx.audit.finish(&ctx.metrics);
        }
    }
}

impl hyper::body::Body for Relay {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        loop {
            if let Some(p) = this.pending.as_mut() {
                let done = match Pin::new(p).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r,
                };
                this.pending = None;
                let done = done.unwrap_or_else(|e| Err(StoreError(e.to_string())));
                if let (Err(e), Some(ctx)) = (done, this.ctx.as_ref()) {
                    ctx.store.failed();
                    tracing::warn!(gateway = %ctx.gateway, agent = %ctx.agent, error = %e, "recording the task's owner failed");
                }
            }
            if let Some(data) = this.held.take() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers are not relayed.
                    let Ok(data) = frame.into_data() else { continue };
                    this.scratch.clear();
                    if this.parser.push_into(&data, &mut this.scratch).is_ok()
                        && let Some(ctx) = this.ctx.as_mut()
                    {
                        for ev in &this.scratch {
                            if let Some(p) = ctx.inspect(ev) {
                                this.pending = Some(p);
                            }
                        }
                    }
                    this.held = Some(data);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    let event = match this.ctx.as_mut() {
                        Some(ctx) => {
                            let err = A2aError::Unreachable {
                                agent: ctx.agent.clone(),
                                detail: format!("the event stream broke: {}", error_chain(&e)),
                            };
                            ctx.audit.outcome = "upstream_broken";
                            ctx.audit.error = Some(err.to_string());
                            err.stream_event(ctx.binding, &ctx.rpc_id)
                        }
                        None => Bytes::new(),
                    };
                    this.finish();
                    return Poll::Ready(Some(Ok(Frame::data(event))));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    this.finish();
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.held.is_none()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(ctx) = self.ctx.as_mut()
            && !self.done
        {
            ctx.audit.outcome = "client_gone";
        }
        self.finish();
    }
}
