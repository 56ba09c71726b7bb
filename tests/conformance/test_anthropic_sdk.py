"""The official `anthropic` SDK against Cairn's Anthropic-compatible front end (`/v1/messages`)."""

import anthropic
import pytest

from conftest import (
    require_gateway,
    ANTHROPIC_MODEL,
    BAD_REQUEST_CLAUDE,
    COMPLETION_TOKENS,
    FORBIDDEN_MODEL,
    KEY,
    MISSING_MODEL,
    PROMPT_TOKENS,
    RATE_LIMITED_CLAUDE,
    STREAM_TEXT,
    URL,
    WEATHER_TOOL_SCHEMA,
)

require_gateway()

MESSAGES = [{"role": "user", "content": "hello"}]
TOOLS = [{"name": "get_weather", "description": "Weather by city", "input_schema": WEATHER_TOOL_SCHEMA}]


def client(key=KEY):
    return anthropic.Anthropic(base_url=URL, api_key=key, max_retries=0, timeout=30)


def test_message():
    m = client().messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=MESSAGES)
    assert m.content[0].type == "text"
    assert m.content[0].text == "from anthropic"
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens == PROMPT_TOKENS
    assert m.usage.output_tokens == COMPLETION_TOKENS


def test_stream():
    with client().messages.stream(model=ANTHROPIC_MODEL, max_tokens=64, messages=MESSAGES) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == STREAM_TEXT
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == PROMPT_TOKENS
    assert final.usage.output_tokens == COMPLETION_TOKENS


def test_tool_use():
    m = client().messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=MESSAGES, tools=TOOLS)
    assert m.stop_reason == "tool_use"
    block = next(b for b in m.content if b.type == "tool_use")
    assert block.name == "get_weather"
    assert block.input == {"city": "mock"}
    follow = client().messages.create(
        model=ANTHROPIC_MODEL,
        max_tokens=64,
        tools=TOOLS,
        messages=MESSAGES
        + [
            {"role": "assistant", "content": [block.model_dump()]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}]},
        ],
    )
    assert follow.content[0].text == "from anthropic"


def test_tool_use_stream():
    with client().messages.stream(model=ANTHROPIC_MODEL, max_tokens=64, messages=MESSAGES, tools=TOOLS) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    block = next(b for b in final.content if b.type == "tool_use")
    assert block.name == "get_weather"
    assert block.input == {"city": "mock"}


def test_unknown_key_is_authentication_error():
    with pytest.raises(anthropic.AuthenticationError) as e:
        client("not-a-valid-key").messages.create(model=ANTHROPIC_MODEL, max_tokens=8, messages=MESSAGES)
    assert e.value.status_code == 401
    assert e.value.body["type"] == "error"


def test_model_not_granted_is_permission_denied():
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        client().messages.create(model=FORBIDDEN_MODEL, max_tokens=8, messages=MESSAGES)
    assert e.value.status_code == 403


def test_model_without_route_is_not_found():
    with pytest.raises(anthropic.NotFoundError) as e:
        client().messages.create(model=MISSING_MODEL, max_tokens=8, messages=MESSAGES)
    assert e.value.status_code == 404


def test_upstream_429_is_rate_limit_error():
    with pytest.raises(anthropic.RateLimitError) as e:
        client().messages.create(model=RATE_LIMITED_CLAUDE, max_tokens=8, messages=MESSAGES)
    assert e.value.status_code == 429
    assert e.value.body["error"]["type"] == "rate_limit_error"


def test_upstream_400_is_bad_request():
    with pytest.raises(anthropic.BadRequestError) as e:
        client().messages.create(model=BAD_REQUEST_CLAUDE, max_tokens=8, messages=MESSAGES)
    assert e.value.status_code == 400
    assert e.value.body["error"]["type"] == "invalid_request_error"
