"""The ASGI application: routers, error mapping, CORS and the server's lifespan."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack, asynccontextmanager
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
from graphdock.api import a2a as a2a_routes, mcp as mcp_routes
from graphdock.integrations.mcp import session_manager as mcp_session_manager
from graphdock.api.common import JSONResponse
from graphdock.api.custom_app import CustomApp, install_openapi, load_custom_app
from graphdock.api.errors import error_response
from graphdock.api.fastpath import RunFastPath
from graphdock.api.headers import HeaderPolicy
from graphdock.api.limits import BodySizeLimit
from graphdock.api import openapi as api_document
from graphdock.api.prefix import MountPrefix
from graphdock.config import Settings
from graphdock.errors import APIError
from graphdock.observability import logs
from graphdock.observability import tracing
from graphdock.observability.http import RequestObserver
from graphdock.hosting import loopback
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
        except Exception as exc:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if tracing.enabled:
                tracing.record_exception(exc)  # on the request's server span
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
    stack is kept to: graphdock's own middleware (the request observer of
    :mod:`graphdock.observability.http`: request ids and metrics; CORS, then :class:`InternalErrors`, which
    answers any unexpected exception with a 500, then the body size limit of
    :mod:`graphdock.api.limits`, then the run fast path of :mod:`graphdock.api.fastpath`),
    the exception handlers, and the exit stack FastAPI's request handling expects. Left
    out: Starlette's server-error layer (InternalErrors does its job without dropping the
    connection), FastAPI's native OpenTelemetry layer and its body-size limit layer
    (graphdock's own limit also covers the fast path).
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


def create_app(settings: Settings, server: Server | None = None) -> FastAPI:
    """graphdock's API app; its lifespan starts ``server`` (a new one by default). (A
    worker's in-process client serves its requests with an app around the worker's
    running server, whose lifespan is never entered.)"""
    srv = server if server is not None else Server(settings)
    http = settings.config.http
    user_app = load_custom_app(settings.config)  # http.app: served beside the API
    custom = CustomApp(user_app, settings.config) if user_app is not None else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        # get_client() without url in a graph: served by this app, in the caller's task
        # (its requests wait until the server has started)
        loopback.install(app, prefix=http.get("mount_prefix") or "")
        await srv.start()
        app.state.server = srv
        try:
            async with AsyncExitStack() as stack:
                if not settings.config.http_disabled("mcp"):
                    # /mcp: this process's MCP transport (stateless), running as long as the app
                    app.state.mcp = mcp_session_manager()
                    await stack.enter_async_context(app.state.mcp.run())
                loopback.ready()
                if custom is None:
                    yield
                else:  # the user app's lifespan, inside graphdock's
                    async with custom.lifespan() as state:
                        yield state
        finally:
            await srv.stop()

    app = _App(
        title="graphdock",
        version=__version__,
        description="An open-source Agent Server for LangGraph graphs.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        docs_url=None if settings.config.http_disabled("meta") else "/docs",
        openapi_url=None if settings.config.http_disabled("meta") else "/openapi.json",
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
    # http.disable_<group> leaves a group out (disable_meta keeps /ok; crons are runs', the
    # thread streaming protocol's routes are runs' and event_streaming's)
    groups = (
        (("meta",), meta.router), (("runs",), runs.router), (("threads",), threads.router),
        (("assistants",), assistants.router), (("store",), store.router),
        (("runs", "event_streaming"), protocol.router), (("runs",), crons.router),
        (("mcp",), mcp_routes.router), (("a2a",), a2a_routes.router),
    )
    for names, router in groups:
        if not any(settings.config.http_disabled(name) for name in names):
            app.router.routes.extend(router.routes)
        elif names == ("meta",):
            app.router.routes.extend(r for r in router.routes if getattr(r, "path", None) == "/ok")
    app.router.routes.sort(key=lambda route: _HOT_PATHS.get(getattr(route, "path", ""), len(_HOT_PATHS)))
    api_document.install(app, settings.config.graphs)  # before the user app's routes join it

    app.add_middleware(RunFastPath, routes=list(app.router.routes))
    # in front of everything that reads a body, the fast path included
    app.add_middleware(BodySizeLimit, max_body_size=settings.max_body_size)
    if custom is not None:  # the user app's middleware and routes, in front of the API's
        custom.install(app)
    if user_app is not None or http.get("mount_prefix"):
        install_openapi(app, user_app, http.get("mount_prefix"))
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
            expose_headers=["x-pagination-total", "x-pagination-next", "content-location", "location", "x-request-id"],
        )
    if http.get("mount_prefix"):
        app.add_middleware(MountPrefix, prefix=http["mount_prefix"])
    # outermost: every request gets its id, is counted by route template and (JSON logs) access-logged
    app.add_middleware(
        RequestObserver,
        access_log=logs.json_enabled(),
        log_headers=HeaderPolicy.from_config(http, "logging_headers"),
    )
    if tracing.configured():
        # traces on (OTEL_* variables) only, around everything: a server span per request,
        # current in every other layer (its trace id in their log lines)
        app.add_middleware(tracing.ServerSpans)
    return app


def create_worker_app(settings: Settings) -> Starlette:
    """The ASGI app of ``graphdock worker``: no API, only ``GET /ok`` (health: the worker's
    id and the runs it is executing; ``?check_db=1``: 503 when the database or Redis is
    down) and ``GET /metrics`` (this worker's runs and tokens, the deployment's queue). The lifespan starts the process's server, which
    claims and executes runs; stopping it (SIGTERM) stops claiming, gives the runs
    executing ``--shutdown-timeout`` seconds and hands back the rest."""
    from starlette.routing import Route

    srv = Server(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # get_client() without url in a graph: an API app around this worker's own server
        api = create_app(settings, server=srv)
        loopback.install(api, prefix=settings.config.http.get("mount_prefix") or "")
        await srv.start()
        api.state.server = srv
        loopback.ready()
        try:
            yield
        finally:
            await srv.stop()

    async def ok(request: Request) -> Response:
        queue = srv.queue
        if request.query_params.get("check_db") == "1":  # readiness: the database and Redis answer
            response = await meta.health(srv, 1)
            if response.status_code != 200:
                return response
        return JSONResponse(
            {"ok": True, "worker_id": queue.worker_id, "runs": queue.running}
        )

    async def metrics(request: Request) -> Response:  # this worker's metrics, the queue's
        fmt = request.query_params.get("format", "prometheus")
        if fmt not in ("prometheus", "json"):
            return JSONResponse({"detail": "format: expected prometheus or json"}, status_code=422)
        return await meta.metrics_response(srv, fmt)

    app = Starlette(routes=[Route("/ok", ok), Route("/metrics", metrics)], lifespan=lifespan)
    app.add_middleware(RequestObserver, access_log=logs.json_enabled())
    return app
