//! A plain HTTP/1.1 client for tests, and a whole answer read from it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use std::time::Duration;

/// The client type.
pub type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// A client with its own pool.
pub fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new())
}

/// An answer read whole: its status, headers, body as JSON (`null` when it is not) and as text.
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Value,
    pub raw: String,
}

/// Sends `body` with `content-type: application/json` and `headers`; fails the test when no
/// answer comes within 30 s.
pub async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: String) -> Resp {
    let mut req = http::Request::builder().method(method).uri(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), client().request(req))
        .await
        .expect("an answer in time")
        .expect("request sent");
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let raw = String::from_utf8_lossy(&bytes).to_string();
    Resp { status, headers, body: serde_json::from_str(&raw).unwrap_or(Value::Null), raw }
}
