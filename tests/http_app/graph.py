"""A one-node graph answering with the request headers it finds in its configurable."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

# the configurable keys a run gets from graphdock itself, never from a header
_SERVER_KEYS = {"run_id", "thread_id", "graph_id", "assistant_id", "user_id"}


class State(TypedDict, total=False):
    headers: dict[str, Any]
    server_keys: dict[str, Any]


def report(state: State, config: RunnableConfig) -> State:
    configurable = config["configurable"]
    return {
        "headers": {
            k: v for k, v in configurable.items() if k.startswith("x-") or k in ("user-agent", "authorization")
        },
        "server_keys": {k: configurable.get(k) for k in _SERVER_KEYS},
    }


builder = StateGraph(State)
builder.add_node("report", report)
builder.add_edge(START, "report")
builder.add_edge("report", END)
graph = builder.compile()
