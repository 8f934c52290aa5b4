"""Graphs that call the server they run in through the SDK's in-process client.

``supervisor`` (async): reads its own thread, creates another thread and runs ``doubler``
on it with ``runs.wait``, and reads the store; ``sync_supervisor`` does the same from a
sync node with ``get_sync_client()``; ``sync_on_loop`` calls ``get_sync_client()`` from an
async node (on the event loop), which must fail with a clear error.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph_sdk import get_client, get_sync_client
from typing_extensions import TypedDict

# a client created when the module is imported (before the server has started) works too
MODULE_CLIENT = get_client()


class State(TypedDict, total=False):
    x: int
    y: int
    sleep: float
    report: dict[str, Any]


def _one(builder: StateGraph, node: Any) -> Any:
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    builder.add_edge("node", END)
    return builder.compile()


async def double(state: State) -> State:
    if state.get("sleep"):
        await asyncio.sleep(state["sleep"])
    return {"y": state["x"] * 2}


doubler = _one(StateGraph(State), double)


async def supervise(state: State, config: RunnableConfig) -> State:
    client = get_client()
    own = await MODULE_CLIENT.threads.get(config["configurable"]["thread_id"])
    child = await client.threads.create(metadata={"made_by": "supervisor"})
    result = await client.runs.wait(child["thread_id"], "doubler", input={"x": state["x"]})
    runs = await client.runs.list(child["thread_id"])
    streamed = [
        part.data
        async for part in client.runs.stream(child["thread_id"], "doubler", input={"x": 5}, stream_mode="values")
        if part.event == "values"
    ]
    return {
        "report": {
            "own_owner": own["metadata"].get("owner"),
            "child_thread": child["thread_id"],
            "child_owner": child["metadata"].get("owner"),
            "child_y": result["y"],
            "child_run_owner": runs[0]["metadata"].get("owner"),
            "streamed": streamed,
            "pid": os.getpid(),
        }
    }


supervisor = _one(StateGraph(State), supervise)


def sync_supervise(state: State, config: RunnableConfig) -> State:
    client = get_sync_client()
    own = client.threads.get(config["configurable"]["thread_id"])
    child = client.threads.create(metadata={"made_by": "sync_supervisor"})
    result = client.runs.wait(child["thread_id"], "doubler", input={"x": state["x"]})
    streamed = [
        part.data
        for part in client.runs.stream(child["thread_id"], "doubler", input={"x": 5}, stream_mode="values")
        if part.event == "values"
    ]
    return {
        "report": {
            "own_owner": own["metadata"].get("owner"),
            "child_thread": child["thread_id"],
            "child_owner": child["metadata"].get("owner"),
            "child_y": result["y"],
            "streamed": streamed,
            "pid": os.getpid(),
        }
    }


sync_supervisor = _one(StateGraph(State), sync_supervise)


async def leave_early(state: State) -> State:
    """Stream a slow run and stop reading after its first event: the client goes away."""
    client = get_client()
    child = await client.threads.create()
    async for part in client.runs.stream(
        child["thread_id"], "doubler", input={"x": 1, "sleep": 60}, on_disconnect="cancel"
    ):
        run_id = part.data["run_id"]  # the metadata event
        break
    return {"report": {"child_thread": child["thread_id"], "child_run": run_id}}


early_leaver = _one(StateGraph(State), leave_early)


async def call_sync_on_loop(state: State, config: RunnableConfig) -> State:
    get_sync_client().threads.get(config["configurable"]["thread_id"])
    return {}


sync_on_loop = _one(StateGraph(State), call_sync_on_loop)
