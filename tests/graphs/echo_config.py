"""`echo_config`: one node, `record`, that reports the RunnableConfig the server gave the run.

State keys (all written by `record`):
  seen_configurable -- the JSON-safe entries of config["configurable"] (langgraph's private
                  `__pregel_*` plumbing left out)
  seen_metadata     -- the JSON-safe entries of config["metadata"]
  tags         -- config["tags"]
  recursion_limit -- config["recursion_limit"]
  marker       -- passed through from the input (so runs can be told apart)

{"marker": "m"} -> {"marker": "m", "seen_configurable": {"run_id": ..., "thread_id": ..., ...}, ...}
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.runnables import RunnableConfig
from typing_extensions import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    marker: str
    seen_configurable: dict[str, Any]
    seen_metadata: dict[str, Any]
    tags: list[str]
    recursion_limit: int


def _json_safe(mapping: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if key.startswith("__pregel"):
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        out[key] = value
    return out


def record(state: State, config: RunnableConfig) -> dict:
    return {
        "seen_configurable": _json_safe(dict(config.get("configurable") or {})),
        "seen_metadata": _json_safe(dict(config.get("metadata") or {})),
        "tags": list(config.get("tags") or []),
        "recursion_limit": config.get("recursion_limit"),
    }


builder = StateGraph(State)
builder.add_node("record", record)
builder.add_edge(START, "record")
builder.add_edge("record", END)
graph = builder.compile()
