"""A server whose names pass through Cairn's MCP gateway unprefixed (`prefix: ""`), beside a
prefixed one, through the official MCP Python SDK client.

Run by `cargo test --test mcp_gateway an_unprefixed_server_keeps_its_names`, which serves two
rmcp `ToolsServer`s behind a gateway, `files` without a prefix and `gh` with prefix `gh`, and sets:

- CAIRN_MCP_URL: the gateway's MCP endpoint
- CAIRN_MCP_KEY: a virtual key of `bot`, granted files' `echo` and `search_*` and gh's `echo`
"""

import os

import anyio
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

MCP_URL = os.environ["CAIRN_MCP_URL"]
MCP_KEY = os.environ["CAIRN_MCP_KEY"]
MODES = ["legacy", "auto"]


def client(mode):
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {MCP_KEY}"})
    return Client(streamable_http_client(MCP_URL, http_client=http), mode=mode)


@pytest.mark.parametrize("mode", MODES)
def test_tools_prompts_and_resources_keep_their_names(mode):
    async def go():
        async with client(mode) as c:
            names = [t.name for t in (await c.list_tools()).tools]
            # The unprefixed server first, in its own order; then gh's, prefixed.
            assert names == ["echo", "search_code", "gh__echo"], names
            r = await c.call_tool("echo", {"text": "from files"})
            assert not r.is_error and r.content[0].text == "from files", r
            r = await c.call_tool("gh__echo", {"text": "from gh"})
            assert not r.is_error and r.content[0].text == "from gh", r

            prompts = [p.name for p in (await c.list_prompts()).prompts]
            assert prompts == ["greet", "gh__greet"], prompts
            r = await c.get_prompt("greet", {"who": "Ada"})
            assert r.messages[0].content.text == "Hello, Ada!"

            uris = [str(r.uri) for r in (await c.list_resources()).resources]
            assert uris == ["file:///readme.txt", "gh+file:///readme.txt"], uris
            for uri in uris:
                r = await c.read_resource(uri)
                assert r.contents[0].text == "read me"
                assert str(r.contents[0].uri) == uri

    anyio.run(go)


@pytest.mark.parametrize("mode", MODES)
def test_the_policy_applies_to_unprefixed_names(mode):
    async def go():
        async with client(mode) as c:
            # `add` of files is not granted; `search_code` of gh is not either.
            for name in ["add", "gh__search_code"]:
                with pytest.raises(MCPError) as e:
                    r = await c.call_tool(name, {})
                    if r.is_error:
                        raise MCPError(-32602, r.content[0].text)
                assert e.value.code == -32602, (name, e.value)
                assert "is not allowed" in str(e.value), e.value

    anyio.run(go)
