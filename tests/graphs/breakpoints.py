"""`breakpoints`: START -> a -> b -> c -> END, compiled with interrupt_before=["b"].

State: items (list[str], operator.add); each node appends its name.

{"items": ["x"]} -> stops before b: values {"items": ["x", "a"]}, next ("b",)
resume with input None -> {"items": ["x", "a", "b", "c"]}
"""

from __future__ import annotations

import operator
from typing import Annotated

from typing_extensions import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    items: Annotated[list[str], operator.add]


def _append(name: str):
    def node(state: State) -> dict:
        return {"items": [name]}

    node.__name__ = f"node_{name}"
    return node


builder = StateGraph(State)
for _name in ("a", "b", "c"):
    builder.add_node(_name, _append(_name))
builder.add_edge(START, "a")
builder.add_edge("a", "b")
builder.add_edge("b", "c")
builder.add_edge("c", END)
graph = builder.compile(interrupt_before=["b"])
