"""`ten`: a linear graph of ten async nodes, each incrementing ``n``.

{"n": 0} -> {"n": 10}
"""

from __future__ import annotations

from typing_extensions import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    n: int


async def bump(state: State) -> State:
    return {"n": state.get("n", 0) + 1}


NODES = [f"n{i}" for i in range(10)]

builder = StateGraph(State)
previous = START
for name in NODES:
    builder.add_node(name, bump)
    builder.add_edge(previous, name)
    previous = name
builder.add_edge(previous, END)
graph = builder.compile(name="ten")
