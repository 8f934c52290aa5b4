"""One Redis pub/sub connection per process, fanned out to the local listeners.

:class:`Fanout` keeps a single subscribed connection with a reader task that parses each
message once and hands it to every local listener of its channel. Channels are
subscribed when their first listener arrives and unsubscribed when the last one leaves
(a writer task sends the commands, batching what changed meanwhile). A listener learns
when its channel is confirmed (``subscribed``: every message published from then on
reaches it), and when the connection is lost (``disconnected``: messages may have been
missed until the next ``subscribed``), and when the fan-out stops (``stopped``). A lost
connection is re-opened with backoff and every wanted channel subscribed again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Callable, Iterable, Protocol, Union

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from graphdock.backends.base import Event

logger = logging.getLogger("graphdock.redis")

EventKey = tuple[int, int]


class End:
    """The end marker of a run's stream: the stream is closed, ``key`` its marker's id."""

    __slots__ = ("key",)

    def __init__(self, key: EventKey) -> None:
        self.key = key


class Lost:
    """The run's log is gone (Redis lost it while the run was executing)."""

    __slots__ = ()


class CancelRequest:
    """Cancel request number ``number`` (1-based, in the run's list) of ``run_id``,
    asking ``action``."""

    __slots__ = ("number", "action", "run_id")

    def __init__(self, number: int, action: str, run_id: str) -> None:
        self.number = number
        self.action = action
        self.run_id = run_id


class RunEnded:
    """On the deployment's ends channel: run ``run_id``'s stream was closed (``end``, its
    end marker) or its log is gone (``end`` is :data:`LOST`)."""

    __slots__ = ("run_id", "end")

    def __init__(self, run_id: str, end: "End | Lost") -> None:
        self.run_id = run_id
        self.end = end


LOST = Lost()

#: what a listener is given: an event with its id as a comparable key, or a control message
Message = Union[tuple[EventKey, Event], End, Lost, CancelRequest, RunEnded]


def event_key(event_id: str) -> EventKey:
    """A well-formed ``"<ms>-<seq>"`` id as a comparable tuple."""
    ms, _, seq = event_id.partition("-")
    return (int(ms), int(seq))


def parse(payload: bytes) -> Message:
    """A channel message (see :mod:`graphdock.backends.redis.scripts`)."""
    kind = payload[:1]
    if kind == b"e":
        first = payload.index(b" ", 1)
        second = payload.index(b" ", first + 1)
        start = second + 1 + int(payload[first + 1 : second])
        event_id = payload[1:first].decode()
        return event_key(event_id), Event(event_id, payload[second + 1 : start].decode(), payload[start:])
    if kind == b"x":
        return End(event_key(payload[1:].decode()))
    if kind == b"l":
        return LOST
    if kind == b"X":
        end_id, _, run_id = payload[1:].partition(b" ")
        return RunEnded(run_id.decode(), End(event_key(end_id.decode())))
    if kind == b"L":
        return RunEnded(payload[1:].decode(), LOST)
    if kind == b"c":
        number, action, run_id = payload[1:].split(b" ", 2)
        return CancelRequest(int(number), action.decode(), run_id.decode())
    raise ValueError(f"unknown message {payload[:16]!r}")


class Listener(Protocol):
    """What a channel's messages and connection changes are delivered to (on the loop)."""

    def message(self, message: Message) -> None: ...

    def subscribed(self) -> None: ...

    def disconnected(self) -> None: ...

    def stopped(self) -> None: ...


class Fanout:
    """The process's pub/sub connection and the listeners of each channel.

    ``connect`` makes a new, not yet connected, RESP2 connection to the deployment's
    Redis. :meth:`add` and :meth:`remove` never wait; :meth:`confirmed` says whether a
    channel's subscription is in effect.
    """

    #: a connection that read nothing this long is sent a PING; if that is not answered
    #: within the same time, the connection is dropped and opened again
    health_interval = 15.0
    #: channels per SUBSCRIBE / UNSUBSCRIBE command
    batch = 500

    def __init__(self, connect: Callable[[], AbstractConnection]) -> None:
        self._connect = connect
        self._listeners: dict[bytes, set[Listener]] = {}
        self._server: set[bytes] = set()  # channels whose last command sent was SUBSCRIBE
        self._acks_due: dict[bytes, int] = {}  # SUBSCRIBE commands not yet confirmed
        self._conn: AbstractConnection | None = None
        self._dirty = asyncio.Event()
        self._up = asyncio.Event()  # connected at least once
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def start(self, timeout: float = 10.0) -> None:
        """Start the reader and writer tasks, and wait until the reader is connected
        (raising Redis's ``TimeoutError`` after ``timeout`` seconds)."""
        self._tasks = [
            asyncio.create_task(self._read_forever(), name="graphdock-redis-pubsub-reader"),
            asyncio.create_task(self._write_forever(), name="graphdock-redis-pubsub-writer"),
        ]
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except asyncio.TimeoutError:
            raise RedisTimeoutError(f"no pub/sub connection within {timeout:g}s") from None

    async def aclose(self) -> None:
        """Stop the tasks and close the connection; listeners are told ``stopped``."""
        self._stopped = True
        self._dirty.set()
        await stop_tasks(self._tasks)
        self._tasks = []
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.disconnect(nowait=True)
            self._lost()
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                self._call(listener.stopped)

    # -- listeners -----------------------------------------------------------------

    def add(self, channel: bytes, listener: Listener) -> None:
        """Deliver ``channel``'s messages to ``listener`` (subscribing it if needed)."""
        listeners = self._listeners.get(channel)
        if listeners is None:
            listeners = self._listeners[channel] = set()
            self._dirty.set()
        listeners.add(listener)

    def remove(self, channel: bytes, listener: Listener) -> None:
        """Stop delivering to ``listener``; the channel is unsubscribed after its last one."""
        listeners = self._listeners.get(channel)
        if listeners is None:
            return
        listeners.discard(listener)
        if not listeners:
            del self._listeners[channel]
            self._dirty.set()

    def confirmed(self, channel: bytes) -> bool:
        """Whether every message published on ``channel`` from now on reaches its listeners."""
        return self._conn is not None and channel in self._server and not self._acks_due.get(channel)

    # -- writer --------------------------------------------------------------------

    async def _write_forever(self) -> None:
        while not self._stopped:
            await self._dirty.wait()
            self._dirty.clear()
            conn = self._conn
            if conn is None:
                continue  # the reader sets the flag again once connected
            wanted = self._listeners
            subscribe = [channel for channel in wanted if channel not in self._server]
            unsubscribe = [channel for channel in self._server if channel not in wanted]
            try:
                for i in range(0, len(subscribe), self.batch):
                    chunk = subscribe[i : i + self.batch]
                    if not self._usable(conn):
                        break
                    for channel in chunk:
                        self._server.add(channel)
                        self._acks_due[channel] = self._acks_due.get(channel, 0) + 1
                    await conn.send_command("SUBSCRIBE", *chunk, check_health=False)
                for i in range(0, len(unsubscribe), self.batch):
                    chunk = unsubscribe[i : i + self.batch]
                    if not self._usable(conn):
                        break
                    self._server.difference_update(chunk)
                    await conn.send_command("UNSUBSCRIBE", *chunk, check_health=False)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                # the reader sees the broken connection too, and opens a new one
                logger.warning("Redis pub/sub: sending a subscription failed (%s)", exc)
            except Exception:
                logger.exception("Redis pub/sub: sending a subscription failed")

    def _usable(self, conn: AbstractConnection) -> bool:
        # checked right before each send: redis-py would silently re-open a closed
        # connection that nobody reads any more
        return self._conn is conn and conn.is_connected

    # -- reader --------------------------------------------------------------------

    async def _read_forever(self) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.0
        while not self._stopped:
            if delay:
                await asyncio.sleep(delay * (0.5 + random.random()))
            conn = self._connect()
            try:
                await conn.connect()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                delay = min(max(delay * 2, 0.1), 5.0)
                logger.warning("Redis pub/sub: cannot connect (%s); retrying", exc)
                continue
            started = loop.time()
            self._conn = conn
            self._dirty.set()
            self._up.set()
            try:
                await self._read(conn)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                logger.warning("Redis pub/sub: connection lost (%s); reconnecting", exc)
            except Exception:
                logger.exception("Redis pub/sub: reading failed; reconnecting")
            finally:
                if self._conn is conn:
                    self._conn = None
                    self._lost()
                await conn.disconnect(nowait=True)
            # a connection that broke at once is not retried at once
            delay = 0.0 if loop.time() - started > 5.0 else min(max(delay * 2, 0.1), 5.0)

    def _lost(self) -> None:
        self._server.clear()
        self._acks_due.clear()
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                self._call(listener.disconnected)

    async def _read(self, conn: AbstractConnection) -> None:
        loop = asyncio.get_running_loop()
        ping_sent: float | None = None
        while not self._stopped:
            response = await conn.read_response(timeout=self.health_interval)
            if response is None:  # nothing read for a while: is the connection alive?
                if ping_sent is not None and loop.time() - ping_sent >= self.health_interval:
                    raise RedisTimeoutError("no answer to PING")
                if ping_sent is None and self._usable(conn):
                    ping_sent = loop.time()
                    await conn.send_command("PING", check_health=False)
                continue
            ping_sent = None
            kind = response[0]
            if kind == b"message":
                listeners = self._listeners.get(response[1])
                if listeners:
                    try:
                        message = parse(response[2])
                    except ValueError:
                        logger.exception("Redis pub/sub: malformed message on %r", response[1])
                        continue
                    for listener in list(listeners):
                        self._call(listener.message, message)
            elif kind == b"subscribe":
                channel = response[1]
                due = self._acks_due.get(channel, 0) - 1
                if due > 0:
                    self._acks_due[channel] = due
                    continue
                self._acks_due.pop(channel, None)
                if channel in self._server:
                    for listener in list(self._listeners.get(channel, ())):
                        self._call(listener.subscribed)

    @staticmethod
    def _call(method: Callable[..., None], *args: object) -> None:
        try:
            method(*args)
        except Exception:
            logger.exception("Redis pub/sub: a listener failed")


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until they are done (cancelling again a task that went on:
    on Python 3.11 ``asyncio.wait_for``, used by redis-py's writes, may swallow a
    cancellation). A task that failed has its error logged."""
    for task in tasks:
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task %s failed", task.get_name(), exc_info=task.exception())
