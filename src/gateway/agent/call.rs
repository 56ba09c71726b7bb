//! What an A2A call asks for, read from its binding: the JSON-RPC envelope (`jsonrpc`, `id`,
//! `method`, `params`) or a REST route and body, down to the fields the gateway needs
//! ([`super::view`]). The body itself is forwarded as it came.

use super::error::{A2aError, Binding};
use super::method::Method;
use super::view::{self, CallFacts, Params, ParamsField, RequestError};
use bytes::Bytes;
use serde_json::Value;

/// What a parsed call asks for.
pub(super) struct Call {
    /// The binding it arrived on.
    pub(super) binding: Binding,
    /// The A2A method.
    pub(super) method: Method,
    /// JSON-RPC id (`null` for REST).
    pub(super) rpc_id: Value,
    /// What the gateway reads of the params (or REST body).
    pub(super) facts: CallFacts,
    /// Task named by the path (REST) or params.
    pub(super) task_id: Option<String>,
    /// The body, forwarded as it came.
    pub(super) body: Bytes,
    /// REST: path below the agent and query.
    pub(super) rest_path: String,
    /// REST: the caller's HTTP method (the agent gets the same).
    pub(super) http_method: http::Method,
}

/// An error in answering a call, with the JSON-RPC id it answers (`null` before it is known).
pub(super) type CallError = Box<(A2aError, Value)>;

/// A JSON-RPC request: envelope checks (`jsonrpc`, `id`, `method`, `params`), the method and
/// the fields of its params the gateway reads ([`view`]); the body itself is forwarded as it came.
pub(super) fn jsonrpc_call(bytes: Bytes) -> Result<Call, CallError> {
    let mut env = match view::request(&bytes) {
        Ok(env) => env,
        Err(RequestError::Parse(e)) => return Err(Box::new((A2aError::Parse(e), Value::Null))),
        Err(RequestError::NotAnObject { batch }) => {
            let what = if batch {
                "batch requests are not supported by A2A"
            } else {
                "the request must be a JSON object"
            };
            return Err(Box::new((A2aError::InvalidRequest(what.into()), Value::Null)));
        }
        Err(RequestError::Envelope(e)) => {
            return Err(Box::new((A2aError::InvalidRequest(e), Value::Null)));
        }
        Err(RequestError::Params(e, id)) => {
            let id = id.filter(|i| i.is_string() || i.is_i64() || i.is_u64()).unwrap_or(Value::Null);
            return Err(Box::new((A2aError::InvalidParams(format!("'params': {e}")), id)));
        }
    };
    let id: Value = env.id.take().unwrap_or(Value::Null);
    let id_ok = match &id {
        Value::String(_) => true,
        Value::Number(n) => n.is_i64() || n.is_u64(),
        _ => false,
    };
    if !id_ok {
        return Err(Box::new((
            A2aError::InvalidRequest("'id' must be a string or an integer".into()),
            Value::Null,
        )));
    }
    let bad = |e: A2aError| Err(Box::new((e, id.clone())));
    if !env.version_ok() {
        return bad(A2aError::InvalidRequest("'jsonrpc' must be \"2.0\"".into()));
    }
    let Some(name) = env.method() else {
        return bad(A2aError::InvalidRequest("'method' must be a string".into()));
    };
    let Some((m, _)) = Method::from_jsonrpc(&name) else {
        return bad(A2aError::MethodNotFound(name));
    };
    let facts = match env.params {
        ParamsField::Absent | ParamsField::Null => Params::default().facts(m),
        ParamsField::Object(p) => p.facts(m),
        ParamsField::Other => return bad(A2aError::InvalidParams("'params' must be an object".into())),
    };
    if m.on_task() && facts.task_id.is_none() {
        return bad(A2aError::InvalidParams(
            "the task id is required ('params.id', or 'params.taskId')".into(),
        ));
    }
    Ok(Call {
        binding: Binding::JsonRpc,
        method: m,
        rpc_id: id,
        task_id: facts.task_id.clone(),
        facts,
        body: bytes,
        rest_path: String::new(),
        http_method: http::Method::POST,
    })
}

/// A REST request: the body of route `m` (empty for most reads, a JSON object otherwise).
pub(super) fn rest_call(
    m: Method,
    task_id: Option<String>,
    bytes: Bytes,
    rest_path: String,
    http_method: http::Method,
) -> Result<Call, A2aError> {
    let facts = if bytes.iter().all(u8::is_ascii_whitespace) {
        if m.sends() {
            return Err(A2aError::InvalidParams(
                "the request body must be a JSON object with 'message'".into(),
            ));
        }
        CallFacts::default()
    } else {
        view::utf8(&bytes).map_err(A2aError::Parse)?;
        match view::rest_params(&bytes) {
            Ok(p) => p.facts(m),
            Err(e) if !e.is_data() => return Err(A2aError::Parse(e.to_string())),
            Err(_) if !bytes.trim_ascii_start().starts_with(b"{") => {
                return Err(A2aError::InvalidParams("the request body must be a JSON object".into()));
            }
            Err(e) => return Err(A2aError::InvalidParams(e.to_string())),
        }
    };
    Ok(Call {
        binding: Binding::Rest,
        method: m,
        rpc_id: Value::Null,
        facts,
        task_id,
        body: bytes,
        rest_path,
        http_method,
    })
}
