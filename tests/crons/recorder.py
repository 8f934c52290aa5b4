"""Test graphs for crons, webhooks and TTLs.

``recorder`` writes one store item per execution under ``("fires", <tag>)`` (``tag`` from
the input), key the run id, holding the cron id, thread id and user the run saw; its
state counts executions on the thread. ``failing`` raises (a webhook's ``error``).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    tag: str
    count: Annotated[int, operator.add]


def record(state: State, config: RunnableConfig) -> dict[str, Any]:
    configurable = config.get("configurable") or {}
    user = configurable.get("langgraph_auth_user")
    identity = getattr(user, "identity", None) if user is not None else None
    get_store().put(
        ("fires", state.get("tag") or "untagged"),
        str(configurable.get("run_id")),
        {
            "cron_id": configurable.get("cron_id"),
            "thread_id": configurable.get("thread_id"),
            "user": identity,
            "metadata": (config.get("metadata") or {}).get("probe"),
        },
    )
    return {"count": 1}


builder = StateGraph(State)
builder.add_node("record", record)
builder.add_edge(START, "record")
builder.add_edge("record", END)
graph = builder.compile()


def explode(state: State) -> dict[str, Any]:
    raise ValueError("exploded on purpose")


failing_builder = StateGraph(State)
failing_builder.add_node("explode", explode)
failing_builder.add_edge(START, "explode")
failing_builder.add_edge("explode", END)
failing = failing_builder.compile()
