//! The upstream side: one pooled HTTP client (TCP_NODELAY, HTTP/1.1 keep-alive, HTTP/2 over
//! TLS when the server offers it), requests built from a backend's URL and credential headers,
//! and a body type shared by real backends and the built-in Echo backend so both go through the
//! same relay, accounting and policy path.

use super::echo;
use super::state::BackendRt;
use crate::config::ProviderKind;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// The pooled client type.
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// What the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/responses`.
    Responses,
    /// `POST /v1/messages` (Anthropic).
    Messages,
}

impl Op {
    /// For logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Chat => "chat",
            Op::Embeddings => "embeddings",
            Op::Responses => "responses",
            Op::Messages => "messages",
        }
    }
}

/// Whether a backend speaks the OpenAI API family.
pub fn openai_family(p: ProviderKind) -> bool {
    matches!(
        p,
        ProviderKind::Openai
            | ProviderKind::AzureOpenai
            | ProviderKind::Gemini
            | ProviderKind::OpenaiCompatible
            | ProviderKind::Echo
    )
}

/// Whether `backend` can serve `op`: chat and messages on both API families (translated when
/// they differ), embeddings and responses on OpenAI-type backends (Echo included) only. Bedrock
/// is not served yet.
pub fn serves(backend: ProviderKind, op: Op) -> bool {
    match op {
        Op::Chat | Op::Messages => openai_family(backend) || backend == ProviderKind::Anthropic,
        Op::Embeddings | Op::Responses => openai_family(backend),
    }
}

/// The operation sent upstream for `op` on `backend`: chat to Anthropic backends becomes
/// messages, messages to OpenAI-type backends becomes chat.
pub fn upstream_op(backend: ProviderKind, op: Op) -> Op {
    match op {
        Op::Chat if backend == ProviderKind::Anthropic => Op::Messages,
        Op::Messages if backend != ProviderKind::Anthropic => Op::Chat,
        other => other,
    }
}

/// Clients by connect timeout (each backend names its own), sharing nothing but the TLS setup.
#[derive(Default)]
pub struct Clients {
    by_timeout: Mutex<HashMap<u64, HttpClient>>,
}

impl Clients {
    /// The client for a connect timeout (resolved once per backend and config version).
    pub fn get(&self, connect_timeout_ms: u64) -> HttpClient {
        let mut map = self.by_timeout.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(connect_timeout_ms).or_insert_with(|| build_client(connect_timeout_ms)).clone()
    }
}

fn build_client(connect_timeout_ms: u64) -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    if connect_timeout_ms > 0 {
        http.set_connect_timeout(Some(Duration::from_millis(connect_timeout_ms)));
    }
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(https)
}

/// An upstream response body: a network body or the Echo backend's chunks.
pub enum UpBody {
    /// From the network.
    Hyper(Incoming),
    /// Produced in process.
    Echo(VecDeque<Bytes>),
}

impl UpBody {
    /// The next data chunk; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Bytes, String>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls for the next data chunk (empty chunks and trailers are skipped); `None` at the end.
    pub fn poll_next(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Bytes, String>>> {
        use std::task::Poll;
        match self {
            UpBody::Echo(chunks) => Poll::Ready(chunks.pop_front().map(Ok)),
            UpBody::Hyper(body) => loop {
                match std::task::ready!(hyper::body::Body::poll_frame(std::pin::Pin::new(&mut *body), cx)) {
                    None => return Poll::Ready(None),
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) if data.is_empty() => continue,
                        Ok(data) => return Poll::Ready(Some(Ok(data))),
                        Err(_) => continue, // trailers
                    },
                    Some(Err(e)) => return Poll::Ready(Some(Err(e.to_string()))),
                }
            },
        }
    }
}

/// Response head and body.
pub struct UpResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: UpBody,
}

/// Why an attempt produced no response.
#[derive(Debug)]
pub enum SendError {
    /// Could not connect (refused, DNS, TLS, connect timeout).
    Connect(String),
    /// Other transport failure.
    Other(String),
}

/// The URL of `op` on `backend`.
pub fn url(backend: &BackendRt, op: Op) -> String {
    let base = backend.url.trim_end_matches('/');
    match op {
        Op::Chat => format!("{base}/chat/completions"),
        Op::Embeddings => format!("{base}/embeddings"),
        Op::Responses => format!("{base}/responses"),
        Op::Messages if base.ends_with("/v1") => format!("{base}/messages"),
        Op::Messages => format!("{base}/v1/messages"),
    }
}

/// Client headers forwarded upstream as they are (everything else is dropped: the client's own
/// credentials never reach a provider).
const FORWARDED: &[&str] =
    &["anthropic-version", "anthropic-beta", "openai-beta", "traceparent", "tracestate"];

/// Sends one attempt. `body` is the final upstream JSON.
pub async fn send(
    backend: &BackendRt,
    op: Op,
    body: Bytes,
    client_headers: &HeaderMap,
) -> Result<UpResponse, SendError> {
    if backend.provider == ProviderKind::Echo {
        return Ok(echo::respond(op, &body));
    }
    let uri: http::Uri = url(backend, op)
        .parse()
        .map_err(|e| SendError::Connect(format!("backend URL {:?} is not usable: {e}", backend.url)))?;
    let mut req = http::Request::new(Full::new(body));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for name in FORWARDED {
        if let Some(v) = client_headers.get(*name) {
            headers.insert(*name, v.clone());
        }
    }
    if op == Op::Messages && !headers.contains_key("anthropic-version") {
        headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
    }
    for (name, value) in &backend.headers {
        headers.insert(name.clone(), value.clone());
    }
    match backend.client.request(req).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            Ok(UpResponse { status: parts.status, headers: parts.headers, body: UpBody::Hyper(body) })
        }
        Err(e) if e.is_connect() => Err(SendError::Connect(error_chain(&e))),
        Err(e) => Err(SendError::Other(error_chain(&e))),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
