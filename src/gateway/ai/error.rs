//! Every error the AI gateway answers with, and its wire form in the caller's API: OpenAI's
//! `{"error":{"message","type","param","code"}}` or Anthropic's
//! `{"type":"error","error":{"type","message"}}`. This is the one place that maps errors to
//! statuses and bodies.

use crate::gateway::admission::{Refusal, store_unavailable_message};
use crate::gateway::limits::LimitError;
use crate::gateway::response::{Body, json};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

/// Which API the caller speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Front {
    /// OpenAI (chat, embeddings, responses, models).
    OpenAi,
    /// Anthropic (messages).
    Anthropic,
}

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AiError {
    /// No or bad credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Body is not JSON or lacks what the operation needs (400).
    #[error("{0}")]
    BadRequest(String),
    /// A guardrail refused the request or the response (400).
    #[error("{0}")]
    Guardrail(String),
    /// No backend of the route serves the operation asked for (400): nothing failed upstream.
    #[error("{0}")]
    Unsupported(String),
    /// Missing `model` (400).
    #[error("you must provide a model parameter")]
    MissingModel,
    /// Body over the listener's limit (413).
    #[error("request body is larger than the gateway's limit of {0} bytes")]
    TooLarge(u64),
    /// Headers or JSON nesting over the core's limits (431, 400).
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// The caller may not use the model (403).
    #[error("{0}")]
    Forbidden(String),
    /// No rule serves the model (404).
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    /// Unknown path (404).
    #[error("unknown endpoint {0}")]
    UnknownPath(String),
    /// Wrong method (405).
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// A request or token limit (429).
    #[error("{message}")]
    RateLimited {
        /// What was exceeded.
        message: String,
        /// Seconds until the window ends.
        retry_after: u64,
    },
    /// A budget is spent (429, `insufficient_quota`).
    #[error("{0}")]
    OverBudget(String),
    /// The limits store is down and the gateway fails closed (503).
    #[error("{0}")]
    StoreUnavailable(String),
    /// The upstream failed or answered something unusable (502).
    #[error("{0}")]
    BadGateway(String),
    /// The upstream did not answer in time (504).
    #[error("{0}")]
    GatewayTimeout(String),
}

impl AiError {
    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AiError::BadRequest(_)
            | AiError::MissingModel
            | AiError::Guardrail(_)
            | AiError::Unsupported(_) => StatusCode::BAD_REQUEST,
            AiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AiError::Limit(e) => e.status(),
            AiError::Forbidden(_) => StatusCode::FORBIDDEN,
            AiError::ModelNotFound(_) | AiError::UnknownPath(_) => StatusCode::NOT_FOUND,
            AiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AiError::RateLimited { .. } | AiError::OverBudget(_) => StatusCode::TOO_MANY_REQUESTS,
            AiError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            AiError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Low-cardinality outcome for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            AiError::Unauthorized(_) => "unauthorized",
            AiError::BadRequest(_) | AiError::MissingModel => "bad_request",
            AiError::Guardrail(_) => "guardrail",
            AiError::Unsupported(_) => "unsupported_operation",
            AiError::TooLarge(_) => "too_large",
            AiError::Limit(e) => e.category(),
            AiError::Forbidden(_) => "forbidden",
            AiError::ModelNotFound(_) => "model_not_found",
            AiError::UnknownPath(_) | AiError::MethodNotAllowed(_) => "not_found",
            AiError::RateLimited { .. } => "rate_limited",
            AiError::OverBudget(_) => "over_budget",
            AiError::StoreUnavailable(_) => "store_unavailable",
            AiError::BadGateway(_) => "upstream_error",
            AiError::GatewayTimeout(_) => "upstream_timeout",
        }
    }

    /// OpenAI `type` and `code`.
    fn openai(&self) -> (&'static str, Option<&'static str>) {
        match self {
            AiError::Unauthorized(_) => ("invalid_request_error", Some("invalid_api_key")),
            AiError::BadRequest(_) => ("invalid_request_error", None),
            AiError::MissingModel => ("invalid_request_error", Some("missing_model")),
            AiError::Guardrail(_) => ("invalid_request_error", Some("guardrail_violation")),
            AiError::Unsupported(_) => ("invalid_request_error", Some("unsupported_operation")),
            AiError::TooLarge(_) => ("invalid_request_error", Some("request_too_large")),
            AiError::Limit(e) => ("invalid_request_error", Some(e.category())),
            AiError::Forbidden(_) => ("permission_error", Some("model_not_allowed")),
            AiError::ModelNotFound(_) => ("invalid_request_error", Some("model_not_found")),
            AiError::UnknownPath(_) => ("invalid_request_error", Some("unknown_url")),
            AiError::MethodNotAllowed(_) => ("invalid_request_error", Some("method_not_allowed")),
            AiError::RateLimited { .. } => ("requests", Some("rate_limit_exceeded")),
            AiError::OverBudget(_) => ("insufficient_quota", Some("insufficient_quota")),
            AiError::StoreUnavailable(_) => ("service_unavailable", Some("limits_store_unavailable")),
            AiError::BadGateway(_) => ("api_error", Some("upstream_error")),
            AiError::GatewayTimeout(_) => ("api_error", Some("upstream_timeout")),
        }
    }

    /// Anthropic error `type`.
    fn anthropic(&self) -> &'static str {
        match self {
            AiError::Unauthorized(_) => "authentication_error",
            AiError::BadRequest(_)
            | AiError::MissingModel
            | AiError::MethodNotAllowed(_)
            | AiError::Guardrail(_)
            | AiError::Limit(_)
            | AiError::Unsupported(_) => "invalid_request_error",
            AiError::TooLarge(_) => "request_too_large",
            AiError::Forbidden(_) => "permission_error",
            AiError::ModelNotFound(_) | AiError::UnknownPath(_) => "not_found_error",
            AiError::RateLimited { .. } | AiError::OverBudget(_) => "rate_limit_error",
            AiError::StoreUnavailable(_) => "overloaded_error",
            AiError::BadGateway(_) | AiError::GatewayTimeout(_) => "api_error",
        }
    }

    /// The error body in `front`'s format.
    pub fn body(&self, front: Front) -> serde_json::Value {
        match front {
            Front::OpenAi => {
                let (ty, code) = self.openai();
                serde_json::json!({"error": {"message": self.to_string(), "type": ty, "param": null, "code": code}})
            }
            Front::Anthropic => {
                serde_json::json!({"type": "error", "error": {"type": self.anthropic(), "message": self.to_string()}})
            }
        }
    }

    /// The whole response.
    pub fn response(&self, front: Front) -> Response<Body> {
        let mut resp = json(self.status(), self.body(front).to_string());
        if let AiError::RateLimited { retry_after, .. } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        if let AiError::Unauthorized(_) = self {
            resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }

    /// The error as one event of a stream already under way, in `front`'s format.
    pub fn stream_event(&self, front: Front) -> Bytes {
        let body = self.body(front).to_string();
        match front {
            Front::OpenAi => crate::gateway::sse::encode_data(&body),
            Front::Anthropic => crate::gateway::sse::encode_named("error", &body),
        }
    }
}

impl From<Refusal<'_>> for AiError {
    fn from(r: Refusal<'_>) -> AiError {
        match r {
            Refusal::Forbidden(d) => AiError::Forbidden(d.to_string()),
            Refusal::RateLimited { key, what, limit, retry_after } => AiError::RateLimited {
                message: format!(
                    "Rate limit reached for {what} per minute (limit {limit}, counter {key}); try again in {retry_after}s."
                ),
                retry_after,
            },
            Refusal::OverBudget { key } => AiError::OverBudget(format!(
                "You exceeded your current quota: budget {key} is spent for this window."
            )),
            Refusal::StoreUnavailable(e) => AiError::StoreUnavailable(store_unavailable_message(&e)),
        }
    }
}
