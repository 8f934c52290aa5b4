"""The bundled examples (examples/langgraph.json) work as the README shows."""

from __future__ import annotations

import re
from typing import Iterator

import pytest
from langgraph_sdk import get_client

from conftest import ROOT, ServerProcess


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("examples"),
        config=ROOT / "examples" / "langgraph.json",
        args=["--log-level", "info"],
    ).start()
    yield proc
    proc.stop()


async def test_greeting_reads_context_and_store(examples):
    client = get_client(url=examples.url)
    await client.store.put_item(["users"], "user_123", {"name": "Alice"})
    out = await client.runs.wait(None, "greeting", input={}, context={"user_id": "user_123"})
    assert out == {"response": "Hello Alice! Nice to see you again."}
    out = await client.runs.wait(None, "greeting", input={}, context={"user_id": "nobody"})
    assert out == {"response": "Hello unknown_user! Nice to see you again."}


async def test_greeting_requires_its_context(examples):
    import httpx

    async with httpx.AsyncClient(base_url=examples.url) as http:
        r = await http.post("/runs/wait", json={"assistant_id": "greeting", "input": {}})
    assert r.status_code == 422
    assert "user_id" in r.json()["detail"]


async def test_resources_opens_only_for_runs_and_closes_after(examples):
    client = get_client(url=examples.url)
    thread = await client.threads.create()
    out = await client.runs.wait(
        thread["thread_id"], "resources", input={"name": "Ada"}, context={"greeting": "Hello"}
    )
    assert out["message"] == "Hello, Ada!"
    resource = out["resource"]
    assert re.fullmatch(r"greeter-\d+", resource)
    log = examples.log()
    assert f"opened {resource}" in log and f"closed {resource}" in log

    opened_before = examples.log().count("opened greeter-")
    await client.threads.get_state(thread["thread_id"])
    await client.assistants.get_graph("resources")
    await client.threads.update_state(thread["thread_id"], {"name": "Bob"}, as_node="greet")
    assert examples.log().count("opened greeter-") == opened_before

    out = await client.runs.wait(thread["thread_id"], "resources", input={"name": "Eve"})
    assert out["message"] == "hi, Eve!"  # the schema default greeting
    assert out["resource"] != resource


async def test_agent_streams_tokens(examples):
    client = get_client(url=examples.url)
    chunks = [
        e.data[0]["content"]
        async for e in client.runs.stream(
            None, "agent", input={"messages": [{"role": "user", "content": "Hi!"}]}, stream_mode="messages-tuple"
        )
        if e.event == "messages"
    ]
    assert len(chunks) > 3
    assert "".join(chunks).startswith("You said")
