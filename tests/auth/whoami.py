"""Graphs that report which user reached them.

``whoami``: a node recording ``config["configurable"]`` auth keys and ``runtime.server_info.user``.
``whoami_factory``: the same graph from a factory that records ``ServerRuntime.user`` in
the state-independent file named by $GRAPHDOCK_FACTORY_LOG (one JSON line per access).
"""

from __future__ import annotations

import json
import os
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph_sdk.runtime import ServerRuntime
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    marker: str
    auth_user: Any
    auth_user_id: str
    permissions: list[str]
    user_id: str
    server_user: Any
    factory_user: Any
    auth_user_full: Any


def _user(user: Any) -> Any:
    if user is None:
        return None
    return {"identity": user.identity, "team": user["team"] if "team" in user else None}


def record(state: State, config: RunnableConfig, runtime: Runtime) -> dict:
    conf = config["configurable"]
    server_user = runtime.server_info.user if runtime.server_info else None
    return {
        "auth_user": _user(conf.get("langgraph_auth_user")),
        "auth_user_id": conf.get("langgraph_auth_user_id"),
        "permissions": list(conf.get("langgraph_auth_permissions") or []),
        "user_id": conf.get("user_id"),
        "server_user": _user(server_user),
        "auth_user_full": None if conf.get("langgraph_auth_user") is None else dict(conf["langgraph_auth_user"]),
    }


def build():
    builder = StateGraph(State)
    builder.add_node("record", record)
    builder.add_edge(START, "record")
    builder.add_edge("record", END)
    return builder.compile()


graph = build()


def whoami_factory(runtime: ServerRuntime):
    path = os.environ.get("GRAPHDOCK_FACTORY_LOG")
    if path:
        user = runtime.user
        try:
            ensured = runtime.ensure_user().identity
        except PermissionError:
            ensured = None
        with open(path, "a") as f:
            f.write(json.dumps({"access_context": runtime.access_context,
                                "user": None if user is None else user.identity,
                                "ensure_user": ensured}) + "\n")
    return build()
