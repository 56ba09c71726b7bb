//! A mock OpenAI + Anthropic upstream for gateway tests: hyper on a loopback port, with knobs
//! for failures, hangs, stream pacing and broken streams, and a record of what it received.
//!
//! Include with `#[path = "support/mock_llm.rs"] mod mock_llm;`.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

/// What the mock does with the next requests.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// Answer normally.
    Ok,
    /// Answer with this status and an OpenAI-style error body.
    Status(u16),
    /// Accept the request and never answer.
    Hang,
    /// Answer 200 with a body that is not JSON.
    NotJson,
    /// Stream: send this many content chunks, then drop the connection without finishing.
    BreakAfter(usize),
    /// Stream: send no usage chunk even when asked.
    NoUsage,
    /// Read the request's first bytes, then reset the connection (RST) without an answer.
    Reset,
}

/// One received request.
#[derive(Clone, Debug)]
pub struct Received {
    /// Path.
    pub path: String,
    /// Header values by lower-case name.
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: Value,
}

impl Received {
    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

struct State {
    name: String,
    behavior: Mutex<Behavior>,
    received: Mutex<Vec<Received>>,
    count: AtomicUsize,
    /// When set, stream chunks after the first wait for a permit each.
    gate: Mutex<Option<Arc<Semaphore>>>,
    /// Number of streams whose body the client (the gateway) dropped before the end.
    cancelled: AtomicUsize,
}

/// A running mock.
#[derive(Clone)]
pub struct MockLlm {
    /// `http://127.0.0.1:PORT` (use `/v1` for OpenAI-style backends).
    pub url: String,
    pub port: u16,
    state: Arc<State>,
}

/// Content chunks a stream sends.
pub const STREAM_CHUNKS: usize = 4;
/// Usage the mock reports.
pub const PROMPT_TOKENS: u64 = 11;
pub const COMPLETION_TOKENS: u64 = 7;

impl MockLlm {
    /// Starts a mock named `name` (its answers say `from <name>`).
    pub async fn start(name: &str) -> MockLlm {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            name: name.to_string(),
            behavior: Mutex::new(Behavior::Ok),
            received: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            gate: Mutex::new(None),
            cancelled: AtomicUsize::new(0),
        });
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let st = st.clone();
                tokio::spawn(async move {
                    if matches!(*st.behavior.lock().unwrap(), Behavior::Reset) {
                        reset(&st, stream).await;
                        return;
                    }
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle(st, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        MockLlm { url: format!("http://127.0.0.1:{port}"), port, state }
    }

    /// Sets the behaviour for the next requests.
    pub fn set(&self, b: Behavior) {
        *self.state.behavior.lock().unwrap() = b;
    }

    /// Requests received so far.
    pub fn count(&self) -> usize {
        self.state.count.load(Ordering::SeqCst)
    }

    /// Every request received.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Makes streams wait for [`MockLlm::release`] before each chunk after the first.
    pub fn gate(&self) -> Arc<Semaphore> {
        let s = Arc::new(Semaphore::new(0));
        *self.state.gate.lock().unwrap() = Some(s.clone());
        s
    }

    /// Streams whose reader went away before the end.
    pub fn cancelled(&self) -> usize {
        self.state.cancelled.load(Ordering::SeqCst)
    }
}

/// Reads what the client sends first (its request head), counts it as a request, and resets the
/// connection: linger 0, so closing sends RST.
async fn reset(st: &State, mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let _ = stream.read(&mut buf).await;
    st.count.fetch_add(1, Ordering::SeqCst);
    // Deprecated because a positive linger blocks the dropping thread; a zero one does not: the
    // kernel discards the socket and sends RST at once, which is the fault wanted here.
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(std::time::Duration::ZERO));
    drop(stream);
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn json_resp(status: u16, v: Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut().insert("content-type", "application/json".parse().unwrap());
    r
}

async fn handle(st: Arc<State>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    st.received.lock().unwrap().push(Received { path: path.clone(), headers, body: body.clone() });
    st.count.fetch_add(1, Ordering::SeqCst);
    let behavior = st.behavior.lock().unwrap().clone();
    if let Some(r) = failure(&st.name, &behavior, false).await {
        return r;
    }
    let model = body.get("model").and_then(Value::as_str).unwrap_or("mock").to_string();
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let text = format!("from {}", st.name);
    if path.ends_with("/embeddings") {
        return json_resp(
            200,
            json!({"object": "list", "model": model,
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS}}),
        );
    }
    let anthropic = path.ends_with("/messages");
    if !stream {
        return if anthropic {
            json_resp(
                200,
                json!({"id": "msg_1", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS}}),
            )
        } else {
            json_resp(
                200,
                json!({"id": "c1", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                          "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}}),
            )
        };
    }
    let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true)
        && !matches!(behavior, Behavior::NoUsage);
    let break_after = match behavior {
        Behavior::BreakAfter(n) => Some(n),
        _ => None,
    };
    let gate = st.gate.lock().unwrap().clone();
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    let st2 = st.clone();
    tokio::spawn(async move {
        let mut events: Vec<String> = Vec::new();
        if anthropic {
            events.push(format!("event: message_start\ndata: {}\n\n", json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [], "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}}})));
            events.push(format!("event: content_block_start\ndata: {}\n\n", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
            for i in 0..STREAM_CHUNKS {
                events.push(format!("event: content_block_delta\ndata: {}\n\n", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": format!("tok{i} ")}})));
            }
            events.push(
                "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
                    .to_string(),
            );
            events.push(format!("event: message_delta\ndata: {}\n\n", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": COMPLETION_TOKENS}})));
            events.push("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_string());
        } else {
            let chunk = |delta: Value, finish: Value| {
                format!(
                    "data: {}\n\n",
                    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                )
            };
            events.push(chunk(json!({"role": "assistant", "content": ""}), Value::Null));
            for i in 0..STREAM_CHUNKS {
                events.push(chunk(json!({"content": format!("tok{i} ")}), Value::Null));
            }
            events.push(chunk(json!({}), json!("stop")));
            if include_usage {
                events.push(format!("data: {}\n\n", json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}})));
            }
            events.push("data: [DONE]\n\n".to_string());
        }
        for (i, ev) in events.into_iter().enumerate() {
            if let Some(n) = break_after
                && i > n
            {
                // Drop the sender: the body ends without the final events. Make it an error by
                // sending nothing more and letting the connection close.
                return;
            }
            if i > 0
                && let Some(g) = &gate
            {
                match g.acquire().await {
                    Ok(p) => p.forget(),
                    Err(_) => return,
                }
            }
            if tx.send(Ok(Frame::data(Bytes::from(ev)))).await.is_err() {
                st2.cancelled.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    });
    sse_response(rx)
}

// ------------------------------------------------------------------------------------------------
// Added by the translate/SDK-conformance work: a fuller mock with the same `Behavior` knobs plus
// tool calls, the Anthropic stream in Anthropic's exact event sequence, `/v1/responses`,
// `/v1/models`, base64 embeddings, errors in each API's own format, and latency knobs. Start it with
// `MockLlm::start_full(name)`; `MockLlm::start` is unchanged.
// ------------------------------------------------------------------------------------------------

/// Extra knobs of a mock started with [`MockLlm::start_full`] (kept beside the mock, by port).
#[derive(Clone, Debug, Default)]
pub struct Knobs {
    /// Wait before sending the response head.
    pub latency: std::time::Duration,
    /// Stream: wait after the head, before the first event.
    pub first_token_delay: std::time::Duration,
    /// Stream: wait between events.
    pub chunk_delay: std::time::Duration,
    /// Stream: content chunks (default [`STREAM_CHUNKS`] when 0).
    pub chunks: usize,
    /// Cached prompt tokens to report (OpenAI `cached_tokens`, Anthropic `cache_read_input_tokens`).
    pub cached_tokens: u64,
    /// Do not record requests (for benchmarks).
    pub no_record: bool,
}

fn knobs_table() -> &'static Mutex<std::collections::HashMap<u16, Knobs>> {
    static T: std::sync::OnceLock<Mutex<std::collections::HashMap<u16, Knobs>>> = std::sync::OnceLock::new();
    T.get_or_init(Default::default)
}

/// Models `GET /v1/models` of a full mock lists.
pub const MOCK_MODELS: &[&str] = &["mock-1", "mock-2"];

impl MockLlm {
    /// Starts a full mock (see [`Knobs`]); `set`, `received`, `count`, `gate`, `cancelled` work
    /// as for [`MockLlm::start`].
    pub async fn start_full(name: &str) -> MockLlm {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            name: name.to_string(),
            behavior: Mutex::new(Behavior::Ok),
            received: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            gate: Mutex::new(None),
            cancelled: AtomicUsize::new(0),
        });
        knobs_table().lock().unwrap().insert(port, Knobs::default());
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle_full(st, port, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        MockLlm { url: format!("http://127.0.0.1:{port}"), port, state }
    }

    /// Sets the extra knobs of a full mock.
    pub fn set_knobs(&self, k: Knobs) {
        knobs_table().lock().unwrap().insert(self.port, k);
    }

    /// Forgets the requests received so far.
    pub fn clear_received(&self) {
        self.state.received.lock().unwrap().clear();
    }
}

/// Arguments for a mock tool call: every property of the tool's schema with a placeholder value.
fn mock_arguments(schema: &Value) -> Value {
    let mut args = serde_json::Map::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            let v = match p.get("type").and_then(Value::as_str) {
                Some("string") => json!("mock"),
                Some("integer") | Some("number") => json!(1),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => Value::Null,
            };
            args.insert(k.clone(), v);
        }
    }
    Value::Object(args)
}

/// The tool the mock calls, as (name, arguments), or `None` to answer with text: a request with
/// tools calls the forced or first tool unless `tool_choice` is none or the conversation ends with
/// a tool result.
fn mock_tool_call(body: &Value, anthropic: bool) -> Option<(String, Value)> {
    let tools = body.get("tools").and_then(Value::as_array).filter(|t| !t.is_empty())?;
    let choice = body.get("tool_choice");
    let forced = if anthropic {
        match choice.and_then(|c| c.get("type")).and_then(Value::as_str) {
            Some("none") => return None,
            Some("tool") => choice.and_then(|c| c.get("name")).and_then(Value::as_str),
            _ => None,
        }
    } else {
        match choice {
            Some(Value::String(s)) if s == "none" => return None,
            Some(c @ Value::Object(_)) => c.pointer("/function/name").and_then(Value::as_str),
            _ => None,
        }
    };
    let last = body.get("messages").and_then(Value::as_array).and_then(|m| m.last())?;
    let ends_with_result = if anthropic {
        last.get("content")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result")))
    } else {
        last.get("role").and_then(Value::as_str) == Some("tool")
    };
    if ends_with_result {
        return None;
    }
    let name_of = |t: &Value| {
        if anthropic { t.get("name") } else { t.pointer("/function/name") }
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let tool = match forced {
        Some(f) => tools.iter().find(|t| name_of(t).as_deref() == Some(f))?,
        None => &tools[0],
    };
    let schema = if anthropic { tool.get("input_schema") } else { tool.pointer("/function/parameters") };
    Some((name_of(tool)?, mock_arguments(schema.unwrap_or(&Value::Null))))
}

fn anthropic_error_type_for(code: u16) -> &'static str {
    match code {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

fn sse_body(events: Vec<String>, st: Arc<State>, knobs: Knobs, break_after: Option<usize>) -> Response<Body> {
    let gate = st.gate.lock().unwrap().clone();
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    tokio::spawn(async move {
        if !knobs.first_token_delay.is_zero() {
            tokio::time::sleep(knobs.first_token_delay).await;
        }
        for (i, ev) in events.into_iter().enumerate() {
            if break_after.is_some_and(|n| i > n) {
                return;
            }
            if i > 0 {
                if !knobs.chunk_delay.is_zero() {
                    tokio::time::sleep(knobs.chunk_delay).await;
                }
                if let Some(g) = &gate {
                    match g.acquire().await {
                        Ok(p) => p.forget(),
                        Err(_) => return,
                    }
                }
            }
            if tx.send(Ok(Frame::data(Bytes::from(ev)))).await.is_err() {
                st.cancelled.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    });
    sse_response(rx)
}

fn named(event: &str, data: Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// Per-request overrides from `x-mock-*` headers (for callers that can set headers the gateway
/// forwards): `x-mock-status: 429`, `x-mock-not-json: 1`, `x-mock-break-after: N`,
/// `x-mock-no-usage: 1`, `x-mock-latency-ms`, `x-mock-first-token-ms`, `x-mock-chunk-delay-ms`,
/// `x-mock-chunks`.
fn header_overrides(headers: &hyper::HeaderMap, behavior: &mut Behavior, knobs: &mut Knobs) {
    let num = |name: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok())
    };
    let ms = |name: &str| num(name).map(std::time::Duration::from_millis);
    if let Some(code) = num("x-mock-status").and_then(|c| u16::try_from(c).ok()) {
        *behavior = Behavior::Status(code);
    }
    if headers.contains_key("x-mock-not-json") {
        *behavior = Behavior::NotJson;
    }
    if let Some(n) = num("x-mock-break-after") {
        *behavior = Behavior::BreakAfter(n as usize);
    }
    if headers.contains_key("x-mock-no-usage") {
        *behavior = Behavior::NoUsage;
    }
    if let Some(d) = ms("x-mock-latency-ms") {
        knobs.latency = d;
    }
    if let Some(d) = ms("x-mock-first-token-ms") {
        knobs.first_token_delay = d;
    }
    if let Some(d) = ms("x-mock-chunk-delay-ms") {
        knobs.chunk_delay = d;
    }
    if let Some(n) = num("x-mock-chunks") {
        knobs.chunks = n as usize;
    }
}

async fn handle_full(st: Arc<State>, port: u16, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let mut knobs = knobs_table().lock().unwrap().get(&port).cloned().unwrap_or_default();
    let mut behavior = st.behavior.lock().unwrap().clone();
    header_overrides(req.headers(), &mut behavior, &mut knobs);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !knobs.no_record {
        st.received.lock().unwrap().push(Received { path: path.clone(), headers, body: body.clone() });
    }
    st.count.fetch_add(1, Ordering::SeqCst);
    if !knobs.latency.is_zero() {
        tokio::time::sleep(knobs.latency).await;
    }
    let anthropic = path.ends_with("/messages");
    if let Some(r) = failure(&st.name, &behavior, anthropic).await {
        return r;
    }
    let break_after = match behavior {
        Behavior::BreakAfter(n) => Some(n),
        _ => None,
    };
    if method == hyper::Method::GET && path.ends_with("/models") {
        let data: Vec<Value> = MOCK_MODELS
            .iter()
            .map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": st.name}))
            .collect();
        return json_resp(200, json!({"object": "list", "data": data}));
    }
    let model = body.get("model").and_then(Value::as_str).unwrap_or("mock").to_string();
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let chunks = if knobs.chunks == 0 { STREAM_CHUNKS } else { knobs.chunks };
    let text = format!("from {}", st.name);
    let cached = knobs.cached_tokens.min(PROMPT_TOKENS);
    if path.ends_with("/embeddings") {
        let inputs = match body.get("input") {
            Some(Value::Array(a)) => a.len().max(1),
            _ => 1,
        };
        let b64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
        let data: Vec<Value> = (0..inputs)
            .map(|i| {
                let v = [0.1f32 * (i as f32 + 1.0), 0.2, 0.3];
                let embedding = if b64 {
                    use base64::Engine as _;
                    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    json!(v)
                };
                json!({"object": "embedding", "index": i, "embedding": embedding})
            })
            .collect();
        return json_resp(
            200,
            json!({"object": "list", "model": model, "data": data,
            "usage": {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS}}),
        );
    }
    if path.ends_with("/responses") {
        let usage = json!({"input_tokens": PROMPT_TOKENS, "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": COMPLETION_TOKENS, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS});
        let item = |t: &str, status: &str| {
            json!({"type": "message", "id": "msg_1", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": t, "annotations": []}]})
        };
        let response = |status: &str, output: Value, usage: Value| {
            json!({"id": "resp_1", "object": "response", "created_at": 1,
            "status": status, "model": model, "output": output, "usage": usage})
        };
        if !stream {
            return json_resp(200, response("completed", json!([item(&text, "completed")]), usage));
        }
        let mut seq = 0u64;
        let mut ev = |name: &str, mut data: Value| {
            data["type"] = json!(name);
            data["sequence_number"] = json!(seq);
            seq += 1;
            named(name, data)
        };
        let mut events = vec![
            ev("response.created", json!({"response": response("in_progress", json!([]), Value::Null)})),
            ev("response.in_progress", json!({"response": response("in_progress", json!([]), Value::Null)})),
            ev(
                "response.output_item.added",
                json!({"output_index": 0, "item": {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}}),
            ),
            ev(
                "response.content_part.added",
                json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
            ),
        ];
        let mut full = String::new();
        for i in 0..chunks {
            let d = format!("tok{i} ");
            full.push_str(&d);
            events.push(ev(
                "response.output_text.delta",
                json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": d}),
            ));
        }
        events.push(ev(
            "response.output_text.done",
            json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "text": full}),
        ));
        events.push(ev("response.content_part.done", json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": full, "annotations": []}})));
        events.push(ev(
            "response.output_item.done",
            json!({"output_index": 0, "item": item(&full, "completed")}),
        ));
        let usage = if matches!(behavior, Behavior::NoUsage) { Value::Null } else { usage };
        events.push(ev(
            "response.completed",
            json!({"response": response("completed", json!([item(&full, "completed")]), usage)}),
        ));
        return sse_body(events, st, knobs, break_after);
    }
    let tool = mock_tool_call(&body, anthropic);
    if anthropic {
        let usage = json!({"input_tokens": PROMPT_TOKENS - cached, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached, "output_tokens": COMPLETION_TOKENS});
        let stop = if tool.is_some() { "tool_use" } else { "end_turn" };
        if !stream {
            let content = match &tool {
                Some((name, args)) => {
                    json!([{"type": "tool_use", "id": "toolu_mock1", "name": name, "input": args}])
                }
                None => json!([{"type": "text", "text": text}]),
            };
            return json_resp(
                200,
                json!({"id": "msg_mock1", "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": stop, "stop_sequence": null, "usage": usage}),
            );
        }
        let mut events = vec![named(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_mock1", "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": PROMPT_TOKENS - cached, "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached, "output_tokens": 1}}}),
        )];
        match &tool {
            Some((name, args)) => {
                events.push(named(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "tool_use", "id": "toolu_mock1", "name": name, "input": {}}}),
                ));
                events.push(named("ping", json!({"type": "ping"})));
                let s = args.to_string();
                let mid = s.len() / 2;
                let mid = (0..=mid).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                for part in [&s[..mid], &s[mid..]] {
                    events.push(named(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": part}}),
                    ));
                }
            }
            None => {
                events.push(named(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
                ));
                events.push(named("ping", json!({"type": "ping"})));
                for i in 0..chunks {
                    events.push(named(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": format!("tok{i} ")}}),
                    ));
                }
            }
        }
        events.push(named("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
        let final_usage = if matches!(behavior, Behavior::NoUsage) {
            json!({})
        } else {
            json!({"output_tokens": COMPLETION_TOKENS})
        };
        events.push(named("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": final_usage})));
        events.push(named("message_stop", json!({"type": "message_stop"})));
        return sse_body(events, st, knobs, break_after);
    }
    // OpenAI chat completions.
    let usage = json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS, "prompt_tokens_details": {"cached_tokens": cached}});
    let finish = if tool.is_some() { "tool_calls" } else { "stop" };
    if !stream {
        let message = match &tool {
            Some((name, args)) => {
                json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_mock1", "type": "function",
                "function": {"name": name, "arguments": args.to_string()}}]})
            }
            None => json!({"role": "assistant", "content": text}),
        };
        return json_resp(
            200,
            json!({"id": "chatcmpl-mock1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}], "usage": usage}),
        );
    }
    let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true)
        && !matches!(behavior, Behavior::NoUsage);
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-mock1", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        )
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    match &tool {
        Some((name, args)) => {
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_mock1", "type": "function",
                "function": {"name": name, "arguments": ""}}]}),
                Value::Null,
            ));
            let s = args.to_string();
            let mid = s.len() / 2;
            let mid = (0..=mid).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
            for part in [&s[..mid], &s[mid..]] {
                events.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
                    Value::Null,
                ));
            }
        }
        None => {
            for i in 0..chunks {
                events.push(chunk(json!({"content": format!("tok{i} ")}), Value::Null));
            }
        }
    }
    events.push(chunk(json!({}), json!(finish)));
    if include_usage {
        events.push(format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-mock1", "object": "chat.completion.chunk", "created": 1,
            "model": model, "choices": [], "usage": usage})
        ));
    }
    events.push("data: [DONE]\n\n".to_string());
    sse_body(events, st, knobs, break_after)
}

/// An SSE response whose body is the frames sent on `rx`.
fn sse_response(rx: mpsc::Receiver<Result<Frame<Bytes>, Infallible>>) -> Response<Body> {
    let body = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let mut r = Response::new(BodyExt::boxed(body));
    r.headers_mut().insert("content-type", "text/event-stream".parse().unwrap());
    r.headers_mut().insert("cache-control", "no-cache".parse().unwrap());
    r
}

/// The answer of a failure behaviour (an error status, a hang, a body that is not JSON), with
/// errors in the format of the API asked (`anthropic`: the Messages API); `None` for the others.
async fn failure(name: &str, behavior: &Behavior, anthropic: bool) -> Option<Response<Body>> {
    match *behavior {
        Behavior::Status(code) => {
            let msg = format!("mock {name} says {code}");
            let mut r = if anthropic {
                json_resp(
                    code,
                    json!({"type": "error", "error": {"type": anthropic_error_type_for(code), "message": msg}}),
                )
            } else {
                json_resp(
                    code,
                    json!({"error": {"message": msg, "type": "mock_error", "param": null, "code": null}}),
                )
            };
            if code == 429 {
                r.headers_mut().insert("retry-after", "7".parse().unwrap());
            }
            Some(r)
        }
        Behavior::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Behavior::NotJson => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"<html>oops</html>")).boxed());
            r.headers_mut().insert("content-type", "text/html".parse().unwrap());
            Some(r)
        }
        _ => None,
    }
}
