//! What an AI request ends with: a response (whole, or a stream whose body finishes the record
//! itself), or a failure — the upstream's own error passed through, or the gateway's.

use super::error::AiError;
use super::record::Record;
use crate::gateway::response::{Body, full};
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};

/// A response to send.
pub(super) enum Served {
    /// Whole: the request's record is finished by the caller.
    Done(Response<Body>),
    /// Streaming: the body finishes the record when the stream ends.
    Streaming(Response<Body>),
}

/// What a failed request answers.
pub(super) enum Failure {
    /// The upstream's own error, passed through (its format is the front end's).
    Upstream { status: StatusCode, headers: HeaderMap, body: Bytes },
    /// A gateway error.
    Gateway(AiError),
}

impl Failure {
    /// What went wrong, for the attempt's span.
    pub(super) fn describe(&self) -> String {
        match self {
            Failure::Upstream { status, .. } => format!("upstream answered {status}"),
            Failure::Gateway(e) => e.to_string(),
        }
    }

    /// The response for the client; the record notes the upstream's status.
    pub(super) fn into_response(self, rec: &mut Record) -> Result<Served, AiError> {
        match self {
            Failure::Gateway(e) => Err(e),
            Failure::Upstream { status, headers, body } => {
                rec.outcome = if status == StatusCode::TOO_MANY_REQUESTS {
                    "upstream_rate_limited"
                } else if status.is_server_error() {
                    "upstream_error"
                } else {
                    "upstream_client_error"
                };
                rec.error = Some(format!("upstream answered {status}"));
                let mut r = Response::new(full(body));
                *r.status_mut() = status;
                for name in [http::header::CONTENT_TYPE, http::header::RETRY_AFTER] {
                    if let Some(v) = headers.get(&name) {
                        r.headers_mut().insert(name, v.clone());
                    }
                }
                Ok(Served::Done(r))
            }
        }
    }
}
