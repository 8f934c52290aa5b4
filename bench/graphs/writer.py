"""`writer`: one async node that writes ``{"t": time.time()}`` to the custom stream.

The client subtracts ``t`` from its own clock when the ``custom`` event arrives:
that is the time from the stream-writer call to the event at the client.

{"n": 1} -> {"n": 2}; stream_mode="custom" yields one {"t": <unix seconds>}
"""

from __future__ import annotations

import time

from typing_extensions import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime


class State(TypedDict, total=False):
    n: int


async def emit(state: State, runtime: Runtime) -> State:
    runtime.stream_writer({"t": time.time()})
    return {"n": state.get("n", 0) + 1}


builder = StateGraph(State)
builder.add_node("emit", emit)
builder.add_edge(START, "emit")
builder.add_edge("emit", END)
graph = builder.compile(name="writer")
