"""Server-sent events framing (CRLF lines, ``id:`` after ``data:``) and heartbeats.

The heartbeat interval (also the keep-alive interval of ``/wait`` bodies) is
``GRAPHDOCK_HEARTBEAT_SECONDS`` seconds, 5 by default, read when this module is
imported; a value that is not a positive number stops the server from starting.
"""

from __future__ import annotations

import asyncio
import math
import os
from typing import Any, AsyncIterator, TypeVar

from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse

from graphdock.observability import metrics

T = TypeVar("T")

HEARTBEAT = b": heartbeat\r\n\r\n"
HEARTBEAT_ENV = "GRAPHDOCK_HEARTBEAT_SECONDS"
DEFAULT_HEARTBEAT_SECONDS = 5.0


def heartbeat_seconds(value: str | None = None) -> float:
    """The heartbeat interval configured by ``value`` (default: the environment variable)."""
    raw = os.environ.get(HEARTBEAT_ENV) if value is None else value
    if raw is None or not raw.strip():
        return DEFAULT_HEARTBEAT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{HEARTBEAT_ENV} must be a positive number of seconds, got {raw!r}")
    return seconds


HEARTBEAT_SECONDS = heartbeat_seconds()

SSE_HEADERS = {
    "Cache-Control": "no-store",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}


def frame(event: str, data: bytes, event_id: str | None = None) -> bytes:
    """One SSE frame: ``event:``, one ``data:`` line (``data`` is compact JSON, free of raw
    newlines), then ``id:`` when given; CRLF line ends; CR/LF removed from name and id."""
    name = event.replace("\r", "").replace("\n", "")
    out = b"event: " + name.encode() + b"\r\ndata: " + data + b"\r\n"
    if event_id is not None:
        out += b"id: " + event_id.replace("\r", "").replace("\n", "").encode() + b"\r\n"
    return out + b"\r\n"


def with_ticks(source: AsyncIterator[T], interval: float | None = None) -> AsyncIterator[T | None]:
    """Items of ``source``, with ``None`` yielded whenever ``interval`` seconds (default: the
    heartbeat interval) pass without one.

    A source with a ``ticking(interval)`` method (the event log's subscriptions) provides
    the ticks itself; any other source is read through a task per item.
    """
    if interval is None:
        interval = HEARTBEAT_SECONDS
    ticking = getattr(source, "ticking", None)
    if ticking is not None:
        return ticking(interval)
    return _with_tick_tasks(source, interval)


async def _with_tick_tasks(source: AsyncIterator[T], interval: float) -> AsyncIterator[T | None]:
    iterator = source.__aiter__()
    pending: asyncio.Task[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield None
                continue
            task, pending = pending, None
            try:
                yield task.result()
            except StopAsyncIteration:
                return
    finally:
        if pending is not None:
            pending.cancel()
            try:
                await pending
            except (asyncio.CancelledError, StopAsyncIteration, Exception):
                pass
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except RuntimeError:
                pass


class LastChunk(bytes):
    """The last chunk of a :class:`RunResponse` body: sent together with the end of the body."""


class RunResponse(StreamingResponse):
    """The streamed answer of a run-creating request, read in the request's own task.

    Starlette's ``StreamingResponse`` runs every body in a task group beside a listener
    for the client going away. A run's body ends when the run does, so the listener is
    only needed when the client's departure must stop the body at once (the run's
    ``on_disconnect="cancel"``): with ``watch_disconnect`` a listener task cancels the body
    when the client leaves; without it the body runs to the run's end (the server drops
    what is sent after the client left).
    """

    def __init__(self, content: AsyncIterator[bytes], *, watch_disconnect: bool, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.watch_disconnect = watch_disconnect

    async def stream_response(self, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for chunk in self.body_iterator:
            if isinstance(chunk, LastChunk):
                await send({"type": "http.response.body", "body": bytes(chunk), "more_body": False})
                aclose = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self.watch_disconnect:
            try:
                await self.stream_response(send)
            except OSError:
                raise ClientDisconnect() from None
            return
        task = asyncio.current_task()
        assert task is not None
        left: list[bool] = []

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            left.append(True)
            task.cancel()

        listener = asyncio.create_task(listen())
        try:
            await self.stream_response(send)
        except asyncio.CancelledError:
            if not left or task.uncancel() > 0:
                raise
        finally:
            listener.cancel()


class _Subscriber:
    """An SSE response counted, while it is sent, in ``graphdock_stream_subscribers``."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        metrics.streams_open += 1
        try:
            await super().__call__(scope, receive, send)  # type: ignore[misc]
        finally:
            metrics.streams_open -= 1


class _EventStream(_Subscriber, StreamingResponse):
    pass


class _RunEventStream(_Subscriber, RunResponse):
    pass


def sse_response(
    body: AsyncIterator[bytes],
    headers: dict[str, str] | None = None,
    *,
    watch_disconnect: bool | None = None,
) -> StreamingResponse:
    """An SSE response; ``watch_disconnect`` (True or False) makes it a :class:`RunResponse`."""
    kwargs: dict[str, Any] = {
        "media_type": "text/event-stream; charset=utf-8",
        "headers": {**SSE_HEADERS, **(headers or {})},
    }
    if watch_disconnect is None:
        return _EventStream(body, **kwargs)
    return _RunEventStream(body, watch_disconnect=watch_disconnect, **kwargs)
