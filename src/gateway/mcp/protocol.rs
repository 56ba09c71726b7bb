//! The two protocol eras, and the HTTP-level checks each one requires.
//!
//! * **Session era** (2025-03-26 … 2025-11-25): `initialize` opens a session whose id travels in
//!   `Mcp-Session-Id`; `MCP-Protocol-Version` carries the negotiated version on every later
//!   request (a missing header means 2025-03-26); batches are allowed only in 2025-03-26.
//! * **Stateless era** (2026-07-28): no handshake and no session; every POST carries one message,
//!   `MCP-Protocol-Version` equal to `_meta["io.modelcontextprotocol/protocolVersion"]`, and
//!   `Mcp-Method` (plus `Mcp-Name` for `tools/call`, `prompts/get`, `resources/read`) equal to
//!   the body. A mismatch is `400` with [`HEADER_MISMATCH`]; an unknown version `400` with
//!   [`UNSUPPORTED_PROTOCOL_VERSION`]; an unknown method `404` with `-32601`.

use crate::gateway::jsonrpc::{HEADER_MISMATCH, RpcError, UNSUPPORTED_PROTOCOL_VERSION};
use base64::Engine;
use http::HeaderMap;
use http::header::{AsHeaderName, HeaderName};
use serde_json::{Value, json};

/// Session-era versions the gateway speaks, oldest first.
pub const SESSION_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The stateless version.
pub const STATELESS_VERSION: &str = "2026-07-28";
/// The newest session-era version: what the gateway offers when a client asks for one it does
/// not know, and what it speaks to backends on behalf of stateless clients.
pub const LATEST_SESSION_VERSION: &str = "2025-11-25";

/// `MCP-Protocol-Version`.
pub const HEADER_PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// `Mcp-Session-Id`.
pub const HEADER_SESSION_ID: &str = "mcp-session-id";
/// `Mcp-Method`.
pub const HEADER_METHOD: &str = "mcp-method";
/// `Mcp-Name`.
pub const HEADER_NAME: &str = "mcp-name";
/// `Last-Event-ID`.
pub const HEADER_LAST_EVENT_ID: &str = "last-event-id";
/// [`HEADER_SESSION_ID`] as a header name (looked up without parsing the name each time).
pub const SESSION_ID: HeaderName = HeaderName::from_static(HEADER_SESSION_ID);
/// [`HEADER_PROTOCOL_VERSION`] as a header name.
pub const PROTOCOL_VERSION: HeaderName = HeaderName::from_static(HEADER_PROTOCOL_VERSION);
/// Key of the per-request protocol version in `_meta` (2026-07-28).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// Key of the server's identity in a result's `_meta` (2026-07-28).
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// Which era a request belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// 2025-03-26 … 2025-11-25 (and 2024-11-05 clients using streamable HTTP).
    Session,
    /// 2026-07-28.
    Stateless,
}

/// Every version this gateway knows.
pub fn supported_versions() -> Vec<&'static str> {
    SESSION_VERSIONS.iter().copied().chain([STATELESS_VERSION]).collect()
}

/// Whether `v` is a session-era version the gateway speaks.
pub fn is_session_version(v: &str) -> bool {
    SESSION_VERSIONS.contains(&v)
}

/// The version to answer an `initialize` asking for `requested`: the same if the gateway speaks
/// it, else the newest session-era version (the client then decides whether to go on).
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| SESSION_VERSIONS.iter().find(|v| **v == r).copied())
        .unwrap_or(LATEST_SESSION_VERSION)
}

/// The `UNSUPPORTED_PROTOCOL_VERSION` error for `v`.
pub fn unsupported_version(v: &str) -> RpcError {
    RpcError::new(UNSUPPORTED_PROTOCOL_VERSION, format!("Unsupported protocol version: {v}"))
        .with_data(json!({"supported": supported_versions(), "requested": v}))
}

/// A header's value as text; `Err` when present but not visible ASCII, or repeated.
pub fn header<K>(headers: &HeaderMap, name: K) -> Result<Option<&str>, HeaderError>
where
    K: AsHeaderName + std::fmt::Display + Copy,
{
    let mut all = headers.get_all(name).iter();
    let Some(first) = all.next() else { return Ok(None) };
    if all.next().is_some() {
        return Err(HeaderError::Repeated(name.to_string()));
    }
    first.to_str().map(Some).map_err(|_| HeaderError::NotAscii(name.to_string()))
}

/// A protocol header that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Given more than once.
    #[error("header {0} is repeated")]
    Repeated(String),
    /// Not visible ASCII.
    #[error("header {0} is not visible ASCII")]
    NotAscii(String),
    /// `=?base64?…?=` with bad base64.
    #[error("bad base64 header value: {0}")]
    Base64(#[from] base64::DecodeError),
    /// `=?base64?…?=` that is not UTF-8 text.
    #[error("base64 header value is not UTF-8")]
    NotUtf8,
}

/// Decodes a stateless-era header value: plain, or `=?base64?…?=` for values outside the safe
/// ASCII set.
pub fn decode_header_value(v: &str) -> Result<String, HeaderError> {
    match v.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?=")) {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64)?;
            String::from_utf8(bytes).map_err(|_| HeaderError::NotUtf8)
        }
        None => Ok(v.to_string()),
    }
}

/// Encodes a stateless-era header value: plain when it is safe ASCII (visible characters and
/// inner spaces), `=?base64?…?=` otherwise (the inverse of [`decode_header_value`]).
pub fn encode_header_value(v: &str) -> String {
    let unsafe_chars = v.bytes().any(|b| !(0x20..0x7f).contains(&b));
    let padded = v.starts_with(' ') || v.ends_with(' ');
    let looks_encoded = v.starts_with("=?") && v.ends_with("?=");
    if !(unsafe_chars || padded || looks_encoded) {
        v.to_string()
    } else {
        format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode(v))
    }
}

/// The `_meta` protocol version of a request's params, if any.
pub fn meta_version(params: Option<&Value>) -> Option<&str> {
    params?.get("_meta")?.get(META_PROTOCOL_VERSION)?.as_str()
}

/// The body field `Mcp-Name` must equal, for the methods that require it.
pub fn name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// Checks a stateless-era request's headers against its body: `MCP-Protocol-Version` present,
/// known and equal to `_meta`'s; `Mcp-Method` equal to the method; `Mcp-Name` equal to the
/// name/uri where required. The error is sent with status `400`.
pub fn check_stateless_headers(
    headers: &HeaderMap,
    method: &str,
    params: Option<&Value>,
) -> Result<(), RpcError> {
    let mismatch = |m: String| RpcError::new(HEADER_MISMATCH, m);
    let unreadable = |e: HeaderError| RpcError::new(HEADER_MISMATCH, e.to_string());
    let version = header(headers, HEADER_PROTOCOL_VERSION).map_err(unreadable)?;
    let Some(version) = version else {
        return Err(mismatch("missing MCP-Protocol-Version header".into()));
    };
    if version != STATELESS_VERSION {
        return Err(unsupported_version(version));
    }
    match meta_version(params) {
        Some(m) if m == version => {}
        Some(m) => {
            return Err(mismatch(format!(
                "MCP-Protocol-Version header ({version}) does not match _meta protocolVersion ({m})"
            )));
        }
        None => {
            return Err(RpcError::new(
                crate::gateway::jsonrpc::INVALID_PARAMS,
                format!("request _meta is missing {META_PROTOCOL_VERSION}"),
            ));
        }
    }
    let m = header(headers, HEADER_METHOD).map_err(unreadable)?;
    match m.map(decode_header_value).transpose().map_err(unreadable)? {
        Some(m) if m == method => {}
        Some(m) => {
            return Err(mismatch(format!("Mcp-Method header `{m}` does not match body method `{method}`")));
        }
        None => return Err(mismatch("missing Mcp-Method header".into())),
    }
    if let Some(field) = name_field(method) {
        let body = params.and_then(|p| p.get(field)).and_then(Value::as_str);
        let h = header(headers, HEADER_NAME).map_err(unreadable)?;
        match (h.map(decode_header_value).transpose().map_err(unreadable)?, body) {
            (Some(h), Some(b)) if h == b => {}
            (None, _) => return Err(mismatch("missing Mcp-Name header".into())),
            (Some(h), b) => {
                return Err(mismatch(format!(
                    "Mcp-Name header `{h}` does not match body {field} `{}`",
                    b.unwrap_or_default()
                )));
            }
        }
    }
    Ok(())
}

/// Whether a session id has only visible ASCII (0x21–0x7E), as the spec requires.
pub fn valid_session_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::jsonrpc::INVALID_PARAMS;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn meta() -> Value {
        json!({"_meta": {META_PROTOCOL_VERSION: STATELESS_VERSION}, "name": "gh__search"})
    }

    #[test]
    fn header_values_encode_and_decode_back() {
        for v in ["gh__echo", "gh+file:///readme.txt", "héllo", " padded ", "=?base64?x?=", "a\nb"] {
            assert_eq!(decode_header_value(&encode_header_value(v)).unwrap(), v);
        }
        assert_eq!(encode_header_value("gh__echo"), "gh__echo");
        assert_eq!(encode_header_value("héllo"), "=?base64?aMOpbGxv?=");
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2099-01-01")), LATEST_SESSION_VERSION);
        assert_eq!(negotiate(None), LATEST_SESSION_VERSION);
        assert_eq!(negotiate(Some(STATELESS_VERSION)), LATEST_SESSION_VERSION);
    }

    #[test]
    fn stateless_headers_must_match_the_body() {
        let ok = headers(&[
            ("MCP-Protocol-Version", STATELESS_VERSION),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "gh__search"),
        ]);
        check_stateless_headers(&ok, "tools/call", Some(&meta())).unwrap();
        // base64 sentinel
        let b64 = format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode("gh__search"));
        let enc = headers(&[
            ("MCP-Protocol-Version", STATELESS_VERSION),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", &b64),
        ]);
        check_stateless_headers(&enc, "tools/call", Some(&meta())).unwrap();

        let cases: &[(&[(&str, &str)], i64)] = &[
            (&[("Mcp-Method", "tools/call"), ("Mcp-Name", "gh__search")], HEADER_MISMATCH),
            (
                &[("MCP-Protocol-Version", "2027-01-01"), ("Mcp-Method", "tools/call")],
                UNSUPPORTED_PROTOCOL_VERSION,
            ),
            (&[("MCP-Protocol-Version", STATELESS_VERSION), ("Mcp-Name", "gh__search")], HEADER_MISMATCH),
            (
                &[
                    ("MCP-Protocol-Version", STATELESS_VERSION),
                    ("Mcp-Method", "tools/list"),
                    ("Mcp-Name", "gh__search"),
                ],
                HEADER_MISMATCH,
            ),
            (&[("MCP-Protocol-Version", STATELESS_VERSION), ("Mcp-Method", "tools/call")], HEADER_MISMATCH),
            (
                &[
                    ("MCP-Protocol-Version", STATELESS_VERSION),
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", "gh__other"),
                ],
                HEADER_MISMATCH,
            ),
            (
                &[
                    ("MCP-Protocol-Version", STATELESS_VERSION),
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", "gh__search"),
                ],
                HEADER_MISMATCH,
            ),
        ];
        for (h, code) in cases {
            let e = check_stateless_headers(&headers(h), "tools/call", Some(&meta())).unwrap_err();
            assert_eq!(e.code, *code, "{h:?}");
        }
        // _meta disagreeing with the header, and missing.
        let other = json!({"_meta": {META_PROTOCOL_VERSION: "2025-11-25"}, "name": "gh__search"});
        assert_eq!(
            check_stateless_headers(&ok, "tools/call", Some(&other)).unwrap_err().code,
            HEADER_MISMATCH
        );
        let none = json!({"name": "gh__search"});
        assert_eq!(check_stateless_headers(&ok, "tools/call", Some(&none)).unwrap_err().code, INVALID_PARAMS);
        // tools/list needs no Mcp-Name.
        let list = headers(&[("MCP-Protocol-Version", STATELESS_VERSION), ("Mcp-Method", "tools/list")]);
        check_stateless_headers(&list, "tools/list", Some(&meta())).unwrap();
    }
}
