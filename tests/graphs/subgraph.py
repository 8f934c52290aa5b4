"""`subgraph`: parent graph START -> child -> END where `child` is a compiled subgraph.

The child graph is START -> inner -> END. Streaming with subgraphs=True yields events under
the namespace ("child:<task_id>",). If `ask` is true, `inner` calls
interrupt({"question": "inner?"}) so the interrupt is pending *inside* the subgraph
(get_state(subgraphs=True) then shows the child's state on the task).

Both graphs share `items` (operator.add). NOTE: a subgraph added directly as a node returns
its whole final state, so the parent's reducer sees the child's full `items` list again:

{"items": ["x"]} -> {"items": ["x", "x", "inner"]}
{"items": []}    -> {"items": ["inner"]}
{"items": [], "ask": True} -> interrupt in child; resume "ok" -> {"items": ["inner"], "ask": True, "answer": "ok"}
"""

from __future__ import annotations

import operator
from typing import Annotated

from typing_extensions import NotRequired, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class ChildState(TypedDict):
    items: Annotated[list[str], operator.add]
    ask: NotRequired[bool]
    answer: NotRequired[str]


def inner(state: ChildState) -> dict:
    update: dict = {"items": ["inner"]}
    if state.get("ask"):
        update["answer"] = interrupt({"question": "inner?"})
    return update


_child = StateGraph(ChildState)
_child.add_node("inner", inner)
_child.add_edge(START, "inner")
_child.add_edge("inner", END)
child_graph = _child.compile()


class ParentState(TypedDict):
    items: Annotated[list[str], operator.add]
    ask: NotRequired[bool]
    answer: NotRequired[str]


builder = StateGraph(ParentState)
builder.add_node("child", child_graph)
builder.add_edge(START, "child")
builder.add_edge("child", END)
graph = builder.compile()
