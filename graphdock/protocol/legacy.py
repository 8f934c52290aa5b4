"""The events of runs started with the v1 API, as protocol events on a thread's stream.

A v1 run publishes the event names its ``stream_mode`` asked for (``values``,
``updates|<ns>...``, ``custom``, ...); what it published is all a thread stream can show
of it. Converted: ``values``, ``updates``, ``custom``, ``tasks`` and ``checkpoints`` (with
their subgraph namespaces), interrupts in ``values`` / ``updates`` (as ``input.requested``,
once each), and the root lifecycle (``running`` at its ``metadata`` event, ``failed`` at
its ``error`` event, its terminal status when it ends, read from storage). Not converted:
v1 token streams (``messages`` tuples, ``messages/*``), ``debug`` and ``events`` — a v1
run streams those in a shape that carries no message lifecycle.

Protocol runs publish ``metadata`` (with ``"protocol": true``), ``protocol/*`` events and
``error``; their ``metadata``, ``error`` and end are left to their own protocol events.
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

import orjson

from graphdock.backends.base import Event, Row

_DATA_METHODS = {"values", "updates", "custom", "tasks", "checkpoints"}

Pair = tuple[str, dict[str, Any]]
RunLookup = Callable[[str], Awaitable[tuple[Row | None, Row | None]]]


def _params(namespace: list[str], data: Any) -> dict[str, Any]:
    return {"namespace": namespace, "timestamp": int(time.time() * 1000), "data": data}


class LegacyConverter:
    """Stateful conversion of one thread stream's v1-run events.

    ``lookup(run_id)`` returns the run's row and its thread's row (either None when gone);
    it is called once per run end.
    """

    def __init__(self, lookup: RunLookup) -> None:
        self._lookup = lookup
        self._kinds: dict[str, bool] = {}  # run id -> is a protocol run
        self._current: str | None = None  # the run whose events arrive now
        self._current_protocol: bool | None = None
        self._failed: set[str] = set()
        self._interrupts: set[str] = set()

    def saw_protocol_event(self) -> None:
        """A ``protocol/*`` event arrived: the current run is a protocol run."""
        self._current_protocol = True
        if self._current is not None:
            self._kinds[self._current] = True

    async def convert(self, event: Event) -> list[Pair]:
        """The protocol events for one event of a thread stream (v1 runs only)."""
        name = event.event
        if name == "metadata":
            return await self._metadata(orjson.loads(event.data))
        if self._current_protocol:
            return []
        if name == "error":
            if self._current is None:
                return []
            self._failed.add(self._current)
            message = _error_message(orjson.loads(event.data))
            return [("lifecycle", _params([], {"event": "failed", "graph_name": "", "error": message}))]
        method, _, suffix = name.partition("|")
        if method not in _DATA_METHODS:
            return []
        namespace = suffix.split("|") if suffix else []
        data = orjson.loads(event.data)
        pairs: list[Pair] = []
        if method in ("values", "updates") and isinstance(data, dict) and "__interrupt__" in data:
            for item in data.pop("__interrupt__") or ():
                if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"] not in self._interrupts:
                    self._interrupts.add(item["id"])
                    value = item.get("value")
                    pairs.append(
                        ("input.requested", _params(namespace, {"interrupt_id": item["id"], "payload": value, "value": value}))
                    )
            if method == "updates" and not data:
                return pairs
        pairs.append((method, _params(namespace, data)))
        return pairs

    async def _metadata(self, data: Any) -> list[Pair]:
        if not isinstance(data, dict):
            return []
        run_id = data.get("run_id")
        if not isinstance(run_id, str):
            return []
        if data.get("status") != "run_done":
            self._current = run_id
            self._current_protocol = bool(data.get("protocol"))
            self._kinds[run_id] = self._current_protocol
            if self._current_protocol:
                return []
            return [("lifecycle", _params([], {"event": "running", "graph_name": ""}))]
        # the end of a run
        kind = self._kinds.pop(run_id, None)
        if self._current == run_id:
            self._current, self._current_protocol = None, None
        failed = run_id in self._failed
        self._failed.discard(run_id)
        if kind is True or failed:
            return []
        run, thread = await self._lookup(run_id)
        if run is not None and (run.get("kwargs") or {}).get("protocol"):
            return []
        status = (run or {}).get("status")
        if status == "success" or (run is None and thread is not None):
            event = "interrupted" if (thread or {}).get("status") == "interrupted" else "completed"
            return [("lifecycle", _params([], {"event": event, "graph_name": _graph(run)}))]
        if status in ("error", "timeout"):
            message = _error_message((run or {}).get("error") or {})
            return [("lifecycle", _params([], {"event": "failed", "graph_name": _graph(run), "error": message}))]
        return [("lifecycle", _params([], {"event": "failed", "graph_name": _graph(run), "error": "Run was cancelled"}))]


def _graph(run: Row | None) -> str:
    configurable = (((run or {}).get("kwargs") or {}).get("config") or {}).get("configurable") or {}
    return str(configurable.get("graph_id") or "")


def _error_message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("error") or "Run failed")
    return str(error or "Run failed")
