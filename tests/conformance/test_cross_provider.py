"""Each SDK against a backend of the other API family: the gateway translates requests, responses,
stream events and errors (src/gateway/ai/translate.rs)."""

import json

import anthropic
import openai

from conftest import COMPLETION_TOKENS, KEY, PROMPT_TOKENS, STREAM_TEXT, URL, WEATHER_TOOL_SCHEMA, require_gateway

require_gateway()

OPENAI_TO_ANTHROPIC = "gpt-via-anthropic"  # OpenAI SDK, Anthropic backend (mock "anthropic")
ANTHROPIC_TO_OPENAI = "claude-via-openai"  # Anthropic SDK, OpenAI-compatible backend (mock "openai")
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]


def oai():
    return openai.OpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0, timeout=30)


def ant():
    return anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0, timeout=30)


def test_openai_sdk_over_anthropic_backend():
    r = oai().chat.completions.create(model=OPENAI_TO_ANTHROPIC, messages=MESSAGES)
    assert r.choices[0].message.content == "from anthropic"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == PROMPT_TOKENS
    assert r.usage.completion_tokens == COMPLETION_TOKENS


def test_openai_sdk_stream_over_anthropic_backend():
    chunks = list(
        oai().chat.completions.create(
            model=OPENAI_TO_ANTHROPIC, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == STREAM_TEXT
    assert chunks[-1].usage.completion_tokens == COMPLETION_TOKENS


def test_openai_sdk_tools_over_anthropic_backend():
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_TOOL_SCHEMA}}]
    r = oai().chat.completions.create(model=OPENAI_TO_ANTHROPIC, messages=MESSAGES, tools=tools)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock"}


def test_anthropic_sdk_over_openai_backend():
    m = ant().messages.create(model=ANTHROPIC_TO_OPENAI, max_tokens=64, system="Be brief.", messages=MESSAGES[1:])
    assert m.content[0].text == "from openai"
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens == PROMPT_TOKENS
    assert m.usage.output_tokens == COMPLETION_TOKENS


def test_anthropic_sdk_stream_over_openai_backend():
    with ant().messages.stream(model=ANTHROPIC_TO_OPENAI, max_tokens=64, messages=MESSAGES[1:]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == STREAM_TEXT
    assert final.usage.output_tokens == COMPLETION_TOKENS


def test_anthropic_sdk_tools_over_openai_backend():
    tools = [{"name": "get_weather", "input_schema": WEATHER_TOOL_SCHEMA}]
    with ant().messages.stream(model=ANTHROPIC_TO_OPENAI, max_tokens=64, messages=MESSAGES[1:], tools=tools) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    block = next(b for b in final.content if b.type == "tool_use")
    assert block.name == "get_weather"
    assert block.input == {"city": "mock"}


def test_openai_sdk_image_reaches_anthropic_backend_as_image_block():
    # tests/sdk_conformance.rs checks afterwards that the Anthropic mock received an image block
    # with a base64 source.
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    r = oai().chat.completions.create(
        model=OPENAI_TO_ANTHROPIC,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + pixel}},
                ],
            }
        ],
    )
    assert r.choices[0].message.content == "from anthropic"


def test_anthropic_429_surfaces_as_openai_rate_limit_error():
    try:
        oai().chat.completions.create(model="rate-limited-via-anthropic", messages=MESSAGES)
    except openai.RateLimitError as e:
        assert e.status_code == 429
        assert "mock limited says 429" in e.message
    else:
        raise AssertionError("expected RateLimitError")


def test_openai_400_surfaces_as_anthropic_bad_request():
    try:
        ant().messages.create(model="bad-request-via-openai", max_tokens=8, messages=MESSAGES[1:])
    except anthropic.BadRequestError as e:
        assert e.status_code == 400
        assert e.body["error"]["type"] == "invalid_request_error"
        assert "mock broken says 400" in e.body["error"]["message"]
    else:
        raise AssertionError("expected BadRequestError")
