"""The ASGI application: routers, error mapping, CORS and the server's lifespan."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from starlette.applications import Starlette
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response

from graphdock import __version__
from graphdock.api import assistants, crons, meta, protocol, runs, store, threads
from graphdock.api.common import JSONResponse
from graphdock.api.errors import error_response
from graphdock.api.fastpath import RunFastPath
from graphdock.config import Settings
from graphdock.errors import APIError
from graphdock.server import Server

logger = logging.getLogger("graphdock.api")


class InternalErrors:
    """Answer an unexpected exception with a plain 500 and log it, without re-raising.

    (Starlette's own server-error handling re-raises after responding, which makes the
    ASGI server drop the keep-alive connection.)
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def _send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, _send)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                return
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)


_HOT_PATHS = {
    path: rank
    for rank, path in enumerate(
        (
            "/runs/wait",
            "/threads/{thread_id}/runs/wait",
            "/runs/stream",
            "/threads/{thread_id}/runs/stream",
            "/runs",
            "/threads/{thread_id}/runs",
            "/threads",
        )
    )
}


class _App(FastAPI):
    """FastAPI with the middleware layers graphdock uses and no others.

    Every request passes through each layer, and most layers wrap ``send`` too, so the
    stack is kept to: graphdock's own middleware (CORS, then :class:`InternalErrors`, which
    answers any unexpected exception with a 500, then the run fast path of
    :mod:`graphdock.api.fastpath`), the exception handlers, and the exit stack FastAPI's
    request handling expects. Left out: Starlette's server-error layer
    (InternalErrors does its job without dropping the connection), FastAPI's native
    OpenTelemetry layer and its body-size limit layer (no limit is configured).
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            # straight to the middleware stack: FastAPI's own __call__ would first ask the
            # OpenTelemetry providers, on every request, whether to add its layer
            if self.root_path:
                scope["root_path"] = self.root_path
            await Starlette.__call__(self, scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def build_middleware_stack(self) -> Any:
        handlers = {k: v for k, v in self.exception_handlers.items() if k not in (500, Exception)}
        app: Any = AsyncExitStackMiddleware(self.router)
        app = ExceptionMiddleware(app, handlers=handlers, debug=self.debug)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app


def create_app(settings: Settings) -> FastAPI:
    srv = Server(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await srv.start()
        app.state.server = srv
        try:
            yield
        finally:
            await srv.stop()

    app = _App(
        title="graphdock",
        version=__version__,
        description="An open-source Agent Server for LangGraph graphs.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )

    async def _error(request: Request, exc: Exception) -> Response:
        response = error_response(exc)
        assert response is not None
        return response

    for kind in (APIError, RequestValidationError, StarletteHTTPException, ValueError):
        app.add_exception_handler(kind, _error)

    # One flat route list (included routers would each add a layer of matching, done twice
    # per request), the routes every run goes through first: a request is matched against
    # the routes in order. No two routes accept the same request (tests/test_routes.py), so
    # the order changes nothing but the cost of matching.
    for router in (meta.router, runs.router, threads.router, assistants.router, store.router, protocol.router, crons.router):
        app.router.routes.extend(router.routes)
    app.router.routes.sort(key=lambda route: _HOT_PATHS.get(getattr(route, "path", ""), len(_HOT_PATHS)))

    app.add_middleware(RunFastPath, routes=list(app.router.routes))
    app.add_middleware(InternalErrors)
    cors: dict[str, Any] = dict(settings.config.http.get("cors") or {})
    if cors:
        app.add_middleware(CORSMiddleware, **cors)
    else:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=["*"],
            allow_methods=["*"],
            allow_headers=["*"],
            # location: the JS SDK reconnects a dropped stream to it (unreadable cross-origin otherwise)
            expose_headers=["x-pagination-total", "x-pagination-next", "content-location", "location"],
        )
    return app


def create_worker_app(settings: Settings) -> Starlette:
    """The ASGI app of ``graphdock worker``: no API, only ``GET /ok`` (health: the worker's
    id and the runs it is executing). The lifespan starts the process's server, which
    claims and executes runs; stopping it (SIGTERM) stops claiming, gives the runs
    executing ``--shutdown-timeout`` seconds and hands back the rest."""
    from starlette.routing import Route

    srv = Server(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await srv.start()
        try:
            yield
        finally:
            await srv.stop()

    async def ok(request: Request) -> Response:
        queue = srv.queue
        return JSONResponse(
            {"ok": True, "worker_id": queue.worker_id, "runs": queue.running}
        )

    return Starlette(routes=[Route("/ok", ok)], lifespan=lifespan)
