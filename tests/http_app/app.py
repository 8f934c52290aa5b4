"""A FastAPI app served beside graphdock's API (``http.app``).

Its lifespan sets state that routes return and, at exit, appends a line to the file
named by ``HTTP_APP_EXIT_FILE``. Its middleware stamps every response with
``x-custom-middleware: before-auth|after-auth`` (whether the request had been
authenticated when the middleware saw it).
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from langgraph.config import get_store


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    app.state.started = "lifespan ran"
    yield {"greeting": "hello from the lifespan"}
    exit_file = os.environ.get("HTTP_APP_EXIT_FILE")
    if exit_file:
        with open(exit_file, "a") as fh:
            fh.write(f"exited {os.getpid()}\n")


app = FastAPI(lifespan=lifespan)


class Stamp:
    """Pure ASGI middleware: says whether the request was authenticated before it ran."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = b"after-auth" if "auth" in (scope.get("state") or {}) else b"before-auth"

        async def stamped(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-custom-middleware", seen)]
            await send(message)

        await self.app(scope, receive, stamped)


app.add_middleware(Stamp)


@app.get("/custom/hello")
async def hello(request: Request) -> dict[str, Any]:
    """Say hello with what the lifespan set."""
    return {"hello": "world", "state": request.state.greeting, "app_state": request.app.state.started}


@app.get("/custom/me")
async def me(request: Request) -> dict[str, Any]:
    user = request.user
    return {
        "identity": user.identity,
        "is_authenticated": user.is_authenticated,
        "team": user["team"],
        "scopes": list(request.auth.scopes),
    }


@app.get("/custom/bad")
async def bad() -> None:
    raise ValueError("the custom route refuses this")


@app.put("/custom/store/{key}")
async def put_item(key: str, request: Request) -> dict[str, Any]:
    store = get_store()
    await store.aput(("custom",), key, await request.json())
    item = await store.aget(("custom",), key)
    return {"value": item.value if item else None}


# shadowing: /info is the user's, /ok and /openapi.json stay graphdock's
@app.get("/info")
async def info() -> dict[str, Any]:
    return {"custom": "info"}


@app.get("/ok")
async def ok() -> dict[str, Any]:
    return {"custom": "ok"}


# an API path (GET /threads/{thread_id}) the user app takes over for one value
@app.get("/threads/collide")
async def collide() -> dict[str, Any]:
    return {"custom": "collide"}
