"""`builder`: an *uncompiled* StateGraph export; the server must compile it itself.

START -> one -> two -> END; State: items (list[str], operator.add).

{"items": ["x"]} -> {"items": ["x", "one", "two"]}
"""

from __future__ import annotations

import operator
from typing import Annotated

from typing_extensions import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    items: Annotated[list[str], operator.add]


def one(state: State) -> dict:
    return {"items": ["one"]}


def two(state: State) -> dict:
    return {"items": ["two"]}


builder = StateGraph(State)
builder.add_node("one", one)
builder.add_node("two", two)
builder.add_edge(START, "one")
builder.add_edge("one", "two")
builder.add_edge("two", END)
