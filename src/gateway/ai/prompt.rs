//! An AI request's body as the request path reads it: the few fields read on every request
//! (`model`, `stream`, `stream_options`) without building the document, the whole document only
//! when guardrails, the cache, a rename or a translation need it, and the received bytes passed
//! on untouched when nothing rewrites them.

use super::error::AiError;
use bytes::Bytes;
use serde_json::{Map, Value};

/// The fields of a request body read on every request; the rest is checked to be JSON and
/// skipped (the whole document is built only when something needs it).
#[derive(serde::Deserialize)]
pub(super) struct Head {
    #[serde(default)]
    pub(super) model: Option<Value>,
    #[serde(default)]
    pub(super) stream: Option<Value>,
    /// `Some(Value::Null)` for an explicit `null`, `None` when absent.
    #[serde(default, deserialize_with = "present")]
    pub(super) stream_options: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    <Value as serde::Deserialize>::deserialize(d).map(Some)
}

impl Head {
    fn of(doc: &Value) -> Head {
        Head {
            model: doc.get("model").cloned(),
            stream: doc.get("stream").cloned(),
            stream_options: doc.get("stream_options").cloned(),
        }
    }

    /// Whether the client asked for a usage chunk itself.
    fn asked_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.get("include_usage")).and_then(Value::as_bool)
            == Some(true)
    }
}

/// A request body while the request is admitted: as received, its head, and the whole document
/// once guardrails or the cache needed it.
pub(super) struct Prompt {
    /// As received; `None` once guardrails changed the document.
    pub(super) original: Option<Bytes>,
    pub(super) head: Head,
    pub(super) doc: Option<Value>,
}

impl Prompt {
    /// Reads the head; a body that is not a JSON object is refused in the caller's format.
    pub(super) fn parse(bytes: Bytes) -> Result<Prompt, AiError> {
        // (A struct would also read a JSON array, field by field: only an object gets this far.)
        let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        match serde_json::from_slice::<Head>(&bytes).ok().filter(|_| object) {
            Some(head) => Ok(Prompt { original: Some(bytes), head, doc: None }),
            // Not an object, or a repeated key: the document decides (its error is the one the
            // client gets; a repeated key counts last, as in the document).
            None => {
                let doc: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|e| {
                    AiError::BadRequest(format!("We could not parse the JSON body of your request: {e}"))
                })?;
                let doc = Value::Object(doc);
                Ok(Prompt { original: Some(bytes), head: Head::of(&doc), doc: Some(doc) })
            }
        }
    }

    pub(super) fn doc_mut(&mut self) -> &mut Value {
        let original = &self.original;
        self.doc.get_or_insert_with(|| document(original.as_deref()))
    }

    pub(super) fn into_shared(self) -> SharedPrompt {
        SharedPrompt {
            asked_usage: self.head.asked_usage(),
            stream_options_absent: self.head.stream_options.is_none(),
            original: self.original,
            doc: self.doc.map(std::sync::OnceLock::from).unwrap_or_default(),
        }
    }
}

/// The whole document of a body already read as a JSON object (an empty object otherwise).
fn document(bytes: Option<&[u8]>) -> Value {
    bytes.and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_else(|| Value::Object(Map::new()))
}

/// `object` (the bytes of a JSON object) with one more member before its closing brace, the rest
/// copied as it is. `None` when it does not end with `}`.
pub(super) fn with_member(object: &[u8], member: &str) -> Option<Bytes> {
    let end = object.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if object[end] != b'}' {
        return None;
    }
    // No member can end with `{`: the object is empty exactly when `{` comes right before.
    let empty =
        object[..end].iter().rposition(|b| !b.is_ascii_whitespace()).is_some_and(|i| object[i] == b'{');
    let mut out = Vec::with_capacity(object.len() + member.len() + 1);
    out.extend_from_slice(&object[..end]);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(member.as_bytes());
    out.extend_from_slice(&object[end..]);
    Some(out.into())
}

/// A request body during its attempts: the whole document is built on first use.
pub(super) struct SharedPrompt {
    /// As received, when the guardrails left it alone: sent upstream as it is when nothing needs
    /// rewriting.
    pub(super) original: Option<Bytes>,
    /// The client asked for a usage chunk (`stream_options.include_usage`).
    pub(super) asked_usage: bool,
    /// The body has no `stream_options` key at all.
    pub(super) stream_options_absent: bool,
    doc: std::sync::OnceLock<Value>,
}

impl SharedPrompt {
    pub(super) fn doc(&self) -> &Value {
        self.doc.get_or_init(|| document(self.original.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_head_is_read_without_the_document() {
        let p = Prompt::parse(Bytes::from_static(
            br#" {"messages":[{"role":"user","content":"hi"}],"model":"m","stream":true}"#,
        ))
        .unwrap();
        assert!(p.doc.is_none());
        assert_eq!(p.head.model, Some(json!("m")));
        assert_eq!(p.head.stream, Some(json!(true)));
        let shared = p.into_shared();
        assert!(!shared.asked_usage && shared.stream_options_absent);
        assert_eq!(shared.doc()["messages"][0]["content"], "hi");

        let p = Prompt::parse(Bytes::from_static(br#"{"model":"m","stream_options":null}"#)).unwrap();
        assert!(!p.into_shared().stream_options_absent, "an explicit null is not absent");
        let p =
            Prompt::parse(Bytes::from_static(br#"{"model":"m","stream_options":{"include_usage":true}}"#))
                .unwrap();
        assert!(p.into_shared().asked_usage);
    }

    #[test]
    fn only_a_json_object_is_a_request_body() {
        let message = |b: &'static [u8]| match Prompt::parse(Bytes::from_static(b)) {
            Err(e) => e.to_string(),
            Ok(_) => "accepted".into(),
        };
        assert!(message(br#"["m", true]"#).contains("could not parse the JSON body"), "{}", message(b"[]"));
        assert!(message(b"{not json").contains("could not parse the JSON body"));
        // A repeated key: the last one counts, as in the document.
        let p = Prompt::parse(Bytes::from_static(br#"{"model":"a","model":"b"}"#)).unwrap();
        assert_eq!(p.head.model, Some(json!("b")));
        assert!(p.doc.is_some());
    }

    #[test]
    fn a_member_is_appended_without_touching_the_rest() {
        let m = r#""stream_options":{"include_usage":true}"#;
        let out = with_member(br#"{"model":"m", "x":{"y":[1]}} "#, m).unwrap();
        assert_eq!(&out[..], br#"{"model":"m", "x":{"y":[1]},"stream_options":{"include_usage":true}} "#);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(&with_member(b"{ }", m).unwrap()[..], br#"{ "stream_options":{"include_usage":true}}"#);
        assert!(with_member(b"[1]", m).is_none());
    }
}
