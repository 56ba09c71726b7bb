"""Conformance of Cairn's agent gateway with the official A2A Python SDK client (a2a-sdk).

Run by `cargo test --test agent_gateway python_sdk_conformance`, which starts the Rust echo agent
(tests/support/a2a_agents.rs) behind an in-process agent gateway and sets:

- CAIRN_A2A_URL: the agent's URL under the gateway, e.g. http://127.0.0.1:PORT/agents/echo
- CAIRN_A2A_KEY: a virtual key of `alice`, granted every skill of `echo`
- CAIRN_A2A_OTHER_KEY: a virtual key of `bob`, also granted `echo`, who owns none of alice's tasks
- CAIRN_A2A_SKILL_KEY: a virtual key of `dave`, granted only the skill `refund` of `echo`

The echo agent completes a task with an artifact `echo: <text>`; a text starting with `wait`
leaves the task working (to cancel it or subscribe to it).
"""

import asyncio
import os

import pytest

A2A_URL = os.environ.get("CAIRN_A2A_URL", "")
A2A_KEY = os.environ.get("CAIRN_A2A_KEY", "")
A2A_OTHER_KEY = os.environ.get("CAIRN_A2A_OTHER_KEY", "")
A2A_SKILL_KEY = os.environ.get("CAIRN_A2A_SKILL_KEY", "")

pytestmark = pytest.mark.skipif(
    not A2A_URL, reason="CAIRN_A2A_URL is not set: run through `cargo test --test agent_gateway`"
)

import httpx  # noqa: E402
import jwt  # noqa: E402
from a2a.client import A2ACardResolver, ClientConfig, create_client  # noqa: E402
from a2a.helpers.proto_helpers import new_text_message  # noqa: E402
from a2a.types import (  # noqa: E402
    AgentCard,
    AgentInterface,
    CancelTaskRequest,
    GetTaskRequest,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskNotFoundError,
    TaskState,
)
from a2a.utils.signing import create_signature_verifier  # noqa: E402


def http(key=A2A_KEY):
    return httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)


def request(text):
    return SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))


def key_provider(kid, jku):
    """The gateway's key, from the JWKS its card signature names."""
    assert jku and jku.endswith("/.well-known/jwks.json"), jku
    jwks = httpx.get(jku, timeout=10).json()
    for k in jwks["keys"]:
        if k.get("kid") == kid:
            return jwt.PyJWK(k)
    raise AssertionError(f"no key {kid} in {jwks}")


async def card(key=A2A_KEY):
    async with http(key) as h:
        return await A2ACardResolver(h, A2A_URL).get_agent_card(
            signature_verifier=create_signature_verifier(key_provider, ["ES256"])
        )


async def client(key=A2A_KEY, streaming=False, agent=None):
    return await create_client(agent or A2A_URL, ClientConfig(httpx_client=http(key), streaming=streaming))


async def send(c, text):
    events = [e async for e in c.send_message(request(text))]
    assert len(events) == 1 and events[0].HasField("task"), events
    return events[0].task


def test_card_discovery_with_a_verified_gateway_signature():
    async def main():
        c = await card()
        assert c.name == "echo"
        assert [i.url for i in c.supported_interfaces] == [A2A_URL, A2A_URL]
        assert {i.protocol_binding for i in c.supported_interfaces} == {"JSONRPC", "HTTP+JSON"}
        assert list(c.security_schemes) == ["cairn"]
        assert len(c.signatures) == 1
        assert c.capabilities.streaming

    asyncio.run(main())


def test_card_discovery_shows_only_the_skills_the_caller_may_use():
    async def main():
        everything = await card()
        only_refund = await card(A2A_SKILL_KEY)
        assert [s.id for s in everything.skills] == ["echo", "refund"]
        assert [s.id for s in only_refund.skills] == ["refund"]
        assert len(only_refund.signatures) == 1

    asyncio.run(main())


def test_send_message():
    async def main():
        async with await client() as c:
            task = await send(c, "hello")
            assert task.status.state == TaskState.TASK_STATE_COMPLETED
            assert task.artifacts[0].parts[0].text == "echo: hello"

    asyncio.run(main())


def test_streaming_message_event_by_event():
    async def main():
        async with await client(streaming=True) as c:
            events = [e async for e in c.send_message(request("stream me"))]
        kinds = [e.WhichOneof("payload") for e in events]
        assert kinds == ["task", "status_update", "artifact_update", "status_update"], kinds
        task_id = events[0].task.id
        assert all(e.status_update.task_id == task_id for e in events if e.HasField("status_update"))
        assert events[2].artifact_update.artifact.parts[0].text == "echo: stream me"
        assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED

    asyncio.run(main())


def test_get_task_only_for_its_owner():
    async def main():
        async with await client() as c, await client(A2A_OTHER_KEY) as other:
            task = await send(c, "mine")
            got = await c.get_task(GetTaskRequest(id=task.id))
            assert got.id == task.id
            assert got.status.state == TaskState.TASK_STATE_COMPLETED
            with pytest.raises(TaskNotFoundError):
                await other.get_task(GetTaskRequest(id=task.id))

    asyncio.run(main())


def test_cancel_task():
    async def main():
        async with await client() as c, await client(A2A_OTHER_KEY) as other:
            task = await send(c, "wait for cancel")
            assert task.status.state == TaskState.TASK_STATE_WORKING
            with pytest.raises(TaskNotFoundError):
                await other.cancel_task(CancelTaskRequest(id=task.id))
            canceled = await c.cancel_task(CancelTaskRequest(id=task.id))
            assert canceled.status.state == TaskState.TASK_STATE_CANCELED

    asyncio.run(main())


def test_resubscribe_to_a_task():
    async def main():
        async with await client() as c:
            task = await send(c, "wait for a subscriber")
        async with await client(streaming=True) as c:
            events = [e async for e in c.subscribe(SubscribeToTaskRequest(id=task.id))]
        assert events[0].task.id == task.id
        assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED

    asyncio.run(main())


def test_a_0_3_client_call():
    """The SDK's 0.3 compatibility transport (`message/send`, 0.3 shapes) through the gateway."""

    async def main():
        c = await card()
        old = AgentCard()
        old.CopyFrom(c)
        del old.supported_interfaces[:]
        old.supported_interfaces.append(AgentInterface(url=A2A_URL, protocol_binding="JSONRPC", protocol_version="0.3"))
        async with await client(agent=old) as cl:
            assert "Compat" in type(cl._transport).__name__
            task = await send(cl, "old school")
            assert task.status.state == TaskState.TASK_STATE_COMPLETED
            assert task.artifacts[0].parts[0].text == "echo: old school"
            got = await cl.get_task(GetTaskRequest(id=task.id))
            assert got.id == task.id

    asyncio.run(main())
