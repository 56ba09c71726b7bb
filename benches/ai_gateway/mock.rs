//! A small, fast mock OpenAI upstream for the benchmark: every answer is pre-serialised, nothing
//! is recorded, so the mock costs as little CPU as a hyper server can. (tests/support/mock_llm.rs
//! is the full-featured mock for the tests; it parses every body and records every request, which
//! would make it the bottleneck here.)
//!
//! `POST` anything: a non-streaming chat completion (about 450 bytes) unless the body asks for
//! `"stream": true`, then SSE: one role + first-content chunk at once, `chunks - 1` more content
//! chunks `interval` apart, a finish chunk, a usage chunk when the body says `include_usage`, and
//! `data: [DONE]`.

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub struct MockOpts {
    pub port: u16,
    pub chunks: usize,
    pub interval: Duration,
}

struct Canned {
    completion: Bytes,
    first: Bytes,
    delta: Bytes,
    finish: Bytes,
    usage: Bytes,
    chunks: usize,
    interval: Duration,
}

const ID: &str = "chatcmpl-bench0000000000000000000000";
const CREATED: u64 = 1_767_225_600;

fn canned(chunks: usize, interval: Duration) -> Canned {
    let completion = format!(
        concat!(
            r#"{{"id":"{id}","object":"chat.completion","created":{c},"model":"gpt-4o-mini-2024-07-18","#,
            r#""choices":[{{"index":0,"message":{{"role":"assistant","content":"Hello, benchmark! This is a short reply from the mock upstream.","refusal":null,"annotations":[]}},"logprobs":null,"finish_reason":"stop"}}],"#,
            r#""usage":{{"prompt_tokens":19,"completion_tokens":14,"total_tokens":33,"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}},"#,
            r#""service_tier":"default","system_fingerprint":"fp_bench"}}"#
        ),
        id = ID,
        c = CREATED
    );
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"{ID}\",\"object\":\"chat.completion.chunk\",\"created\":{CREATED},\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_bench\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    let first = format!(
        "{}{}",
        chunk(r#"{"role":"assistant","content":"","refusal":null}"#, "null"),
        chunk(r#"{"content":"tok "}"#, "null")
    );
    let usage = format!(
        "data: {{\"id\":\"{ID}\",\"object\":\"chat.completion.chunk\",\"created\":{CREATED},\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_bench\",\"choices\":[],\"usage\":{{\"prompt_tokens\":19,\"completion_tokens\":{chunks},\"total_tokens\":{}}}}}\n\n",
        19 + chunks
    );
    Canned {
        completion: Bytes::from(completion),
        first: Bytes::from(first),
        delta: Bytes::from(chunk(r#"{"content":"tok "}"#, "null")),
        finish: Bytes::from(chunk("{}", "\"stop\"")),
        usage: Bytes::from(usage),
        chunks: chunks.max(1),
        interval,
    }
}

/// `"stream"` followed by optional blanks, `:`, optional blanks and `true`.
fn wants_stream(body: &[u8]) -> bool {
    let key = b"\"stream\"";
    let mut i = 0;
    while let Some(pos) = find(&body[i..], key) {
        let mut j = i + pos + key.len();
        while j < body.len() && body[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < body.len() && body[j] == b':' {
            j += 1;
            while j < body.len() && body[j].is_ascii_whitespace() {
                j += 1;
            }
            if body[j..].starts_with(b"true") {
                return true;
            }
        }
        i = i + pos + 1;
    }
    false
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

type MockBody = Either<
    Full<Bytes>,
    StreamBody<std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>>,
>;

async fn handle(c: Arc<Canned>, req: Request<Incoming>) -> Response<MockBody> {
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    if !wants_stream(&body) {
        return Response::builder()
            .header("content-type", "application/json")
            .body(Either::Left(Full::new(c.completion.clone())))
            .expect("static response");
    }
    let usage = find(&body, b"include_usage").is_some();
    let stream = futures_util::stream::unfold((0usize, c), move |(i, c)| async move {
        // 0: first; 1..chunks: deltas; chunks: finish; chunks+1: usage (if asked); then [DONE].
        let n = c.chunks;
        let data = if i == 0 {
            c.first.clone()
        } else if i < n {
            if !c.interval.is_zero() {
                tokio::time::sleep(c.interval).await;
            }
            c.delta.clone()
        } else if i == n {
            c.finish.clone()
        } else if i == n + 1 && usage {
            c.usage.clone()
        } else if i <= n + 2 {
            Bytes::from_static(b"data: [DONE]\n\n")
        } else {
            return None;
        };
        let next = if i == n && !usage { n + 2 } else { i + 1 };
        Some((Ok(Frame::data(data)), (next, c)))
    });
    let body: MockBody = Either::Right(StreamBody::new(Box::pin(stream)));
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(body)
        .expect("static response")
}

pub async fn run(o: MockOpts) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", o.port)).await?;
    let c = Arc::new(canned(o.chunks, o.interval));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let c = c.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let c = c.clone();
                async move { Ok::<_, Infallible>(handle(c, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stream_flag() {
        assert!(super::wants_stream(br#"{"stream": true}"#));
        assert!(super::wants_stream(br#"{"a":1,"stream":true}"#));
        assert!(!super::wants_stream(br#"{"stream":false}"#));
    }
}
