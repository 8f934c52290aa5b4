"""A plain Starlette app served beside graphdock's API (``http.app``)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def ping(request: Request) -> JSONResponse:
    """Answer pong, with the user when the route is authenticated."""
    user = request.scope.get("user")
    return JSONResponse({"pong": True, "identity": getattr(user, "identity", None)})


class Stamp:
    def __init__(self, app):  # type: ignore[no-untyped-def]
        self.app = app

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = b"after-auth" if "auth" in (scope.get("state") or {}) else b"before-auth"

        async def stamped(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-custom-middleware", seen)]
            await send(message)

        await self.app(scope, receive, stamped)


app = Starlette(routes=[Route("/ping/{name}", ping)], middleware=[Middleware(Stamp)])
not_an_app = {"this": "is not an app"}
