"""`named`: a graph compiled with name="my-named-graph" (the system assistant's name).

START -> hello -> END; State: items (list[str], operator.add).

{"items": []} -> {"items": ["hello"]}
"""

from __future__ import annotations

import operator
from typing import Annotated

from typing_extensions import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    items: Annotated[list[str], operator.add]


def hello(state: State) -> dict:
    return {"items": ["hello"]}


builder = StateGraph(State)
builder.add_node("hello", hello)
builder.add_edge(START, "hello")
builder.add_edge("hello", END)
graph = builder.compile(name="my-named-graph")
