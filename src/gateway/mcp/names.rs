//! How the gateway names what its servers offer, and rewrites what a backend sends towards the
//! client: resource URIs get the server's prefix (`prefix+uri`; tools and prompts are
//! `prefix__name`, [`crate::policy::client_tool_name`]), and a backend's requests to the client
//! get ids that say which server they came from, so the client's answer is routed back.

use crate::gateway::jsonrpc::Message;
use serde_json::Value;

/// Separator between a server prefix and a resource URI.
pub const URI_SEPARATOR: char = '+';

/// The URI clients see for `uri` of a server with `prefix`: `prefix+uri`, or `uri` unchanged when
/// the prefix is empty.
pub fn client_uri(prefix: &str, uri: &str) -> String {
    if prefix.is_empty() { uri.to_string() } else { format!("{prefix}{URI_SEPARATOR}{uri}") }
}

/// The id a backend's request to the client gets: `cairn:<prefix>:<original id as JSON>`.
pub fn relayed_id(prefix: &str, id: &Value) -> Value {
    Value::from(format!("cairn:{prefix}:{id}"))
}

/// The server prefix and original id of a relayed request id.
pub fn parse_relayed_id(id: &str) -> Option<(&str, Value)> {
    let rest = id.strip_prefix("cairn:")?;
    let (prefix, orig) = rest.split_once(':')?;
    Some((prefix, serde_json::from_str(orig).ok()?))
}

/// Rewrites what a backend sends towards the client: its requests get routable ids, resource
/// URIs get the server prefix.
pub fn rewrite_from_backend(prefix: &str, m: Message) -> Message {
    match m {
        Message::Request(mut r) => {
            r.id = relayed_id(prefix, &r.id);
            Message::Request(r)
        }
        Message::Notification(mut n) => {
            if n.method == "notifications/resources/updated"
                && let Some(uri) = n.params.as_ref().and_then(|p| p.get("uri")).and_then(Value::as_str)
            {
                let u = client_uri(prefix, uri);
                n.params.as_mut().expect("params")["uri"] = u.into();
            }
            if n.method == "notifications/cancelled"
                && let Some(id) = n.params.as_ref().and_then(|p| p.get("requestId")).cloned()
            {
                n.params.as_mut().expect("params")["requestId"] = relayed_id(prefix, &id);
            }
            Message::Notification(n)
        }
        Message::Response(mut r) => {
            if let Ok(v) = &mut r.outcome
                && let Some(contents) = v.get_mut("contents").and_then(Value::as_array_mut)
            {
                for c in contents {
                    if let Some(uri) = c.get("uri").and_then(Value::as_str) {
                        let u = client_uri(prefix, uri);
                        c["uri"] = u.into();
                    }
                }
            }
            Message::Response(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::jsonrpc::{Request, Response};
    use serde_json::json;

    #[test]
    fn relayed_ids_round_trip() {
        for id in [json!(3), json!("abc"), json!("a:b")] {
            let r = relayed_id("gh", &id);
            assert_eq!(parse_relayed_id(r.as_str().unwrap()), Some(("gh", id)));
        }
        assert_eq!(parse_relayed_id("other"), None);
    }

    #[test]
    fn rewrites_uris_and_requests() {
        let m = rewrite_from_backend(
            "fs",
            Message::Response(Response {
                id: json!(1),
                outcome: Ok(json!({"contents": [{"uri": "file:///a", "text": "x"}]})),
            }),
        );
        let Message::Response(r) = m else { panic!() };
        assert_eq!(r.outcome.unwrap()["contents"][0]["uri"], "fs+file:///a");
        let Message::Request(q) =
            rewrite_from_backend("fs", Message::Request(Request::new(7, "roots/list", None)))
        else {
            panic!()
        };
        assert_eq!(q.id, json!("cairn:fs:7"));
    }
}
