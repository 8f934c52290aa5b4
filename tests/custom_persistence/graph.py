"""Graphs on the custom checkpointer and store (tests/custom_persistence).

``agent``: ``remember`` counts the runs of the thread and keeps an ``Opaque`` object in the
state (not msgpack-serialisable: checkpointed only because ``checkpointer.serde`` has
``pickle_fallback``), which ``recall`` reads back; both use ``runtime.store``; an input
``{"sleep": seconds}`` makes ``recall`` wait first (a run to cancel). ``factory``: a graph factory that puts
an item in ``ServerRuntime.store`` each time it is called.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph_sdk.runtime import ServerRuntime
from typing_extensions import TypedDict

from cp_opaque import Opaque  # on sys.path through langgraph.json "dependencies"


class State(TypedDict, total=False):
    count: int
    sleep: float
    opaque: Any
    recalled: int


async def remember(state: State, runtime: Runtime) -> State:
    count = state.get("count", 0) + 1
    await runtime.store.aput(("agent",), "last", {"count": count})
    return {"count": count, "opaque": Opaque(count * 10)}


async def recall(state: State, runtime: Runtime) -> State:
    if state.get("sleep"):
        await asyncio.sleep(state["sleep"])
    item = await runtime.store.aget(("agent",), "last")
    return {"recalled": state["opaque"].value + item.value["count"], "sleep": 0}


builder = StateGraph(State)
builder.add_node("remember", remember)
builder.add_node("recall", recall)
builder.add_edge(START, "remember")
builder.add_edge("remember", "recall")
builder.add_edge("recall", END)
graph = builder.compile()


async def make_graph(runtime: ServerRuntime) -> Any:
    if runtime.store is not None:
        await runtime.store.aput(("factory",), runtime.access_context, {"called": True})
    return graph
