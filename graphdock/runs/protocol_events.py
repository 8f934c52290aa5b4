"""Converting langgraph stream parts into thread streaming protocol events.

A run started through the protocol (its kwargs carry ``protocol: true``) is driven with
:data:`GRAPH_MODES`, ``subgraphs=True``, ``version="v2"`` and langgraph's messages-v2
flag, so that langgraph itself emits chat model output as protocol message events
(``message-start`` / ``content-block-*`` / ``message-finish``) and tool execution as
``tools`` events. :class:`ProtocolConverter` turns each part into ``(method, params)``
pairs, ``params`` being the protocol event's ``{"namespace", "timestamp", "data",
"node"?}``; the executor publishes each as the event ``protocol/<method>`` of the run's log
(``seq`` and ``event_id`` are given by the log when a stream reads it back).

Payloads per channel follow langgraph's own v3 projections: ``values`` (the state, without
interrupts), ``updates`` (``{node: update}``), ``custom`` (the written value), ``tasks``
and ``checkpoints`` (langgraph's payloads), ``messages`` (one protocol message event, the
message id on every event of a message and langgraph's scalar metadata on its start),
``tools`` (langgraph's tool events), ``input.requested`` (``{interrupt_id, payload,
value}``, once per interrupt) and ``lifecycle`` (``{event, graph_name}``: the root's
``running`` and terminal status, and each subgraph namespace's ``started`` on its first
event — with ``cause`` ``{"type": "toolCall", "tool_call_id"}`` when it starts while one
tool call runs in its parent namespace, a subagent — and its terminal status when its
parent task reports its result).
"""

from __future__ import annotations

import time
from typing import Any, Iterator

from langchain_core.language_models._compat_bridge import message_to_events
from langchain_core.messages import BaseMessage

from graphdock import serde

#: the event-name prefix of protocol events in a run's event log
PREFIX = "protocol/"

#: what langgraph is asked to stream for a protocol run
GRAPH_MODES = ["values", "updates", "messages", "custom", "tasks", "checkpoints", "tools"]

Pair = tuple[str, dict[str, Any]]

_TERMINAL = ("completed", "failed", "interrupted")


def _params(namespace: tuple[str, ...], data: Any, node: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "namespace": list(namespace),
        "timestamp": int(time.time() * 1000),
        "data": data,
    }
    if node:
        params["node"] = node
    return params


def _graph_name(segment: str) -> str:
    return segment.partition(":")[0]


def _interrupt_items(interrupts: Any) -> list[dict[str, Any]]:
    """``[{id, value}]`` of langgraph interrupts (objects or their JSON form)."""
    items = []
    for item in serde.to_jsonable(list(interrupts or ())):
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            items.append(item)
    return items


class ProtocolConverter:
    """Stateful conversion of one protocol run's stream parts.

    Tracks the interrupts already announced (each once), the namespaces seen (for their
    ``started`` lifecycle) and the subgraph each parent task runs (for its terminal
    lifecycle), and the current message id per producer (so that every event of a
    message carries its id).
    """

    def __init__(self, graph_name: str) -> None:
        self.graph_name = graph_name
        self._interrupts: set[str] = set()
        self._open: dict[tuple[str, ...], str] = {}  # subgraph namespace -> status
        self._by_task: dict[tuple[tuple[str, ...], str], tuple[str, ...]] = {}
        self._message_ids: dict[tuple[tuple[str, ...], str], str] = {}
        self._tool_calls: dict[tuple[str, ...], list[str]] = {}  # namespace -> running tool calls
        self.interrupted = False

    # -- root lifecycle ------------------------------------------------------------

    def started(self) -> Pair:
        """The root's ``running`` lifecycle event."""
        return "lifecycle", _params((), {"event": "running", "graph_name": self.graph_name})

    def finished(self, event: str, error: str | None = None) -> list[Pair]:
        """Terminal lifecycle events: open subgraphs first, then the root."""
        pairs: list[Pair] = []
        child_event = "interrupted" if event == "interrupted" and not self._open else event
        for namespace, status in list(self._open.items()):
            if status == "started":
                pairs.append(self._lifecycle(namespace, child_event, error))
        data: dict[str, Any] = {"event": event, "graph_name": self.graph_name}
        if error:
            data["error"] = error
        pairs.append(("lifecycle", _params((), data)))
        return pairs

    def _lifecycle(
        self, namespace: tuple[str, ...], event: str, error: str | None = None, cause: dict[str, Any] | None = None
    ) -> Pair:
        self._open[namespace] = event
        data: dict[str, Any] = {"event": event, "graph_name": _graph_name(namespace[-1])}
        if error:
            data["error"] = error
        if cause:
            data["cause"] = cause
        return "lifecycle", _params(namespace, data)

    # -- parts ---------------------------------------------------------------------

    def convert(self, part: Any) -> Iterator[Pair]:
        """The protocol events for one ``astream(version="v2", subgraphs=True)`` part."""
        mode = part["type"]
        namespace = tuple(part.get("ns") or ())
        data = part.get("data")
        yield from self._discover(namespace)
        if mode == "values":
            yield from self._input_requested(namespace, part.get("interrupts"))
            values = serde.to_jsonable(data)
            if isinstance(values, dict):
                values.pop("__interrupt__", None)
            yield "values", _params(namespace, values)
        elif mode == "updates":
            yield from self._updates(namespace, data)
        elif mode == "messages":
            yield from self._messages(namespace, data)
        elif mode == "tasks":
            yield from self._tasks(namespace, data)
        elif mode == "custom":
            yield "custom", _params(namespace, serde.to_jsonable(data))
        elif mode == "tools":
            payload = serde.to_jsonable(data)
            self._track_tool_call(namespace, payload)
            yield "tools", _params(namespace, payload)
        elif mode == "checkpoints":
            yield "checkpoints", _params(namespace, serde.to_jsonable(data))

    def _discover(self, namespace: tuple[str, ...]) -> Iterator[Pair]:
        for depth in range(1, len(namespace) + 1):
            prefix = namespace[:depth]
            if prefix in self._open:
                continue
            _, _, task_id = prefix[-1].partition(":")
            if task_id:
                self._by_task[(prefix[:-1], task_id)] = prefix
            # a subgraph that starts while exactly one tool call runs above it (a subagent)
            calls = self._tool_calls.get(prefix[:-1]) or []
            cause = {"type": "toolCall", "tool_call_id": calls[0]} if len(calls) == 1 else None
            yield self._lifecycle(prefix, "started", cause=cause)

    def _track_tool_call(self, namespace: tuple[str, ...], payload: Any) -> None:
        if not isinstance(payload, dict) or not isinstance(payload.get("tool_call_id"), str):
            return
        calls = self._tool_calls.setdefault(namespace, [])
        if payload.get("event") == "tool-started":
            calls.append(payload["tool_call_id"])
        elif payload.get("event") in ("tool-finished", "tool-error") and payload["tool_call_id"] in calls:
            calls.remove(payload["tool_call_id"])

    def _input_requested(self, namespace: tuple[str, ...], interrupts: Any) -> Iterator[Pair]:
        for item in _interrupt_items(interrupts):
            if item["id"] in self._interrupts:
                continue
            self._interrupts.add(item["id"])
            self.interrupted = True
            value = item.get("value")
            yield "input.requested", _params(
                namespace, {"interrupt_id": item["id"], "payload": value, "value": value}
            )

    def _updates(self, namespace: tuple[str, ...], data: Any) -> Iterator[Pair]:
        if not isinstance(data, dict):
            yield "updates", _params(namespace, serde.to_jsonable(data))
            return
        if "__interrupt__" in data:
            yield from self._input_requested(namespace, data["__interrupt__"])
        rest = {k: v for k, v in data.items() if k != "__interrupt__"}
        if rest:
            node = next(iter(rest)) if len(rest) == 1 else None
            yield "updates", _params(namespace, serde.to_jsonable(rest), node)

    def _tasks(self, namespace: tuple[str, ...], data: Any) -> Iterator[Pair]:
        payload = serde.to_jsonable(data)
        yield "tasks", _params(namespace, payload)
        if not isinstance(payload, dict) or "result" not in payload:
            return
        child = self._by_task.get((namespace, str(payload.get("id"))))
        if child is None or self._open.get(child) != "started":
            return
        if payload.get("interrupts"):
            yield self._lifecycle(child, "interrupted")
        elif payload.get("error"):
            yield self._lifecycle(child, "failed", str(payload["error"]))
        else:
            yield self._lifecycle(child, "completed")

    def _messages(self, namespace: tuple[str, ...], data: Any) -> Iterator[Pair]:
        try:
            item, metadata = data
        except (TypeError, ValueError):
            return
        metadata = metadata if isinstance(metadata, dict) else {}
        node = metadata.get("langgraph_node")
        producer = (namespace, str(metadata.get("langgraph_checkpoint_ns") or node or ""))
        if isinstance(item, BaseMessage):
            events: list[Any] = list(message_to_events(item))
        elif isinstance(item, dict) and "event" in item:
            events = [item]
        else:
            return
        for event in events:
            event = dict(serde.to_jsonable(event))
            if event.get("event") == "message-start":
                message_id = event.get("id") or serde.uuid7()
                self._message_ids[producer] = str(message_id)
                event["id"] = str(message_id)
                scalars = {
                    k: v
                    for k, v in metadata.items()
                    if isinstance(v, (str, int, float, bool)) and not k.startswith("__")
                }
                event["metadata"] = {**scalars, **(event.get("metadata") or {})}
            elif producer in self._message_ids and "id" not in event:
                event["id"] = self._message_ids[producer]
            if event.get("event") in ("message-finish", "error"):
                self._message_ids.pop(producer, None)
            yield "messages", _params(namespace, event, node if isinstance(node, str) else None)
