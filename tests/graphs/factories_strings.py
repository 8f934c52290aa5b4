"""Factories whose annotations are strings (PEP 563) and whose types exist only for type checkers.

`ServerRuntime` and `RunnableConfig` are imported under TYPE_CHECKING, so at run time the
annotations are the bare strings "ServerRuntime" / "RunnableConfig"; the server must still
classify these parameters by annotation. Same topology and GRAPHDOCK_FACTORY_LOG records as
factories.py (this module is self-contained on purpose, so it does not depend on sys.path).

{"items": ["x"]} -> {"items": ["x", "a", "b"]}
"""

from __future__ import annotations

import json
import operator
import os
from typing import TYPE_CHECKING, Annotated, Any

from typing_extensions import NotRequired, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph_sdk.runtime import ServerRuntime


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


def build_graph():
    builder = StateGraph(State)
    builder.add_node("a", node_a)
    builder.add_node("b", node_b)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    return builder.compile()


def _log(factory: str, runtime: Any = None, config: Any = None) -> None:
    path = os.environ.get("GRAPHDOCK_FACTORY_LOG")
    if not path:
        return
    record: dict[str, Any] = {
        "factory": factory,
        "event": "call",
        "access_context": getattr(runtime, "access_context", None),
        "runtime_type": None if runtime is None else type(runtime).__name__,
        "user": None,
        "context": None,
        "context_type": None,
        "config_type": None if config is None else type(config).__name__,
        "config_keys": None,
        "pid": os.getpid(),
    }
    user = getattr(runtime, "user", None)
    if user is not None:
        record["user"] = user.get("identity") if isinstance(user, dict) else getattr(user, "identity", repr(user))
    ert = getattr(runtime, "execution_runtime", None)
    if ert is not None:
        record["context"] = ert.context
        record["context_type"] = type(ert.context).__name__
    if isinstance(config, dict):
        record["config_keys"] = sorted((config.get("configurable") or {}).keys())
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=repr) + "\n")


def string_annotated_factory(runtime: ServerRuntime):
    _log("string_annotated_factory", runtime=runtime)
    return build_graph()


def string_two_param_factory(runtime: ServerRuntime, config: RunnableConfig):
    """Runtime first, config second: order must not matter."""
    _log("string_two_param_factory", runtime=runtime, config=config)
    return build_graph()
