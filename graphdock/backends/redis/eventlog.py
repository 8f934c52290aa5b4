"""The Redis :class:`EventLog`: run events, replay, thread streams and cancel signals
shared by every API process and worker of a deployment.

A run's log is a Redis stream written and published in one Lua script per event (see
:mod:`graphdock.backends.redis.scripts` for the keys, channels and messages); ids are
``"<ms>-<seq>"`` from Redis's clock and one counter, increasing across the deployment.
Subscribers in any process read a run's stream from their cursor and then follow its
channel through the process's one pub/sub connection (:class:`Fanout`); a lost
connection is re-opened and each stream read again from its cursor. End markers and
cancel requests also go to one channel each for the whole deployment (:mod:`.hubs`), so
that a ``/wait`` or an executing run costs no subscription of its own; a log opened here
needs no read before its end, and the cancel requests made before a run started here
come with the opening of its log. A subscriber of a
log that vanished while it was open (Redis flushed, or restarted empty) ends after one
``error`` event ``{"error": "StreamLost", ...}``.

Nothing here is the only copy of anything acknowledged: the run's status and output
are in the database. Publishing while Redis is unreachable raises.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable, TypeVar

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from graphdock import serde
from graphdock.backends.base import CancelAction, EventLog, Subscription, parse_event_id
from graphdock.backends.cancels import CancelSignals
from graphdock.backends.redis import scripts
from graphdock.backends.redis.fanout import CancelRequest, EventKey, Fanout, Message, event_key, stop_tasks
from graphdock.backends.redis.hubs import KEPT_RUNS, cancel_hub, end_hub
from graphdock.backends.redis.subscriptions import PAGE, RunStream, StreamSubscription, ThreadStream

logger = logging.getLogger("graphdock.redis")

T = TypeVar("T")

#: how long an open log (and a run's cancel requests) are kept without a write
OPEN_TTL = 24 * 3600.0
#: how long a closed log of a run that is not resumable is kept, for the subscribers
#: attached when it was closed to read it to its end
GRACE = 30.0
#: how long thread-level events are kept, for a thread subscriber to catch up after it
#: subscribed or lost its connection
THREAD_EVENTS_TTL = 300.0
#: how often the offset between this process's clock and Redis's is measured again
CALIBRATE_EVERY = 300.0


class Names:
    """The keys and channels of one deployment (every one starts with ``"<prefix>:"``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.clock = f"{prefix}:clock"
        self.run_prefix = f"{prefix}:run:"
        self.thread_prefix = f"{prefix}:thread:"

    def meta(self, run_id: str) -> str:
        return f"{self.run_prefix}{run_id}:meta"

    def stream(self, run_id: str) -> str:
        return f"{self.run_prefix}{run_id}:events"

    def cancels(self, run_id: str) -> str:
        return f"{self.run_prefix}{run_id}:cancels"

    def thread_runs(self, thread_id: str) -> str:
        return f"{self.thread_prefix}{thread_id}:runs"

    def thread_live(self, thread_id: str) -> str:
        return f"{self.thread_prefix}{thread_id}:live"

    def thread_events(self, thread_id: str) -> str:
        return f"{self.thread_prefix}{thread_id}:events"

    def run_channel(self, run_id: str) -> bytes:
        return f"{self.run_prefix}{run_id}".encode()

    def thread_channel(self, thread_id: str) -> bytes:
        return f"{self.thread_prefix}{thread_id}".encode()

    @property
    def ends_channel(self) -> bytes:
        return f"{self.prefix}:ends".encode()

    @property
    def cancels_channel(self) -> bytes:
        return f"{self.prefix}:cancels".encode()


class _Horizon:
    """The last event id this process published on each of its newest runs and threads.

    "From now on" is a cursor taken by Redis's clock (as well as this process knows it);
    this makes it exact for what this process published itself.
    """

    size = 4096

    def __init__(self) -> None:
        self._keys: OrderedDict[str, EventKey] = OrderedDict()

    def note(self, name: str, key: EventKey) -> None:
        keys = self._keys
        keys[name] = key
        keys.move_to_end(name)
        if len(keys) > self.size:
            keys.popitem(last=False)

    def after(self, name: str, now: EventKey) -> EventKey:
        key = self._keys.get(name)
        return now if key is None or key < now else key


class RedisEventLog(EventLog):
    """Per-run event logs in Redis (see the module's docstring).

    ``client`` must not decode responses. :meth:`start` must be awaited before use (it
    measures the clock offset and starts the pub/sub reader); :meth:`aclose` stops it
    and closes ``client``.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str,
        retention: float,
        grace: float = GRACE,
        pubsub_connection: Callable[[], AbstractConnection] | None = None,
    ) -> None:
        self.client = client
        self.names = Names(prefix)
        self.retention = retention
        self._grace_ms = max(1, int(grace * 1000))
        # a resumable run's closed log is kept for retention, and at least as long as others
        self._retention_ms = max(int(retention * 1000), self._grace_ms)
        self._open_ttl_ms = int(OPEN_TTL * 1000)
        self._thread_ttl_ms = int(THREAD_EVENTS_TTL * 1000)
        self.fanout = Fanout(pubsub_connection or (lambda: pubsub_connection_for(client)))
        # runs whose log this process opened while the ends channel was subscribed, with
        # the hub's generation then; a run leaves when its end marker arrives
        self._unended: OrderedDict[str, int] = OrderedDict()
        # the cancel requests the open script read, while the cancels channel was subscribed
        self._open_cancels: OrderedDict[str, tuple[int, list[bytes]]] = OrderedDict()
        self.end_hub = end_hub(self.fanout, self.names.ends_channel, observe=self._ended)
        self.cancel_hub = cancel_hub(self.fanout, self.names.cancels_channel)
        self._signals = CancelSignals()
        self._watches: dict[str, _CancelWatch] = {}
        self._resyncs: set[asyncio.Task[None]] = set()
        self._horizon = _Horizon()
        self._offset_ms = 0.0  # Redis's clock minus this process's
        self._margin_ms = 1.0  # how far off the offset may be
        self._calibrating: asyncio.Task[None] | None = None
        def register(script: str) -> Callable[..., Awaitable[Any]]:
            return _keeping_cancellation(client.register_script(script))

        self._open = register(scripts.OPEN)
        self._publish = register(scripts.PUBLISH)
        self._close = register(scripts.CLOSE)
        self._publish_thread = register(scripts.PUBLISH_THREAD)
        self._request_cancel = register(scripts.REQUEST_CANCEL)
        self._read_run = register(scripts.READ_RUN)
        self._read_thread = register(scripts.READ_THREAD)

    # -- lifecycle -------------------------------------------------------------------

    async def ping(self) -> None:
        await self.client.ping()

    async def start(self) -> None:
        await self._calibrate()
        await self.fanout.start()
        self._calibrating = asyncio.create_task(self._calibrate_forever(), name="graphdock-redis-clock")

    async def aclose(self) -> None:
        await stop_tasks([task for task in (self._calibrating, *self._resyncs) if task is not None])
        self._calibrating = None
        await self.fanout.aclose()
        await self.client.aclose()

    async def _calibrate(self) -> None:
        before = time.time()
        seconds, microseconds = await self.client.time()
        after = time.time()
        self._offset_ms = seconds * 1000 + microseconds / 1000 - (before + after) * 500
        self._margin_ms = (after - before) * 500 + 1.0

    async def _calibrate_forever(self) -> None:
        while True:
            await asyncio.sleep(CALIBRATE_EVERY)
            try:
                await self._calibrate()
            except (RedisConnectionError, RedisTimeoutError) as exc:
                logger.warning("Redis event log: reading Redis's clock failed (%s)", exc)

    def now_key(self) -> EventKey:
        """A cursor before every event published from now on (by Redis's clock)."""
        return (int(time.time() * 1000 + self._offset_ms - self._margin_ms), -1)

    # -- run logs ----------------------------------------------------------------------

    async def open(self, run_id: str, thread_id: str | None, *, resumable: bool) -> None:
        names = self.names
        ends = self.end_hub.generation if self.end_hub.confirmed() else None
        cancels = self.cancel_hub.generation if self.cancel_hub.confirmed() else None
        reply = await _retrying(
            lambda: self._open(
                keys=[names.meta(run_id), names.stream(run_id), names.cancels(run_id)],
                args=[run_id, thread_id or "", "1" if resumable else "0", self._open_ttl_ms, names.thread_prefix],
            )
        )
        if ends is not None:
            _remember(self._unended, run_id, ends)
        if cancels is not None:
            _remember(self._open_cancels, run_id, (cancels, list(reply[1])))

    def _ended(self, run_id: str) -> None:
        self._unended.pop(run_id, None)

    def unended_here(self, run_id: str) -> bool:
        """Whether ``run_id``'s log was opened here and its end marker has not been
        published since (every end marker published since reached this process)."""
        generation = self._unended.get(run_id)
        return generation is not None and self.end_hub.confirmed() and self.end_hub.generation == generation

    def cancels_read_at_open(self, run_id: str) -> list[bytes] | None:
        """The cancel requests of ``run_id`` that opening its log here read, when every
        request made since reached this process; else None."""
        kept = self._open_cancels.pop(run_id, None)
        if kept is None or not self.cancel_hub.confirmed() or self.cancel_hub.generation != kept[0]:
            return None
        return kept[1]

    async def publish(self, run_id: str, event: str, data: bytes) -> None:
        # not retried: an event must not be appended twice
        names = self.names
        reply = await self._publish(
            keys=[names.meta(run_id), names.stream(run_id), names.clock],
            args=[event, data, names.run_channel(run_id), names.thread_prefix, self._open_ttl_ms],
        )
        if reply:
            key = event_key(reply[0].decode())
            self._horizon.note("r" + run_id, key)
            if reply[1]:
                self._horizon.note("t" + reply[1].decode(), key)

    async def close(self, run_id: str) -> None:
        names = self.names
        done = serde.dumps({"status": "run_done", "run_id": run_id})
        await _retrying(
            lambda: self._close(
                keys=[names.meta(run_id), names.stream(run_id), names.clock, names.cancels(run_id)],
                args=[
                    names.run_channel(run_id),
                    names.ends_channel,
                    names.thread_prefix,
                    names.thread_prefix,
                    run_id,
                    self._retention_ms,
                    self._grace_ms,
                    done,
                    self._thread_ttl_ms,
                ],
            )
        )
        self._release(run_id)

    def subscribe(
        self,
        run_id: str,
        *,
        last_event_id: str | None = None,
        from_start: bool = False,
        at_end: bool = False,
    ) -> Subscription:
        now = self._horizon.after("r" + run_id, self.now_key())
        fallback: EventKey | None = None
        if from_start:
            after: EventKey = (0, -1)
        elif last_event_id is not None:
            after = parse_event_id(last_event_id) or (0, -1)
            fallback = now  # replay is for resumable runs only
        else:
            after = now
        return StreamSubscription(RunStream(self, run_id, after, fallback=fallback, at_end=at_end))

    def subscribe_thread(self, thread_id: str, *, last_event_id: str | None = None) -> Subscription:
        now = self._horizon.after("t" + thread_id, self.now_key())
        replay = now if last_event_id is None else parse_event_id(last_event_id) or (0, -1)
        return StreamSubscription(ThreadStream(self, thread_id, replay=replay, live=now))

    async def publish_thread(self, thread_id: str, event: str, data: bytes) -> None:
        names = self.names
        reply = await self._publish_thread(
            keys=[names.clock, names.thread_events(thread_id)],
            args=[names.thread_channel(thread_id), event, data, self._thread_ttl_ms],
        )
        self._horizon.note("t" + thread_id, event_key(reply.decode()))

    async def read_run(self, run_id: str, start: str, *, state_only: bool) -> list[Any]:
        """``[state]`` (0: unknown log) or ``[state, resumable, entries]`` (1 open,
        2 closed; up to :data:`PAGE` entries from ``start``, none when ``state_only``
        and the log is open)."""
        names = self.names
        return await self._read_run(  # type: ignore[no-any-return]
            keys=[names.meta(run_id), names.stream(run_id)],
            args=[start, PAGE, "1" if state_only else "0"],
        )

    async def read_thread(self, thread_id: str, replay: str, live: str) -> list[Any]:
        """The stream entries of the thread's kept runs, from ``replay`` for resumable
        runs and from ``live`` for the others, and its thread-level events from ``live``."""
        names = self.names
        return await self._read_thread(  # type: ignore[no-any-return]
            keys=[names.thread_runs(thread_id), names.thread_live(thread_id), names.thread_events(thread_id)],
            args=[names.run_prefix, ":events", replay, live],
        )

    # -- cancel signals ----------------------------------------------------------------

    async def request_cancel(self, run_id: str, action: CancelAction) -> None:
        names = self.names
        await _retrying(
            lambda: self._request_cancel(
                keys=[names.cancels(run_id)],
                args=[names.cancels_channel, action, self._open_ttl_ms, run_id],
            )
        )

    async def on_cancel(
        self, run_id: str, callback: Callable[[CancelAction], None]
    ) -> list[CancelAction]:
        watch = self._watches.get(run_id)
        if watch is None:
            watch = self._watches[run_id] = _CancelWatch(self, run_id)
            try:
                await watch.sync_first()
            except BaseException:
                self._release(run_id)
                raise
        else:
            await watch.synced()
        return self._signals.listen(run_id, callback)

    async def release_cancel(self, run_id: str) -> None:
        self._release(run_id)

    def _release(self, run_id: str) -> None:
        self._open_cancels.pop(run_id, None)
        watch = self._watches.pop(run_id, None)
        if watch is not None:
            watch.leave()
        self._signals.release(run_id)

    def _resync(self, watch: "_CancelWatch") -> None:
        task = asyncio.create_task(watch.resync())
        self._resyncs.add(task)
        task.add_done_callback(self._resyncs.discard)


class _CancelWatch:
    """This process's listener of a run's cancel requests: each request is numbered (its
    position in the run's list), so that one read from the list and received on the
    channel counts once."""

    #: how long to wait for the channel's subscription before giving up
    timeout = 10.0

    def __init__(self, log: RedisEventLog, run_id: str) -> None:
        self.log = log
        self.run_id = run_id
        self.seen: int | None = None  # requests taken; None until the list was read
        self.pending: list[CancelRequest] = []
        self.stale = False
        self.left = False
        self._confirmed = asyncio.get_running_loop().create_future()
        self._synced = asyncio.Event()
        self._error: BaseException | None = None
        log.cancel_hub.add(run_id, self)
        if log.cancel_hub.confirmed():
            self.subscribed()

    # -- listener
    def message(self, message: Message) -> None:
        if not isinstance(message, CancelRequest) or message.run_id != self.run_id or self.left:
            return
        if self.seen is None:
            self.pending.append(message)
        else:
            self._take(message.number, message.action)

    def subscribed(self) -> None:
        if not self._confirmed.done():
            self._confirmed.set_result(True)
        elif self.stale and not self.left:
            self.stale = False
            self.log._resync(self)

    def disconnected(self) -> None:
        self.stale = True  # requests may be missed until the next read of the list

    def stopped(self) -> None:
        self.left = True

    # -- reading
    def _take(self, number: int, action: str) -> None:
        assert self.seen is not None
        if number > self.seen:
            self.seen = number
            self.log._signals.request(self.run_id, action)  # type: ignore[arg-type]

    def _sync(self, actions: list[bytes]) -> None:
        if self.seen is None:
            self.seen = 0
        for number, action in enumerate(actions, 1):
            self._take(number, action.decode())
        pending, self.pending = self.pending, []
        for message in pending:
            self._take(message.number, message.action)

    async def _read(self) -> list[bytes]:
        lrange = _keeping_cancellation(self.log.client.lrange)
        return await lrange(self.log.names.cancels(self.run_id), 0, -1)  # type: ignore[no-any-return]

    async def sync_first(self) -> None:
        """Subscribe, then take the requests made so far (the first ``on_cancel``)."""
        try:
            try:
                await asyncio.wait_for(asyncio.shield(self._confirmed), self.timeout)
            except asyncio.TimeoutError:
                raise RedisTimeoutError(
                    f"Redis pub/sub: no confirmation of {self.log.names.cancels_channel.decode()!r}"
                    f" within {self.timeout:g}s"
                ) from None
            actions = self.log.cancels_read_at_open(self.run_id)
            if actions is None:
                actions = await _retrying(self._read)
            if not self.left:
                self._sync(actions)
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._synced.set()

    async def synced(self) -> None:
        """Wait until the first ``on_cancel`` took the requests made so far."""
        await self._synced.wait()
        if self._error is not None:
            raise RedisConnectionError(f"watching cancel requests failed: {self._error}")

    async def resync(self) -> None:
        """Take the requests made while the connection was lost."""
        try:
            actions = await _retrying(self._read)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            logger.warning("Redis event log: re-reading cancel requests of run %s failed (%s)", self.run_id, exc)
            self.stale = True
            return
        if not self.left:
            self._sync(actions)

    def leave(self) -> None:
        self.left = True
        self.log.cancel_hub.remove(self.run_id, self)


def _remember(kept: "OrderedDict[str, Any]", run_id: str, value: Any) -> None:
    kept[run_id] = value
    kept.move_to_end(run_id)
    if len(kept) > KEPT_RUNS:
        kept.popitem(last=False)


def _keeping_cancellation(call: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """``call``, except that a cancellation of the calling task during it is never lost.

    redis-py writes each command under ``asyncio.wait_for`` (``socket_timeout``), which on
    Python 3.11 returns the result instead of raising when the caller is cancelled as the
    write completes: a client leaving a ``/wait`` (``on_disconnect="cancel"``), or a cancel
    request stopping a run, would go unnoticed. The task's count of cancel requests tells.
    """

    async def guarded(*args: Any, **kwargs: Any) -> T:
        task = asyncio.current_task()
        before = task.cancelling() if task is not None else 0
        result = await call(*args, **kwargs)
        if task is not None and task.cancelling() > before:
            raise asyncio.CancelledError()
        return result

    return guarded


async def _retrying(call: Callable[[], Awaitable[T]], attempts: int = 3) -> T:
    """``call()`` again after a connection error (for operations that may run twice)."""
    delay = 0.05
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except (RedisConnectionError, RedisTimeoutError):
            if attempt == attempts:
                raise
            await asyncio.sleep(delay)
            delay *= 4
    raise AssertionError("unreachable")


def pubsub_connection_for(client: Redis) -> AbstractConnection:
    """A new connection to ``client``'s server for pub/sub: RESP2, no health checks of
    its own (the fan-out pings), otherwise as the client's connections."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs["protocol"] = 2
    kwargs["health_check_interval"] = 0
    if not kwargs.get("client_name"):
        kwargs["client_name"] = "graphdock-events"  # in CLIENT LIST
    return pool.connection_class(**kwargs)  # type: ignore[no-any-return]
