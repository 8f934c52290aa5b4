"""The subscriptions of :class:`graphdock.backends.redis.eventlog.RedisEventLog`.

A subscription's state is a listener of the process's :class:`Fanout`; the subscription
object handed out only wraps it, so that a subscription nobody iterates any more (a
response that was never sent) is collected and leaves its channel.

Reading never needs a task of its own: the iterating task subscribes (at creation),
waits for the channel's confirmation, reads what the stream already holds, then takes
the live messages, dropping those it already has (by id). After a lost connection it
reads the stream again from its cursor, which fills the gap.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from abc import ABC, abstractmethod
from collections import deque
from typing import TYPE_CHECKING, Any, AsyncIterator, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from graphdock import serde
from graphdock.backends.base import Event, Subscription
from graphdock.backends.redis.fanout import End, EventKey, Lost, Message, RunEnded, event_key

if TYPE_CHECKING:
    from graphdock.backends.redis.eventlog import RedisEventLog

logger = logging.getLogger("graphdock.redis")

#: stream entries read per round trip
PAGE = 1000
_MAX_ID_PART = 2**63


def xrange_start(after: EventKey) -> str:
    """The XRANGE start that returns the entries whose id comes after ``after``."""
    ms, seq = after
    if ms >= _MAX_ID_PART:
        return "+"
    if ms < 0 or (ms == 0 and seq < 0):
        return "-"
    if seq < 0:
        return f"{ms}-0"
    if seq >= _MAX_ID_PART:
        return f"{ms + 1}-0"
    return f"({ms}-{seq}"


def read_entry(entry: Any) -> tuple[EventKey, Event] | End:
    """One stream entry as the Lua scripts return it: ``[id, [field, value, ...]]``."""
    raw_id, fields = entry
    event_id = raw_id.decode()
    key = event_key(event_id)
    if fields[0] == b"end":
        return End(key)
    return key, Event(event_id, fields[1].decode(), fields[3])


class Source(Protocol):
    """Where a stream's messages come from: the fan-out (keyed by channel) or a hub of a
    deployment-wide channel (keyed by run id)."""

    def add(self, key: Any, listener: Any) -> None: ...

    def remove(self, key: Any, listener: Any) -> None: ...

    def confirmed(self, key: Any) -> bool: ...


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


class _Stream(ABC):
    """What run and thread streams share: the ready events, the wake-up future, the
    cursor (``after``: the last event taken), and the reading of the stream when the
    channel is confirmed and the stream has not been read since."""

    def __init__(
        self, log: "RedisEventLog", channel: Any, after: EventKey, *, source: "Source | None" = None
    ) -> None:
        self.log = log
        self.channel = channel
        self.source: Source = source if source is not None else log.fanout
        self.after = after
        self.ready: deque[Event] = deque()
        self.pending: list[Message] = []  # live messages received while the stream is read
        self.need_read = True
        self.reading = False
        self.done = False
        self.left = False
        self.future: asyncio.Future[bool] | None = None
        self.retry_at = 0.0
        self.backoff = 0.0
        self.source.add(channel, self)
        self.confirmed = self.source.confirmed(channel)

    # -- listener
    def message(self, message: Message) -> None:
        if self.done or self.left:
            return
        if self.need_read or self.reading:
            self.pending.append(message)
        else:
            self.apply(message)

    def subscribed(self) -> None:
        self.confirmed = True
        self.wake()

    def disconnected(self) -> None:
        self.confirmed = False
        if not self.done:
            self.need_read = True
            self.pending.clear()  # the next read returns them again

    def stopped(self) -> None:
        # the event log is closing (the process stops): what is ready is still taken
        self.done = True
        self.need_read = False
        self.wake()

    # -- reading
    @abstractmethod
    def apply(self, message: Message) -> None:
        """Take a live message (the stream has been read, and nothing was missed since)."""

    @abstractmethod
    async def read(self) -> None:
        """Read the stream after the cursor (the channel is confirmed)."""

    def take(self, key: EventKey, event: Event) -> bool:
        if key <= self.after:
            return False
        self.ready.append(event)
        self.after = key
        return True

    def wake(self) -> None:
        future = self.future
        if future is not None and not future.done():
            future.set_result(True)

    def available(self) -> bool:
        return bool(self.ready)

    def reading_failed(self, exc: BaseException) -> None:
        self.need_read = True
        self.backoff = min(max(self.backoff * 2, 0.05), 2.0)
        self.retry_at = asyncio.get_running_loop().time() + self.backoff
        logger.warning("Redis event log: reading %r failed (%s); retrying", self.channel, exc)

    async def next(self, interval: float | None) -> Event | None:
        """The next event; None when ``interval`` seconds passed without one."""
        loop = asyncio.get_running_loop()
        deadline = None if interval is None else loop.time() + interval
        while True:
            if self.available():
                return self.ready.popleft()
            if self.done or self.left:
                self.leave()
                raise StopAsyncIteration
            if self.need_read and self.confirmed and loop.time() >= self.retry_at:
                self.need_read = False
                self.reading = True
                try:
                    await self.read()
                except (RedisConnectionError, RedisTimeoutError) as exc:
                    self.reading_failed(exc)
                except BaseException:
                    self.need_read = True
                    raise
                else:
                    self.backoff = 0.0
                finally:
                    self.reading = False
                continue
            future = self.future = loop.create_future()
            timers = []
            if deadline is not None:
                timers.append(loop.call_at(deadline, _settle, future, False))
            if self.need_read and self.confirmed:
                timers.append(loop.call_at(self.retry_at, _settle, future, True))
            try:
                woken = await future
            finally:
                self.future = None
                for timer in timers:
                    timer.cancel()
            if not woken:
                return None

    def take_ready(self) -> list[Event]:
        if not self.available():
            return []
        items = list(self.ready)
        self.ready.clear()
        return items

    def leave(self) -> None:
        if not self.left:
            self.left = True
            self.source.remove(self.channel, self)
            self.wake()


class RunStream(_Stream):
    """A run subscriber's state: the run's events after ``after`` until its end marker.

    ``fallback``: the cursor to use instead when the run turns out not to be resumable
    (a ``last_event_id`` replays resumable runs only). ``at_end``: listen for the end
    marker only (on the deployment's ends channel) and read the stream once it is closed.
    """

    def __init__(
        self,
        log: "RedisEventLog",
        run_id: str,
        after: EventKey,
        *,
        fallback: EventKey | None,
        at_end: bool,
    ) -> None:
        self.run_id = run_id
        self.at_end = at_end
        self.fallback = fallback
        self.seen = False  # the log existed at a read
        self.closed = False  # at_end: the stream is known to be closed
        if not at_end:
            super().__init__(log, log.names.run_channel(run_id), after)
            return
        # the end marker comes through the deployment's ends channel
        super().__init__(log, run_id, after, source=log.end_hub)
        if log.unended_here(run_id):
            # the log was opened here with every end marker reaching this process since:
            # until its end marker arrives there is nothing to read
            self.seen = True
            self.need_read = False
            pending, self.pending = self.pending, []
            for message in pending:
                self.apply(message)

    def available(self) -> bool:
        return bool(self.ready) and (self.done or not self.at_end)

    def apply(self, message: Message) -> None:
        if isinstance(message, RunEnded):
            message = message.end
        if isinstance(message, tuple):
            if not self.at_end and self.take(*message):
                self.wake()
        elif isinstance(message, End):
            if self.at_end:
                self.closed = True
                self.need_read = True  # the events come in one read
            else:
                self.done = True
            self.wake()
        elif isinstance(message, Lost):
            self.lost()
            self.wake()

    def lost(self) -> None:
        if self.seen:
            error = {
                "error": "StreamLost",
                "message": "The run's event stream was lost (Redis restarted or was flushed); "
                "the run's status tells its outcome.",
            }
            ms, seq = self.after
            self.ready.append(Event(f"{ms}-{max(seq + 1, 0)}", "error", serde.dumps(error)))
        self.done = True
        self.pending.clear()

    async def read(self) -> None:
        reply = await self.log.read_run(
            self.run_id, xrange_start(self.after), state_only=self.at_end and not self.closed
        )
        state = reply[0]
        if state == 0:  # never opened, expired, or gone
            self.lost()
            return
        self.seen = True
        if self.fallback is not None:
            if not reply[1]:
                self.after = max(self.after, self.fallback)
            self.fallback = None
        entries = reply[2]
        for entry in entries:
            item = read_entry(entry)
            if isinstance(item, End):
                self.done = True
                self.pending.clear()
                return
            self.take(*item)
        if len(entries) >= PAGE:
            self.need_read = True  # more to read; live messages wait in pending
            return
        if state == 2:  # closed (its entries were read), the end marker before the cursor
            self.done = True
            self.pending.clear()
            return
        if not self.need_read:  # not disconnected meanwhile: what arrived follows
            pending, self.pending = self.pending, []
            for message in pending:
                if self.done:
                    break
                self.apply(message)


class ThreadStream(_Stream):
    """A thread subscriber's state: the events of its channel (in id order) until it
    leaves, preceded by those its runs' streams hold after the cursors: ``replay`` for
    resumable runs, ``live`` (taken at creation) for the others. After a lost
    connection the streams are read again from the last event taken."""

    def __init__(self, log: "RedisEventLog", thread_id: str, *, replay: EventKey, live: EventKey) -> None:
        self.thread_id = thread_id
        self.replay: EventKey | None = replay  # None once the first read is done
        super().__init__(log, log.names.thread_channel(thread_id), live)

    def apply(self, message: Message) -> None:
        if isinstance(message, tuple) and self.take(*message):
            self.wake()

    async def read(self) -> None:
        first = self.replay
        live = xrange_start(self.after)
        entries = await self.log.read_thread(
            self.thread_id, live if first is None else xrange_start(first), live
        )
        items = [item for item in map(read_entry, entries) if not isinstance(item, End)]
        if not self.need_read:  # not disconnected meanwhile: merge what arrived
            items.extend(message for message in self.pending if isinstance(message, tuple))
            self.pending = []
        items.sort(key=lambda item: item[0])
        if first is not None:
            # the replay may come before the live cursor: take each event once, in order
            self.replay = None
            floor, self.after = self.after, min(self.after, first)
            for key, event in items:
                self.take(key, event)
            self.after = max(self.after, floor)
        else:
            for key, event in items:
                self.take(key, event)


class StreamSubscription(Subscription):
    """A run or thread subscription (see :meth:`RedisEventLog.subscribe`)."""

    def __init__(self, stream: _Stream) -> None:
        self._stream = stream
        self._leave = weakref.finalize(self, stream.leave)
        self._leave.atexit = False

    async def __anext__(self) -> Event:
        item = await self._stream.next(None)
        assert item is not None
        return item

    def take_ready(self) -> list[Event]:
        return self._stream.take_ready()

    async def ticking(self, interval: float) -> AsyncIterator[Event | None]:
        try:
            while True:
                try:
                    item = await self._stream.next(interval)
                except StopAsyncIteration:
                    return
                yield item
        finally:
            self._leave()

    async def aclose(self) -> None:
        self._leave()
