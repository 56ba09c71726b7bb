//! Every error the agent gateway answers with, and its wire form in the caller's binding. This is
//! the one place that maps errors to codes, HTTP statuses and bodies.
//!
//! Protocol errors use A2A's own codes (A2A 1.0 §5.4): `-32700` parse error, `-32600` invalid
//! request, `-32601` method not found, `-32602` invalid params, `-32001` TaskNotFound, `-32006`
//! InvalidAgentResponse, `-32009` VersionNotSupported, `-32603` internal error. On the JSON-RPC
//! binding they travel in a JSON-RPC error object with HTTP 200, as A2A servers answer them.
//!
//! Conditions of the gateway itself — no or bad credentials, a policy refusal, an unknown agent,
//! a rate limit, an unreachable agent — get their HTTP status (401, 403, 404, 429, 502/503) on
//! both bindings; the JSON-RPC body then carries code `-32000` (JSON-RPC's implementation-defined
//! server error) or `-32603` for upstream failures, with an `ErrorInfo` detail whose `reason` and
//! domain `cairn.dev` name the condition. On the REST binding every error is A2A's
//! `{"error":{"code","status","message","details"}}` envelope.

use crate::gateway::jsonrpc as code;
use crate::gateway::limits::LimitError;
use crate::gateway::response::Body;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

/// Which binding the caller speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// JSON-RPC 2.0 over HTTP.
    JsonRpc,
    /// HTTP+JSON (REST).
    Rest,
}

impl Binding {
    /// For logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::JsonRpc => "jsonrpc",
            Binding::Rest => "rest",
        }
    }
}

/// An error answered by the gateway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum A2aError {
    /// The body is not JSON.
    #[error("parse error: {0}")]
    Parse(String),
    /// JSON, but not a valid request.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Unknown JSON-RPC method.
    #[error("method not found: {0}")]
    MethodNotFound(String),
    /// Missing or malformed parameters (or a refused webhook URL).
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The task does not exist for this caller.
    #[error("task not found: {0}")]
    TaskNotFound(String),
    /// `A2A-Version` names a version the gateway does not speak.
    #[error("A2A version '{0}' is not supported (this gateway speaks 0.3 and 1.0)")]
    VersionNotSupported(String),
    /// No REST operation at this path and method.
    #[error("no A2A operation at {0}")]
    NotFound(String),
    /// The request body is too large.
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(u64),
    /// Headers or JSON nesting over the core's limits.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// Missing or invalid credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Policy refused the call.
    #[error("{0}")]
    Forbidden(String),
    /// No agent of that name is published on this gateway (or the caller may not see it).
    #[error("agent '{0}' is not published on this gateway")]
    UnknownAgent(String),
    /// A rate limit is exhausted.
    #[error("{message}")]
    RateLimited {
        /// What was exhausted.
        message: String,
        /// Seconds until the window ends.
        retry_after: u64,
    },
    /// The store (limits, task owners) could not answer and the gateway fails closed.
    #[error("{0}")]
    StoreUnavailable(String),
    /// The agent could not be reached.
    #[error("agent '{agent}' is unreachable: {detail}")]
    Unreachable {
        /// Agent name.
        agent: String,
        /// What failed.
        detail: String,
    },
    /// The agent answered something that is not A2A.
    #[error("agent '{agent}' sent an invalid response: {detail}")]
    InvalidAgentResponse {
        /// Agent name.
        agent: String,
        /// What is wrong.
        detail: String,
    },
}

impl A2aError {
    /// The JSON-RPC code.
    pub fn code(&self) -> i64 {
        match self {
            A2aError::Parse(_) => code::PARSE_ERROR,
            A2aError::InvalidRequest(_) => code::INVALID_REQUEST,
            A2aError::MethodNotFound(_) | A2aError::NotFound(_) => code::METHOD_NOT_FOUND,
            A2aError::InvalidParams(_) => code::INVALID_PARAMS,
            A2aError::TaskNotFound(_) => code::TASK_NOT_FOUND,
            A2aError::VersionNotSupported(_) => code::VERSION_NOT_SUPPORTED,
            A2aError::InvalidAgentResponse { .. } => code::INVALID_AGENT_RESPONSE,
            A2aError::Unreachable { .. } => code::INTERNAL_ERROR,
            A2aError::PayloadTooLarge(_)
            | A2aError::Limit(_)
            | A2aError::Unauthenticated(_)
            | A2aError::Forbidden(_)
            | A2aError::UnknownAgent(_)
            | A2aError::RateLimited { .. }
            | A2aError::StoreUnavailable(_) => code::SERVER_ERROR,
        }
    }

    /// The `ErrorInfo` reason.
    pub fn reason(&self) -> &'static str {
        match self {
            A2aError::Parse(_) => "PARSE_ERROR",
            A2aError::InvalidRequest(_) => "INVALID_REQUEST",
            A2aError::MethodNotFound(_) | A2aError::NotFound(_) => "METHOD_NOT_FOUND",
            A2aError::InvalidParams(_) => "INVALID_PARAMS",
            A2aError::TaskNotFound(_) => "TASK_NOT_FOUND",
            A2aError::VersionNotSupported(_) => "VERSION_NOT_SUPPORTED",
            A2aError::InvalidAgentResponse { .. } => "INVALID_AGENT_RESPONSE",
            A2aError::Unreachable { .. } => "AGENT_UNREACHABLE",
            A2aError::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            A2aError::Limit(LimitError::JsonDepth) => "JSON_TOO_DEEP",
            A2aError::Limit(_) => "REQUEST_HEADERS_TOO_LARGE",
            A2aError::Unauthenticated(_) => "UNAUTHENTICATED",
            A2aError::Forbidden(_) => "PERMISSION_DENIED",
            A2aError::UnknownAgent(_) => "AGENT_NOT_FOUND",
            A2aError::RateLimited { .. } => "RATE_LIMITED",
            A2aError::StoreUnavailable(_) => "STORE_UNAVAILABLE",
        }
    }

    /// Whether this is a condition of the gateway (domain `cairn.dev`) rather than an A2A error.
    fn is_gateway_condition(&self) -> bool {
        self.code() == code::SERVER_ERROR || matches!(self, A2aError::Unreachable { .. })
    }

    /// The HTTP status on the REST binding (and for gateway conditions on JSON-RPC).
    pub fn rest_status(&self) -> StatusCode {
        match self {
            A2aError::Parse(_)
            | A2aError::InvalidRequest(_)
            | A2aError::InvalidParams(_)
            | A2aError::VersionNotSupported(_) => StatusCode::BAD_REQUEST,
            A2aError::MethodNotFound(_) => StatusCode::NOT_IMPLEMENTED,
            A2aError::NotFound(_) | A2aError::TaskNotFound(_) | A2aError::UnknownAgent(_) => {
                StatusCode::NOT_FOUND
            }
            A2aError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            A2aError::Limit(e) => e.status(),
            A2aError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            A2aError::Forbidden(_) => StatusCode::FORBIDDEN,
            A2aError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            A2aError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            A2aError::Unreachable { .. } | A2aError::InvalidAgentResponse { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// The HTTP status on the JSON-RPC binding: 200 for protocol errors, the condition's
    /// status for gateway conditions and upstream failures.
    pub fn jsonrpc_status(&self) -> StatusCode {
        match self {
            A2aError::Parse(_)
            | A2aError::InvalidRequest(_)
            | A2aError::MethodNotFound(_)
            | A2aError::InvalidParams(_)
            | A2aError::TaskNotFound(_)
            | A2aError::VersionNotSupported(_) => StatusCode::OK,
            other => other.rest_status(),
        }
    }

    /// The status for a binding.
    pub fn status(&self, binding: Binding) -> StatusCode {
        match binding {
            Binding::JsonRpc => self.jsonrpc_status(),
            Binding::Rest => self.rest_status(),
        }
    }

    /// A low-cardinality outcome for metrics and the audit line.
    pub fn category(&self) -> &'static str {
        match self {
            A2aError::Parse(_) | A2aError::InvalidRequest(_) | A2aError::InvalidParams(_) => {
                "invalid_request"
            }
            A2aError::MethodNotFound(_) | A2aError::NotFound(_) => "method_not_found",
            A2aError::TaskNotFound(_) => "task_not_found",
            A2aError::VersionNotSupported(_) => "version_not_supported",
            A2aError::PayloadTooLarge(_) => "payload_too_large",
            A2aError::Limit(e) => e.category(),
            A2aError::Unauthenticated(_) => "unauthorized",
            A2aError::Forbidden(_) => "forbidden",
            A2aError::UnknownAgent(_) => "unknown_agent",
            A2aError::RateLimited { .. } => "rate_limited",
            A2aError::StoreUnavailable(_) => "store_unavailable",
            A2aError::Unreachable { .. } => "upstream_unreachable",
            A2aError::InvalidAgentResponse { .. } => "upstream_invalid",
        }
    }

    fn error_info(&self) -> Value {
        let domain = if self.is_gateway_condition() { "cairn.dev" } else { "a2a-protocol.org" };
        json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": self.reason(),
            "domain": domain,
        })
    }

    /// The JSON-RPC error object.
    pub fn jsonrpc_error(&self) -> Value {
        json!({"code": self.code(), "message": self.to_string(), "data": [self.error_info()]})
    }

    /// A whole JSON-RPC response carrying this error.
    pub fn jsonrpc_body(&self, id: &Value) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "error": self.jsonrpc_error()})
    }

    /// The REST error envelope.
    pub fn rest_body(&self) -> Value {
        let status = self.rest_status();
        let grpc = match self {
            A2aError::TaskNotFound(_) | A2aError::NotFound(_) | A2aError::UnknownAgent(_) => "NOT_FOUND",
            A2aError::MethodNotFound(_) => "UNIMPLEMENTED",
            A2aError::VersionNotSupported(_) => "FAILED_PRECONDITION",
            A2aError::Parse(_)
            | A2aError::InvalidRequest(_)
            | A2aError::InvalidParams(_)
            | A2aError::Limit(LimitError::JsonDepth) => "INVALID_ARGUMENT",
            A2aError::PayloadTooLarge(_) | A2aError::Limit(_) | A2aError::RateLimited { .. } => {
                "RESOURCE_EXHAUSTED"
            }
            A2aError::Unauthenticated(_) => "UNAUTHENTICATED",
            A2aError::Forbidden(_) => "PERMISSION_DENIED",
            A2aError::StoreUnavailable(_) | A2aError::Unreachable { .. } => "UNAVAILABLE",
            A2aError::InvalidAgentResponse { .. } => "INTERNAL",
        };
        json!({"error": {
            "code": status.as_u16(),
            "status": grpc,
            "message": self.to_string(),
            "details": [self.error_info()],
        }})
    }

    /// The full response for a binding (`id` is the JSON-RPC request id, `null` if unknown).
    pub fn response(&self, binding: Binding, id: &Value) -> Response<Body> {
        let body = match binding {
            Binding::JsonRpc => self.jsonrpc_body(id),
            Binding::Rest => self.rest_body(),
        };
        let mut resp = json_response(self.status(binding), &body);
        match self {
            A2aError::Unauthenticated(_) => {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            A2aError::RateLimited { retry_after, .. } => {
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            _ => {}
        }
        resp
    }

    /// One SSE event carrying this error, to end a stream that broke.
    pub fn stream_event(&self, binding: Binding, id: &Value) -> Bytes {
        let body = match binding {
            Binding::JsonRpc => self.jsonrpc_body(id),
            Binding::Rest => self.rest_body(),
        };
        crate::gateway::sse::encode_data(&body.to_string())
    }
}

/// A JSON response of a document.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    crate::gateway::response::json(status, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_errors_are_http_200_on_jsonrpc_and_mapped_on_rest() {
        let e = A2aError::TaskNotFound("t1".into());
        assert_eq!(e.code(), -32001);
        assert_eq!(e.jsonrpc_status(), StatusCode::OK);
        assert_eq!(e.rest_status(), StatusCode::NOT_FOUND);
        assert_eq!(e.rest_body()["error"]["status"], "NOT_FOUND");
        assert_eq!(e.rest_body()["error"]["details"][0]["reason"], "TASK_NOT_FOUND");
        let p = A2aError::Parse("x".into());
        assert_eq!(
            (p.code(), p.jsonrpc_status(), p.rest_status()),
            (-32700, StatusCode::OK, StatusCode::BAD_REQUEST)
        );
        let v = A2aError::VersionNotSupported("2.0".into());
        assert_eq!(v.code(), -32009);
    }

    #[test]
    fn gateway_conditions_keep_their_status_on_jsonrpc() {
        let e = A2aError::Forbidden("no".into());
        assert_eq!(e.jsonrpc_status(), StatusCode::FORBIDDEN);
        let body = e.jsonrpc_body(&json!(7));
        assert_eq!(body["id"], 7);
        assert_eq!(body["error"]["code"], -32000);
        assert_eq!(body["error"]["data"][0]["reason"], "PERMISSION_DENIED");
        assert_eq!(body["error"]["data"][0]["domain"], "cairn.dev");
        let u = A2aError::Unreachable { agent: "a".into(), detail: "refused".into() };
        assert_eq!((u.code(), u.jsonrpc_status()), (-32603, StatusCode::BAD_GATEWAY));
        let r = A2aError::RateLimited { message: "slow down".into(), retry_after: 7 };
        let resp = r.response(Binding::Rest, &Value::Null);
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
    }
}
