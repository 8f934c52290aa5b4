"""`custom`: one node, `emit`, that writes two events to the `custom` stream mode.

It writes {"progress": 1} through `runtime.stream_writer` and {"progress": 2} through
`langgraph.config.get_stream_writer()`, then returns.

State keys: done (bool), progress (list[int]).

{} -> {"done": True, "progress": [1, 2]}; stream_mode="custom" yields {"progress": 1}, {"progress": 2}
"""

from __future__ import annotations

from typing_extensions import TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime


class State(TypedDict, total=False):
    done: bool
    progress: list[int]


def emit(state: State, runtime: Runtime) -> dict:
    runtime.stream_writer({"progress": 1})
    get_stream_writer()({"progress": 2})
    return {"done": True, "progress": [1, 2]}


builder = StateGraph(State)
builder.add_node("emit", emit)
builder.add_edge(START, "emit")
builder.add_edge("emit", END)
graph = builder.compile()
