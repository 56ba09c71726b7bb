//! The size limits of a request, the same on every layer, checked before anything reads it: the
//! body (`listener.maxRequestBytes`, read by [`crate::gateway::server::read_body`]), the headers
//! ([`check_headers`]) and how deep its JSON nests ([`check_json_depth`]). Each layer answers a
//! [`LimitError`] in its protocol's own error format (OpenAI or Anthropic error JSON, a JSON-RPC
//! error, an A2A error).
//!
//! | limit | value | status |
//! |---|---|---|
//! | body | `listener.maxRequestBytes` (10 MiB by default) | 413 |
//! | header fields | [`MAX_HEADER_FIELDS`] (100, Envoy's default) | 431 |
//! | header bytes (names and values) | [`MAX_HEADER_BYTES`] (64 KiB; Envoy: 60 KiB) | 431 |
//! | JSON nesting | [`MAX_JSON_DEPTH`] (64 arrays and objects) | 400 |
//!
//! The listener lets hyper parse up to [`HYPER_MAX_HEADERS`] fields (and HTTP/2 header lists up
//! to [`HYPER_MAX_HEADER_LIST_BYTES`]) so that what is over these limits but under hyper's reaches
//! the layer and gets its error in the protocol's form; past hyper's own bounds the connection
//! answers a bare 431.
//!
//! The JSON depth is counted on the bytes, before any parser builds anything: a body nested
//! 10,000 deep is refused in one pass, never handed to an upstream (whose parser may recurse) or
//! to serde (whose recursion limit would refuse it with a less clear message, or, for the parts
//! the gateway skips without building, not at all).

use http::{HeaderMap, StatusCode};

/// Most header fields a request may carry.
pub const MAX_HEADER_FIELDS: usize = 100;
/// Most bytes of header names and values a request may carry.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Deepest nesting of JSON arrays and objects in a request body.
pub const MAX_JSON_DEPTH: usize = 64;
/// Header fields hyper parses on HTTP/1 (beyond: a bare 431 from the connection).
pub const HYPER_MAX_HEADERS: usize = 256;
/// Bytes of an HTTP/2 header list hyper accepts (beyond: the stream is refused).
pub const HYPER_MAX_HEADER_LIST_BYTES: u32 = 256 * 1024;

/// A request over a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Too many header fields.
    #[error("the request has {0} header fields, more than the {MAX_HEADER_FIELDS} this gateway accepts")]
    HeaderFields(usize),
    /// Headers too large.
    #[error("the request's headers are {0} bytes, more than the {MAX_HEADER_BYTES} this gateway accepts")]
    HeaderBytes(usize),
    /// JSON nested too deep.
    #[error(
        "the request body nests JSON arrays and objects deeper than the {MAX_JSON_DEPTH} levels this gateway accepts"
    )]
    JsonDepth,
}

impl LimitError {
    /// HTTP status: 431 for headers, 400 for the body's nesting.
    pub fn status(&self) -> StatusCode {
        match self {
            LimitError::HeaderFields(_) | LimitError::HeaderBytes(_) => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            LimitError::JsonDepth => StatusCode::BAD_REQUEST,
        }
    }

    /// Low-cardinality name for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            LimitError::HeaderFields(_) | LimitError::HeaderBytes(_) => "headers_too_large",
            LimitError::JsonDepth => "json_too_deep",
        }
    }
}

/// Checks the number and total size of the header fields.
pub fn check_headers(headers: &HeaderMap) -> Result<(), LimitError> {
    let fields = headers.len();
    if fields > MAX_HEADER_FIELDS {
        return Err(LimitError::HeaderFields(fields));
    }
    let bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(LimitError::HeaderBytes(bytes));
    }
    Ok(())
}

/// Checks that `body` (JSON, or anything: only brackets outside strings count) nests arrays and
/// objects at most [`MAX_JSON_DEPTH`] deep.
pub fn check_json_depth(body: &[u8]) -> Result<(), LimitError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(LimitError::JsonDepth);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn json_depth_counts_brackets_outside_strings() {
        assert_eq!(check_json_depth(nested(MAX_JSON_DEPTH).as_bytes()), Ok(()));
        assert_eq!(check_json_depth(nested(MAX_JSON_DEPTH + 1).as_bytes()), Err(LimitError::JsonDepth));
        assert_eq!(check_json_depth(nested(10_000).as_bytes()), Err(LimitError::JsonDepth));
        let objects = format!("{}1{}", r#"{"a":"#.repeat(65), "}".repeat(65));
        assert_eq!(check_json_depth(objects.as_bytes()), Err(LimitError::JsonDepth));
        // Brackets in strings (escaped quotes included) are text.
        let text = format!(r#"{{"s": "{} \" {}"}}"#, "[".repeat(500), "{".repeat(500));
        assert_eq!(check_json_depth(text.as_bytes()), Ok(()));
        // Siblings do not add up.
        let wide = format!("[{}]", vec![nested(60); 100].join(","));
        assert_eq!(check_json_depth(wide.as_bytes()), Ok(()));
        assert_eq!(
            LimitError::JsonDepth.to_string(),
            "the request body nests JSON arrays and objects deeper than the 64 levels this gateway accepts"
        );
    }

    #[test]
    fn headers_are_counted_and_measured() {
        let mut h = HeaderMap::new();
        for i in 0..MAX_HEADER_FIELDS {
            h.insert(http::HeaderName::try_from(format!("x-h{i}")).unwrap(), "v".parse().unwrap());
        }
        assert_eq!(check_headers(&h), Ok(()));
        h.insert("x-one-more", "v".parse().unwrap());
        let e = check_headers(&h).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the request has 101 header fields, more than the 100 this gateway accepts"
        );
        assert_eq!(e.status(), 431);
        let mut h = HeaderMap::new();
        h.insert("x-big", "a".repeat(MAX_HEADER_BYTES).parse().unwrap());
        assert_eq!(check_headers(&h), Err(LimitError::HeaderBytes(MAX_HEADER_BYTES + 5)));
    }
}
