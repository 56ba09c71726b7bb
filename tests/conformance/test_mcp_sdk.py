"""Conformance of Cairn's MCP gateway with the official MCP Python SDK client.

Run by `cargo test --test mcp_gateway python_sdk_conformance`, which starts MCP servers built on the
official Rust SDK behind an in-process gateway and sets:

- CAIRN_MCP_URL: the gateway's MCP endpoint, e.g. http://127.0.0.1:PORT/mcp
- CAIRN_MCP_KEY: a virtual key of the Agent `bot`, granted gh's `search_*`, `echo`, `fail`
  and `progress`; the server `gh` hides `delete_*` from everyone.

Every test runs in both protocol eras: `legacy` (initialize handshake and sessions) and `auto`
(the SDK probes `server/discover` and speaks 2026-07-28 statelessly).
"""

import os

import pytest

MCP_URL = os.environ.get("CAIRN_MCP_URL", "")
MCP_KEY = os.environ.get("CAIRN_MCP_KEY", "")

pytestmark = pytest.mark.skipif(
    not MCP_URL, reason="CAIRN_MCP_URL is not set: run through `cargo test --test mcp_gateway`"
)

import anyio  # noqa: E402

from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared._httpx_utils import create_mcp_http_client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

MODES = ["legacy", "auto"]


def client(mode, key=MCP_KEY, origin=None, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if origin:
        headers["Origin"] = origin
    http = create_mcp_http_client(headers=headers)
    return Client(streamable_http_client(MCP_URL, http_client=http), mode=mode, **kw)


def run(coro):
    return anyio.run(coro)


@pytest.mark.parametrize("mode", MODES)
def test_lists_only_what_the_caller_may_use(mode):
    async def go():
        async with client(mode) as c:
            tools = await c.list_tools()
            names = [t.name for t in tools.tools]
            # In the backend's own order.
            assert names == ["gh__echo", "gh__fail", "gh__search_code", "gh__progress", "gh__changed"], names
            assert all(t.input_schema for t in tools.tools)

    run(go)


@pytest.mark.parametrize("mode", MODES)
def test_calls_route_to_the_owning_server(mode):
    async def go():
        async with client(mode) as c:
            r = await c.call_tool("gh__echo", {"text": f"hello {mode}"})
            assert not r.is_error
            assert r.content[0].text == f"hello {mode}"
            r = await c.call_tool("gh__fail", {})
            assert r.is_error
            assert "failed" in r.content[0].text

    run(go)


@pytest.mark.parametrize("mode", MODES)
def test_progress_reaches_the_client(mode):
    async def go():
        seen = []

        async def on_progress(progress, total, message):
            seen.append((progress, total))

        async with client(mode) as c:
            r = await c.call_tool("gh__progress", {}, progress_callback=on_progress)
            assert r.content[0].text == "progressed"
        assert [p for p, _ in seen] == [1.0, 2.0], seen

    run(go)


@pytest.mark.parametrize("mode", MODES)
def test_refusals_are_protocol_errors(mode):
    async def go():
        async with client(mode) as c:
            for name in ["gh__add", "gh__delete_repo", "nope__echo", "echo"]:
                with pytest.raises(MCPError) as e:
                    r = await c.call_tool(name, {})
                    # An SDK may surface a protocol error as an error result instead.
                    if r.is_error:
                        raise MCPError(-32602, r.content[0].text)
                assert e.value.code == -32602, (name, e.value)

    run(go)


@pytest.mark.parametrize("mode", MODES)
def test_prompts(mode):
    async def go():
        async with client(mode) as c:
            prompts = await c.list_prompts()
            assert [p.name for p in prompts.prompts] == ["gh__greet"]
            r = await c.get_prompt("gh__greet", {"who": "Ada"})
            assert r.messages[0].content.text == "Hello, Ada!"

    run(go)


@pytest.mark.parametrize("mode", MODES)
def test_resources(mode):
    async def go():
        async with client(mode) as c:
            res = await c.list_resources()
            uris = [str(r.uri) for r in res.resources]
            assert uris == ["gh+file:///readme.txt"], uris
            r = await c.read_resource(uris[0])
            assert r.contents[0].text == "read me"
            assert str(r.contents[0].uri) == "gh+file:///readme.txt"
            with pytest.raises(MCPError):
                await c.read_resource("zz+file:///nothing")

    run(go)


def test_ping_in_the_session_era():
    async def go():
        async with client("legacy") as c:
            await c.send_ping()
            assert c.protocol_version == "2025-11-25"

    run(go)


def test_without_credentials_the_gateway_answers_401():
    async def go():
        async with client("legacy", key="") as c:
            await c.list_tools()

    with pytest.raises(BaseException) as e:
        run(go)
    assert "401" in repr(e.value) or "Unauthorized" in repr(e.value) or "auth" in repr(e.value).lower(), repr(e.value)


@pytest.mark.parametrize("mode", MODES)
def test_a_browser_origin_other_than_the_gateways_own_is_refused(mode):
    own = MCP_URL.rsplit("/mcp", 1)[0]

    async def go(origin):
        async with client(mode, origin=origin) as c:
            return [t.name for t in (await c.list_tools()).tools]

    assert "gh__echo" in run(lambda: go(own))
    with pytest.raises(BaseException) as e:
        run(lambda: go("http://evil.example.com"))
    assert "403" in repr(e.value) or "Forbidden" in repr(e.value), repr(e.value)


def test_list_changed_reaches_the_client_in_the_session_era():
    async def go():
        changed = anyio.Event()

        async def on_message(message):
            if type(message).__name__ == "ToolListChangedNotification" or (
                getattr(message, "method", None) == "notifications/tools/list_changed"
            ):
                changed.set()

        async with client("legacy", message_handler=on_message) as c:
            r = await c.call_tool("gh__changed", {})
            assert r.content[0].text == "will change"
            with anyio.fail_after(20):
                await changed.wait()

    run(go)


def test_an_answer_resumes_from_its_event_ids_in_the_session_era():
    """Every event of an SSE answer carries an id (the SDK's resumption token, a priming event
    first); the SDK resumes from one with GET + Last-Event-ID and gets the rest of the answer
    replayed: the events after it and the response."""
    from mcp.shared.message import ClientMessageMetadata
    from mcp.types import CallToolRequest, CallToolRequestParams, CallToolResult

    async def go():
        tokens = []
        progress = []

        async def on_token(token):
            tokens.append(token)

        async def on_progress(p, total, message):
            progress.append(p)

        async with client("legacy") as c:
            request = CallToolRequest(params=CallToolRequestParams(name="gh__progress", arguments={}))
            r = await c.session.send_request(
                request,
                CallToolResult,
                metadata=ClientMessageMetadata(on_resumption_token_update=on_token),
                progress_callback=on_progress,
            )
            assert r.content[0].text == "progressed"
            # Priming event, two progress notifications, the response.
            assert len(tokens) == 4, tokens
            assert len(set(tokens)) == 4, tokens
            assert progress == [1.0, 2.0], progress

            replayed = []

            async def on_replayed(token):
                replayed.append(token)

            r = await c.session.send_request(
                request,
                CallToolResult,
                metadata=ClientMessageMetadata(resumption_token=tokens[1], on_resumption_token_update=on_replayed),
            )
            assert r.content[0].text == "progressed"
            assert replayed == tokens[2:], (replayed, tokens)

    run(go)
