"""`multi_interrupt`: two parallel interrupts pending at once.

START fans out to x and y (same superstep); each calls interrupt({"node": <name>}); both
join into `join`. Resuming needs Command(resume={<interrupt_id>: value, ...}) covering both.

State: answers (list[str], operator.add), items (list[str], operator.add).

{"items": []} -> two interrupts, values {"node": "x"} and {"node": "y"}; next ("x", "y")
resume {id_x: "1", id_y: "2"} -> {"items": ["join"], "answers": ["x=1", "y=2"]}
"""

from __future__ import annotations

import operator
from typing import Annotated

from typing_extensions import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    items: Annotated[list[str], operator.add]
    answers: Annotated[list[str], operator.add]


def node_x(state: State) -> dict:
    return {"answers": [f"x={interrupt({'node': 'x'})}"]}


def node_y(state: State) -> dict:
    return {"answers": [f"y={interrupt({'node': 'y'})}"]}


def join(state: State) -> dict:
    return {"items": ["join"]}


builder = StateGraph(State)
builder.add_node("x", node_x)
builder.add_node("y", node_y)
builder.add_node("join", join)
builder.add_edge(START, "x")
builder.add_edge(START, "y")
builder.add_edge(["x", "y"], "join")
builder.add_edge("join", END)
graph = builder.compile()
