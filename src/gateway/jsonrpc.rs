//! JSON-RPC 2.0, shared by the two layers that speak it: the error codes of the specification and
//! of the protocols built on it (MCP, A2A), in one table, and the messages (request,
//! notification, response, error) kept as JSON values so that a gateway passes on every field it
//! does not know (newer revisions add fields freely). The MCP layer carries its messages in these
//! types; the agent layer reads requests through borrowed views of its own (`agent::view`) and
//! answers errors with these codes.

// Errors here are the responses to send, made at most once per request.
#![allow(clippy::result_large_err)]

use serde_json::{Map, Value, json};

// The specification's codes.

/// Invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// Unknown method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Bad parameters (also: unknown tool, prompt or resource prefix).
pub const INVALID_PARAMS: i64 = -32602;
/// Gateway or backend failure.
pub const INTERNAL_ERROR: i64 = -32603;
/// The implementation-defined server error (A2A: gateway conditions such as an unknown agent or
/// a policy refusal, with the reason in the error's details).
pub const SERVER_ERROR: i64 = -32000;

// MCP's codes.

/// MCP: resource not found.
pub const RESOURCE_NOT_FOUND: i64 = -32002;
/// MCP 2026-07-28: an `Mcp-*` header disagrees with the body (or is missing).
pub const HEADER_MISMATCH: i64 = -32020;
/// MCP 2026-07-28: the client lacks a capability the request needs.
pub const MISSING_CLIENT_CAPABILITY: i64 = -32021;
/// MCP 2026-07-28: unsupported protocol version (`data.supported` lists ours).
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// Cairn's MCP gateway: a rate limit of the caller's grant is reached (`data.retryAfterSeconds`).
pub const RATE_LIMITED: i64 = -32029;

// A2A's codes (A2A 1.0 §5.4).

/// A2A TaskNotFoundError.
pub const TASK_NOT_FOUND: i64 = -32001;
/// A2A InvalidAgentResponseError.
pub const INVALID_AGENT_RESPONSE: i64 = -32006;
/// A2A VersionNotSupportedError.
pub const VERSION_NOT_SUPPORTED: i64 = -32009;

/// A JSON-RPC error object.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcError {
    /// Code.
    pub code: i64,
    /// Message for people.
    pub message: String,
    /// Extra data.
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with a code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), data: None }
    }

    /// Adds data.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The error object.
    pub fn to_value(&self) -> Value {
        let mut o = Map::new();
        o.insert("code".into(), self.code.into());
        o.insert("message".into(), self.message.clone().into());
        if let Some(d) = &self.data {
            o.insert("data".into(), d.clone());
        }
        Value::Object(o)
    }

    /// Reads an error object (lenient: a missing message is empty).
    pub fn from_value(v: &Value) -> RpcError {
        RpcError {
            code: v.get("code").and_then(Value::as_i64).unwrap_or(INTERNAL_ERROR),
            message: v.get("message").and_then(Value::as_str).unwrap_or_default().to_string(),
            data: v.get("data").cloned(),
        }
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// A request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Id: a string or an integer.
    pub id: Value,
    /// Method.
    pub method: String,
    /// Params (an object, when present).
    pub params: Option<Value>,
}

/// A notification.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// Method.
    pub method: String,
    /// Params.
    pub params: Option<Value>,
}

/// A response: a result or an error.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// Id of the request answered (`null` when the request could not be read).
    pub id: Value,
    /// Result or error.
    pub outcome: Result<Value, RpcError>,
}

/// Any JSON-RPC message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// Expects a response.
    Request(Request),
    /// Expects none.
    Notification(Notification),
    /// Answers a request.
    Response(Response),
}

/// Whether `id` is a JSON-RPC id: a string or an integer.
pub fn valid_id(id: &Value) -> bool {
    id.is_string() || id.is_i64() || id.is_u64()
}

impl Message {
    /// Reads one message; the error is an `INVALID_REQUEST` to send back (with the id, if one
    /// could be read).
    pub fn from_value(v: Value) -> Result<Message, Response> {
        let invalid = |id: Value, why: &str| Response {
            id,
            outcome: Err(RpcError::new(INVALID_REQUEST, format!("Invalid Request: {why}"))),
        };
        let Value::Object(mut o) = v else {
            return Err(invalid(Value::Null, "a message must be a JSON object"));
        };
        let id = o.remove("id");
        let id_for_error = id.clone().filter(valid_id).unwrap_or(Value::Null);
        if o.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(invalid(id_for_error, "\"jsonrpc\" must be \"2.0\""));
        }
        let params = o.remove("params");
        if let Some(p) = &params
            && !p.is_object()
        {
            return Err(invalid(id_for_error, "\"params\" must be an object"));
        }
        match (o.remove("method"), id) {
            (Some(Value::String(method)), None) => Ok(Message::Notification(Notification { method, params })),
            (Some(Value::String(method)), Some(id)) => {
                if !valid_id(&id) {
                    return Err(invalid(Value::Null, "\"id\" must be a string or an integer"));
                }
                Ok(Message::Request(Request { id, method, params }))
            }
            (Some(_), _) => Err(invalid(id_for_error, "\"method\" must be a string")),
            (None, id) => {
                let id = id.unwrap_or(Value::Null);
                if !(valid_id(&id) || id.is_null()) {
                    return Err(invalid(Value::Null, "\"id\" must be a string or an integer"));
                }
                match (o.remove("result"), o.remove("error")) {
                    (Some(r), None) => Ok(Message::Response(Response { id, outcome: Ok(r) })),
                    (None, Some(e)) if e.is_object() => {
                        Ok(Message::Response(Response { id, outcome: Err(RpcError::from_value(&e)) }))
                    }
                    _ => Err(invalid(id_for_error, "a message needs \"method\", \"result\" or \"error\"")),
                }
            }
        }
    }

    /// The wire form.
    pub fn to_value(&self) -> Value {
        match self {
            Message::Request(r) => r.to_value(),
            Message::Notification(n) => n.to_value(),
            Message::Response(r) => r.to_value(),
        }
    }

    /// The method of a request or notification.
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request(r) => Some(&r.method),
            Message::Notification(n) => Some(&n.method),
            Message::Response(_) => None,
        }
    }
}

impl Request {
    /// A request.
    pub fn new(id: impl Into<Value>, method: impl Into<String>, params: Option<Value>) -> Self {
        Request { id: id.into(), method: method.into(), params }
    }

    /// The wire form.
    pub fn to_value(&self) -> Value {
        let mut o = Map::new();
        o.insert("jsonrpc".into(), "2.0".into());
        o.insert("id".into(), self.id.clone());
        o.insert("method".into(), self.method.clone().into());
        if let Some(p) = &self.params {
            o.insert("params".into(), p.clone());
        }
        Value::Object(o)
    }

    /// A string parameter.
    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.params.as_ref()?.get(key)?.as_str()
    }

    /// The result answering this request.
    pub fn reply(&self, result: Value) -> Response {
        Response { id: self.id.clone(), outcome: Ok(result) }
    }

    /// The error answering this request.
    pub fn error(&self, e: RpcError) -> Response {
        Response { id: self.id.clone(), outcome: Err(e) }
    }
}

impl Notification {
    /// A notification.
    pub fn new(method: impl Into<String>, params: Option<Value>) -> Self {
        Notification { method: method.into(), params }
    }

    /// The wire form.
    pub fn to_value(&self) -> Value {
        let mut o = Map::new();
        o.insert("jsonrpc".into(), "2.0".into());
        o.insert("method".into(), self.method.clone().into());
        if let Some(p) = &self.params {
            o.insert("params".into(), p.clone());
        }
        Value::Object(o)
    }
}

impl Response {
    /// An error response.
    pub fn error(id: Value, e: RpcError) -> Self {
        Response { id, outcome: Err(e) }
    }

    /// The wire form.
    pub fn to_value(&self) -> Value {
        match &self.outcome {
            Ok(r) => json!({"jsonrpc": "2.0", "id": self.id, "result": r}),
            Err(e) => json!({"jsonrpc": "2.0", "id": self.id, "error": e.to_value()}),
        }
    }
}

/// The wire form written straight from the message, without first copying it into a [`Value`]
/// as [`Message::to_value`] does (the same JSON, key for key, in the same order).
impl serde::Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Message::Request(r) => r.serialize(s),
            Message::Notification(n) => n.serialize(s),
            Message::Response(r) => r.serialize(s),
        }
    }
}

impl serde::Serialize for Request {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("jsonrpc", "2.0")?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("method", &self.method)?;
        if let Some(p) = &self.params {
            m.serialize_entry("params", p)?;
        }
        m.end()
    }
}

impl serde::Serialize for Notification {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("jsonrpc", "2.0")?;
        m.serialize_entry("method", &self.method)?;
        if let Some(p) = &self.params {
            m.serialize_entry("params", p)?;
        }
        m.end()
    }
}

impl serde::Serialize for Response {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("jsonrpc", "2.0")?;
        m.serialize_entry("id", &self.id)?;
        match &self.outcome {
            Ok(r) => m.serialize_entry("result", r)?,
            Err(e) => m.serialize_entry("error", e)?,
        }
        m.end()
    }
}

impl serde::Serialize for RpcError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("code", &self.code)?;
        m.serialize_entry("message", &self.message)?;
        if let Some(d) = &self.data {
            m.serialize_entry("data", d)?;
        }
        m.end()
    }
}

/// What a POST body holds.
#[derive(Debug)]
pub enum Body {
    /// One message.
    Single(Value),
    /// A JSON array (a batch; only 2025-03-26 allows it).
    Batch(Vec<Value>),
}

/// Parses a POST body; the error is the `PARSE_ERROR` response to send.
pub fn parse_body(bytes: &[u8]) -> Result<Body, Response> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(items)) => Ok(Body::Batch(items)),
        Ok(v) => Ok(Body::Single(v)),
        Err(e) => Err(Response::error(Value::Null, RpcError::new(PARSE_ERROR, format!("Parse error: {e}")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_four_kinds() {
        let r = Message::from_value(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"})).unwrap();
        assert!(matches!(r, Message::Request(Request { ref method, .. }) if method == "tools/list"));
        let n = Message::from_value(json!({"jsonrpc":"2.0","method":"notifications/initialized"})).unwrap();
        assert!(matches!(n, Message::Notification(_)));
        let ok = Message::from_value(json!({"jsonrpc":"2.0","id":"a","result":{}})).unwrap();
        assert!(matches!(ok, Message::Response(Response { outcome: Ok(_), .. })));
        let err =
            Message::from_value(json!({"jsonrpc":"2.0","id":2,"error":{"code":-1,"message":"x"}})).unwrap();
        assert!(matches!(err, Message::Response(Response { outcome: Err(RpcError { code: -1, .. }), .. })));
    }

    #[test]
    fn refuses_what_is_not_jsonrpc() {
        for bad in [
            json!(1),
            json!({"id":1,"method":"x"}),
            json!({"jsonrpc":"1.0","id":1,"method":"x"}),
            json!({"jsonrpc":"2.0","id":1.5,"method":"x"}),
            json!({"jsonrpc":"2.0","id":null,"method":"x"}),
            json!({"jsonrpc":"2.0","id":1,"method":3}),
            json!({"jsonrpc":"2.0","id":1,"method":"x","params":[1]}),
            json!({"jsonrpc":"2.0","id":1}),
        ] {
            let e = Message::from_value(bad.clone()).expect_err(&bad.to_string());
            assert_eq!(e.outcome.unwrap_err().code, INVALID_REQUEST, "{bad}");
        }
        // The id is kept when it could be read.
        let e = Message::from_value(json!({"jsonrpc":"1.0","id":7,"method":"x"})).unwrap_err();
        assert_eq!(e.id, json!(7));
    }

    #[test]
    fn round_trips_unknown_fields_in_params() {
        let v =
            json!({"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"a","future":{"k":1}}});
        assert_eq!(Message::from_value(v.clone()).unwrap().to_value(), v);
    }

    #[test]
    fn serializes_as_to_value_does() {
        for v in [
            json!({"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"a","future":{"k":1}}}),
            json!({"jsonrpc":"2.0","id":3,"method":"ping"}),
            json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}),
            json!({"jsonrpc":"2.0","id":1,"result":{"z":1,"a":[2]}}),
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"no","data":{"k":1}}}),
        ] {
            let m = Message::from_value(v.clone()).unwrap();
            assert_eq!(serde_json::to_string(&m).unwrap(), m.to_value().to_string(), "{v}");
        }
    }

    #[test]
    fn parse_errors_and_batches() {
        assert_eq!(parse_body(b"{").unwrap_err().outcome.unwrap_err().code, PARSE_ERROR);
        assert!(matches!(parse_body(b"[]").unwrap(), Body::Batch(v) if v.is_empty()));
        assert!(matches!(parse_body(b"{}").unwrap(), Body::Single(_)));
    }
}
