"""`takeover` and `crash_worker`: graphs for tests of runs that outlive their worker.

`takeover` (START -> first -> wait -> last -> END) appends "first", then, on the run's
first attempt only, emits a custom event {"waiting": <pid>} and waits forever (the test
kills that process); on a later attempt `wait` appends "wait" and `last` appends "last".
A run taken over after its worker died therefore ends with
{"items": ["first", "wait", "last"]} — each item once — when the later attempt goes on from
the checkpoint written after `first`.

`crash_worker` ends the process executing it at once (``os._exit``), on every attempt; it
refuses to when that process is not a graphdock worker (``graphdock worker``), so that it
can never take a test's API server down.
"""

from __future__ import annotations

import asyncio
import operator
import os
import sys
from typing import Annotated

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict):
    items: Annotated[list[str], operator.add]


def _first(state: State) -> dict:
    return {"items": ["first"]}


async def _wait(state: State, config: RunnableConfig) -> dict:
    if (config.get("metadata") or {}).get("run_attempt", 1) == 1:
        get_stream_writer()({"waiting": os.getpid()})
        await asyncio.Event().wait()
    return {"items": ["wait"]}


def _last(state: State) -> dict:
    return {"items": ["last"]}


graph = (
    StateGraph(State)
    .add_node("first", _first)
    .add_node("wait", _wait)
    .add_node("last", _last)
    .add_edge(START, "first")
    .add_edge("first", "wait")
    .add_edge("wait", "last")
    .add_edge("last", END)
    .compile()
)


def _crash(state: State) -> dict:
    if "worker" not in sys.argv:
        raise RuntimeError("crash_worker only ends graphdock worker processes")
    os._exit(3)


crash_graph = StateGraph(State).add_node("crash", _crash).add_edge(START, "crash").add_edge("crash", END).compile()
