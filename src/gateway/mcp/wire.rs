//! The hot path's borrowed views of the wire: a client's `tools/call` and a backend's JSON
//! answer, read for the few fields the gateway needs while their bytes go on as they are, with
//! no `serde_json::Value` built for either.
//!
//! The views take only the plain, common shape; anything else (another method, `_meta` in the
//! params, a batch, a name or method with escapes, an invalid message, an error answer, a result
//! whose `contents` the gateway rewrites…) is left to the general path ([`super::jsonrpc`]),
//! which also makes every error message. So the views change how fast a call goes, never what
//! it answers: the forwarded request is the client's own JSON with the tool's name unprefixed
//! where it stood, and the client gets the backend's `result` byte for byte.

use crate::gateway::jsonrpc::{Message, Response, valid_id};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;
use std::ops::Range;

/// Whether raw JSON is an object (a derived struct would also accept an array).
fn is_object(raw: &str) -> bool {
    raw.starts_with('{')
}

/// Where `part` (a slice of `whole`) sits in `whole`.
fn span(whole: &str, part: &str) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start + part.len();
    (end <= whole.len() && whole.get(start..end) == Some(part)).then_some(start..end)
}

/// Whether `raw` (valid JSON) is exactly what serde_json writes for the value it holds, so a
/// digest of the value can be taken of `raw` itself: no whitespace between tokens, no escapes,
/// integers only (up to 18 digits, no `-0`), no key twice in one object (a value keeps the last).
pub fn is_canonical(raw: &str) -> bool {
    let b = raw.as_bytes();
    // The keys of the objects being read: `keys[opened.last()..]` are the innermost one's.
    let mut opened: Vec<usize> = Vec::new();
    let mut keys: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i + 1;
                let Some(len) = b[start..].iter().position(|&c| c == b'"' || c == b'\\') else {
                    return false;
                };
                if b[start + len] == b'\\' {
                    return false;
                }
                i = start + len + 1;
                if b.get(i) == Some(&b':') {
                    let key = &b[start..start + len];
                    let Some(&from) = opened.last() else { return false };
                    if keys[from..].contains(&key) {
                        return false;
                    }
                    keys.push(key);
                }
            }
            b'{' => {
                opened.push(keys.len());
                i += 1;
            }
            b'}' => {
                let Some(from) = opened.pop() else { return false };
                keys.truncate(from);
                i += 1;
            }
            b'[' | b']' | b',' | b':' => i += 1,
            b'-' if b.get(i + 1) == Some(&b'0') => return false,
            b'-' => i += 1,
            b'0'..=b'9' => {
                let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                if digits > 18 {
                    return false;
                }
                i += digits;
            }
            // true, false, null
            b't' | b'f' | b'n' => i += b[i..].iter().take_while(|c| c.is_ascii_lowercase()).count(),
            _ => return false,
        }
    }
    true
}

/// An object read member by member, in the pass that reads the message around it: the members
/// the views need (each at most once), and where the object starts and ends in the text (from
/// its first key and its last value: only whitespace stands between them and the braces). Keys
/// with escapes, and an empty object, make it fail: the general path takes those.
#[derive(Default)]
struct Members<'a> {
    first_key: Option<&'a str>,
    last_value: Option<&'a RawValue>,
    /// Params of a call: `name`, `arguments`, `_meta`.
    name: Option<&'a RawValue>,
    arguments: Option<&'a RawValue>,
    meta: Option<&'a RawValue>,
    /// A result: `isError`, `contents`, `resultType`.
    is_error: Option<&'a RawValue>,
    contents: Option<&'a RawValue>,
    result_type: Option<&'a RawValue>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut m = Members::default();
                while let Some(key) = map.next_key::<&'de str>()? {
                    let value: &'de RawValue = map.next_value()?;
                    m.first_key.get_or_insert(key);
                    m.last_value = Some(value);
                    let slot = match key {
                        "name" => &mut m.name,
                        "arguments" => &mut m.arguments,
                        "_meta" => &mut m.meta,
                        "isError" => &mut m.is_error,
                        "contents" => &mut m.contents,
                        "resultType" => &mut m.result_type,
                        _ => continue,
                    };
                    if slot.replace(value).is_some() {
                        return Err(serde::de::Error::custom(format_args!("duplicate {key}")));
                    }
                }
                Ok(m)
            }
        }
        d.deserialize_map(V)
    }
}

impl Members<'_> {
    /// Where the object is in `text` (the text it was read from).
    fn span(&self, text: &str) -> Option<Range<usize>> {
        let key = span(text, self.first_key?)?;
        let value = span(text, self.last_value?.get())?;
        let b = text.as_bytes();
        let quote = key.start.checked_sub(1)?;
        let open = b[..quote].iter().rposition(|c| !c.is_ascii_whitespace())?;
        let close = value.end + b[value.end..].iter().position(|c| !c.is_ascii_whitespace())?;
        (b[quote] == b'"' && b[open] == b'{' && b[close] == b'}').then_some(open..close + 1)
    }
}

#[derive(Deserialize)]
struct RequestView<'a> {
    #[serde(borrow)]
    jsonrpc: &'a str,
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    method: &'a str,
    #[serde(borrow)]
    params: Members<'a>,
}

/// A client's `tools/call` in its plain form: `jsonrpc` `"2.0"`, a string or integer `id`, and
/// params with a `name` (without escapes) and no `_meta` (which may make it a 2026-07-28
/// request). Holds the body it was read from.
pub struct ToolCallRequest<'a> {
    /// The whole body.
    body: &'a str,
    /// The request id.
    pub id: Value,
    /// `params.name`: the tool's gateway name (`prefix__tool`).
    pub name: &'a str,
    /// `params.arguments`, as sent (`None` when absent).
    pub arguments: Option<&'a RawValue>,
    /// The params object in `body`.
    params: Range<usize>,
    /// The name's JSON string (quotes included) in `body`.
    name_at: Range<usize>,
}

impl<'a> ToolCallRequest<'a> {
    /// The view of `body`, or `None` when it is not a plain `tools/call`.
    pub fn parse(body: &'a [u8]) -> Option<ToolCallRequest<'a>> {
        let body = std::str::from_utf8(body).ok()?;
        if !is_object(body.trim_start()) {
            return None;
        }
        let r: RequestView<'a> = serde_json::from_str(body).ok()?;
        let p = &r.params;
        if r.jsonrpc != "2.0" || r.method != "tools/call" || p.meta.is_some() {
            return None;
        }
        let id: Value = serde_json::from_str(r.id.get()).ok()?;
        if !valid_id(&id) {
            return None;
        }
        // The name: a JSON string without escapes, so its text between the quotes is the name.
        let quoted = p.name?.get();
        let name = quoted.strip_prefix('"')?.strip_suffix('"')?;
        if name.contains('\\') {
            return None;
        }
        Some(ToolCallRequest {
            body,
            id,
            name,
            arguments: p.arguments,
            params: p.span(body)?,
            name_at: span(body, quoted)?,
        })
    }

    /// The params as a value (for the general path).
    pub fn params_value(&self) -> Option<Value> {
        serde_json::from_str(&self.body[self.params.clone()]).ok()
    }

    /// The request to send to the server: the same id, method and params, with `tool` (a part of
    /// the name, so without escapes either) as the name.
    pub fn forward_body(&self, tool: &str) -> Vec<u8> {
        let params = &self.body[self.params.clone()];
        let (before, after) = (
            &self.body[self.params.start..self.name_at.start],
            &self.body[self.name_at.end..self.params.end],
        );
        let mut out = Vec::with_capacity(params.len() + 64);
        out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        serde_json::to_writer(&mut out, &self.id).expect("an id serializes");
        out.extend_from_slice(br#","method":"tools/call","params":"#);
        out.extend_from_slice(before.as_bytes());
        out.push(b'"');
        out.extend_from_slice(tool.as_bytes());
        out.push(b'"');
        out.extend_from_slice(after.as_bytes());
        out.push(b'}');
        out
    }
}

#[derive(Deserialize)]
struct ResponseView<'a> {
    #[serde(borrow)]
    jsonrpc: &'a str,
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    result: Members<'a>,
    #[serde(default)]
    error: Option<IgnoredAny>,
    #[serde(default)]
    method: Option<IgnoredAny>,
    #[serde(default)]
    params: Option<IgnoredAny>,
}

/// A backend's answer that is one successful response, kept as sent: `jsonrpc` `"2.0"`, a
/// string or integer `id`, and a `result` object without `contents` (the one field of a result
/// the gateway rewrites, see [`super::names::rewrite_from_backend`]).
#[derive(Debug)]
pub struct RawResponse {
    body: Vec<u8>,
    /// The id answered.
    pub id: Value,
    /// The result object in `body`.
    result: Range<usize>,
    /// `result.isError` is `true`.
    pub is_error: bool,
    /// The result has a `resultType`.
    has_result_type: bool,
}

impl RawResponse {
    /// The view of `body`; the body back when it is not such an answer.
    pub fn parse(body: Vec<u8>) -> Result<RawResponse, Vec<u8>> {
        let Some((id, result, is_error, has_result_type)) = Self::read(&body) else { return Err(body) };
        Ok(RawResponse { body, id, result, is_error, has_result_type })
    }

    fn read(body: &[u8]) -> Option<(Value, Range<usize>, bool, bool)> {
        let text = std::str::from_utf8(body).ok()?;
        if !is_object(text.trim_start()) {
            return None;
        }
        let r: ResponseView = serde_json::from_str(text).ok()?;
        let v = &r.result;
        if r.jsonrpc != "2.0"
            || r.error.is_some()
            || r.method.is_some()
            || r.params.is_some()
            || v.contents.is_some()
        {
            return None;
        }
        let id: Value = serde_json::from_str(r.id.get()).ok()?;
        if !valid_id(&id) {
            return None;
        }
        let is_error = v.is_error.is_some_and(|e| e.get() == "true");
        Some((id, v.span(text)?, is_error, v.result_type.is_some()))
    }

    /// The response as a message (for the general path).
    pub fn to_message(&self) -> Message {
        let result = serde_json::from_slice(&self.body[self.result.clone()]).expect("read as JSON before");
        Message::Response(Response { id: self.id.clone(), outcome: Ok(result) })
    }

    /// The JSON the client gets: the response with the backend's result as sent, and (for a
    /// 2026-07-28 client) `resultType` `"complete"` appended when the result has none.
    pub fn client_body(&self, stateless: bool) -> Vec<u8> {
        let result = &self.body[self.result.clone()];
        let mut out = Vec::with_capacity(result.len() + 64);
        out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        serde_json::to_writer(&mut out, &self.id).expect("an id serializes");
        out.extend_from_slice(br#","result":"#);
        if stateless && !self.has_result_type {
            // `{…}` → `{…,"resultType":"complete"}`: the last byte of an object is its `}`.
            let inner = &result[..result.len() - 1];
            out.extend_from_slice(inner);
            if !inner[1..].iter().all(u8::is_ascii_whitespace) {
                out.push(b',');
            }
            out.extend_from_slice(br#""resultType":"complete"}"#);
        } else {
            out.extend_from_slice(result);
        }
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::jsonrpc::Request;
    use crate::gateway::mcp::names::rewrite_from_backend;
    use serde_json::json;

    /// What the general path sends on for a tools/call: the request rebuilt with the name
    /// unprefixed.
    fn general_forward(body: &str, tool: &str) -> Value {
        let Message::Request(mut r) = Message::from_value(serde_json::from_str(body).unwrap()).unwrap()
        else {
            panic!("not a request")
        };
        r.params.as_mut().unwrap()["name"] = tool.into();
        Request::new(r.id, r.method, r.params).to_value()
    }

    #[test]
    fn canonical_is_what_serde_json_writes() {
        for raw in [
            r#"{"q":"x","n":1,"deep":{"a":[true,false,null,-12,"é ☃"],"b":{"a":1}},"a":2}"#,
            r#"{ "q" : "x" }"#,
            r#"{"q":"a\"b"}"#,
            r#"{"q":"\u0041"}"#,
            r#"{"n":1.0}"#,
            r#"{"n":1e3}"#,
            r#"{"n":-0}"#,
            r#"{"n":123456789012345678901234}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"o":{"a":1,"b":{"a":2},"a":3}}"#,
            r#"[1,2,{"a":"b"},[]]"#,
            r#""text""#,
            "null",
            "-7",
            "{}",
            "[ ]",
        ] {
            let v: Value = serde_json::from_str(raw).unwrap();
            let written = serde_json::to_string(&v).unwrap();
            assert!(!is_canonical(raw) || written == raw, "{raw} (written {written})");
        }
        // What a client usually sends is taken as it is (escapes are left to the value).
        for raw in
            [r#"{"q":"x","n":1,"deep":{"a":[true,false,null,-12,"é ☃"],"b":{"a":1}},"a":2}"#, "-7", "{}"]
        {
            assert!(is_canonical(raw), "{raw}");
        }
        assert!(!is_canonical(r#"{"q":"a\"b"}"#));
    }

    #[test]
    fn a_plain_call_is_forwarded_as_the_general_path_would() {
        for body in [
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"gh__search","arguments":{"q":"x"}}}"#,
            r#" { "params" : { "arguments" : null , "name" : "gh__search" , "extra" : [1] } , "id" : "a\"b", "method":"tools/call","jsonrpc":"2.0", "more": {} } "#,
            r#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"tools/call","params":{"name":"gh__search"}}"#,
        ] {
            let v = ToolCallRequest::parse(body.as_bytes()).unwrap_or_else(|| panic!("{body}"));
            assert_eq!(v.name, "gh__search");
            let sent: Value = serde_json::from_slice(&v.forward_body("search")).unwrap();
            let mut want = general_forward(body, "search");
            // The general path drops unknown top-level fields too.
            want.as_object_mut().unwrap().retain(|k, _| k != "more");
            assert_eq!(sent, want, "{body}");
            assert_eq!(v.params_value(), serde_json::from_str::<Value>(body).unwrap().get("params").cloned());
        }
        let v = ToolCallRequest::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__b","arguments":null}}"#,
        )
        .unwrap();
        assert_eq!(v.arguments.map(RawValue::get), Some("null"), "an explicit null is kept");
    }

    #[test]
    fn anything_else_is_left_to_the_general_path() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"a__b"}}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"a__b"}}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"a__b"}}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"a__b"}}"#,
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a__b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["a__b"]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":3}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\u005f_b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__b","name":"c__d"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__b","_meta":{}}}"#,
            r#"["2.0",1,"tools/call",{"name":"a__b"}]"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__b"}}]"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__b"}"#,
        ] {
            assert!(ToolCallRequest::parse(body.as_bytes()).is_none(), "{body}");
        }
    }

    /// What the general path answers for a backend's JSON body.
    fn general_answer(body: &str, stateless: bool) -> Value {
        let m = rewrite_from_backend("p", Message::from_value(serde_json::from_str(body).unwrap()).unwrap());
        let mut v = m.to_value();
        if stateless {
            v["result"].as_object_mut().unwrap().entry("resultType").or_insert("complete".into());
        }
        v
    }

    #[test]
    fn a_result_goes_to_the_client_as_sent() {
        for body in [
            r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"hi \u00e9"}],"isError":false}}"#,
            r#"{ "result" : { "content" : [ ] ,"isError":false } , "id" : "x" , "jsonrpc" : "2.0" , "extra": 1 }"#,
            r#"{"jsonrpc":"2.0","id":3,"result":{"isError":true,"resultType":"complete"}}"#,
        ] {
            let r = RawResponse::parse(body.as_bytes().to_vec()).unwrap_or_else(|_| panic!("{body}"));
            for stateless in [false, true] {
                let out: Value = serde_json::from_slice(&r.client_body(stateless)).unwrap();
                assert_eq!(out, general_answer(body, stateless), "{body}");
                let keys: Vec<_> = out["result"].as_object().unwrap().keys().cloned().collect();
                let want = general_answer(body, stateless);
                let want_keys: Vec<_> = want["result"].as_object().unwrap().keys().cloned().collect();
                assert_eq!(keys, want_keys, "same order");
            }
            assert_eq!(r.to_message().to_value(), general_answer(body, false));
        }
        let r =
            RawResponse::parse(br#"{"jsonrpc":"2.0","id":1,"result":{"isError":true}}"#.to_vec()).unwrap();
        assert!(r.is_error);
        let r =
            RawResponse::parse(br#"{"jsonrpc":"2.0","id":1,"result":{"isError":"true"}}"#.to_vec()).unwrap();
        assert!(!r.is_error, "only the boolean counts, as in the general path");
        let body = r#"{"jsonrpc":"2.0","id":1,"result":{"a":[1, 2]}}"#;
        let r = RawResponse::parse(body.as_bytes().to_vec()).unwrap();
        assert_eq!(r.client_body(false), body.as_bytes(), "byte for byte");
        assert_eq!(json!({"x": 1}), json!({"x": 1}));
    }

    #[test]
    fn other_answers_are_left_to_the_general_path() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"no"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":-1,"message":"no"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"contents":[{"uri":"file:///a"}]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":"text"}"#,
            r#"{"jsonrpc":"2.0","id":null,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"params":{},"result":{}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#,
            r#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#,
            r#"{"id":1,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"isError":true,"isError":false}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"is\u0045rror":true}}"#,
        ] {
            assert!(RawResponse::parse(body.as_bytes().to_vec()).is_err(), "{body}");
        }
    }
}
