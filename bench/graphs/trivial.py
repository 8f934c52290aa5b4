"""`trivial`: one async node that returns a small update.

{"n": 1} -> {"n": 2, "out": "ok"}
"""

from __future__ import annotations

from typing_extensions import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    n: int
    out: str


async def step(state: State) -> State:
    return {"n": state.get("n", 0) + 1, "out": "ok"}


builder = StateGraph(State)
builder.add_node("step", step)
builder.add_edge(START, "step")
builder.add_edge("step", END)
graph = builder.compile(name="trivial")
