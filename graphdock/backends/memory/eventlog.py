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
from typing import AsyncIterator, Callable

from graphdock import serde
from graphdock.backends.base import CancelAction, Event, LocalEventLog, Subscription, parse_event_id
from graphdock.backends.cancels import CancelSignals


class _RunLog:
    __slots__ = ("run_id", "thread_id", "resumable", "events", "finished", "waiters")

    def __init__(
        self, run_id: str, thread_id: str | None, resumable: bool, *, finished: bool = False
    ) -> None:
        self.run_id = run_id
        self.thread_id = thread_id
        self.resumable = resumable
        self.events: list[Event] = []
        self.finished = finished
        self.waiters: set[_Waker] = set()

    def wake(self) -> None:
        finished = self.finished
        for waiter in self.waiters:
            if finished or not waiter.at_end:
                waiter.wake()


class _Waker:
    """What a subscriber waiting for a run's next event is woken through (``at_end``: only
    when the run's stream is closed)."""

    __slots__ = ("future", "at_end")

    def __init__(self, at_end: bool = False) -> None:
        self.future: asyncio.Future[bool] | None = None
        self.at_end = at_end

    def wake(self) -> None:
        future = self.future
        if future is not None and not future.done():
            future.set_result(True)


def _tick(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


class _RunSubscription(Subscription):
    """A run subscriber: the log's events from ``index`` on, until the run's stream is closed.

    Iterating needs no task of its own; :meth:`ticking` is the same stream with ``None``
    yielded whenever ``interval`` seconds pass without an event (heartbeats).
    """

    def __init__(self, log: _RunLog, index: int, *, at_end: bool = False) -> None:
        self._log = log
        self._index = index
        self._waiter = _Waker(at_end)
        self._closed = False
        log.waiters.add(self._waiter)

    def __aiter__(self) -> "_RunSubscription":
        return self

    async def __anext__(self) -> Event:
        item = await self._next(None)
        assert item is not None
        return item

    async def _next(self, interval: float | None) -> Event | None:
        log = self._log
        while True:
            if self._index < len(log.events) and (log.finished or not self._waiter.at_end):
                item = log.events[self._index]
                self._index += 1
                return item
            if log.finished or self._closed:
                self._close()
                raise StopAsyncIteration
            loop = asyncio.get_running_loop()
            future = self._waiter.future = loop.create_future()
            timer = None if interval is None else loop.call_later(interval, _tick, future)
            try:
                woken = await future
            finally:
                self._waiter.future = None
                if timer is not None:
                    timer.cancel()
            if not woken:
                # events are read by index: one published as the timer fired is not lost
                return None

    def take_ready(self) -> list[Event]:
        """The events that :meth:`__anext__` would return now without waiting, taken at once
        (so that a response can send together what arrived together)."""
        log = self._log
        if self._waiter.at_end and not log.finished:
            return []
        items = log.events[self._index :]
        self._index = len(log.events)
        return items

    async def ticking(self, interval: float) -> AsyncIterator[Event | None]:
        """The events, with ``None`` whenever ``interval`` seconds pass without one."""
        try:
            while True:
                try:
                    item = await self._next(interval)
                except StopAsyncIteration:
                    return
                yield item
        finally:
            self._close()

    def _close(self) -> None:
        self._closed = True
        self._log.waiters.discard(self._waiter)

    async def aclose(self) -> None:
        self._close()

    def __del__(self) -> None:
        self._log.waiters.discard(self._waiter)


class MemoryEventLog(LocalEventLog):
    def __init__(self, *, retention: float = 120.0) -> None:
        self.retention = retention
        self._runs: dict[str, _RunLog] = {}
        self._finished: dict[str, float] = {}
        self._thread_subs: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)
        self._thread_runs: dict[str, list[str]] = defaultdict(list)
        self._last_ms = 0
        self._seq = 0
        self._cancels = CancelSignals()

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
        self.open_now(run_id, thread_id, resumable=resumable)

    def open_now(self, run_id: str, thread_id: str | None, *, resumable: bool) -> None:
        """:meth:`open`, for callers that cannot await (it never waits)."""
        self._expire()
        if run_id in self._runs and not self._runs[run_id].finished:
            return
        self._runs[run_id] = _RunLog(run_id, thread_id, resumable)
        self._finished.pop(run_id, None)
        if thread_id is not None and run_id not in self._thread_runs[thread_id]:
            self._thread_runs[thread_id].append(run_id)

    async def publish(self, run_id: str, event: str, data: bytes) -> None:
        self.publish_now(run_id, event, data)

    def publish_now(self, run_id: str, event: str, data: bytes) -> None:
        """:meth:`publish`, for callers that cannot await (it never waits)."""
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
        self.close_now(run_id)

    def close_now(self, run_id: str) -> None:
        """:meth:`close`, for callers that cannot await (it never waits)."""
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
        self._cancels.release(run_id)

    def subscribe(
        self,
        run_id: str,
        *,
        last_event_id: str | None = None,
        from_start: bool = False,
        at_end: bool = False,
    ) -> AsyncIterator[Event]:
        # Resolve the log now, not at first iteration: a fast run may end (and its
        # log be dropped) before the subscriber starts reading.
        self._expire()
        log = self._runs.get(run_id)
        if log is None:
            return _RunSubscription(_RunLog(run_id, None, False, finished=True), 0)
        if from_start:
            index = 0
        elif last_event_id is not None and log.resumable:
            after = parse_event_id(last_event_id) or (0, -1)
            index = 0
            while index < len(log.events) and parse_event_id(log.events[index].id) <= after:  # type: ignore[operator]
                index += 1
        else:
            index = len(log.events)
        return _RunSubscription(log, index, at_end=at_end)

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

    async def on_cancel(self, run_id: str, callback: Callable[[CancelAction], None]) -> list[CancelAction]:
        return self._cancels.listen(run_id, callback)

    async def request_cancel(self, run_id: str, action: CancelAction) -> None:
        self._cancels.request(run_id, action)

    async def release_cancel(self, run_id: str) -> None:
        self._cancels.release(run_id)


class _ThreadSubscription(Subscription):
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

    def take_ready(self) -> list[Event]:
        if not self._unsubscribe.alive:
            return []
        items = list(self._replay)
        self._replay.clear()
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    async def aclose(self) -> None:
        self._unsubscribe()

    async def ticking(self, interval: float) -> AsyncIterator[Event | None]:
        """The events, with ``None`` whenever ``interval`` seconds pass without one."""
        try:
            while self._unsubscribe.alive:
                if self._replay:
                    yield self._replay.popleft()
                    continue
                try:
                    async with asyncio.timeout(interval):
                        item = await self._queue.get()
                except TimeoutError:
                    yield None  # a cancelled get leaves its item in the queue
                    continue
                yield item
        finally:
            self._unsubscribe()
