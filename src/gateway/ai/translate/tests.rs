//! Golden tests of the translations, one or more per row of the mapping table in
//! [`super`] and per lossy conversion it lists. Over 600 lines because the mapping is: kept in
//! one file so that the table and its tests read side by side.

use super::*;
use crate::gateway::ai::usage::{Usage, from_anthropic_usage, from_openai_usage};
use crate::gateway::sse::SseEvent;
use serde_json::{Value, json};

fn parse(events: &[SseEvent]) -> Vec<(Option<String>, Value)> {
    events
        .iter()
        .map(|e| {
            (
                e.event.clone(),
                if e.is_done() { json!("[DONE]") } else { serde_json::from_str(&e.data).unwrap() },
            )
        })
        .collect()
}

#[test]
fn chat_request_to_messages_golden() {
    let req = json!({
        "model": "claude-haiku-4-5",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
            ]},
            {"role": "assistant", "content": "Let me check the weather.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
            {"role": "user", "content": "Thanks"}
        ],
        "max_completion_tokens": 300,
        "temperature": 1.7,
        "top_p": 0.9,
        "stop": "END",
        "stream": true,
        "stream_options": {"include_usage": true},
        "user": "u-42",
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "get_time"}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "seed": 7,
        "top_k": 5
    });
    let got = chat_to_messages_request(&req).unwrap();
    let want = json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 300,
        "system": "You are terse.\n\nAnswer in French.",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check the weather."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "noon"},
                {"type": "text", "text": "Thanks"}
            ]}
        ],
        "temperature": 1.0,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "stream": true,
        "tools": [
            {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, "description": "Weather by city"},
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "metadata": {"user_id": "u-42"},
        "top_k": 5
    });
    assert_eq!(got, want);
}

#[test]
fn chat_request_defaults_and_cache_control() {
    let req = json!({"model": "m", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "big doc", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "hi"}]});
    let got = chat_to_messages_request(&req).unwrap();
    assert_eq!(got["max_tokens"], json!(DEFAULT_MAX_TOKENS));
    assert_eq!(
        got["system"],
        json!([{"type": "text", "text": "big doc", "cache_control": {"type": "ephemeral"}}])
    );
    assert_eq!(got["messages"], json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}]));
    assert!(got.get("tool_choice").is_none());
    // max_tokens is honoured when max_completion_tokens is absent.
    let got = chat_to_messages_request(&json!({"model": "m", "max_tokens": 5, "messages": []})).unwrap();
    assert_eq!(got["max_tokens"], json!(5));
}

#[test]
fn chat_tool_choice_variants() {
    let base = |tc: Value| {
        json!({"model": "m", "messages": [], "tool_choice": tc,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]})
    };
    let tc = |v: Value| chat_to_messages_request(&base(v)).unwrap()["tool_choice"].clone();
    assert_eq!(tc(json!("auto")), json!({"type": "auto"}));
    assert_eq!(tc(json!("none")), json!({"type": "none"}));
    assert_eq!(
        tc(json!({"type": "function", "function": {"name": "f"}})),
        json!({"type": "tool", "name": "f"})
    );
    // parallel_tool_calls=false without tool_choice implies auto.
    let mut r = base(Value::Null);
    r["parallel_tool_calls"] = json!(false);
    assert_eq!(
        chat_to_messages_request(&r).unwrap()["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
}

#[test]
fn chat_request_refusals() {
    let e = chat_to_messages_request(&json!({"model": "m", "n": 2, "messages": []})).unwrap_err();
    assert_eq!(e.to_string(), "n > 1 is not supported by this model's provider API (Anthropic Messages)");
    let e = chat_to_messages_request(&json!({"messages": []})).unwrap_err();
    assert_eq!(e, TranslateError::Invalid("missing `model`".into()));
    let bad_args = json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{not json"}}]}]});
    assert!(matches!(chat_to_messages_request(&bad_args), Err(TranslateError::Invalid(_))));
    let audio = json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]});
    assert!(matches!(chat_to_messages_request(&audio), Err(TranslateError::Unsupported { .. })));
    let tool = json!({"model": "m", "messages": [], "tools": [{"type": "web_search"}]});
    assert!(matches!(chat_to_messages_request(&tool), Err(TranslateError::Unsupported { .. })));
    let ftp = json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]});
    assert!(matches!(chat_to_messages_request(&ftp), Err(TranslateError::Unsupported { .. })));
    assert!(chat_to_messages_request(&json!([1])).is_err());
    assert!(chat_to_messages_request(&json!({"model": "m", "messages": [{"content": "x"}]})).is_err());
    assert!(
        chat_to_messages_request(&json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}))
            .is_err()
    );
}

#[test]
fn chat_file_part_becomes_document_and_reasoning_effort_thinking() {
    let req = json!({"model": "m", "max_tokens": 100, "temperature": 0.5, "top_p": 0.5, "top_k": 3, "reasoning_effort": "medium", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}}]}]});
    let got = chat_to_messages_request(&req).unwrap();
    assert_eq!(
        got["messages"][0]["content"][0],
        json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}, "title": "a.pdf"})
    );
    assert_eq!(got["thinking"], json!({"type": "enabled", "budget_tokens": 4096}));
    assert_eq!(got["max_tokens"], json!(4096 + DEFAULT_MAX_TOKENS));
    assert!(got.get("temperature").is_none());
    assert!(got.get("top_p").is_none());
    assert!(got.get("top_k").is_none());
    // OpenAI's service_tier values mean something else to Anthropic: not passed.
    let got =
        chat_to_messages_request(&json!({"model": "m", "messages": [], "service_tier": "flex"})).unwrap();
    assert!(got.get("service_tier").is_none());
}

#[test]
fn cache_control_is_dropped_towards_openai() {
    let req = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "long doc", "cache_control": {"type": "ephemeral"}}]}]});
    assert_eq!(
        messages_to_chat_request(&req).unwrap()["messages"],
        json!([{"role": "user", "content": "long doc"}])
    );
}

#[test]
fn messages_request_to_chat_golden() {
    let req = json!({
        "model": "gpt-4o-mini",
        "max_tokens": 256,
        "system": [{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Use metric units."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "-3C"}], "is_error": false},
                {"type": "text", "text": "And tomorrow?"}
            ]},
            {"role": "assistant", "content": "Probably colder."}
        ],
        "temperature": 0.2,
        "top_p": 0.8,
        "top_k": 40,
        "stop_sequences": ["\n\nHuman:"],
        "stream": true,
        "metadata": {"user_id": "u-1"},
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
        "thinking": {"type": "enabled", "budget_tokens": 1024}
    });
    let got = messages_to_chat_request(&req).unwrap();
    let want = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be terse.\nUse metric units."},
            {"role": "user", "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}
            ]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "-3C"},
            {"role": "user", "content": "And tomorrow?"},
            {"role": "assistant", "content": "Probably colder."}
        ],
        "max_tokens": 256,
        "temperature": 0.2,
        "top_p": 0.8,
        "stop": ["\n\nHuman:"],
        "stream": true,
        "stream_options": {"include_usage": true},
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "description": "Weather"}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false,
        "user": "u-1"
    });
    assert_eq!(got, want);
}

#[test]
fn messages_request_details() {
    // Reasoning models get max_completion_tokens.
    let got = messages_to_chat_request(
        &json!({"model": "o3-mini", "max_tokens": 9, "messages": [{"role": "user", "content": "x"}]}),
    )
    .unwrap();
    assert_eq!(got["max_completion_tokens"], json!(9));
    assert!(got.get("max_tokens").is_none());
    // tool_choice any → required; tool-only assistant turn has null content.
    let req = json!({"model": "m", "max_tokens": 1, "tool_choice": {"type": "any"},
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]});
    let got = messages_to_chat_request(&req).unwrap();
    assert_eq!(got["tool_choice"], json!("required"));
    assert_eq!(
        got["messages"][0],
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})
    );
    // Server tools and file images are refused.
    let req = json!({"model": "m", "max_tokens": 1, "messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]});
    assert!(matches!(messages_to_chat_request(&req), Err(TranslateError::Unsupported { .. })));
    let req = json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]});
    assert!(matches!(messages_to_chat_request(&req), Err(TranslateError::Unsupported { .. })));
    // A PDF document becomes a file part.
    let req = json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVB"}}]}]});
    assert_eq!(
        messages_to_chat_request(&req).unwrap()["messages"][0]["content"],
        json!([{"type": "file", "file": {"file_data": "data:application/pdf;base64,JVB"}}])
    );
}

#[test]
fn round_trip_chat_messages_chat_keeps_the_conversation() {
    let chat = json!({"model": "m", "max_tokens": 10, "messages": [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "R"}
    ]});
    let back = messages_to_chat_request(&chat_to_messages_request(&chat).unwrap()).unwrap();
    assert_eq!(back["messages"], chat["messages"]);
}

#[test]
fn anthropic_response_to_chat_golden() {
    let resp = json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [
            {"type": "thinking", "thinking": "Let me think", "signature": "x"},
            {"type": "text", "text": "Calling a tool."},
            {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Rome"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 12, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 100, "output_tokens": 30}
    });
    let want = json!({
        "id": "msg_01", "object": "chat.completion", "created": 1700000000u64, "model": "claude-haiku-4-5",
        "choices": [{"index": 0, "message": {
            "role": "assistant", "content": "Calling a tool.", "refusal": null,
            "tool_calls": [{"id": "toolu_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}],
            "reasoning_content": "Let me think"
        }, "logprobs": null, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 115, "completion_tokens": 30, "total_tokens": 145, "prompt_tokens_details": {"cached_tokens": 100}}
    });
    assert_eq!(messages_to_chat_response(&resp, 1_700_000_000), want);
}

#[test]
fn chat_response_to_anthropic_golden() {
    let resp = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Here.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":[1,2]}"}}]}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57, "prompt_tokens_details": {"cached_tokens": 20}}
    });
    let want = json!({
        "id": "chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-4o-mini",
        "content": [{"type": "text", "text": "Here."}, {"type": "tool_use", "id": "call_1", "name": "f", "input": {"x": [1, 2]}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 30, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 20, "output_tokens": 7}
    });
    assert_eq!(chat_to_messages_response(&resp), want);
}

#[test]
fn stop_reason_maps_both_ways() {
    for (a, o) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ] {
        assert_eq!(anthropic_stop_to_openai(a), o, "{a}");
    }
    for (o, a) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
    ] {
        assert_eq!(openai_finish_to_anthropic(o), a, "{o}");
    }
}

#[test]
fn errors_translate_both_ways() {
    let ant = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    assert_eq!(
        anthropic_error_to_openai(529, ant),
        (
            503,
            json!({"error": {"message": "Overloaded", "type": "server_error", "param": null, "code": "overloaded_error"}})
        )
    );
    let ant = br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;
    assert_eq!(anthropic_error_to_openai(429, ant).1["error"]["type"], json!("rate_limit_error"));
    let oai = br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
    assert_eq!(
        openai_error_to_anthropic(401, oai),
        (
            401,
            json!({"type": "error", "error": {"type": "authentication_error", "message": "Incorrect API key provided"}})
        )
    );
    for (status, t) in [
        (400, "invalid_request_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ] {
        assert_eq!(anthropic_error(status, "m")["error"]["type"], json!(t), "{status}");
        assert_eq!(status_of_anthropic_type(t) / 100, status / 100, "{t}");
    }
    assert_eq!(
        openai_error(404, "no such model", Some("model_not_found")),
        json!({"error": {"message": "no such model", "type": "invalid_request_error", "param": null, "code": "model_not_found"}})
    );
    // Messages from other shapes.
    assert_eq!(error_message(br#"[{"error":{"code":400,"message":"gemini says no"}}]"#), "gemini says no");
    assert_eq!(error_message(br#"{"detail":"vllm says no"}"#), "vllm says no");
    assert_eq!(error_message(br#"{"error":"plain"}"#), "plain");
    assert_eq!(error_message(b"<html>Bad Gateway</html>"), "<html>Bad Gateway</html>");
    assert_eq!(error_message(b""), "upstream returned an empty error body");
    assert_eq!(error_message("é".repeat(400).as_bytes()).len(), 500);
}

fn anthropic_stream() -> Vec<(&'static str, Value)> {
    vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 4, "output_tokens": 1}}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
        ),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
        ),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 20}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]
}

#[test]
fn anthropic_stream_to_openai_chunks_golden() {
    let mut t = MessagesToChatStream::new("requested", 1234, true);
    let mut out = Vec::new();
    for (name, data) in anthropic_stream() {
        out.extend(t.on_event(Some(name), &data.to_string()));
    }
    assert!(t.is_done());
    let c = |delta: Value, finish: Value| {
        (
            None,
            json!({"id": "msg_1", "object": "chat.completion.chunk", "created": 1234, "model": "claude-haiku-4-5",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}),
        )
    };
    let want = vec![
        c(json!({"role": "assistant", "content": ""}), Value::Null),
        c(json!({"content": "Hel"}), Value::Null),
        c(json!({"content": "lo"}), Value::Null),
        c(
            json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        ),
        c(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}), Value::Null),
        c(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}), Value::Null),
        c(json!({}), json!("tool_calls")),
        (
            None,
            json!({"id": "msg_1", "object": "chat.completion.chunk", "created": 1234, "model": "claude-haiku-4-5", "choices": [],
            "usage": {"prompt_tokens": 14, "completion_tokens": 20, "total_tokens": 34, "prompt_tokens_details": {"cached_tokens": 4}}}),
        ),
        (None, json!("[DONE]")),
    ];
    assert_eq!(parse(&out), want);
    assert_eq!(t.usage(), Usage { input: 14, cached_input: 4, output: 20, estimated: false });
    // Nothing after the end.
    assert!(t.on_event(Some("message_stop"), "{}").is_empty());
}

#[test]
fn anthropic_stream_without_include_usage_hides_usage_and_handles_errors() {
    let mut t = MessagesToChatStream::new("m", 1, false);
    let mut out = Vec::new();
    for (name, data) in anthropic_stream() {
        out.extend(t.on_event(Some(name), &data.to_string()));
    }
    let parsed = parse(&out);
    assert_eq!(parsed.len(), 8);
    assert!(parsed.iter().all(|(_, v)| v.get("usage").is_none()));
    assert_eq!(t.usage().output, 20);

    let mut t = MessagesToChatStream::new("m", 1, true);
    t.on_event(None, &anthropic_stream()[0].1.to_string());
    let out = t.on_event(
        Some("error"),
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    );
    assert_eq!(
        parse(&out),
        vec![(
            None,
            json!({"error": {"message": "Overloaded", "type": "server_error", "param": null, "code": "overloaded_error"}})
        )]
    );
    assert!(t.is_done());
    assert!(t.on_event(None, "not json").is_empty());
}

fn openai_stream() -> Vec<Value> {
    let c = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 5, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": null})
    };
    vec![
        c(json!({"role": "assistant", "content": ""}), Value::Null),
        c(json!({"content": "Hi"}), Value::Null),
        c(json!({"content": " there"}), Value::Null),
        c(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
            Value::Null,
        ),
        c(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}), Value::Null),
        c(json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}), Value::Null),
        c(
            json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}),
            Value::Null,
        ),
        c(json!({}), json!("tool_calls")),
        json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 5, "model": "gpt-4o-mini", "choices": [],
            "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52, "prompt_tokens_details": {"cached_tokens": 8}}}),
    ]
}

#[test]
fn openai_stream_to_anthropic_events_golden() {
    let mut t = ChatToMessagesStream::new("gpt-4o-mini", 37);
    let mut out = Vec::new();
    for chunk in openai_stream() {
        out.extend(t.on_data(&chunk.to_string()));
    }
    out.extend(t.on_data("[DONE]"));
    assert!(t.is_done());
    let e = |name: &str, v: Value| (Some(name.to_owned()), v);
    let want = vec![
        e(
            "message_start",
            json!({"type": "message_start", "message": {"id": "chatcmpl-9", "type": "message", "role": "assistant", "model": "gpt-4o-mini", "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 37, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}}}),
        ),
        e(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        e(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ),
        e(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " there"}}),
        ),
        e("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        e(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "call_a", "name": "f", "input": {}}}),
        ),
        e(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
        ),
        e(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
        ),
        e("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
        e(
            "content_block_start",
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "call_b", "name": "g", "input": {}}}),
        ),
        e(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        ),
        e("content_block_stop", json!({"type": "content_block_stop", "index": 2})),
        e(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"input_tokens": 32, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 8, "output_tokens": 12}}),
        ),
        e("message_stop", json!({"type": "message_stop"})),
    ];
    assert_eq!(parse(&out), want);
    assert_eq!(t.usage(), Some(Usage { input: 40, cached_input: 8, output: 12, estimated: false }));
    assert!(t.finish().is_empty());
}

#[test]
fn openai_stream_broken_or_without_done() {
    // Finish reason seen but no [DONE]: closed normally at finish().
    let mut t = ChatToMessagesStream::new("m", 0);
    for chunk in &openai_stream()[..8] {
        t.on_data(&chunk.to_string());
    }
    let tail = parse(&t.finish());
    assert_eq!(tail.last().unwrap().0.as_deref(), Some("message_stop"));
    assert_eq!(tail[tail.len() - 2].1["usage"], json!({"output_tokens": 0, "input_tokens": 0}));
    // Broken mid-way: an error event.
    let mut t = ChatToMessagesStream::new("m", 0);
    t.on_data(&openai_stream()[1].to_string());
    let tail = parse(&t.finish());
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].0.as_deref(), Some("error"));
    assert_eq!(tail[0].1["error"]["type"], json!("api_error"));
    // An upstream error object mid-stream.
    let mut t = ChatToMessagesStream::new("m", 0);
    let out = parse(&t.on_data(r#"{"error":{"message":"boom","type":"server_error"}}"#));
    assert_eq!(
        out,
        vec![(
            Some("error".into()),
            json!({"type": "error", "error": {"type": "api_error", "message": "boom"}})
        )]
    );
    assert!(t.on_data("[DONE]").is_empty());
}

#[test]
fn usage_maps_both_ways() {
    let u = Usage { input: 100, cached_input: 30, output: 5, estimated: false };
    assert_eq!(from_openai_usage(&usage_to_openai(&u)), Some(u));
    assert_eq!(from_anthropic_usage(&usage_to_anthropic(&u)), Some(u));
    assert_eq!(usage_to_anthropic(&u)["input_tokens"], json!(70));
}

/// Arbitrary JSON built from the keys and values the translators look at: no input may panic.
#[test]
fn no_panic_on_arbitrary_input() {
    const KEYS: &[&str] = &[
        "model",
        "messages",
        "role",
        "content",
        "type",
        "text",
        "tool_calls",
        "function",
        "arguments",
        "name",
        "id",
        "tools",
        "tool_choice",
        "image_url",
        "url",
        "source",
        "data",
        "media_type",
        "file",
        "file_data",
        "system",
        "input",
        "parallel_tool_calls",
        "stop",
        "max_tokens",
        "temperature",
        "tool_use_id",
        "tool_call_id",
        "choices",
        "message",
        "delta",
        "usage",
        "index",
        "content_block",
        "partial_json",
        "stop_reason",
        "finish_reason",
        "error",
        "reasoning_effort",
        "metadata",
        "user",
        "stream",
        "n",
        "refusal",
        "thinking",
    ];
    const STRS: &[&str] = &[
        "user",
        "assistant",
        "system",
        "tool",
        "developer",
        "text",
        "image_url",
        "image",
        "tool_use",
        "tool_result",
        "function",
        "auto",
        "none",
        "required",
        "any",
        "tool",
        "data:image/png;base64,AA",
        "https://x",
        "{",
        "{}",
        "base64",
        "url",
        "file",
        "document",
        "message_start",
        "content_block_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
        "error",
        "text_delta",
        "input_json_delta",
        "[DONE]",
        "",
        "é",
        "medium",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    fn arbitrary(depth: u32, next: &mut dyn FnMut(u64) -> u64) -> Value {
        match if depth == 0 { next(4) } else { next(7) } {
            0 => Value::Null,
            1 => json!(next(3) == 0),
            2 => json!(next(5) as i64 - 1),
            3 => json!(STRS[next(STRS.len() as u64) as usize]),
            4 | 5 => {
                let mut m = serde_json::Map::new();
                for _ in 0..next(5) {
                    m.insert(KEYS[next(KEYS.len() as u64) as usize].to_owned(), arbitrary(depth - 1, next));
                }
                Value::Object(m)
            }
            _ => Value::Array((0..next(4)).map(|_| arbitrary(depth - 1, next)).collect()),
        }
    }
    for _ in 0..3000 {
        let v = arbitrary(5, &mut next);
        let _ = chat_to_messages_request(&v);
        let _ = messages_to_chat_request(&v);
        let _ = messages_to_chat_response(&v, 0);
        let _ = chat_to_messages_response(&v);
        let s = v.to_string();
        let _ = anthropic_error_to_openai(500, s.as_bytes());
        let _ = openai_error_to_anthropic(500, s.as_bytes());
        let mut a = MessagesToChatStream::new("m", 0, true);
        let mut b = ChatToMessagesStream::new("m", 0);
        let ev = v.get("type").and_then(Value::as_str);
        let _ = a.on_event(ev, &s);
        let _ = b.on_data(&s);
        let _ = b.finish();
    }
}
