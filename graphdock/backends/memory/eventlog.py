"""In-process :class:`EventLog`: per-run event lists with live fan-out.

Event ids are ``<unix ms>-<sequence>`` with a process-wide increasing sequence,
so ids order events across runs of a thread. Logs of resumable runs are kept for
``retention`` seconds after the run ends; others are dropped once the run ends
(subscribers already attached still drain them).

Thread subscribers receive every event of every run on the thread as it is
published, thread-level events (``state_update``), and a ``metadata``
``{"status": "run_done", "run_id"}`` event when a run that started ends.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import defaultdict, deque
from typing import AsyncIterator

from graphdock import serde
from graphdock.backends.base import CancelAction, Event, EventLog


def parse_event_id(value: str | None) -> tuple[int, int] | None:
    """``"<ms>-<seq>"`` (or ``"<ms>"``, ``"0"``, ``"-"``) as a comparable tuple; None if malformed."""
    if value is None:
        return None
    value = value.strip()
    if value in ("-", "", "0"):
        return (0, -1)
    head, _, tail = value.partition("-")
    try:
        return (int(head), int(tail) if tail and tail != "*" else -1)
    except ValueError:
        return None


class _RunLog:
    __slots__ = ("run_id", "thread_id", "resumable", "events", "finished", "waiters")

    def __init__(self, run_id: str, thread_id: str | None, resumable: bool) -> None:
        self.run_id = run_id
        self.thread_id = thread_id
        self.resumable = resumable
        self.events: list[Event] = []
        self.finished = False
        self.waiters: set[asyncio.Event] = set()

    def wake(self) -> None:
        for waiter in self.waiters:
            waiter.set()


class MemoryEventLog(EventLog):
    def __init__(self, *, retention: float = 120.0) -> None:
        self.retention = retention
        self._runs: dict[str, _RunLog] = {}
        self._finished: dict[str, float] = {}
        self._thread_subs: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)
        self._thread_runs: dict[str, list[str]] = defaultdict(list)
        self._last_ms = 0
        self._seq = 0
        self._cancels: dict[str, tuple[asyncio.Event, list[CancelAction]]] = {}

    def _next_id(self) -> str:
        ms = max(int(time.time() * 1000), self._last_ms)
        self._last_ms = ms
        self._seq += 1
        return f"{ms}-{self._seq}"

    def _expire(self) -> None:
        if not self._finished:
            return
        cutoff = time.monotonic()
        for run_id, deadline in list(self._finished.items()):
            if deadline <= cutoff:
                del self._finished[run_id]
                log = self._runs.pop(run_id, None)
                if log is not None and log.thread_id is not None:
                    runs = self._thread_runs.get(log.thread_id)
                    if runs and run_id in runs:
                        runs.remove(run_id)
                        if not runs:
                            del self._thread_runs[log.thread_id]

    async def open(self, run_id: str, thread_id: str | None, *, resumable: bool) -> None:
        self._expire()
        if run_id in self._runs and not self._runs[run_id].finished:
            return
        self._runs[run_id] = _RunLog(run_id, thread_id, resumable)
        self._finished.pop(run_id, None)
        if thread_id is not None and run_id not in self._thread_runs[thread_id]:
            self._thread_runs[thread_id].append(run_id)

    async def publish(self, run_id: str, event: str, data: bytes) -> None:
        log = self._runs.get(run_id)
        if log is None or log.finished:
            return
        item = Event(self._next_id(), event, data)
        log.events.append(item)
        log.wake()
        if log.thread_id is not None:
            for queue in self._thread_subs.get(log.thread_id, ()):
                queue.put_nowait(item)

    async def close(self, run_id: str) -> None:
        log = self._runs.get(run_id)
        if log is None or log.finished:
            return
        log.finished = True
        log.wake()
        # A run that never published anything never started (e.g. rejected at insert or
        # cancelled while pending): the thread saw no start, so it sees no end either.
        if log.thread_id is not None and log.events:
            subs = self._thread_subs.get(log.thread_id)
            if subs:
                done = Event(
                    self._next_id(), "metadata", serde.dumps({"status": "run_done", "run_id": run_id})
                )
                for queue in subs:
                    queue.put_nowait(done)
        self._finished[run_id] = time.monotonic() + (self.retention if log.resumable else 0.0)
        self._cancels.pop(run_id, None)

    def is_finished(self, run_id: str) -> bool:
        log = self._runs.get(run_id)
        return log is None or log.finished

    def subscribe(
        self, run_id: str, *, last_event_id: str | None = None, from_start: bool = False
    ) -> AsyncIterator[Event]:
        # Resolve the log now, not at first iteration: a fast run may end (and its
        # log be dropped) before the subscriber starts reading.
        self._expire()
        log = self._runs.get(run_id)
        if log is None:
            return self._empty()
        if from_start:
            index = 0
        elif last_event_id is not None and log.resumable:
            after = parse_event_id(last_event_id) or (0, -1)
            index = 0
            while index < len(log.events) and parse_event_id(log.events[index].id) <= after:  # type: ignore[operator]
                index += 1
        else:
            index = len(log.events)
        waiter = asyncio.Event()
        log.waiters.add(waiter)
        return self._follow(log, index, waiter)

    @staticmethod
    async def _empty() -> AsyncIterator[Event]:
        return
        yield  # pragma: no cover - makes this an async generator

    @staticmethod
    async def _follow(log: _RunLog, index: int, waiter: asyncio.Event) -> AsyncIterator[Event]:
        try:
            while True:
                while index < len(log.events):
                    yield log.events[index]
                    index += 1
                if log.finished:
                    return
                waiter.clear()
                if index < len(log.events) or log.finished:
                    continue
                await waiter.wait()
        finally:
            log.waiters.discard(waiter)

    def subscribe_thread(
        self, thread_id: str, *, last_event_id: str | None = None
    ) -> AsyncIterator[Event]:
        # Register now, not at first iteration: a run started right after the
        # subscriber's response headers were sent must not be missed.
        self._expire()
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._thread_subs[thread_id].add(queue)
        replay: list[Event] = []
        if last_event_id is not None:
            after = parse_event_id(last_event_id) or (0, -1)
            replay = [
                ev
                for rid in self._thread_runs.get(thread_id, ())
                if (log := self._runs.get(rid)) is not None and log.resumable
                for ev in log.events
                if parse_event_id(ev.id) > after  # type: ignore[operator]
            ]
            replay.sort(key=lambda ev: parse_event_id(ev.id))  # type: ignore[arg-type,return-value]
        return _ThreadSubscription(self, thread_id, queue, replay)

    def _unsubscribe_thread(self, thread_id: str, queue: asyncio.Queue[Event]) -> None:
        subs = self._thread_subs.get(thread_id)
        if subs is not None:
            subs.discard(queue)
            if not subs:
                del self._thread_subs[thread_id]

    async def publish_thread(self, thread_id: str, event: str, data: bytes) -> None:
        item = Event(self._next_id(), event, data)
        for queue in self._thread_subs.get(thread_id, ()):
            queue.put_nowait(item)

    # -- cancel signals ------------------------------------------------------

    def cancel_signal(self, run_id: str) -> tuple[asyncio.Event, list[CancelAction]]:
        """The event a worker waits on to learn that ``run_id`` must stop, and the action."""
        if run_id not in self._cancels:
            self._cancels[run_id] = (asyncio.Event(), [])
        return self._cancels[run_id]

    def request_cancel(self, run_id: str, action: CancelAction) -> None:
        flag, actions = self.cancel_signal(run_id)
        actions.append(action)
        flag.set()

    def release_cancel(self, run_id: str) -> None:
        self._cancels.pop(run_id, None)


class _ThreadSubscription:
    """A thread subscriber: replayed events, then live ones until :meth:`aclose` (or until
    the subscription is garbage-collected, for a response that was never iterated)."""

    def __init__(
        self, log: MemoryEventLog, thread_id: str, queue: asyncio.Queue[Event], replay: list[Event]
    ) -> None:
        self._queue = queue
        self._replay = deque(replay)
        self._unsubscribe = weakref.finalize(self, log._unsubscribe_thread, thread_id, queue)

    def __aiter__(self) -> "_ThreadSubscription":
        return self

    async def __anext__(self) -> Event:
        if not self._unsubscribe.alive:
            raise StopAsyncIteration
        if self._replay:
            return self._replay.popleft()
        return await self._queue.get()

    async def aclose(self) -> None:
        self._unsubscribe()
