"""`context`: a graph with `context_schema=Ctx` that reports what its node received.

The node `inspect` records the runtime context it saw, and looks up the store item
("users",) / "user_123" to fill `name`.

State keys:
  seen -- {"type": <type name of runtime.context>, "model": ..., "temperature": ...}
  name -- store item ("users",)/"user_123" value["name"], or "unknown" (no store / no item)

{} with context {"model": "m1"} -> {"seen": {"type": "Ctx", "model": "m1", "temperature": 0.5}, "name": "unknown"}
{} with no context               -> {"seen": {"type": "NoneType", "model": None, "temperature": None}, ...}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from typing_extensions import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime


@dataclass
class Ctx:
    model: str = "default-model"
    temperature: float = 0.5


class State(TypedDict, total=False):
    seen: dict[str, Any]
    name: str


def _field(ctx: Any, key: str) -> Any:
    if ctx is None:
        return None
    if isinstance(ctx, dict):
        return ctx.get(key)
    return getattr(ctx, key, None)


async def inspect(state: State, runtime: Runtime[Ctx]) -> dict:
    ctx = runtime.context
    seen = {
        "type": type(ctx).__name__,
        "model": _field(ctx, "model"),
        "temperature": _field(ctx, "temperature"),
    }
    name = "unknown"
    if runtime.store is not None:
        item = await runtime.store.aget(("users",), "user_123")
        if item is not None:
            name = item.value.get("name", "unknown")
    return {"seen": seen, "name": name}


builder = StateGraph(State, context_schema=Ctx)
builder.add_node("inspect", inspect)
builder.add_edge(START, "inspect")
builder.add_edge("inspect", END)
graph = builder.compile()
