"""The official `openai` SDK against Cairn's OpenAI-compatible front end."""

import json

import openai
import pytest

from conftest import (
    require_gateway,
    BAD_REQUEST_MODEL,
    COMPLETION_TOKENS,
    ANTHROPIC_MODEL,
    ECHO_MODEL,
    EMBEDDING_MODEL,
    FORBIDDEN_MODEL,
    KEY,
    MISSING_MODEL,
    OPENAI_MODEL,
    PROMPT_TOKENS,
    RATE_LIMITED_MODEL,
    STREAM_TEXT,
    URL,
    WEATHER_TOOL_SCHEMA,
)

require_gateway()

MESSAGES = [{"role": "user", "content": "hello"}]
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather by city", "parameters": WEATHER_TOOL_SCHEMA},
    }
]


def client(key=KEY):
    return openai.OpenAI(base_url=URL + "/v1", api_key=key, max_retries=0, timeout=30)


def test_chat_completion():
    r = client().chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    assert r.choices[0].message.content == "from openai"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == PROMPT_TOKENS
    assert r.usage.completion_tokens == COMPLETION_TOKENS


def test_chat_stream_without_usage_hides_the_usage_chunk():
    chunks = list(client().chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == STREAM_TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    # The gateway asks the provider for usage; a client that did not ask must not see it.
    assert all(c.choices for c in chunks)
    assert all(getattr(c, "usage", None) is None for c in chunks)


def test_chat_stream_with_usage():
    chunks = list(
        client().chat.completions.create(
            model=OPENAI_MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == STREAM_TEXT
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.prompt_tokens == PROMPT_TOKENS
    assert last.usage.completion_tokens == COMPLETION_TOKENS


def test_tool_call():
    r = client().chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, tools=TOOLS)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock"}
    # Answer the call: the mock replies with text once the conversation ends with a tool result.
    follow = client().chat.completions.create(
        model=OPENAI_MODEL,
        tools=TOOLS,
        messages=MESSAGES
        + [
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    assert follow.choices[0].message.content == "from openai"


def test_tool_call_stream():
    args, names = "", []
    finish = None
    for c in client().chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, tools=TOOLS, stream=True):
        if not c.choices:
            continue
        for tc in c.choices[0].delta.tool_calls or []:
            if tc.function and tc.function.name:
                names.append(tc.function.name)
            if tc.function and tc.function.arguments:
                args += tc.function.arguments
        finish = c.choices[0].finish_reason or finish
    assert names == ["get_weather"]
    assert json.loads(args) == {"city": "mock"}
    assert finish == "tool_calls"


def test_embeddings():
    r = client().embeddings.create(model=EMBEDDING_MODEL, input=["one", "two"])
    assert [d.index for d in r.data] == [0, 1]
    assert len(r.data[0].embedding) == 3
    assert r.usage.prompt_tokens == PROMPT_TOKENS


def test_models_lists_only_granted_models():
    ids = {m.id for m in client().models.list()}
    assert OPENAI_MODEL in ids
    assert EMBEDDING_MODEL in ids
    assert FORBIDDEN_MODEL not in ids


def test_responses_api_passes_through():
    r = client().responses.create(model=OPENAI_MODEL, input="hello")
    assert r.output_text == "from openai"
    assert r.usage.input_tokens == PROMPT_TOKENS
    events = list(client().responses.create(model=OPENAI_MODEL, input="hello", stream=True))
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == STREAM_TEXT


def test_responses_api_on_the_echo_backend():
    r = client().responses.create(model=ECHO_MODEL, input="hello there")
    assert r.status == "completed"
    assert r.output_text == "echo: hello there"
    assert r.usage.output_tokens > 0 and r.usage.input_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    r = client().responses.create(
        model=ECHO_MODEL, input=[{"role": "user", "content": [{"type": "input_text", "text": "as parts"}]}]
    )
    assert r.output_text == "echo: as parts"


def test_responses_api_stream_on_the_echo_backend():
    events = list(client().responses.create(model=ECHO_MODEL, input="hello there", stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed", types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "echo: hello there"
    assert events[-1].response.output_text == "echo: hello there"
    assert events[-1].response.usage.output_tokens > 0
    # The SDK's accumulating helper reads the same events.
    with client().responses.stream(model=ECHO_MODEL, input="streamed helper") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "echo: streamed helper"
    assert final.output_text == "echo: streamed helper"


def test_an_operation_no_backend_of_the_route_serves_is_a_400():
    # The route of ANTHROPIC_MODEL has only an Anthropic backend, which has no Responses API:
    # nothing failed upstream, so it is a client error in OpenAI's format, not a 502.
    with pytest.raises(openai.BadRequestError) as e:
        client().responses.create(model=ANTHROPIC_MODEL, input="hello")
    assert e.value.status_code == 400
    assert e.value.code == "unsupported_operation"
    assert "can serve responses requests" in e.value.message


def test_unknown_key_is_authentication_error():
    with pytest.raises(openai.AuthenticationError) as e:
        client("not-a-valid-key").chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    assert e.value.status_code == 401


def test_model_not_granted_is_permission_denied():
    with pytest.raises(openai.PermissionDeniedError) as e:
        client().chat.completions.create(model=FORBIDDEN_MODEL, messages=MESSAGES)
    assert e.value.status_code == 403


def test_model_without_route_is_not_found():
    with pytest.raises(openai.NotFoundError) as e:
        client().chat.completions.create(model=MISSING_MODEL, messages=MESSAGES)
    assert e.value.status_code == 404


def test_upstream_429_is_rate_limit_error():
    with pytest.raises(openai.RateLimitError) as e:
        client().chat.completions.create(model=RATE_LIMITED_MODEL, messages=MESSAGES)
    assert e.value.status_code == 429


def test_upstream_400_is_bad_request():
    with pytest.raises(openai.BadRequestError) as e:
        client().chat.completions.create(model=BAD_REQUEST_MODEL, messages=MESSAGES)
    assert e.value.status_code == 400


def test_missing_model_is_bad_request():
    with pytest.raises(openai.BadRequestError):
        client().chat.completions.create(model=None, messages=MESSAGES)
