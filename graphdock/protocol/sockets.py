"""One WebSocket connection of the protocol: its subscriptions and its commands.

Every text frame a client sends is a command envelope. ``subscription.subscribe``
(params: channels, namespaces, depth and, as the SDK sends them, ``since``) opens a
subscription: its success response (``{subscription_id, replayed_events}``) is sent first,
then its events (replayed as on the SSE stream, then live), each a JSON text frame.
``subscription.unsubscribe`` ends one; ``subscription.reconnect`` restarts this
connection's subscriptions (all, or the listed ones) from ``last_event_id`` (an event id
or a seq). Every other command is answered as over HTTP
(:class:`graphdock.protocol.commands.Commands`).

Each subscription reads the thread stream on its own, so an event matching two
subscriptions of one connection is sent twice (with the same ``event_id``, which clients
deduplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import orjson

from graphdock import serde
from graphdock.auth import AuthContext
from graphdock.backends.base import EventLog, Storage
from graphdock.errors import APIError
from graphdock.protocol.commands import CommandError, Commands, parse_envelope
from graphdock.protocol.streams import ThreadStream, open_thread_stream
from graphdock.protocol.wire import Filter, error, parse_filter, success

logger = logging.getLogger("graphdock.protocol")

Send = Callable[[bytes], Awaitable[None]]


@dataclass
class _Subscription:
    filter: Filter
    since: int | None
    task: asyncio.Task[None] | None = None
    stream: ThreadStream | None = None


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
        self._lock = asyncio.Lock()
        self._subscriptions: dict[str, _Subscription] = {}
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
        sub = _Subscription(flt, since)
        self._subscriptions[subscription_id] = sub
        # subscribed before the response goes out: nothing published from now on is missed
        sub.stream = open_thread_stream(self.events, self.storage, self.thread_id, since)
        await self.send(serde.dumps(success(command_id, {"subscription_id": subscription_id, "replayed_events": 0})))
        sub.task = asyncio.create_task(self._pump(sub))

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

    async def _pump(self, sub: _Subscription) -> None:
        stream = sub.stream
        assert stream is not None
        try:
            async for batch in stream.ticking(self._heartbeat):
                if batch is None or not await self.readable():
                    continue
                for event in batch:
                    if sub.filter.matches(event.channel, event.namespace):
                        await self.send(event.json)
        except (asyncio.CancelledError, ConnectionGone):
            pass
        except Exception:
            logger.exception("protocol subscription on thread %s failed", self.thread_id)
            with contextlib.suppress(Exception):
                await self.send(serde.dumps(error(None, "unknown_error", "the thread's event stream failed")))
        finally:
            await stream.aclose()

    async def _stop(self, sub: _Subscription) -> None:
        if sub.task is not None:
            sub.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sub.task
        sub.task = None

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
        await self._stop(sub)
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
        for sub in again:
            await self._stop(sub)
            sub.since = since
            sub.stream = open_thread_stream(self.events, self.storage, self.thread_id, since)
        # the response goes out before the replayed events
        await self.send(serde.dumps(success(command_id, {"restored": restored})))
        for sub in again:
            sub.task = asyncio.create_task(self._pump(sub))

    async def close(self) -> None:
        """End every subscription (the connection is gone)."""
        for sub in list(self._subscriptions.values()):
            await self._stop(sub)
        self._subscriptions.clear()
