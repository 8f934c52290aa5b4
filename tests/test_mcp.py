"""The MCP endpoint through the ``mcp`` package's own client, on every backend (tests/integrations/):
the tools are the caller's assistants (custom auth filters the list), a call runs the
assistant and returns its values, bad arguments and failed runs are error results, no
token is a 401, one user cannot see or call another's assistants, and
``http.disable_mcp`` / ``http.disable_a2a`` remove the routes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import BACKENDS, ServerProcess, make_server

HERE = Path(__file__).resolve().parent / "integrations"


@pytest.fixture(scope="module", params=BACKENDS)
def base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    srv = make_server(request.param, tmp_path_factory.mktemp("mcp"), config=HERE / "langgraph.json").start()
    yield srv.url
    (getattr(srv, "destroy", None) or srv.stop)()


def _assistant(base: str, user: str, graph_id: str, name: str, **extra: Any) -> str:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {user}"}, timeout=30) as http:
        r = http.post("/assistants", json={"graph_id": graph_id, "name": name, **extra})
        assert r.status_code == 200, r.text
        return r.json()["assistant_id"]


async def _session(base: str, user: str | None, work: Any) -> Any:
    headers = {"Authorization": f"Bearer {user}"} if user else {}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with streamable_http_client(f"{base}/mcp", http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await work(session)


def _text(result: Any) -> str:
    assert result.content and result.content[0].type == "text"
    return result.content[0].text


async def test_tools_are_the_callers_assistants(base):
    user = f"u{uuid.uuid4().hex[:8]}"
    _assistant(base, user, "adder", "my adder!", description="adds two numbers")
    _assistant(base, user, "parrot", "parrot")
    _assistant(base, user, "parrot", "parrot")  # the same name again: a suffix

    async def work(session: ClientSession) -> Any:
        return (await session.list_tools()).tools

    tools = {tool.name: tool for tool in await _session(base, user, work)}
    assert set(tools) == {"my_adder_", "parrot", "parrot_2"}
    adder = tools["my_adder_"]
    assert adder.description == "adds two numbers"
    assert adder.input_schema["type"] == "object"
    assert set(adder.input_schema["required"]) == {"a", "b"}
    assert adder.input_schema["properties"]["a"]["type"] == "integer"
    # no description of its own: the graph's (langgraph.json)
    assert tools["parrot"].description == "Repeats what the user said"
    assert "messages" in tools["parrot"].input_schema["properties"]


async def test_call_runs_the_assistant(base):
    user = f"u{uuid.uuid4().hex[:8]}"
    _assistant(base, user, "adder", "adder")
    _assistant(base, user, "parrot", "parrot")

    async def work(session: ClientSession) -> Any:
        added = await session.call_tool("adder", {"a": 2, "b": 40})
        said = await session.call_tool("parrot", {"messages": [{"role": "user", "content": "hi there"}]})
        return added, said

    added, said = await _session(base, user, work)
    assert added.is_error is False
    assert json.loads(_text(added)) == {"a": 2, "b": 40, "total": 42}
    assert added.structured_content == {"a": 2, "b": 40, "total": 42}
    values = json.loads(_text(said))
    assert [m["type"] for m in values["messages"]] == ["human", "ai"]
    assert values["messages"][-1]["content"] == "you said: hi there"
    # the call was a stateless run: no thread is left behind
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {user}"}) as http:
        assert http.post("/threads/search", json={}).json() == []


async def test_a_call_copies_the_configurable_headers_into_its_run(base):
    user = f"u{uuid.uuid4().hex[:8]}"
    _assistant(base, user, "parrot", "parrot")

    async def work(session: ClientSession) -> Any:
        return await session.call_tool("parrot", {"messages": [{"role": "user", "content": "team?"}]})

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {user}", "X-Team": "blue"}, timeout=60) as http:
        async with streamable_http_client(f"{base}/mcp", http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                said = await work(session)
    assert json.loads(_text(said))["messages"][-1]["content"] == "team: blue"


async def test_bad_arguments_unknown_tools_and_failures_are_error_results(base):
    user = f"u{uuid.uuid4().hex[:8]}"
    _assistant(base, user, "adder", "adder")

    async def work(session: ClientSession) -> Any:
        return (
            await session.call_tool("adder", {"a": "two", "b": 1}),
            await session.call_tool("adder", {"a": 1}),
            await session.call_tool("nope", {}),
            await session.call_tool("adder", {"a": 1, "b": 2, "fail": True}),
        )

    wrong_type, missing, unknown, failed = await _session(base, user, work)
    assert wrong_type.is_error and "Invalid arguments for tool adder" in _text(wrong_type)
    assert "'two' is not of type 'integer'" in _text(wrong_type) and "'a'" in _text(wrong_type)
    assert missing.is_error and "'b' is a required property" in _text(missing)
    assert unknown.is_error and _text(unknown) == "Unknown tool: nope"
    assert failed.is_error and _text(failed) == "ValueError: adder failed on purpose"


async def test_authentication_and_isolation(base):
    alice, bob = f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
    _assistant(base, alice, "adder", "alice_adder")
    with httpx.Client(base_url=base, timeout=30) as http:
        init = {
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        }
        headers = {"Accept": "application/json, text/event-stream"}
        assert http.post("/mcp", json=init, headers=headers).status_code == 401
        assert http.post("/mcp", json=init, headers={**headers, "Authorization": "Bearer bad"}).status_code == 401
        assert http.post("/mcp", json=init, headers={**headers, "Authorization": f"Bearer {bob}"}).status_code == 200

    async def work(session: ClientSession) -> Any:
        return (await session.list_tools()).tools, await session.call_tool("alice_adder", {"a": 1, "b": 2})

    tools, called = await _session(base, bob, work)
    assert tools == []
    assert called.is_error and _text(called) == "Unknown tool: alice_adder"
    with pytest.raises(BaseException):
        await _session(base, None, work)


@pytest.fixture(scope="module")
def noauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    srv = ServerProcess(tmp_path_factory.mktemp("mcp-noauth"), config=HERE / "langgraph_noauth.json").start()
    yield srv.url
    srv.stop()


async def test_system_assistants_are_tools_without_auth(noauth):
    async def work(session: ClientSession) -> Any:
        return (await session.list_tools()).tools, await session.call_tool("adder", {"a": 1, "b": 1})

    tools, called = await _session(noauth, None, work)
    assert {tool.name for tool in tools} == {"parrot", "adder"}
    assert json.loads(_text(called))["total"] == 2


def test_disable_mcp_and_a2a_remove_their_routes(tmp_path: Path):
    srv = ServerProcess(tmp_path, config=HERE / "langgraph_disabled.json").start()
    try:
        with httpx.Client(base_url=srv.url) as http:
            assert http.post("/mcp", json={}).status_code == 404
            assert http.post("/a2a/parrot", json={}).status_code == 404
            assert http.get("/.well-known/agent-card.json", params={"assistant_id": "parrot"}).status_code == 404
            paths = http.get("/openapi.json").json()["paths"]
            assert not {"/mcp", "/a2a/{assistant_id}", "/.well-known/agent-card.json"} & set(paths)
            assert http.post("/runs/wait", json={"assistant_id": "adder", "input": {"a": 1, "b": 2}}).json()["total"] == 3
    finally:
        srv.stop()
