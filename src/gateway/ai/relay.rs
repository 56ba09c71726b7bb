//! Relaying a streamed answer: the upstream's events go to the client as they arrive (the
//! upstream's own bytes when nothing changes them), translated between the two API families
//! when needed, checked by response guardrails, with usage metered on the way and the usage
//! chunk the gateway asked for on the client's behalf hidden. The response body itself does the
//! relaying as hyper polls it; when the stream ends — finished, broken, or the client gone — it
//! charges the usage and writes the record.

use super::account::account;
use super::attempts::{Ctx, min_opt, remaining};
use super::error::AiError;
use super::exchange::UpBody;
use super::guardrails::{Direction, Guardrails};
use super::meter::{StreamKind, StreamUsage};
use super::op::Op;
use super::record::Record;
use super::translate::{ChatToMessagesStream, MessagesToChatStream};
use crate::config::AiModelConfig;
use crate::gateway::sse::{SseEvent, SseParser};
use bytes::{Bytes, BytesMut};
use serde_json::Value;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How a relayed stream ended.
pub(super) enum StreamEnd {
    /// Upstream finished properly.
    Complete,
    /// The client went away (the upstream request is cancelled).
    ClientGone,
    /// Upstream broke, stalled or sent garbage.
    Broken(AiError),
}

/// Forwards a stream event by event, capturing usage and hiding the usage chunk the gateway asked
/// for on the client's behalf.
pub(super) struct Relay {
    /// Response guardrails applied to each event.
    pub(super) guardrails: Option<Arc<Guardrails>>,
    /// A guardrail refused an event: the stream ends with this error.
    refused: Option<AiError>,
    op: Op,
    strip_usage: bool,
    translator: Translator,
    parser: SseParser,
    /// Usage reported by the upstream, or counted from its text.
    meter: StreamUsage,
    ttft: Option<Duration>,
    finished: bool,
    /// When the request arrived (the time to first token counts from it).
    started: Instant,
    /// Events of the chunk being relayed, and whether each reaches the client (both kept to
    /// reuse their allocations).
    events: Vec<SseEvent>,
    kept: Vec<bool>,
}

impl Relay {
    pub(super) fn new(
        op: Op,
        strip_usage: bool,
        translator: Translator,
        meter: StreamUsage,
        started: Instant,
    ) -> Self {
        Relay {
            guardrails: None,
            refused: None,
            op,
            strip_usage,
            translator,
            parser: SseParser::default(),
            meter,
            ttft: None,
            finished: false,
            started,
            events: Vec::new(),
            kept: Vec::new(),
        }
    }

    /// The events the client gets for one upstream event.
    fn convert(&mut self, ev: SseEvent) -> Vec<SseEvent> {
        let parsed = if ev.is_done() { None } else { serde_json::from_str::<Value>(&ev.data).ok() };
        if let Some(v) = &parsed {
            self.meter.observe(ev.event.as_deref(), v);
        }
        let mut out: Vec<SseEvent> = match &mut self.translator {
            Translator::None => {
                if self.inspect(&ev, parsed.as_ref()) {
                    vec![ev]
                } else {
                    vec![]
                }
            }
            Translator::MessagesToChat(t) => t.on_event(ev.event.as_deref(), &ev.data),
            Translator::ChatToMessages(t) => t.on_data(&ev.data),
        };
        if !matches!(self.translator, Translator::None) {
            out.retain(|e| {
                let v = serde_json::from_str::<Value>(&e.data).ok();
                self.inspect(e, v.as_ref())
            });
        }
        if let Some(g) = &self.guardrails {
            for ev in &mut out {
                let Ok(mut v) = serde_json::from_str::<Value>(&ev.data) else { continue };
                match g.apply(Direction::Response, &mut v) {
                    Ok(true) => ev.data = v.to_string(),
                    Ok(false) => {}
                    Err(e) => {
                        self.refused = Some(AiError::Guardrail(e.to_string()));
                        return vec![];
                    }
                }
            }
        }
        out
    }

    /// Events that close a translated stream whose upstream ended early (or an error event).
    fn finish_translation(&mut self) -> Vec<SseEvent> {
        let out = match &mut self.translator {
            Translator::ChatToMessages(t) => t.finish(),
            _ => vec![],
        };
        out.into_iter()
            .filter(|e| {
                let v = serde_json::from_str::<Value>(&e.data).ok();
                self.inspect(e, v.as_ref())
            })
            .collect()
    }

    /// Takes one upstream chunk (arrived at `at`) and queues what the client gets for it in
    /// `out`. When the events of the chunk reach the client unchanged, the chunk's own bytes are
    /// forwarded. `Err` ends the stream (malformed stream, refused by a guardrail).
    fn feed(&mut self, chunk: Bytes, at: Instant, out: &mut VecDeque<Bytes>) -> Result<(), AiError> {
        let plain = matches!(self.translator, Translator::None) && self.guardrails.is_none();
        let whole_before = self.parser.at_event_boundary();
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        if let Err(e) = self.parser.push_into(&chunk, &mut events) {
            return Err(AiError::BadGateway(format!("upstream stream is malformed: {e}")));
        }
        let queued = out.len();
        if plain {
            let mut kept = std::mem::take(&mut self.kept);
            kept.clear();
            for ev in &events {
                kept.push(self.pass(ev));
            }
            if !events.is_empty()
                && whole_before
                && self.parser.at_event_boundary()
                && kept.iter().all(|k| *k)
            {
                out.push_back(chunk);
            } else {
                let mut buf = BytesMut::new();
                for (ev, keep) in events.iter().zip(&kept) {
                    if *keep {
                        ev.encode_into(&mut buf);
                    }
                }
                if !buf.is_empty() {
                    out.push_back(buf.freeze());
                }
            }
            self.kept = kept;
        } else {
            let mut converted = Vec::new();
            for ev in events.drain(..) {
                converted.extend(self.convert(ev));
            }
            if let Some(e) = self.refused.take() {
                return Err(e);
            }
            let mut buf = BytesMut::new();
            for ev in &converted {
                ev.encode_into(&mut buf);
            }
            if !buf.is_empty() {
                out.push_back(buf.freeze());
            }
        }
        self.events = events;
        if out.len() > queued && self.ttft.is_none() {
            self.ttft = Some(at.saturating_duration_since(self.started));
        }
        Ok(())
    }

    /// The upstream body ended: how the stream ends, with the closing events of a translation
    /// queued in `out`.
    fn end_of_body(&mut self, out: &mut VecDeque<Bytes>) -> StreamEnd {
        if self.finished {
            return StreamEnd::Complete;
        }
        if matches!(self.translator, Translator::ChatToMessages(_)) {
            for ev in self.finish_translation() {
                out.push_back(ev.encode());
            }
            if self.finished {
                return StreamEnd::Complete;
            }
        }
        StreamEnd::Broken(AiError::BadGateway("upstream stream ended before its final event".into()))
    }

    /// Whether an event of a stream relayed as it is reaches the client; notes its usage and
    /// whether it ends the stream. Chat Completions chunks are read with the small typed reader,
    /// other APIs' events parsed whole.
    fn pass(&mut self, ev: &SseEvent) -> bool {
        if ev.is_done() {
            self.finished = true;
            return true;
        }
        if self.op == Op::Chat && self.meter.kind() == StreamKind::OpenAiChat {
            let Some(chunk) = self.meter.observe_chat_chunk(&ev.data) else { return true };
            return !(self.strip_usage && chunk.usage_only);
        }
        let parsed = serde_json::from_str::<Value>(&ev.data).ok();
        if let Some(v) = &parsed {
            self.meter.observe(ev.event.as_deref(), v);
        }
        self.inspect(ev, parsed.as_ref())
    }

    /// Notes the end of a stream in the caller's API; `false` hides the event from the client
    /// (the usage chunk the gateway asked for on its behalf).
    fn inspect(&mut self, ev: &SseEvent, v: Option<&Value>) -> bool {
        if ev.is_done() {
            self.finished = true;
            return true;
        }
        let Some(v) = v else { return true };
        match self.op {
            Op::Chat => {
                let usage_only = v.get("usage").is_some_and(Value::is_object)
                    && v.get("choices").and_then(Value::as_array).is_some_and(|c| c.is_empty());
                if self.strip_usage && usage_only {
                    return false;
                }
            }
            Op::Messages => {
                if v.get("type").and_then(Value::as_str) == Some("message_stop") {
                    self.finished = true;
                }
            }
            Op::Responses => {
                if matches!(
                    v.get("type").and_then(Value::as_str),
                    Some("response.completed" | "response.incomplete" | "response.failed")
                ) {
                    self.finished = true;
                }
            }
            Op::Embeddings => {}
        }
        true
    }
}

/// Stream translation between the caller's API and the backend's.
pub(super) enum Translator {
    /// Same API on both sides.
    None,
    /// Anthropic events to OpenAI chunks (chat front, Anthropic backend).
    MessagesToChat(Box<MessagesToChatStream>),
    /// OpenAI chunks to Anthropic events (messages front, OpenAI-type backend).
    ChatToMessages(Box<ChatToMessagesStream>),
}

/// What a stream owes once it ends: the request's context and record, to charge and log it.
pub(super) struct Settle {
    pub(super) ctx: Ctx,
    pub(super) rec: Record,
    pub(super) price: Option<AiModelConfig>,
}

/// The body of a streamed answer: it relays the upstream body as hyper polls it (no task of its
/// own). When the client goes away hyper drops it; dropping it drops the upstream body, which
/// cancels the upstream request, and charges the usage seen so far.
pub(super) struct RelayBody {
    relay: Relay,
    /// `None` once the stream ended (dropping it cancels the upstream request).
    upstream: Option<UpBody>,
    /// The first chunk, read while the attempt was still open, and when it arrived.
    first: Option<(Bytes, Instant)>,
    /// Bytes for the client not yet handed to hyper.
    out: VecDeque<Bytes>,
    idle: Option<Duration>,
    deadline: Option<Instant>,
    /// Wait bound for the next upstream chunk (idle timeout or the request deadline), armed when
    /// a wait begins.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A wait for the next upstream chunk is under way (`timer` is armed for it).
    waiting: bool,
    /// `None` once the stream was charged and logged.
    settle: Option<Settle>,
}

impl RelayBody {
    /// The body of a stream whose attempt read `first` (and when) from `upstream`.
    pub(super) fn new(
        relay: Relay,
        upstream: UpBody,
        first: Option<(Bytes, Instant)>,
        idle: Option<Duration>,
        deadline: Option<Instant>,
        settle: Settle,
    ) -> RelayBody {
        RelayBody {
            relay,
            upstream: Some(upstream),
            first,
            out: VecDeque::new(),
            idle,
            deadline,
            timer: None,
            waiting: false,
            settle: Some(settle),
        }
    }

    /// Ends the stream once: stops reading upstream, queues an error event for a broken stream,
    /// charges the usage and writes the access log.
    fn end(&mut self, end: StreamEnd) {
        let Some(Settle { mut ctx, mut rec, price }) = self.settle.take() else { return };
        // Dropping the upstream body cancels the upstream request.
        self.upstream = None;
        self.timer = None;
        rec.ttft = self.relay.ttft;
        match end {
            StreamEnd::Complete => {}
            StreamEnd::ClientGone => {
                rec.outcome = "client_disconnected";
                rec.status = 499;
            }
            StreamEnd::Broken(e) => {
                rec.outcome = e.category();
                rec.error = Some(e.to_string());
                // The client gets the error as the stream's last event.
                self.out.push_back(e.stream_event(ctx.front));
            }
        }
        // Count the prompt only when the provider reported nothing.
        let estimate = if self.relay.meter.reported() { 0 } else { ctx.estimated_input() };
        let usage = self.relay.meter.usage(estimate);
        account(&mut ctx, usage, price.as_ref(), &mut rec);
        rec.finish(&ctx.rt);
    }

    /// The next upstream chunk and when it arrived; `Err` ends the stream.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<(Bytes, Instant)>, AiError>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Ok(Some(first)));
        }
        let Some(body) = self.upstream.as_mut() else { return Poll::Ready(Ok(None)) };
        match body.poll_next(cx) {
            Poll::Ready(next) => {
                self.waiting = false;
                match next {
                    None => Poll::Ready(Ok(None)),
                    Some(Ok(c)) => Poll::Ready(Ok(Some((c, Instant::now())))),
                    Some(Err(e)) => {
                        Poll::Ready(Err(AiError::BadGateway(format!("upstream stream broke: {e}"))))
                    }
                }
            }
            Poll::Pending => {
                if !self.waiting {
                    // A wait begins: arm the bound (one timer per stream, re-armed per wait).
                    self.waiting = true;
                    match min_opt(remaining(self.deadline), self.idle) {
                        None => self.timer = None,
                        Some(limit) => {
                            let at = tokio::time::Instant::now() + limit;
                            match &mut self.timer {
                                Some(t) => t.as_mut().reset(at),
                                None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
                            }
                        }
                    }
                }
                match self.timer.as_mut().map(|t| t.as_mut().poll(cx)) {
                    Some(Poll::Ready(())) => {
                        Poll::Ready(Err(AiError::GatewayTimeout("upstream stream stalled".into())))
                    }
                    _ => Poll::Pending,
                }
            }
        }
    }
}

impl hyper::body::Body for RelayBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if let Some(b) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(hyper::body::Frame::data(b))));
            }
            if this.settle.is_none() {
                return Poll::Ready(None);
            }
            match std::task::ready!(this.poll_chunk(cx)) {
                Ok(Some((chunk, at))) => {
                    if let Err(e) = this.relay.feed(chunk, at, &mut this.out) {
                        this.end(StreamEnd::Broken(e));
                    }
                }
                Ok(None) => {
                    let end = this.relay.end_of_body(&mut this.out);
                    this.end(end);
                }
                Err(e) => this.end(StreamEnd::Broken(e)),
            }
        }
    }
}

impl Drop for RelayBody {
    fn drop(&mut self) {
        // Still owing the charge: the client went away before the stream ended.
        self.end(StreamEnd::ClientGone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::ai::tokens::count_tokens;
    use crate::gateway::ai::usage::Usage;
    use crate::gateway::sse::encode_done;

    fn chat_relay(strip_usage: bool) -> Relay {
        let meter = StreamUsage::new(StreamKind::OpenAiChat, "gpt-4o");
        Relay::new(Op::Chat, strip_usage, Translator::None, meter, Instant::now())
    }

    fn relay_chunks(relay: &mut Relay, chunks: &[&'static [u8]]) -> Vec<Bytes> {
        let mut out = VecDeque::new();
        for c in chunks {
            relay.feed(Bytes::from_static(c), Instant::now(), &mut out).unwrap();
        }
        out.into()
    }

    #[test]
    fn whole_chat_chunks_are_forwarded_as_they_came() {
        let mut relay = chat_relay(true);
        let first: &[u8] = b"data:{\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\n";
        let done: &[u8] = b": keep-alive\ndata: [DONE]\n\n";
        let out = relay_chunks(&mut relay, &[first, done]);
        assert_eq!(out, [Bytes::from_static(first), Bytes::from_static(done)]);
        assert!(relay.ttft.is_some());
        assert!(relay.finished, "[DONE] ends a chat stream");
        assert_eq!(relay.meter.usage(0).output, count_tokens("gpt-4o", "Hi"));
    }

    #[test]
    fn the_usage_chunk_the_gateway_asked_for_is_hidden() {
        let usage: &[u8] =
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n";
        let chunk: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n";
        let mut relay = chat_relay(true);
        let mut mixed = chunk.to_vec();
        mixed.extend_from_slice(usage);
        mixed.extend_from_slice(b"data: [DONE]\n\n");
        let mut out = VecDeque::new();
        relay.feed(Bytes::from(mixed), Instant::now(), &mut out).unwrap();
        let expected = [chunk, b"data: [DONE]\n\n".as_slice()].concat();
        assert_eq!(Vec::from(out), [Bytes::from(expected)]);
        assert_eq!(relay.meter.usage(0), Usage { input: 3, cached_input: 0, output: 1, estimated: false });

        // A usage-only chunk alone in its piece yields nothing; the client asked for it: it passes.
        assert!(relay_chunks(&mut chat_relay(true), &[usage]).is_empty());
        assert_eq!(relay_chunks(&mut chat_relay(false), &[usage]), [Bytes::from_static(usage)]);
    }

    #[test]
    fn events_split_across_chunks_are_reassembled() {
        let mut relay = chat_relay(true);
        let out = relay_chunks(
            &mut relay,
            &[b"data: {\"choices\":[{\"delta\":", b"{\"content\":\"x\"}}]}\n\ndata: [DO", b"NE]\n\n"],
        );
        assert_eq!(
            out,
            [Bytes::from_static(b"data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n"), encode_done()]
        );
        assert!(relay.finished);
    }

    #[test]
    fn a_malformed_chat_event_is_passed_on_uncounted() {
        let mut relay = chat_relay(true);
        let bad: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"oops\n\n";
        assert_eq!(relay_chunks(&mut relay, &[bad]), [Bytes::from_static(bad)]);
        assert!(!relay.finished);
        assert_eq!(relay.meter.usage(0).output, 0);
        // A stream that ends there did not finish.
        let mut out = VecDeque::new();
        let StreamEnd::Broken(e) = relay.end_of_body(&mut out) else {
            panic!("a stream without [DONE] is broken")
        };
        assert_eq!(e.to_string(), "upstream stream ended before its final event");
        // Bytes that are not an event stream end the relay.
        let e = relay.feed(Bytes::from_static(b"data: \xff\n\n"), Instant::now(), &mut out).unwrap_err();
        assert!(e.to_string().contains("upstream stream is malformed"), "{e}");
    }
}
