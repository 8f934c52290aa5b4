"""A thread's protocol event stream, read through the event log port.

:func:`open_thread_stream` subscribes to the thread (``EventLog.subscribe_thread``, so any
API process serves the events of runs executed anywhere in the deployment) and yields
:class:`graphdock.protocol.wire.OutEvent` in ``seq`` order, each once:

- with ``since``: the kept events with ``seq > since`` (the thread's protocol runs are
  resumable, so their events are kept for ``resumable_stream_ttl`` seconds after they end),
  then live ones;
- without: every kept event of the thread (as the official server does: a client that
  attaches after ``run.start`` sees the run from its start, and one that reattaches to an
  interrupted thread sees its ``input.requested``), then live ones.

Events of runs started with the v1 API are converted by
:class:`graphdock.protocol.legacy.LegacyConverter` (live only: v1 runs are not resumable
unless created with ``stream_resumable``).
"""

from __future__ import annotations

from typing import AsyncIterator

from graphdock.backends.base import Event, EventLog, Row, Storage, Subscription, parse_event_id
from graphdock.protocol.legacy import LegacyConverter
from graphdock.protocol.wire import MARK, OutEvent, build, out_event, seq_of
from graphdock.runs.protocol_events import PREFIX


class ThreadStream:
    """One subscriber's view of a thread's protocol events (an async iterator of
    :class:`OutEvent`, ``None`` for each heartbeat interval without one)."""

    def __init__(self, subscription: Subscription, storage: Storage, thread_id: str, since: int | None) -> None:
        self._subscription = subscription
        self._storage = storage
        self._thread_id = thread_id
        self._since = since
        self._last: tuple[int, int] = (0, -1)
        self._legacy = LegacyConverter(self._lookup)

    async def _lookup(self, run_id: str) -> tuple[Row | None, Row | None]:
        run = await self._storage.get_run(run_id, self._thread_id)
        thread = await self._storage.get_thread(self._thread_id)
        return run, thread

    async def convert(self, event: Event) -> list[OutEvent]:
        """The protocol events for one event of the log (none for a repeat or one before
        ``since``)."""
        key = parse_event_id(event.id)
        if key is None or key <= self._last:
            return []
        self._last = key
        if self._since is not None and seq_of(event.id) <= self._since:
            return []
        if event.event == MARK:
            return []
        if event.event.startswith(PREFIX):
            self._legacy.saw_protocol_event()
            out = out_event(event)
            return [] if out is None else [out]
        pairs = await self._legacy.convert(event)
        if len(pairs) == 1:
            return [build(event.id, *pairs[0])]
        seq = seq_of(event.id)
        return [build(f"{event.id}.{i}", method, params, seq=seq) for i, (method, params) in enumerate(pairs)]

    async def ticking(self, interval: float) -> AsyncIterator[list[OutEvent] | None]:
        """Batches of protocol events as they arrive (events the log hands over together
        come together), ``None`` after ``interval`` seconds without any."""
        async for item in self._subscription.ticking(interval):
            if item is None:
                yield None
                continue
            batch: list[OutEvent] = []
            for event in [item, *self._subscription.take_ready()]:
                batch.extend(await self.convert(event))
            if batch:
                yield batch

    async def aclose(self) -> None:
        await self._subscription.aclose()


def open_thread_stream(events: EventLog, storage: Storage, thread_id: str, since: int | None) -> ThreadStream:
    """Subscribe to ``thread_id``'s protocol events now (nothing published after this call
    is missed), replaying kept ones as described in this module."""
    last_event_id = "0" if since is None else f"0-{since}"
    return ThreadStream(events.subscribe_thread(thread_id, last_event_id=last_event_id), storage, thread_id, since)
