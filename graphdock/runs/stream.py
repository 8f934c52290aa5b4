"""Converting langgraph stream output into Agent Server stream events.

The client's ``stream_mode`` list names the events it wants; langgraph is asked for
the matching ``astream`` modes and each chunk becomes one or more named events:
``values``, ``updates``, ``custom``, ``debug``, ``tasks``, ``checkpoints``,
``messages`` (from ``messages-tuple``), the legacy ``messages/metadata``,
``messages/partial`` and ``messages/complete`` (from ``messages``), and ``events``.
With subgraph streaming, names get ``|<ns segment>...`` suffixes (never the legacy
``messages/*`` events).
"""

from __future__ import annotations

from typing import Any, Iterator

from langchain_core.messages import BaseMessage, BaseMessageChunk, message_chunk_to_message

STREAM_MODES = (
    "values",
    "messages",
    "messages-tuple",
    "updates",
    "events",
    "debug",
    "tasks",
    "checkpoints",
    "custom",
)


def graph_modes(requested: list[str]) -> list[str]:
    """The langgraph ``astream`` modes needed for the requested event modes."""
    modes: list[str] = []
    for mode in requested:
        mapped = "messages" if mode in ("messages", "messages-tuple") else mode
        if mapped == "events":
            continue
        if mapped not in modes:
            modes.append(mapped)
    return modes


def _checkpoint_ref(config: Any) -> Any:
    if not isinstance(config, dict):
        return config
    conf = config.get("configurable") or {}
    return {
        "thread_id": conf.get("thread_id"),
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
        "checkpoint_id": conf.get("checkpoint_id"),
        "checkpoint_map": conf.get("checkpoint_map"),
    }


def _checkpoint_payload(payload: Any) -> Any:
    """A ``checkpoints`` / debug checkpoint payload with configs reduced to checkpoint refs."""
    if not isinstance(payload, dict):
        return payload
    out = dict(payload)
    if "config" in out:
        out["checkpoint"] = _checkpoint_ref(out["config"])
    if "parent_config" in out:
        out["parent_checkpoint"] = _checkpoint_ref(out["parent_config"]) if out["parent_config"] else None
    tasks = out.get("tasks")
    if isinstance(tasks, (list, tuple)):
        new_tasks = []
        for task in tasks:
            if isinstance(task, dict) and isinstance(task.get("state"), dict):
                task = {**task, "checkpoint": _checkpoint_ref(task["state"])}
                task.pop("state", None)
            new_tasks.append(task)
        out["tasks"] = new_tasks
    return out


class EventConverter:
    """Stateful conversion of one run's chunks (legacy ``messages`` accumulates per id)."""

    def __init__(self, requested: list[str], *, subgraphs: bool) -> None:
        self.requested = set(requested)
        self.subgraphs = subgraphs
        self._messages: dict[str, BaseMessage] = {}
        self.last_values: Any = None
        self.interrupts: list[Any] = []

    def convert(self, ns: tuple[str, ...], mode: str, payload: Any) -> Iterator[tuple[str, Any]]:
        suffix = "|" + "|".join(ns) if ns and self.subgraphs else ""
        if mode == "messages":
            yield from self._convert_messages(suffix, payload)
            return
        if not ns:
            if mode == "values":
                self.last_values = payload
                if isinstance(payload, dict) and payload.get("__interrupt__"):
                    self.interrupts = list(payload["__interrupt__"])
            elif mode == "updates" and isinstance(payload, dict) and payload.get("__interrupt__"):
                self.interrupts = list(payload["__interrupt__"])
        if mode not in self.requested:
            return
        if mode == "checkpoints":
            payload = _checkpoint_payload(payload)
        elif mode == "debug" and isinstance(payload, dict) and payload.get("type") == "checkpoint":
            payload = {**payload, "payload": _checkpoint_payload(payload.get("payload"))}
        yield mode + suffix, payload

    def _convert_messages(self, suffix: str, payload: Any) -> Iterator[tuple[str, Any]]:
        message, metadata = payload
        if "messages-tuple" in self.requested:
            yield "messages" + suffix, [message, metadata]
        if "messages" not in self.requested or not isinstance(message, BaseMessage):
            return
        msg_id = message.id or ""
        first = msg_id not in self._messages
        if first:
            yield "messages/metadata", {msg_id: {"metadata": metadata}}
        if isinstance(message, BaseMessageChunk):
            previous = self._messages.get(msg_id)
            accumulated = previous + message if isinstance(previous, BaseMessageChunk) else message
            self._messages[msg_id] = accumulated
            yield "messages/partial", [message_chunk_to_message(accumulated)]
        else:
            self._messages[msg_id] = message
            yield "messages/complete", [message]
