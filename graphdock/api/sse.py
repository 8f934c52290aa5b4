"""Server-sent events framing (CRLF lines, ``id:`` after ``data:``) and heartbeats.

The heartbeat interval (also the keep-alive interval of ``/wait`` bodies) is
``GRAPHDOCK_HEARTBEAT_SECONDS`` seconds, 5 by default, read when this module is
imported; a value that is not a positive number stops the server from starting.
"""

from __future__ import annotations

import asyncio
import math
import os
from typing import AsyncIterator, TypeVar

from starlette.responses import StreamingResponse

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


async def with_ticks(source: AsyncIterator[T], interval: float | None = None) -> AsyncIterator[T | None]:
    """Items of ``source``, with ``None`` yielded whenever ``interval`` seconds (default: the
    heartbeat interval) pass without one."""
    if interval is None:
        interval = HEARTBEAT_SECONDS
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


def sse_response(body: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream; charset=utf-8",
        headers={**SSE_HEADERS, **(headers or {})},
    )
