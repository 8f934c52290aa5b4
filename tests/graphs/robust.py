"""Graphs that misbehave in ways a worker must survive; every run of them must end `error`.

`self_cancel`     -- its node raises asyncio.CancelledError itself (nobody cancelled the run).
`unprintable`     -- its node raises a ValueError subclass whose str() itself raises.
`unserializable`  -- its node returns a value the checkpointer cannot serialise.
`cancelling_factory` -- a context-manager factory that raises asyncio.CancelledError when a run
                    opens it (access context threads.create_run); other accesses get a graph.

State: items (list[str], operator.add), blob (Any).
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
from typing import Annotated, Any

from typing_extensions import NotRequired, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph_sdk.runtime import ServerRuntime


class State(TypedDict):
    items: Annotated[list[str], operator.add]
    blob: NotRequired[Any]


class Unprintable(ValueError):
    def __str__(self) -> str:
        raise RuntimeError("this error cannot be printed")


class Opaque:
    """Not JSON, not msgpack, not a known langchain type."""

    def __init__(self) -> None:
        self.handle = lambda: None


async def self_cancel(state: State) -> dict:
    raise asyncio.CancelledError()


def unprintable(state: State) -> dict:
    raise Unprintable()


def unserializable(state: State) -> dict:
    return {"blob": Opaque(), "items": ["opaque"]}


def _one_node(fn: Any) -> Any:
    builder = StateGraph(State)
    builder.add_node("node", fn)
    builder.add_edge(START, "node")
    builder.add_edge("node", END)
    return builder.compile()


self_cancel_graph = _one_node(self_cancel)
unprintable_graph = _one_node(unprintable)
unserializable_graph = _one_node(unserializable)


@contextlib.asynccontextmanager
async def cancelling_factory(runtime: ServerRuntime):
    if runtime.access_context == "threads.create_run":
        raise asyncio.CancelledError()
    yield unprintable_graph
