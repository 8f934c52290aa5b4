"""A module whose langgraph.json asks for an attribute it does not define (`missing`).

Start-up must fail with a clear message naming the missing attribute (and, ideally, listing
the graph-like exports below: `graph`, `other_graph`).
"""

import operator
from typing import Annotated

from typing_extensions import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    items: Annotated[list[str], operator.add]


def step(state: State) -> dict:
    return {"items": ["step"]}


builder = StateGraph(State)
builder.add_node("step", step)
builder.add_edge(START, "step")
builder.add_edge("step", END)

graph = builder.compile()
other_graph = builder.compile()
