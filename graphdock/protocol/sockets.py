"""One WebSocket connection of the protocol: its subscriptions and its commands.

Every text frame a client sends is a command envelope. ``subscription.subscribe``
(params: channels, namespaces, depth and, as the SDK sends them, ``since``) opens a
subscription: its success response (``{subscription_id, replayed_events}``) is sent first,
then its events (replayed as on the SSE stream, then live), each a JSON text frame.
``subscription.unsubscribe`` ends one; ``subscription.reconnect`` restarts this
connection's subscriptions (all, or the listed ones) from ``last_event_id`` (an event id
or a seq). Every other command is answered as over HTTP
(:class:`graphdock.protocol.commands.Commands`).

The connection reads the thread's stream once, from its first subscription on, and sends
each event once, in ``seq`` order, when any of its subscriptions matches it (clients fan
events out to their subscriptions by filter, as the SDKs do). A subscription opened later
gets the events it missed from what the connection has read (the last :data:`RECENT`
events, :data:`RECENT_BYTES` at most) and joins that stream, so subscriptions that a
client opens together see one ordered history. One that asks for events from before that
(an earlier ``since``) reads the thread's stream on its own; an event it shares with the
others is then sent twice, with the same ``event_id``, which clients deduplicate.

A run's end (the root's terminal ``lifecycle`` event) is sent no sooner than
:data:`SETTLE` seconds after the connection's latest subscribe: a client that opens its
subscriptions one after another (the SDKs open one for the lifecycle and one for the
values as soon as ``run.start`` answers, and stop reading a subscription once they have
seen the run end) has them all before a fast run is seen ending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import orjson

from graphdock import serde
from graphdock.auth import AuthContext
from graphdock.backends.base import EventLog, Storage
from graphdock.errors import APIError
from graphdock.protocol.commands import CommandError, Commands, parse_envelope
from graphdock.protocol.streams import ThreadStream, open_thread_stream
from graphdock.protocol.wire import Filter, OutEvent, error, parse_filter, success

logger = logging.getLogger("graphdock.protocol")

Send = Callable[[bytes], Awaitable[None]]

#: events of the connection's stream kept for subscriptions that join it later: at most
#: this many, and this many bytes of them
RECENT = 1024
RECENT_BYTES = 4 * 1024 * 1024
#: seconds after a subscribe before a run's end goes out on that connection
SETTLE = 0.03


def _ends_run(event: OutEvent) -> bool:
    """Whether ``event`` is the root's terminal lifecycle event (the end of a run)."""
    if event.method != "lifecycle" or event.namespace:
        return False
    data = orjson.loads(event.json).get("params", {}).get("data")
    return isinstance(data, dict) and data.get("event") != "running"


@dataclass
class _Subscription:
    filter: Filter
    since: int  # it gets the events with seq > since (-1: every kept event)
    shared: bool = False  # served by the connection's stream (else by a stream of its own)
    stream: ThreadStream | None = None  # its own stream, until its pump starts
    task: asyncio.Task[None] | None = None  # its own stream's pump

    def wants(self, event: OutEvent) -> bool:
        return event.seq > self.since and self.filter.matches(event.channel, event.namespace)


def _cursor(value: Any) -> int | None:
    """A reconnect position: a seq, or an event id ``"<ms>-<n>"`` (its ``n``)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        head = value.split(".", 1)[0]
        tail = head.rpartition("-")[2]
        if tail.isdigit():
            return int(tail)
    raise CommandError("invalid_argument", "subscription.reconnect: last_event_id must be an event id or a seq")


class ConnectionGone(Exception):
    """The client's connection is closed: nothing more can be sent."""


class SocketSession:
    """The state of one WebSocket connection on ``thread_id`` (``send`` writes one frame)."""

    def __init__(
        self,
        *,
        commands: Commands,
        events: EventLog,
        storage: Storage,
        thread_id: str,
        auth: AuthContext,
        send: Send,
        heartbeat: float,
        readable: bool = True,
        refuse: Callable[[int, str], Awaitable[None]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.commands = commands
        self.headers = headers  # of the handshake: into the configurable of the runs it creates
        self.events = events
        self.storage = storage
        self.thread_id = thread_id
        self.auth = auth
        self._send = send
        self._heartbeat = heartbeat
        self._lock = asyncio.Lock()  # one frame at a time
        self._subscriptions: dict[str, _Subscription] = {}
        # the connection's stream: what it has delivered, under _deliver (a subscription
        # joins it between two of its batches)
        self._deliver = asyncio.Lock()
        self._shared: asyncio.Task[None] | None = None
        self._recent: deque[OutEvent] = deque()
        self._recent_bytes = 0
        self._forgotten = -1  # events with seq <= this may be missing from _recent
        self._subscribed_at = 0.0  # loop time of the latest subscribe or reconnect
        self._gone = False
        self._readable = readable
        self._refuse = refuse

    async def send(self, frame: bytes) -> None:
        """Write one frame; :class:`ConnectionGone` once the connection is gone."""
        async with self._lock:
            if self._gone:
                raise ConnectionGone()
            try:
                await self._send(frame)
            except Exception as exc:
                self._gone = True
                raise ConnectionGone() from exc

    async def receive(self, text: str | bytes) -> None:
        """Handle one frame from the client (nothing is answered once it is gone)."""
        with contextlib.suppress(ConnectionGone):
            await self._receive(text)

    async def _receive(self, text: str | bytes) -> None:
        try:
            payload = orjson.loads(text)
        except orjson.JSONDecodeError:
            await self.send(serde.dumps(error(None, "invalid_argument", "a command must be valid JSON")))
            return
        try:
            command_id, method, params = parse_envelope(payload)
        except CommandError as exc:
            raw_id = payload.get("id") if isinstance(payload, dict) else None
            command_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
            await self.send(serde.dumps(error(command_id, exc.code, exc.message)))
            return
        try:
            if method == "subscription.subscribe":
                await self._subscribe(command_id, params)
                return
            if method == "subscription.reconnect":
                await self._reconnect(command_id, params)
                return
            if method == "subscription.unsubscribe":
                response = await self._unsubscribe(command_id, params)
            else:
                response = await self.commands.handle(self.thread_id, payload, self.auth, self.headers)
        except CommandError as exc:
            response = error(command_id, exc.code, exc.message)
        await self.send(serde.dumps(response))

    # -- subscriptions -----------------------------------------------------------------

    async def _subscribe(self, command_id: int, params: dict[str, Any]) -> None:
        unknown = set(params) - {"channels", "namespaces", "depth", "since"}
        if unknown:
            raise CommandError("invalid_argument", f"subscription.subscribe: unknown params {sorted(unknown)}")
        try:
            flt = parse_filter(params.get("channels"), params.get("namespaces"), params.get("depth"))
        except ValueError as exc:
            raise CommandError("invalid_argument", f"subscription.subscribe: {exc}") from None
        since = params.get("since")
        if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
            raise CommandError("invalid_argument", "subscription.subscribe: since must be a non-negative integer")
        subscription_id = serde.uuid7()
        sub = _Subscription(flt, -1 if since is None else since)
        self._subscriptions[subscription_id] = sub
        async with self._deliver:
            # joined before the response goes out: nothing published from now on is missed
            replay = self._join([sub])
            await self.send(serde.dumps(success(command_id, {"subscription_id": subscription_id, "replayed_events": 0})))
            await self._replay(replay, [sub])

    def _open(self, since: int) -> ThreadStream:
        return open_thread_stream(self.events, self.storage, self.thread_id, None if since < 0 else since)

    def _join(self, subs: list[_Subscription]) -> list[OutEvent]:
        """Serve ``subs`` (all with the same ``since``) from the connection's stream, opened
        now if there is none: the events they missed, for :meth:`_replay` to send before
        the stream's next batch (with ``_deliver`` held). Subscriptions that want events the
        connection has not kept get streams of their own (opened here, their pumps started
        by :meth:`_replay`)."""
        since = subs[0].since
        self._subscribed_at = asyncio.get_running_loop().time()
        if self._shared is None or self._shared.done():
            self._recent.clear()
            self._recent_bytes = 0
            self._forgotten = since
            self._shared = asyncio.create_task(self._pump_shared(self._open(since)))
        elif since < self._forgotten:
            for sub in subs:
                sub.stream = self._open(since)
            return []
        for sub in subs:
            sub.shared = True
        return [event for event in self._recent if any(sub.wants(event) for sub in subs)]

    async def _replay(self, replay: list[OutEvent], subs: list[_Subscription]) -> None:
        for event in replay:
            await self.send(event.json)
        for sub in subs:
            stream, sub.stream = sub.stream, None
            if stream is not None:
                sub.task = asyncio.create_task(self._pump_own(sub, stream))

    async def readable(self) -> bool:
        """Whether the user may read the thread's events now. A connection opened before its
        thread existed is authorized when the thread first has events: until the thread
        exists nothing is sent, and if it exists hidden from the user the connection is
        refused (closed with 4404)."""
        if self._readable:
            return True
        try:
            await self.commands.srv.threads.visible(self.thread_id, self.auth)
        except APIError as exc:
            if await self.storage.get_thread(self.thread_id) is None:
                return False
            self._gone = True
            if self._refuse is not None:
                await self._refuse(exc.status_code, exc.detail)
            raise ConnectionGone() from None
        self._readable = True
        return True

    async def _pump(self, stream: ThreadStream, deliver: Callable[[list[OutEvent]], Awaitable[None]]) -> None:
        try:
            async for batch in stream.ticking(self._heartbeat):
                if batch is None:
                    continue
                if await self.readable():
                    await self._settle(batch)
                    await deliver(batch)
                elif self._shared is asyncio.current_task():
                    self._forgotten = max(self._forgotten, batch[-1].seq)  # not sent, so not kept
        except (asyncio.CancelledError, ConnectionGone):
            pass
        except Exception:
            logger.exception("protocol subscription on thread %s failed", self.thread_id)
            with contextlib.suppress(Exception):
                await self.send(serde.dumps(error(None, "unknown_error", "the thread's event stream failed")))
        finally:
            await stream.aclose()

    async def _settle(self, batch: list[OutEvent]) -> None:
        """Hold a batch that ends a run until :data:`SETTLE` seconds after the latest
        subscribe (see the module's docstring)."""
        loop = asyncio.get_running_loop()
        if self._subscribed_at + SETTLE <= loop.time() or not any(_ends_run(event) for event in batch):
            return
        while (wait := self._subscribed_at + SETTLE - loop.time()) > 0:
            await asyncio.sleep(wait)

    async def _pump_shared(self, stream: ThreadStream) -> None:
        async def deliver(batch: list[OutEvent]) -> None:
            async with self._deliver:
                for event in batch:
                    self._keep(event)
                    if any(sub.shared and sub.wants(event) for sub in self._subscriptions.values()):
                        await self.send(event.json)

        await self._pump(stream, deliver)

    def _keep(self, event: OutEvent) -> None:
        self._recent.append(event)
        self._recent_bytes += len(event.json)
        while len(self._recent) > RECENT or (self._recent_bytes > RECENT_BYTES and len(self._recent) > 1):
            dropped = self._recent.popleft()
            self._recent_bytes -= len(dropped.json)
            self._forgotten = max(self._forgotten, dropped.seq)

    async def _pump_own(self, sub: _Subscription, stream: ThreadStream) -> None:
        async def deliver(batch: list[OutEvent]) -> None:
            for event in batch:
                if sub.filter.matches(event.channel, event.namespace):
                    await self.send(event.json)

        await self._pump(stream, deliver)

    @staticmethod
    async def _cancel(task: asyncio.Task[None] | None) -> None:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _unsubscribe(self, command_id: int, params: dict[str, Any]) -> dict[str, Any]:
        unknown = set(params) - {"subscription_id"}
        if unknown:
            raise CommandError("invalid_argument", f"subscription.unsubscribe: unknown params {sorted(unknown)}")
        subscription_id = params.get("subscription_id")
        if not isinstance(subscription_id, str):
            raise CommandError("invalid_argument", "subscription.unsubscribe: subscription_id must be a string")
        sub = self._subscriptions.pop(subscription_id, None)
        if sub is None:
            raise CommandError("no_such_subscription", f"no subscription {subscription_id} on this connection")
        await self._cancel(sub.task)
        if not any(other.shared for other in self._subscriptions.values()):
            shared, self._shared = self._shared, None  # nothing left to serve
            await self._cancel(shared)
        return success(command_id, {})

    async def _reconnect(self, command_id: int, params: dict[str, Any]) -> None:
        unknown = set(params) - {"run_id", "last_event_id", "subscriptions"}
        if unknown:
            raise CommandError("invalid_argument", f"subscription.reconnect: unknown params {sorted(unknown)}")
        run_id = params.get("run_id")
        if not isinstance(run_id, str):
            raise CommandError("invalid_argument", "subscription.reconnect: run_id must be a string")
        if await self.storage.get_run(run_id, self.thread_id) is None:
            raise CommandError("no_such_run", f"subscription.reconnect: no run {run_id} on thread {self.thread_id}")
        since = _cursor(params.get("last_event_id"))
        wanted = params.get("subscriptions")
        if wanted is not None and (not isinstance(wanted, list) or not all(isinstance(s, str) for s in wanted)):
            raise CommandError("invalid_argument", "subscription.reconnect: subscriptions must be a list of ids")
        ids = list(self._subscriptions) if wanted is None else wanted
        restored = bool(ids) and all(i in self._subscriptions for i in ids)
        again = [sub for sub in (self._subscriptions.get(i) for i in ids) if sub is not None]
        async with self._deliver:
            for sub in again:
                await self._cancel(sub.task)
                sub.task, sub.shared, sub.since = None, False, -1 if since is None else since
            replay = self._join(again) if again else []
            # the response goes out before the replayed events
            await self.send(serde.dumps(success(command_id, {"restored": restored})))
            await self._replay(replay, again)

    async def close(self) -> None:
        """End every subscription (the connection is gone)."""
        for sub in list(self._subscriptions.values()):
            await self._cancel(sub.task)
            if sub.stream is not None:
                await sub.stream.aclose()
        self._subscriptions.clear()
        shared, self._shared = self._shared, None
        await self._cancel(shared)
