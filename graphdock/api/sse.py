"""Server-sent events framing (CRLF lines, ``id:`` after ``data:``) and heartbeats."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, TypeVar

from starlette.responses import StreamingResponse

T = TypeVar("T")

HEARTBEAT = b": heartbeat\r\n\r\n"
HEARTBEAT_SECONDS = 5.0

SSE_HEADERS = {
    "Cache-Control": "no-store",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}


def frame(event: str, data: bytes, event_id: str | None = None) -> bytes:
    name = event.replace("\r", "").replace("\n", "")
    out = b"event: " + name.encode() + b"\r\ndata: " + data + b"\r\n"
    if event_id is not None:
        out += b"id: " + event_id.replace("\r", "").replace("\n", "").encode() + b"\r\n"
    return out + b"\r\n"


async def with_ticks(source: AsyncIterator[T], interval: float = HEARTBEAT_SECONDS) -> AsyncIterator[T | None]:
    """Items of ``source``, with ``None`` yielded whenever ``interval`` passes without one."""
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
