"""langgraph's RemoteGraph talks to graphdock unchanged."""

from __future__ import annotations

import uuid

from langgraph.pregel.remote import RemoteGraph
from langgraph.types import Command


async def test_remote_graph_invoke_stream_state_and_resume(url):
    remote = RemoteGraph("simple", url=url)
    assert await remote.ainvoke({"items": ["x"]}) == {"items": ["x", "a", "b"]}

    thread = {"configurable": {"thread_id": str(uuid.uuid4())}}
    chunks = [chunk async for chunk in remote.astream({"items": ["y"]}, thread, stream_mode="updates")]
    assert chunks == [{"a": {"items": ["a"]}}, {"b": {"items": ["b"]}}]
    state = await remote.aget_state(thread)
    assert state.values == {"items": ["y", "a", "b"]} and state.next == ()
    history = [s async for s in remote.aget_state_history(thread)]
    assert len(history) >= 3

    await remote.aupdate_state(thread, {"items": ["u"]}, as_node="b")
    assert (await remote.aget_state(thread)).values["items"][-1] == "u"

    # human in the loop through RemoteGraph
    asked = {"configurable": {"thread_id": str(uuid.uuid4())}}
    out = await remote.ainvoke({"items": [], "ask": True}, asked)
    assert out["__interrupt__"][0]["value"] == {"question": "approve?"}
    assert await remote.ainvoke(Command(resume="ok"), asked) == {"items": ["a", "b"], "ask": True, "answer": "ok"}


def test_remote_graph_sync_and_drawing(url):
    remote = RemoteGraph("simple", url=url)
    assert remote.invoke({"items": []}) == {"items": ["a", "b"]}
    drawn = remote.get_graph()
    assert {"a", "b"} <= set(drawn.nodes)


async def test_remote_graph_messages_stream(url):
    remote = RemoteGraph("chat", url=url)
    tokens = [
        chunk[0]["content"]
        async for chunk in remote.astream(
            {"messages": [{"role": "user", "content": "hi"}]}, stream_mode="messages"
        )
    ]
    assert "".join(tokens) == "hello there friend"
