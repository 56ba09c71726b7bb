//! The AI gateway's request for the shared load scenarios (`benches/common`): a chat completion,
//! streaming or not, checked for `choices` (or SSE `data:` events).

use crate::common::{Fail, Load, Sample, count};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use std::time::Instant;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Chat completions against `{url}/v1/chat/completions`.
pub struct Chat {
    client: HttpClient,
    url: String,
    key: Option<String>,
    payload: Bytes,
    stream: bool,
}

impl Chat {
    /// `max_idle`: connections the client keeps (the most requests in flight at once).
    pub fn new(url: &str, key: Option<String>, model: &str, stream: bool, max_idle: usize) -> Chat {
        let mut v = json!({
            "model": model,
            "messages": [
                {"role": "system", "content": "You are a terse assistant."},
                {"role": "user", "content": "Say hello to the benchmark in one short sentence."}
            ],
            "max_tokens": 64
        });
        if stream {
            v["stream"] = json!(true);
        }
        Chat {
            client: crate::common::client(max_idle),
            url: format!("{url}/v1/chat/completions"),
            key,
            payload: Bytes::from(v.to_string()),
            stream,
        }
    }

    fn request(&self) -> http::Request<Full<Bytes>> {
        let mut b = http::Request::post(&self.url).header("content-type", "application/json");
        if let Some(k) = &self.key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        b.body(Full::new(self.payload.clone())).expect("valid request")
    }
}

impl Load for Chat {
    async fn once(&self, _lane: usize, t0: Instant) -> Result<Sample, Fail> {
        let resp = self.client.request(self.request()).await.map_err(|_| Fail::Io)?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut first = None;
        let mut events = 0;
        let mut tail: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| Fail::Io)?;
            if let Some(d) = frame.data_ref()
                && !d.is_empty()
            {
                if first.is_none() {
                    first = Some(t0.elapsed());
                }
                tail.extend_from_slice(d);
                if self.stream {
                    // Events may straddle frames: count on the carried-over tail plus this frame.
                    events += count(&tail, b"data:");
                    // Keep 4 bytes: a `data:` cut by a frame boundary is counted once, later.
                    let keep = tail.len().saturating_sub(4);
                    tail.drain(..keep);
                }
            }
        }
        let total = t0.elapsed();
        if status != 200 {
            return Err(Fail::Status(status));
        }
        let seen_choices = if self.stream { events > 0 } else { count(&tail, b"\"choices\"") > 0 };
        if !seen_choices {
            return Err(Fail::Body);
        }
        Ok(Sample { first: first.unwrap_or(total), total, events })
    }
}
