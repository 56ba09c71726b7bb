//! The agent gateway's one-pass views of A2A calls and answers (`agent::view`): never a panic;
//! a call is read only when it is JSON (UTF-8 included) and what the view reads agrees with the
//! document (`serde_json::Value`) of the same bytes; a call is refused rather than read when a
//! field the gateway checks is named twice; an answer fails only when it is not JSON.
#![no_main]

use cairn::gateway::agent::method::Method;
use cairn::gateway::agent::view::{ParamsField, RequestError, answer_facts, request, rest_params};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::Value;

const METHODS: [Method; 11] = [
    Method::SendMessage,
    Method::SendStreamingMessage,
    Method::GetTask,
    Method::ListTasks,
    Method::CancelTask,
    Method::SubscribeToTask,
    Method::CreatePushConfig,
    Method::GetPushConfig,
    Method::ListPushConfigs,
    Method::DeletePushConfig,
    Method::GetExtendedAgentCard,
];

fuzz_target!(|data: &[u8]| {
    // JSON is UTF-8 text in JSON's grammar; a document (`Value`) is also refused for escapes a
    // Rust string cannot hold (lone surrogates), so it is compared only when there is one.
    let syntax = serde_json::from_slice::<IgnoredAny>(data).is_ok();
    let is_json = std::str::from_utf8(data).is_ok() && syntax;
    let doc: Option<Value> = serde_json::from_slice(data).ok();
    match request(data) {
        Ok(mut env) => {
            assert!(is_json, "a request the view read is JSON");
            assert!(data.trim_ascii_start().starts_with(b"{"));
            if let Some(v) = &doc {
                assert_eq!(env.id.as_ref(), v.get("id").filter(|i| !i.is_null()));
                assert_eq!(env.version_ok(), v.get("jsonrpc").and_then(Value::as_str) == Some("2.0"));
                assert_eq!(env.method().as_deref(), v.get("method").and_then(Value::as_str));
                match std::mem::take(&mut env.params) {
                    ParamsField::Object(p) => {
                        assert!(v["params"].is_object());
                        let facts = p.facts(Method::SendMessage);
                        let m = &v["params"]["message"];
                        assert_eq!(facts.message_is_object, m.is_object());
                        assert_eq!(facts.message_task_id.as_deref(), m.get("taskId").and_then(Value::as_str));
                    }
                    ParamsField::Null => assert!(v["params"].is_null() && v.get("params").is_some()),
                    ParamsField::Absent => assert!(v.get("params").is_none()),
                    ParamsField::Other => assert!(!v["params"].is_object() && !v["params"].is_null()),
                }
            }
        }
        Err(RequestError::Parse(_)) => assert!(!is_json, "valid JSON read as a parse error"),
        Err(RequestError::NotAnObject { batch }) => {
            assert!(is_json);
            if let Some(v) = &doc {
                assert!(!v.is_object());
                assert_eq!(batch, v.is_array());
            }
        }
        Err(RequestError::Envelope(_) | RequestError::Params(..)) => assert!(is_json),
    }
    // A REST body reaches the view only when it is UTF-8 (checked first, as for requests).
    if std::str::from_utf8(data).is_ok() && rest_params(data).is_ok() {
        assert!(is_json && data.trim_ascii_start().starts_with(b"{"), "REST params are a JSON object");
        for m in METHODS {
            let facts = rest_params(data).expect("the same bytes read the same").facts(m);
            let Some(v) = &doc else { continue };
            if m == Method::CreatePushConfig
                && let Some(url) = v.get("url").and_then(Value::as_str)
            {
                assert!(facts.webhook_urls.iter().any(|u| u == url), "the webhook {url:?} is checked");
            }
            if matches!(m, Method::GetTask | Method::CancelTask | Method::SubscribeToTask) {
                assert_eq!(facts.task_id.as_deref(), v.get("id").and_then(Value::as_str));
            }
        }
    }
    // (Bytes that are not UTF-8 are not JSON either: an answer with them may or may not read.)
    if std::str::from_utf8(data).is_ok() {
        for rpc in [false, true] {
            assert_eq!(answer_facts(rpc, data).is_ok(), is_json, "an answer fails only when it is not JSON");
        }
    }
});
