//! An upstream's answer as the request path reads it: a network body or the Echo backend's
//! chunks behind one type, so both go through the same relay, accounting and policy path.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use hyper::body::Incoming;
use std::collections::VecDeque;

/// An upstream response body: a network body or the Echo backend's chunks.
pub enum UpBody {
    /// From the network.
    Hyper(Incoming),
    /// Produced in process.
    Echo(VecDeque<Bytes>),
}

impl UpBody {
    /// The next data chunk; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Bytes, hyper::Error>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls for the next data chunk (empty chunks and trailers are skipped); `None` at the end.
    pub fn poll_next(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Bytes, hyper::Error>>> {
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
                    Some(Err(e)) => return Poll::Ready(Some(Err(e))),
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
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Could not connect (refused, DNS, TLS, connect timeout).
    #[error("{0}")]
    Connect(String),
    /// Other transport failure.
    #[error("{0}")]
    Other(String),
}
