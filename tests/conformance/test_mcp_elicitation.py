"""No server-to-client request is lost on its way through Cairn's MCP gateway.

Run by `cargo test --test mcp_gateway no_server_to_client_request_is_lost`, which serves an rmcp
server whose tool `elicit_now` sends an elicitation request on its standalone stream the instant
the tool starts (tests/support/mcp_servers.rs, `ElicitServer`) behind a gateway, as `el`, and sets
CAIRN_MCP_URL to the gateway's MCP endpoint.

The official MCP Python SDK client opens its standalone (GET) stream concurrently with its first
call, so the backend's request may come before the client listens: the gateway must hold it.
"""

import os

import anyio
import mcp.types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

MCP_URL = os.environ["CAIRN_MCP_URL"]
ROUNDS = 200


def test_an_elicitation_sent_the_instant_a_tool_starts_is_never_lost():
    async def elicit(context, params):
        assert params.message == "Go on?"
        return types.ElicitResult(action="accept", content={"ok": True})

    async def go():
        lost = []
        for i in range(ROUNDS):
            async with Client(streamable_http_client(MCP_URL), mode="legacy", elicitation_callback=elicit) as c:
                try:
                    # The server gives up after 5 s (its timeout at the gateway).
                    with anyio.fail_after(15):
                        r = await c.call_tool("el__elicit_now", {})
                    assert not r.is_error, r
                    assert r.content[0].text == 'elicited: accept {"ok":true}', r
                except Exception as e:  # a lost request: the call times out or fails
                    lost.append((i, repr(e)[:200]))
        assert lost == [], f"{len(lost)} of {ROUNDS} elicitation requests lost: {lost[:5]}"

    anyio.run(go)
