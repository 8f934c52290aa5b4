"""Converting langgraph stream output into Agent Server stream events.

The client's ``stream_mode`` list names the events it wants; langgraph is asked for
the matching ``astream`` modes and each chunk becomes one or more named events:
``values``, ``updates``, ``custom``, ``debug``, ``tasks``, ``checkpoints``,
``messages`` (from ``messages-tuple``), the legacy ``messages/metadata``,
``messages/partial`` and ``messages/complete`` (from ``messages``), and ``events``.
With subgraph streaming, names get ``|<ns segment>...`` suffixes (never the legacy
``messages/*`` events). Payloads are langgraph's, except that ``debug`` checkpoint
payloads gain ``checkpoint`` / ``parent_checkpoint`` references and legacy
``messages/partial`` carries the message accumulated so far.
"""

from __future__ import annotations

from typing import Any, Iterator

from langchain_core.messages import BaseMessage, BaseMessageChunk, message_chunk_to_message

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
    """``{checkpoint_id, thread_id, checkpoint_ns}`` of a checkpoint config (None stays None)."""
    if not isinstance(config, dict):
        return config
    conf = config.get("configurable") or {}
    return {
        "checkpoint_id": conf.get("checkpoint_id"),
        "thread_id": conf.get("thread_id"),
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
    }


def _debug_checkpoint(payload: Any) -> Any:
    """A debug ``checkpoint`` payload augmented with ``checkpoint`` / ``parent_checkpoint``
    refs; a task whose ``state`` is a (subgraph checkpoint) config gets ``checkpoint``
    instead of ``state``. The ``checkpoints`` mode carries langgraph's payload unchanged."""
    if not isinstance(payload, dict):
        return payload
    out = dict(payload)
    out["checkpoint"] = _checkpoint_ref(out.get("config"))
    out["parent_checkpoint"] = _checkpoint_ref(out.get("parent_config"))
    tasks = out.get("tasks")
    if isinstance(tasks, (list, tuple)):
        new_tasks = []
        for task in tasks:
            state = task.get("state") if isinstance(task, dict) else None
            if isinstance(state, dict) and "configurable" in state:
                task = {k: v for k, v in task.items() if k != "state"}
                task["checkpoint"] = _checkpoint_ref(state)
            new_tasks.append(task)
        out["tasks"] = new_tasks
    return out


class EventConverter:
    """Stateful conversion of one run's chunks (legacy ``messages`` accumulates per id)."""

    def __init__(self, requested: list[str], *, subgraphs: bool) -> None:
        self.requested = set(requested)
        self.subgraphs = subgraphs
        self._messages: dict[str, BaseMessage] = {}
        #: the root graph's last ``values`` chunk (when ``values`` was requested), the run's
        #: output where no final state is read (a temporary run)
        self.last_values: Any = None

    def convert(self, ns: tuple[str, ...], mode: str, payload: Any) -> Iterator[tuple[str, Any]]:
        """The ``(event name, data)`` pairs for one langgraph chunk of ``mode`` from namespace ``ns``."""
        suffix = "|" + "|".join(ns) if ns and self.subgraphs else ""
        if mode == "messages":
            yield from self._convert_messages(suffix, payload)
            return
        if mode not in self.requested:
            return
        if mode == "values" and not ns:
            self.last_values = payload
        if mode == "debug" and isinstance(payload, dict) and payload.get("type") == "checkpoint":
            payload = {**payload, "payload": _debug_checkpoint(payload.get("payload"))}
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
