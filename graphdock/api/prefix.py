"""``http.mount_prefix``: the whole server under one path prefix.

A request whose path starts with the prefix is routed as if the prefix were not there
(the prefix becomes part of the ASGI ``root_path``, as behind a proxy that strips it),
so ``/my-api/threads`` is ``/threads``. ``/``, ``/ok`` and ``/metrics`` are also
answered at the root (health checks and scrapers need not know the prefix); any other
path outside the prefix is a 404.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from starlette._utils import get_route_path

from graphdock.api.common import JSONResponse

ROOT_PATHS = ("/", "/ok", "/metrics")


class MountPrefix:
    """ASGI middleware serving ``app`` under ``prefix`` (``"/my-api"``, no trailing ``/``)."""

    def __init__(self, app: Callable[[Any, Any, Any], Awaitable[None]], *, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = get_route_path(scope)
        if path == self.prefix or path.startswith(self.prefix + "/"):
            # in place: the layers outside read what the router puts in the scope (the route)
            scope["root_path"] = scope.get("root_path", "") + self.prefix
        elif path not in ROOT_PATHS:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4404, "reason": "Not Found"})
                return
            await JSONResponse({"detail": "Not Found"}, status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)
