"""The request body size limit (``--max-body-size``).

A request whose ``Content-Length`` is over the limit is answered 413 before anything
reads its body; one within it passes untouched (the HTTP server reads no more than the
length says). A body without a length (chunked) is counted as it is received: the
chunk that passes the limit raises :class:`BodyTooLarge` in whatever is reading it (a
route's body parsing, the run fast path, a route reading the raw body), and the answer
is the same 413. The layer sits in front of everything that reads a body.
"""

from __future__ import annotations

from typing import Any, Awaitable

from starlette.exceptions import HTTPException

from graphdock.api.common import JSONResponse

DEFAULT_MAX_BODY_SIZE = 32 * 1024 * 1024  # 32 MiB


def describe_size(size: int) -> str:
    """``size`` bytes as the flag would be written (``32MiB``, ``512KiB``, ``1000``)."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


class BodyTooLarge(HTTPException):
    """Raised by the counted ``receive`` when a body passes the limit. It is an
    ``HTTPException``, so a route's body parsing lets it through to the exception
    handlers, which answer 413 like this layer does."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"Request body too large: the limit is {limit} bytes ({describe_size(limit)}, --max-body-size)",
        )


class BodySizeLimit:
    """ASGI middleware: HTTP request bodies of at most ``max_body_size`` bytes (0: no limit)."""

    def __init__(self, app: Any, max_body_size: int = DEFAULT_MAX_BODY_SIZE) -> None:
        self.app = app
        self.limit = max_body_size

    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[None]:
        # a plain function: a request that passes untouched gets the app's own coroutine,
        # without a frame of this layer for every await of it to go through
        if scope["type"] != "http" or not self.limit:
            return self.app(scope, receive, send)
        limit = self.limit
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.strip().isdigit():
                    break
                if int(value) > limit:
                    return self._refuse(scope, receive, send, BodyTooLarge(limit))
                # the server reads exactly that many bytes (what follows is the next
                # request): nothing to count
                return self.app(scope, receive, send)
        return self._counted(scope, receive, send)

    async def _counted(self, scope: Any, receive: Any, send: Any) -> None:
        limit = self.limit
        received = 0
        started = False

        async def counted() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge as exc:
            if not started:
                await self._refuse(scope, receive, send, exc)

    @staticmethod
    async def _refuse(scope: Any, receive: Any, send: Any, exc: BodyTooLarge) -> None:
        # the rest of the body is not read: the connection closes after the answer
        response = JSONResponse({"detail": exc.detail}, status_code=413, headers={"Connection": "close"})
        await response(scope, receive, send)
