"""`semantic`: a graph whose node uses the server's store through ``runtime.store``.

Input ``{"namespace": [...], "query": "...", "put": {"key": ..., "value": {...}} | None}``;
the node first puts ``put`` (embedded like any item), then returns the ranked search
``{"results": [[key, score], ...]}`` of ``runtime.store.asearch(namespace, query=...)``.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    namespace: list[str]
    query: str
    put: dict[str, Any] | None
    limit: int
    results: list[list[Any]]


async def search(state: State, runtime: Runtime) -> dict:
    assert runtime.store is not None
    namespace = tuple(state["namespace"])
    if state.get("put"):
        await runtime.store.aput(namespace, state["put"]["key"], state["put"]["value"])
    items = await runtime.store.asearch(namespace, query=state["query"], limit=state.get("limit", 10))
    return {"results": [[item.key, item.score] for item in items]}


def sync_search(state: State, runtime: Runtime) -> dict:
    """The same through the store's synchronous API (a sync node runs on a thread)."""
    assert runtime.store is not None
    items = runtime.store.search(tuple(state["namespace"]), query=state["query"], limit=state.get("limit", 10))
    return {"results": [[item.key, item.score] for item in items]}


graph = StateGraph(State).add_node("search", search).add_edge(START, "search").add_edge("search", END).compile()
sync_graph = (
    StateGraph(State).add_node("search", sync_search).add_edge(START, "search").add_edge("search", END).compile()
)
