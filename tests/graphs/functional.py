"""Functional-API (`@entrypoint`) graphs that accumulate across runs on one thread.

`functional`: input is an int n (or a dict {"value": n}); returns previous + n, where
`previous` is the value the last run on the same thread returned (0 on the first run, and
always 0 without a checkpointer).
  run 1: 5 -> 5; run 2: {"value": 3} -> 8

`functional_runtime`: same accumulation, but reads `runtime.previous` / `runtime.context`
and uses `entrypoint.final` to return a dict while saving the plain total:
  run 1: 5 -> {"total": 5, "previous": None, "context": <ctx or None>}
  run 2: 3 -> {"total": 8, "previous": 5, "context": ...}
"""

from __future__ import annotations

from typing import Any

from langgraph.func import entrypoint
from langgraph.runtime import Runtime


def _value(inputs: Any) -> int:
    if isinstance(inputs, dict):
        return int(inputs.get("value", 0))
    return int(inputs or 0)


@entrypoint()
async def functional(inputs: Any, *, previous: Any = None) -> int:
    return (previous or 0) + _value(inputs)


@entrypoint()
async def functional_runtime(inputs: Any, runtime: Runtime) -> entrypoint.final[dict, int]:
    total = (runtime.previous or 0) + _value(inputs)
    ctx = runtime.context
    if ctx is not None and not isinstance(ctx, (dict, list, str, int, float, bool)):
        ctx = repr(ctx)
    return entrypoint.final(
        value={"total": total, "previous": runtime.previous, "context": ctx},
        save=total,
    )
