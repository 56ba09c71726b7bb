//! OpenAI Chat Completions ⇄ Anthropic Messages translation of whole requests, responses and
//! errors, both ways, fed any JSON: never a panic; a translated request is a JSON object of the
//! other API with its required fields (model, messages; Anthropic's max_tokens); a request that
//! made the trip one way can be read by the way back; error bodies always come out in the
//! target's error shape.
//!
//! Input: a byte choosing the upstream status of the error bodies, then one JSON document; it is
//! tried as every kind of body.
#![no_main]

use cairn::gateway::ai::translate::{
    anthropic_error_to_openai, chat_to_messages_request, chat_to_messages_response, messages_to_chat_request,
    messages_to_chat_response, openai_error_to_anthropic,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else { return };
    let status = 400 + u16::from(first) % 200;
    let (code, e) = anthropic_error_to_openai(status, data);
    assert!((400..600).contains(&code), "{code}");
    assert!(e["error"]["message"].is_string() && e["error"]["type"].is_string(), "{e}");
    let (code, e) = openai_error_to_anthropic(status, data);
    assert!((400..600).contains(&code), "{code}");
    assert_eq!(e["type"], "error");
    assert!(e["error"]["message"].is_string() && e["error"]["type"].is_string(), "{e}");

    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    if let Ok(m) = chat_to_messages_request(&v) {
        assert_eq!(m["model"], v["model"]);
        assert!(m["messages"].is_array(), "{m}");
        assert!(m["max_tokens"].is_u64(), "Anthropic requires max_tokens: {m}");
        serde_json::to_vec(&m).expect("serialises");
        // The way back reads what this way wrote (it may refuse, never panic).
        let _ = messages_to_chat_request(&m);
    }
    if let Ok(c) = messages_to_chat_request(&v) {
        assert_eq!(c["model"], v["model"]);
        assert!(c["messages"].is_array(), "{c}");
        serde_json::to_vec(&c).expect("serialises");
        let _ = chat_to_messages_request(&c);
    }
    let chat = messages_to_chat_response(&v, 1_700_000_000);
    assert_eq!(chat["object"], "chat.completion", "{chat}");
    assert!(chat["choices"].is_array(), "{chat}");
    let back = chat_to_messages_response(&chat);
    assert_eq!(back["type"], "message", "{back}");
    let msg = chat_to_messages_response(&v);
    assert_eq!(msg["type"], "message", "{msg}");
    assert!(msg["content"].is_array(), "{msg}");
    let _ = messages_to_chat_response(&msg, 0);
});
