//! Delivering the answer of an AI request: the whole answer (usage counted or estimated,
//! translated to the caller's API, response guardrails, cache, accounting), or the stream set up
//! to be relayed event by event ([`super::relay`]).

use super::account::account;
use super::answer::Served;
use super::attempts::{Ctx, Won, read_all, remaining};
use super::cache::CachedResponse;
use super::error::AiError;
use super::guardrails::Direction;
use super::meter::{StreamKind, StreamUsage};
use super::op::{Op, upstream_op};
use super::record::Record;
use super::relay::{Relay, RelayBody, Settle, Translator};
use super::routing::RuleRt;
use super::tokens::count_tokens;
use super::translate::{self, ChatToMessagesStream, MessagesToChatStream};
use super::usage::{Usage, answer_usage};
use crate::gateway::clock::unix_now;
use crate::gateway::response::full;
use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body_util::BodyExt;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Delivers the answer of the attempt that won: a whole answer is read, its usage counted,
/// translated and guarded when the rule says so, cached, charged; a stream is relayed by its
/// response body ([`RelayBody`]), which charges and logs the request when it ends.
pub(super) async fn deliver(
    mut ctx: Ctx,
    won: Won,
    rule: &RuleRt,
    rec: &mut Record,
) -> Result<Served, AiError> {
    let Won { target, upstream_model, mut resp, first, at: first_at, deadline } = won;
    let upstream_model = upstream_model.as_str();
    let price = target.backend.models.get(upstream_model).cloned();
    if !ctx.stream {
        let body = read_all(&mut resp.body, remaining(deadline)).await?;
        let not_json = || {
            AiError::BadGateway(format!(
                "backend {} answered something that is not JSON",
                target.backend.name
            ))
        };
        let up = upstream_op(target.backend.provider, ctx.op);
        // The answer is only parsed whole to translate it or to count its text; otherwise its
        // bytes go to the client untouched.
        let (usage, parsed) = match answer_usage(&body, up == Op::Messages).map_err(|_| not_json())? {
            Some(usage) if up == ctx.op => (usage, None),
            reported => {
                let parsed: Value = serde_json::from_slice(&body).map_err(|_| not_json())?;
                let usage = reported.unwrap_or_else(|| Usage {
                    input: ctx.estimated_input(),
                    cached_input: 0,
                    output: count_tokens(upstream_model, &answer_text(&parsed)),
                    estimated: true,
                });
                (usage, Some(parsed))
            }
        };
        let mut body = match (ctx.op, up, &parsed) {
            (Op::Chat, Op::Messages, Some(parsed)) => {
                Bytes::from(translate::messages_to_chat_response(parsed, unix_now()).to_string())
            }
            (Op::Messages, Op::Chat, Some(parsed)) => {
                Bytes::from(translate::chat_to_messages_response(parsed).to_string())
            }
            _ => body,
        };
        account(&mut ctx, usage, price.as_ref(), rec);
        if !rule.response_guardrails.is_empty() {
            let mut v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let changed = rule
                .response_guardrails
                .apply(Direction::Response, &mut v)
                .map_err(|e| AiError::Guardrail(e.to_string()))?;
            if changed {
                body = Bytes::from(v.to_string());
            }
        }
        if let Some((cache, key)) = &ctx.cache_slot {
            let value =
                CachedResponse { status: 200, content_type: "application/json".into(), body: body.clone() };
            cache.insert(*key, value, Instant::now());
        }
        let mut r = Response::new(full(body));
        r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(Served::Done(r));
    }

    let idle = rule.cfg.timeouts.idle_ms.map(Duration::from_millis);
    let up_op = upstream_op(target.backend.provider, ctx.op);
    // The gateway asked for a usage chunk the client did not: hide it from the client.
    let strip_usage = up_op == Op::Chat && ctx.op == Op::Chat && !ctx.prompt.asked_usage;
    let translator = match (ctx.op, up_op) {
        (Op::Chat, Op::Messages) => Translator::MessagesToChat(Box::new(MessagesToChatStream::new(
            &ctx.model,
            unix_now(),
            ctx.prompt.asked_usage,
        ))),
        (Op::Messages, Op::Chat) => {
            Translator::ChatToMessages(Box::new(ChatToMessagesStream::new(&ctx.model, ctx.estimated_input())))
        }
        _ => Translator::None,
    };
    let kind = match up_op {
        Op::Messages => StreamKind::Anthropic,
        Op::Responses => StreamKind::OpenAiResponses,
        _ => StreamKind::OpenAiChat,
    };
    let mut rec = rec.clone();
    rec.status = 200;
    let mut relay =
        Relay::new(ctx.op, strip_usage, translator, StreamUsage::new(kind, upstream_model), rec.started);
    relay.guardrails = (!rule.response_guardrails.is_empty()).then(|| rule.response_guardrails.clone());
    let body = RelayBody::new(
        relay,
        resp.body,
        first.map(|c| (c, first_at)),
        idle,
        deadline,
        Settle { ctx, rec, price },
    );
    let mut r = Response::new(BodyExt::boxed(body));
    let h = r.headers_mut();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(Served::Streaming(r))
}

/// Text of a whole (non-streamed) answer, for estimation.
fn answer_text(v: &Value) -> String {
    let mut out = String::new();
    if let Some(Value::Array(choices)) = v.get("choices") {
        for c in choices {
            if let Some(Value::String(s)) = c.pointer("/message/content") {
                out.push_str(s);
            }
        }
    }
    if let Some(Value::Array(blocks)) = v.get("content") {
        for b in blocks {
            if let Some(Value::String(s)) = b.get("text") {
                out.push_str(s);
            }
        }
    }
    out
}
