"""Protocol events as they go out, their channels, and subscription filters.

An event of the event log (:class:`graphdock.backends.base.Event`, id ``"<ms>-<n>"``)
becomes the protocol event ``{"type": "event", "event_id": <log id>, "seq": <n>,
"method", "params"}``: ``n`` is the log's deployment-wide increasing counter, so ``seq``
increases along a thread's stream across its runs and API processes, and ``since=<seq>``
names a position in it. The event's JSON is assembled from the published bytes without
decoding them again.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

import orjson
from langchain_protocol.protocol import Channel, ErrorCode

from graphdock.backends.base import Event
from graphdock.runs.protocol_events import PREFIX

#: the channels a subscription may name (besides ``custom:<name>``)
CHANNELS: frozenset[str] = frozenset(
    arg
    for option in typing.get_args(Channel)
    for arg in typing.get_args(option)
    if isinstance(arg, str) and arg != "custom:.+"
)

#: the error codes of the protocol's error response
ERROR_CODES: frozenset[str] = frozenset(
    arg for option in typing.get_args(ErrorCode) for arg in typing.get_args(option)
)


#: the thread-level event whose log id marks "now" on a thread's stream (never sent)
MARK = PREFIX + "mark"


def seq_of(event_id: str) -> int:
    """The ``seq`` of an event log id ``"<ms>-<n>"`` (``n``)."""
    return int(event_id.rpartition("-")[2])


def channel_of(method: str, data: Any) -> str:
    """The channel an event of ``method`` belongs to (``custom:<name>`` for named custom data)."""
    if method == "input.requested":
        return "input"
    if method == "custom":
        name = data.get("name") if isinstance(data, dict) else None
        return f"custom:{name}" if isinstance(name, str) and name else "custom"
    return method


def segment_matches(segment: str, prefix: str) -> bool:
    """A namespace segment against a filter segment: equal, or the filter names the graph
    (no ``:``) and the segment is ``<graph>:<task id>``."""
    if segment == prefix:
        return True
    return ":" not in prefix and segment.partition(":")[0] == prefix


@dataclass(frozen=True)
class Filter:
    """Which events a subscription gets: channels, namespace prefixes, depth below them."""

    channels: frozenset[str]
    namespaces: tuple[tuple[str, ...], ...] | None = None
    depth: int | None = None

    def matches(self, channel: str, namespace: list[str]) -> bool:
        if channel not in self.channels and not (
            channel.startswith("custom:") and "custom" in self.channels
        ):
            return False
        if not self.namespaces:
            return True
        for prefix in self.namespaces:
            if len(prefix) > len(namespace):
                continue
            if not all(segment_matches(s, p) for s, p in zip(namespace, prefix)):
                continue
            if self.depth is None or len(namespace) - len(prefix) <= self.depth:
                return True
        return False


def parse_filter(channels: Any, namespaces: Any = None, depth: Any = None) -> Filter:
    """A :class:`Filter` from subscribe parameters; ValueError naming what is wrong."""
    if not isinstance(channels, list) or not channels:
        raise ValueError("channels must be a non-empty list of channel names")
    for channel in channels:
        if not isinstance(channel, str) or not (
            channel in CHANNELS or (channel.startswith("custom:") and len(channel) > len("custom:"))
        ):
            raise ValueError(
                f"unknown channel {channel!r}; expected one of {sorted(CHANNELS)} or custom:<name>"
            )
    parsed: tuple[tuple[str, ...], ...] | None = None
    if namespaces is not None:
        if not isinstance(namespaces, list) or not all(
            isinstance(ns, list) and all(isinstance(s, str) for s in ns) for ns in namespaces
        ):
            raise ValueError("namespaces must be a list of namespaces, each a list of strings")
        parsed = tuple(tuple(ns) for ns in namespaces)
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 0):
        raise ValueError("depth must be a non-negative integer")
    return Filter(frozenset(channels), parsed, depth)


@dataclass(frozen=True)
class OutEvent:
    """A protocol event ready to send: its seq, id, method, channel, namespace and JSON."""

    seq: int
    event_id: str
    method: str
    channel: str
    namespace: list[str]
    json: bytes


def out_event(event: Event) -> OutEvent | None:
    """The protocol event for a ``protocol/<method>`` event of the log; None for others."""
    if not event.event.startswith(PREFIX) or event.event == MARK:
        return None
    method = event.event[len(PREFIX) :]
    params = orjson.loads(event.data)
    return build(event.id, method, params, event.data)


def build(
    event_id: str, method: str, params: dict[str, Any], raw: bytes | None = None, *, seq: int | None = None
) -> OutEvent:
    """An :class:`OutEvent` for ``params`` (``raw``: their JSON, when already encoded;
    ``seq``: when ``event_id`` is not a log id)."""
    if seq is None:
        seq = seq_of(event_id)
    body = raw if raw is not None else orjson.dumps(params)
    data = (
        b'{"type":"event","event_id":"'
        + event_id.encode()
        + b'","seq":'
        + str(seq).encode()
        + b',"method":'
        + orjson.dumps(method)
        + b',"params":'
        + body
        + b"}"
    )
    namespace = params.get("namespace") or []
    return OutEvent(seq, event_id, method, channel_of(method, params.get("data")), namespace, data)


def error(command_id: int | None, code: str, message: str) -> dict[str, Any]:
    """The protocol's error response."""
    assert code in ERROR_CODES, code
    return {"type": "error", "id": command_id, "error": code, "message": message}


def success(command_id: int, result: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The protocol's success response."""
    out: dict[str, Any] = {"type": "success", "id": command_id, "result": result}
    if meta:
        out["meta"] = meta
    return out
