"""`own_persistence`: a graph compiled with its own checkpointer and store.

graphdock replaces both with the server's on every access and says so at start-up.
{"items": ["x"]} -> {"items": ["x", "kept"]}
"""

from __future__ import annotations

import operator
from typing import Annotated

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict


class State(TypedDict):
    items: Annotated[list[str], operator.add]


builder = StateGraph(State)
builder.add_node("keep", lambda state: {"items": ["kept"]})
builder.add_edge(START, "keep")
builder.add_edge("keep", END)
graph = builder.compile(checkpointer=InMemorySaver(), store=InMemoryStore())
