"""`simple`: the workhorse test graph, START -> a -> b -> END.

State keys:
  items  -- list[str], appended to by every node (operator.add reducer)
  ask    -- if true, node b calls interrupt({"question": "approve?"})
  answer -- the resume value received by node b's interrupt
  fail   -- if true, node a raises ValueError("boom from node_a")

{"items": ["x"]}               -> {"items": ["x", "a", "b"]}
{"items": [], "ask": True}     -> interrupts in b; resume "yes" -> answer "yes", items ["a", "b"]
{"items": [], "fail": True}    -> ValueError("boom from node_a")
"""

from __future__ import annotations

import operator
from typing import Annotated

from typing_extensions import NotRequired, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict):
    items: Annotated[list[str], operator.add]
    ask: NotRequired[bool]
    answer: NotRequired[str]
    fail: NotRequired[bool]


def node_a(state: State) -> dict:
    if state.get("fail"):
        raise ValueError("boom from node_a")
    return {"items": ["a"]}


def node_b(state: State) -> dict:
    update: dict = {"items": ["b"]}
    if state.get("ask"):
        update["answer"] = interrupt({"question": "approve?"})
    return update


builder = StateGraph(State)
builder.add_node("a", node_a)
builder.add_node("b", node_b)
builder.add_edge(START, "a")
builder.add_edge("a", "b")
builder.add_edge("b", END)

graph = builder.compile()
