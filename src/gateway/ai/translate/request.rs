//! Requests, both ways: OpenAI Chat Completions → Anthropic Messages, and back.

use super::mapping::{
    ANTHROPIC, OPENAI, TranslateError, invalid, text_of_parts, tool_use_to_call, unsupported,
};
use serde_json::{Map, Value, json};

/// `max_tokens` sent to Anthropic when an OpenAI request has none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Parses a `data:<media type>;base64,<data>` URL.
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((media, data))
}

fn copy_cache_control(from: &Value, to: &mut Value) {
    if let Some(cc) = from.get("cache_control") {
        to["cache_control"] = cc.clone();
    }
}

/// OpenAI user/assistant content → Anthropic content blocks.
fn chat_content_to_blocks(content: &Value, role: &str) -> Result<Vec<Value>, TranslateError> {
    match content {
        Value::Null => Ok(vec![]),
        Value::String(s) if s.is_empty() => Ok(vec![]),
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for p in parts {
                let ty = p.get("type").and_then(Value::as_str).unwrap_or("");
                let mut block = match ty {
                    "text" | "refusal" => {
                        let t = p.get(ty).and_then(Value::as_str).unwrap_or("");
                        if t.is_empty() {
                            continue;
                        }
                        json!({"type": "text", "text": t})
                    }
                    "image_url" => {
                        let url = p
                            .get("image_url")
                            .and_then(|i| i.get("url").or(Some(i)))
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid("image_url part without a url"))?;
                        if let Some((media, data)) = parse_data_url(url) {
                            json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
                        } else if url.starts_with("https://") || url.starts_with("http://") {
                            json!({"type": "image", "source": {"type": "url", "url": url}})
                        } else {
                            return Err(unsupported(
                                "an image URL that is neither http(s) nor a base64 data URL",
                                ANTHROPIC,
                            ));
                        }
                    }
                    "file" => {
                        let f = p.get("file").unwrap_or(&Value::Null);
                        match f.get("file_data").and_then(Value::as_str).and_then(parse_data_url) {
                            Some((media, data)) => {
                                let mut b = json!({"type": "document", "source": {"type": "base64", "media_type": media, "data": data}});
                                if let Some(name) = f.get("filename").and_then(Value::as_str) {
                                    b["title"] = json!(name);
                                }
                                b
                            }
                            None => {
                                return Err(unsupported("a file part without base64 file_data", ANTHROPIC));
                            }
                        }
                    }
                    other => {
                        return Err(unsupported(
                            format!("content part type {other:?} in a {role} message"),
                            ANTHROPIC,
                        ));
                    }
                };
                copy_cache_control(p, &mut block);
                blocks.push(block);
            }
            Ok(blocks)
        }
        _ => Err(invalid(format!("{role} message content must be a string or an array of parts"))),
    }
}

/// Translates an OpenAI Chat Completions request into an Anthropic Messages request.
pub fn chat_to_messages_request(req: &Value) -> Result<Value, TranslateError> {
    let obj = req.as_object().ok_or_else(|| invalid("request body must be a JSON object"))?;
    let model = obj.get("model").and_then(Value::as_str).ok_or_else(|| invalid("missing `model`"))?;
    let messages =
        obj.get("messages").and_then(Value::as_array).ok_or_else(|| invalid("missing `messages`"))?;
    if let Some(n) = obj.get("n").and_then(Value::as_u64)
        && n > 1
    {
        return Err(unsupported("n > 1", ANTHROPIC));
    }

    let mut system: Vec<Value> = Vec::new();
    let mut out_msgs: Vec<Value> = Vec::new();
    // Appends blocks to the last message when it has the same role (Anthropic wants alternation).
    fn push(out: &mut Vec<Value>, role: &str, mut blocks: Vec<Value>, tool_results_first: bool) {
        if blocks.is_empty() {
            return;
        }
        if let Some(last) = out.last_mut()
            && last["role"] == role
            && let Some(arr) = last["content"].as_array_mut()
        {
            if tool_results_first {
                // tool_result blocks must precede other content of the user turn.
                let at = arr.iter().take_while(|b| b["type"] == "tool_result").count();
                for (i, b) in blocks.drain(..).enumerate() {
                    arr.insert(at + i, b);
                }
            } else {
                arr.append(&mut blocks);
            }
            return;
        }
        out.push(json!({"role": role, "content": blocks}));
    }

    for (i, m) in messages.iter().enumerate() {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("messages[{i}] has no role")))?;
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => match content {
                Value::String(s) => {
                    if !s.is_empty() {
                        system.push(json!({"type": "text", "text": s}));
                    }
                }
                Value::Array(parts) => {
                    for p in parts {
                        let t = p.get("text").and_then(Value::as_str).unwrap_or("");
                        if t.is_empty() {
                            continue;
                        }
                        let mut b = json!({"type": "text", "text": t});
                        copy_cache_control(p, &mut b);
                        system.push(b);
                    }
                }
                Value::Null => {}
                _ => return Err(invalid(format!("messages[{i}].content must be a string or an array"))),
            },
            "user" => {
                let blocks = chat_content_to_blocks(content, "user")?;
                push(&mut out_msgs, "user", blocks, false);
            }
            "assistant" => {
                let mut blocks = chat_content_to_blocks(content, "assistant")?;
                if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                    for c in calls {
                        let f = c.get("function").ok_or_else(|| {
                            invalid(format!("messages[{i}].tool_calls entry without function"))
                        })?;
                        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("");
                        let input: Value = if args.trim().is_empty() {
                            json!({})
                        } else {
                            serde_json::from_str(args).map_err(|_| {
                                invalid(format!(
                                    "messages[{i}].tool_calls: function arguments are not valid JSON"
                                ))
                            })?
                        };
                        blocks.push(json!({
                            "type": "tool_use",
                            "id": c.get("id").and_then(Value::as_str).unwrap_or(""),
                            "name": f.get("name").and_then(Value::as_str).unwrap_or(""),
                            "input": input,
                        }));
                    }
                }
                push(&mut out_msgs, "assistant", blocks, false);
            }
            "tool" | "function" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("messages[{i}] (tool) has no tool_call_id")))?;
                let text = text_of_parts(content, "a tool message")?;
                let block = json!({"type": "tool_result", "tool_use_id": id, "content": text});
                push(&mut out_msgs, "user", vec![block], true);
            }
            other => return Err(invalid(format!("messages[{i}] has unknown role {other:?}"))),
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let max = obj
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| obj.get("max_tokens").and_then(Value::as_u64))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), json!(max));
    if !system.is_empty() {
        let plain = system.iter().all(|b| b.get("cache_control").is_none());
        if plain {
            let joined: Vec<&str> = system.iter().filter_map(|b| b["text"].as_str()).collect();
            out.insert("system".into(), json!(joined.join("\n\n")));
        } else {
            out.insert("system".into(), Value::Array(system));
        }
    }
    out.insert("messages".into(), Value::Array(out_msgs));
    if let Some(t) = obj.get("temperature").and_then(Value::as_f64) {
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = obj.get("top_p").filter(|v| v.is_number()) {
        out.insert("top_p".into(), p.clone());
    }
    match obj.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(s) = obj.get("stream").filter(|v| v.is_boolean()) {
        out.insert("stream".into(), s.clone());
    }
    // Tools.
    let tools_present = if let Some(tools) = obj.get("tools").and_then(Value::as_array) {
        let mut out_tools = Vec::with_capacity(tools.len());
        for t in tools {
            if t.get("type").and_then(Value::as_str).unwrap_or("function") != "function" {
                return Err(unsupported(format!("tool type {:?}", t["type"]), ANTHROPIC));
            }
            let f = t.get("function").ok_or_else(|| invalid("tool without function"))?;
            let mut nt = json!({
                "name": f.get("name").and_then(Value::as_str).ok_or_else(|| invalid("tool function without name"))?,
                "input_schema": f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
            if let Some(d) = f.get("description") {
                nt["description"] = d.clone();
            }
            copy_cache_control(t, &mut nt);
            out_tools.push(nt);
        }
        let present = !out_tools.is_empty();
        if present {
            out.insert("tools".into(), Value::Array(out_tools));
        }
        present
    } else {
        false
    };
    let mut choice = match obj.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "none" => Some(json!({"type": "none"})),
            "auto" => Some(json!({"type": "auto"})),
            "required" => Some(json!({"type": "any"})),
            other => return Err(invalid(format!("unknown tool_choice {other:?}"))),
        },
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice object without function.name"))?;
            Some(json!({"type": "tool", "name": name}))
        }
        Some(_) => return Err(invalid("tool_choice must be a string or an object")),
    };
    if obj.get("parallel_tool_calls") == Some(&Value::Bool(false)) && tools_present {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    if let Some(c) = choice
        && tools_present
    {
        out.insert("tool_choice".into(), c);
    }
    // Metadata and Anthropic-native fields.
    let mut metadata = obj.get("metadata").filter(|m| m.is_object()).cloned();
    if let Some(user) = obj.get("user").and_then(Value::as_str) {
        metadata.get_or_insert_with(|| json!({}))["user_id"] = json!(user);
    }
    if let Some(md) = metadata {
        // Anthropic accepts only user_id in metadata.
        if let Some(uid) = md.get("user_id") {
            out.insert("metadata".into(), json!({"user_id": uid}));
        }
    }
    for k in ["top_k", "thinking"] {
        if let Some(v) = obj.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if !out.contains_key("thinking")
        && let Some(effort) = obj.get("reasoning_effort").and_then(Value::as_str)
    {
        let budget = match effort {
            "minimal" | "low" => 1024,
            "medium" => 4096,
            _ => 16384,
        };
        out.insert("thinking".into(), json!({"type": "enabled", "budget_tokens": budget}));
        if max <= budget {
            out.insert("max_tokens".into(), json!(budget + DEFAULT_MAX_TOKENS));
        }
        // Anthropic refuses temperature, top_p below 0.95 and top_k with thinking.
        out.remove("temperature");
        out.remove("top_p");
        out.remove("top_k");
    }
    Ok(Value::Object(out))
}

// ------------------------------------------------------------------------------------------------
// Requests: Anthropic messages → OpenAI chat
// ------------------------------------------------------------------------------------------------

fn anthropic_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => {
            let texts: Vec<&str> = blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            texts.join("\n")
        }
        _ => String::new(),
    }
}

fn anthropic_image_to_part(block: &Value) -> Result<Value, TranslateError> {
    let src = block.get("source").ok_or_else(|| invalid("image block without source"))?;
    match src.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = src.get("media_type").and_then(Value::as_str).unwrap_or("image/png");
            let data = src.get("data").and_then(Value::as_str).unwrap_or("");
            Ok(json!({"type": "image_url", "image_url": {"url": format!("data:{media};base64,{data}")}}))
        }
        Some("url") => Ok(
            json!({"type": "image_url", "image_url": {"url": src.get("url").cloned().unwrap_or(Value::Null)}}),
        ),
        other => Err(unsupported(format!("image source {:?}", other.unwrap_or("")), OPENAI)),
    }
}

fn uses_max_completion_tokens(model: &str) -> bool {
    let m = model.rsplit('/').next().unwrap_or(model);
    m.starts_with("o1") || m.starts_with("o3") || m.starts_with("o4") || m.starts_with("gpt-5")
}

/// Translates an Anthropic Messages request into an OpenAI Chat Completions request. A streaming
/// request asks the provider for usage (`stream_options.include_usage`), which the Anthropic
/// stream needs for its final `message_delta`.
pub fn messages_to_chat_request(req: &Value) -> Result<Value, TranslateError> {
    let obj = req.as_object().ok_or_else(|| invalid("request body must be a JSON object"))?;
    let model = obj.get("model").and_then(Value::as_str).ok_or_else(|| invalid("missing `model`"))?;
    let messages =
        obj.get("messages").and_then(Value::as_array).ok_or_else(|| invalid("missing `messages`"))?;
    let mut out_msgs = Vec::with_capacity(messages.len() + 1);
    if let Some(system) = obj.get("system") {
        let text = anthropic_text(system);
        if !text.is_empty() {
            out_msgs.push(json!({"role": "system", "content": text}));
        }
    }
    for (i, m) in messages.iter().enumerate() {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("messages.{i}: missing role")))?;
        let content = m.get("content").unwrap_or(&Value::Null);
        match (role, content) {
            ("user" | "assistant", Value::String(s)) => out_msgs.push(json!({"role": role, "content": s})),
            ("user", Value::Array(blocks)) => {
                let mut parts = Vec::new();
                for b in blocks {
                    match b.get("type").and_then(Value::as_str).unwrap_or("") {
                        "text" => parts.push(
                            json!({"type": "text", "text": b.get("text").cloned().unwrap_or(json!(""))}),
                        ),
                        "image" => parts.push(anthropic_image_to_part(b)?),
                        "document" => {
                            let src = b.get("source").unwrap_or(&Value::Null);
                            match src.get("type").and_then(Value::as_str) {
                                Some("base64") => {
                                    let media = src.get("media_type").and_then(Value::as_str).unwrap_or("application/pdf");
                                    let data = src.get("data").and_then(Value::as_str).unwrap_or("");
                                    let mut file = json!({"file_data": format!("data:{media};base64,{data}")});
                                    if let Some(t) = b.get("title").and_then(Value::as_str) {
                                        file["filename"] = json!(t);
                                    }
                                    parts.push(json!({"type": "file", "file": file}));
                                }
                                Some("text") => parts.push(json!({"type": "text", "text": src.get("data").cloned().unwrap_or(json!(""))})),
                                other => return Err(unsupported(format!("document source {:?}", other.unwrap_or("")), OPENAI)),
                            }
                        }
                        "tool_result" => {
                            // OpenAI wants tool results as separate messages right after the
                            // assistant turn: flush them before the user's other parts.
                            let id = b.get("tool_use_id").and_then(Value::as_str).unwrap_or("");
                            let text = anthropic_text(b.get("content").unwrap_or(&Value::Null));
                            out_msgs.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
                        }
                        other => {
                            return Err(unsupported(
                                format!("content block {other:?} in a user message"),
                                OPENAI,
                            ));
                        }
                    }
                }
                if !parts.is_empty() {
                    if parts.len() == 1 && parts[0]["type"] == "text" {
                        out_msgs.push(json!({"role": "user", "content": parts[0]["text"].clone()}));
                    } else {
                        out_msgs.push(json!({"role": "user", "content": parts}));
                    }
                }
            }
            ("assistant", Value::Array(blocks)) => {
                let mut text = String::new();
                let mut calls = Vec::new();
                for b in blocks {
                    match b.get("type").and_then(Value::as_str).unwrap_or("") {
                        "text" => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
                        "tool_use" => calls.push(tool_use_to_call(b)),
                        "thinking" | "redacted_thinking" => {}
                        other => {
                            return Err(unsupported(
                                format!("content block {other:?} in an assistant message"),
                                OPENAI,
                            ));
                        }
                    }
                }
                let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                out_msgs.push(msg);
            }
            (r, _) => return Err(invalid(format!("messages.{i}: unsupported role {r:?} or content"))),
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(out_msgs));
    if let Some(max) = obj.get("max_tokens").filter(|v| v.is_u64()) {
        let key = if uses_max_completion_tokens(model) { "max_completion_tokens" } else { "max_tokens" };
        out.insert(key.into(), max.clone());
    }
    for k in ["temperature", "top_p"] {
        if let Some(v) = obj.get(k).filter(|v| v.is_number()) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(stops) = obj.get("stop_sequences").and_then(Value::as_array)
        && !stops.is_empty()
    {
        out.insert("stop".into(), Value::Array(stops.clone()));
    }
    if obj.get("stream") == Some(&Value::Bool(true)) {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let mut tools_present = false;
    if let Some(tools) = obj.get("tools").and_then(Value::as_array) {
        let mut out_tools = Vec::with_capacity(tools.len());
        for t in tools {
            if let Some(ty) = t.get("type").and_then(Value::as_str)
                && ty != "custom"
            {
                return Err(unsupported(format!("server tool {ty:?}"), OPENAI));
            }
            let mut f = json!({
                "name": t.get("name").and_then(Value::as_str).ok_or_else(|| invalid("tool without name"))?,
                "parameters": t.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
            if let Some(d) = t.get("description") {
                f["description"] = d.clone();
            }
            out_tools.push(json!({"type": "function", "function": f}));
        }
        tools_present = !out_tools.is_empty();
        if tools_present {
            out.insert("tools".into(), Value::Array(out_tools));
        }
    }
    if let Some(tc) = obj.get("tool_choice").filter(|_| tools_present) {
        let choice = match tc.get("type").and_then(Value::as_str) {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => {
                json!({"type": "function", "function": {"name": tc.get("name").cloned().unwrap_or(json!(""))}})
            }
            other => return Err(invalid(format!("unknown tool_choice type {:?}", other.unwrap_or("")))),
        };
        out.insert("tool_choice".into(), choice);
        if tc.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
            out.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    if let Some(uid) = obj.get("metadata").and_then(|m| m.get("user_id")).and_then(Value::as_str) {
        out.insert("user".into(), json!(uid));
    }
    Ok(Value::Object(out))
}
