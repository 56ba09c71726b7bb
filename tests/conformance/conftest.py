"""Shared settings of the official-SDK conformance tests.

They drive a running Cairn AI gateway with the official `openai` and `anthropic` Python SDKs.
tests/sdk_conformance.rs starts the mock upstreams and `cairn run` with the manifests these tests
assume, then runs pytest with:

- CAIRN_GATEWAY_URL: the gateway's base URL, e.g. http://127.0.0.1:18080
- CAIRN_GATEWAY_KEY: a virtual key of an Agent the policy grants the models below
"""

import os

URL = os.environ.get("CAIRN_GATEWAY_URL", "")
KEY = os.environ.get("CAIRN_GATEWAY_KEY", "")

# What the manifests written by tests/sdk_conformance.rs route, and what the mock upstream answers
# (tests/support/mock_llm.rs): text "from <mock name>", streams of "tok0 " .. "tok3 ", usage of
# 11 prompt and 7 completion tokens, a tool call whose arguments give every schema property a
# placeholder ("mock" for strings).
OPENAI_MODEL = "gpt-4o-mini"  # OpenAI-compatible backend, mock "openai"
ANTHROPIC_MODEL = "claude-haiku-4-5"  # Anthropic backend, mock "anthropic"
EMBEDDING_MODEL = "text-embedding-3-small"  # OpenAI-compatible backend, mock "openai"
FORBIDDEN_MODEL = "forbidden-model"  # routed, but the policy does not grant it: 403
MISSING_MODEL = "missing-model"  # granted, but no route serves it: 404
RATE_LIMITED_MODEL = "rate-limited"  # the upstream answers 429 (OpenAI-compatible)
RATE_LIMITED_CLAUDE = "rate-limited-claude"  # the upstream answers 429 (Anthropic)
BAD_REQUEST_MODEL = "bad-request"  # the upstream answers 400 (OpenAI-compatible)
BAD_REQUEST_CLAUDE = "bad-request-claude"  # the upstream answers 400 (Anthropic)
ECHO_MODEL = "echo-1"  # the built-in Echo backend: answers "echo: <last user text>"
STREAM_TEXT = "tok0 tok1 tok2 tok3 "
PROMPT_TOKENS = 11
COMPLETION_TOKENS = 7

WEATHER_TOOL_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


def require_gateway():
    """Called at import by the AI SDK suites: they fail (never skip) without a gateway to drive.
    Other suites sharing this folder (MCP, A2A) do not need these variables."""
    if not URL or not KEY:
        raise RuntimeError(
            "CAIRN_GATEWAY_URL and CAIRN_GATEWAY_KEY must be set: run these tests through "
            "`cargo test --test sdk_conformance`, which starts the gateway and the mocks"
        )
