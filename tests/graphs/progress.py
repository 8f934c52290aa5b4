"""`progress`: START -> a -> hold -> END, for cancellation and multitask tests that need partial progress.

State: items (list[str], operator.add), hold (bool, default true), ask (bool), answer (str).

`a` appends "a" (with ask true it first calls interrupt("continue?") and stores the resume
value in `answer`). `hold`, while `hold` is true, emits the custom event {"holding": <thread_id>}
and then waits until its task is cancelled; with hold false it appends "done".

{"items": ["x"], "hold": False} -> {"items": ["x", "a", "done"], "hold": False}
{"items": ["x"]}                -> "a" is checkpointed, then the run hangs in `hold` until cancelled
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated

from langchain_core.runnables import RunnableConfig
from typing_extensions import NotRequired, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict):
    items: Annotated[list[str], operator.add]
    hold: NotRequired[bool]
    ask: NotRequired[bool]
    answer: NotRequired[str]


def a(state: State) -> dict:
    update: dict = {"items": ["a"]}
    if state.get("ask"):
        update["answer"] = interrupt("continue?")
    return update


async def hold(state: State, config: RunnableConfig) -> dict:
    if state.get("hold", True):
        get_stream_writer()({"holding": (config.get("configurable") or {}).get("thread_id")})
        await asyncio.Event().wait()
    return {"items": ["done"]}


builder = StateGraph(State)
builder.add_node("a", a)
builder.add_node("hold", hold)
builder.add_edge(START, "a")
builder.add_edge("a", "hold")
builder.add_edge("hold", END)
graph = builder.compile()
