"""The user's own Starlette or FastAPI app (``http.app``), served beside the API.

``http.app`` is ``"./file.py:attr"`` (relative to ``langgraph.json``) or
``"package.module:attr"``. The app's routes are served by the same server as graphdock's
API, in this order of precedence:

1. ``/ok``, ``/metrics``, ``/docs`` and ``/openapi.json`` (when graphdock serves them):
   graphdock's, whatever the user app defines (its own ``/docs`` and ``/openapi.json``
   are therefore not served; its routes appear in graphdock's document instead);
2. every route of the user app (a user route wins over an API route of the same path
   and method, ``/`` and ``/info`` included);
3. graphdock's API.

The user app's middleware wraps every request, API routes included. With
``http.middleware_order: "auth_first"`` requests are authenticated (with the configured
``auth.path``) before the user middleware sees them; by default
(``"middleware_first"``) the user middleware runs first. With
``http.enable_custom_route_auth: true`` the user routes are authenticated too (a failed
authentication is answered with its 401/403) and see the user as ``request.user`` (and
its permissions as ``request.auth.scopes``). The user app's lifespan is entered after
graphdock has started and exited before it stops. Its exception handlers answer for its
routes, with graphdock's for the exception types it does not handle. Inside a user
route ``langgraph.config.get_store()`` is the server's store.

Without ``http.app`` nothing of this module is in the request path.
"""

from __future__ import annotations

import re
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping

from fastapi import FastAPI
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from langchain_core.runnables.config import var_child_runnable_config
from langgraph.runtime import Runtime
from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import HTTPConnection
from starlette.routing import Match, Route

from graphdock.api.errors import error_response
from graphdock.config import Config, ConfigError, GraphSpec
from graphdock.errors import APIError

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

# graphdock routes a user app cannot shadow
RESERVED = ("/ok", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json")
# graphdock routes answered without authentication
PUBLIC = (*RESERVED, "/", "/info")
_CONFIG_KEY_RUNTIME = "__pregel_runtime"  # where langgraph.config.get_store() finds the store


def load_custom_app(config: Config) -> Starlette | None:
    """The app ``http.app`` names (None without one); ConfigError when it cannot be served."""
    source = config.http.get("app")
    if not source:
        return None
    from graphdock.hosting.loader import _import_module, prepare_import_path

    prepare_import_path(config)
    module_path, attr = source.rsplit(":", 1)
    try:
        module = _import_module(GraphSpec(graph_id="http.app", path=module_path, attr=attr), config.base_dir)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("graph 'http.app': ", "http.app: ", 1)) from None
    if not hasattr(module, attr):
        raise ConfigError(f"http.app: {source}: the module has no attribute {attr!r}")
    app = getattr(module, attr)
    if not isinstance(app, Starlette):
        raise ConfigError(f"http.app: {source} is {type(app).__name__}, not a Starlette or FastAPI app")
    if getattr(app.router, "on_startup", None) or getattr(app.router, "on_shutdown", None):
        raise ConfigError(f"http.app: {source} uses on_startup/on_shutdown handlers; give it a lifespan instead")
    return app


def check_custom_app(config: Config) -> str | None:
    """The one-line problem of ``http.app`` (None when it loads or is not configured)."""
    try:
        load_custom_app(config)
    except ConfigError as exc:
        return str(exc)
    return None


class CustomApp:
    """A loaded ``http.app`` and the way it is served beside ``api`` (graphdock's app)."""

    def __init__(self, user: Starlette, config: Config) -> None:
        self.user = user
        self.auth_first = config.http.get("middleware_order", "middleware_first") == "auth_first"
        self.route_auth = bool(config.http.get("enable_custom_route_auth", False))

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[Mapping[str, Any] | None]:
        """The user app's lifespan; what it yields becomes the requests' ``state``."""
        async with self.user.router.lifespan_context(self.user) as state:
            yield state

    def install(self, api: FastAPI) -> None:
        """Put the user routes in front of ``api``'s routes (a middleware of ``api``, added
        inside graphdock's error and CORS layers and outside its run fast path)."""
        api.add_middleware(CustomRoutes, custom=self, api=api)


class CustomRoutes:
    """ASGI middleware of graphdock's app: the user app's middleware and routes."""

    def __init__(self, app: ASGIApp, *, custom: CustomApp, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self.user = user = custom.user
        self.reserved = {path for path in RESERVED if any(getattr(r, "path", None) == path for r in api.routes)}
        handlers: dict[Any, Any] = {k: v for k, v in api.exception_handlers.items() if k not in (500, Exception)}
        handlers.update({k: v for k, v in user.exception_handlers.items() if k not in (500, Exception)})
        routes: ASGIApp = user.router
        if isinstance(user, FastAPI):
            routes = AsyncExitStackMiddleware(routes)
        routes = ExceptionMiddleware(routes, handlers=handlers, debug=user.debug)
        server_error = user.exception_handlers.get(500) or user.exception_handlers.get(Exception)
        if server_error is not None:
            routes = ServerErrorMiddleware(routes, handler=server_error, debug=user.debug)
        self._routes = routes
        user_branch: ASGIApp = self._user_routes
        if custom.route_auth:
            user_branch = _authenticated(self._server, user_branch)
        middleware = list(user.user_middleware)
        if custom.auth_first:
            self._user_entry = _wrap(middleware, self._user_routes)
            if custom.route_auth:
                self._user_entry = _authenticated(self._server, self._user_entry)
            self._api_entry = _authenticated(self._server, _wrap(middleware, self._to_api), self._public)
            self._entry: ASGIApp = self._split
        else:
            self._user_entry, self._api_entry = user_branch, self._to_api
            self._entry = _wrap(middleware, self._split)

    def _server(self) -> Any:
        return self.api.state.server

    def _public(self, scope: Any) -> bool:
        # a WebSocket route authenticates its connection itself (and answers with a close code)
        return scope["type"] == "websocket" or get_route_path(scope) in PUBLIC

    def _is_user_route(self, scope: Any) -> bool:
        if get_route_path(scope) in self.reserved:
            return False
        return any(route.matches(scope)[0] is Match.FULL for route in self.user.router.routes)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # in place: the layers outside read what the router puts in the scope (the route)
        scope["app"] = self.user
        await self._entry(scope, receive, send)

    async def _split(self, scope: Any, receive: Any, send: Any) -> None:
        if self._is_user_route(scope):
            await self._user_entry(scope, receive, send)
        else:
            await self._api_entry(scope, receive, send)

    async def _to_api(self, scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = self.api
        await self.app(scope, receive, send)

    async def _user_routes(self, scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = self.user
        store = self._server().hosting.store  # the store the graphs get
        token = var_child_runnable_config.set({"configurable": {_CONFIG_KEY_RUNTIME: Runtime(store=store)}})
        try:
            await self._routes(scope, receive, send)
        finally:
            var_child_runnable_config.reset(token)


def _wrap(middleware: list[Any], app: ASGIApp) -> ASGIApp:
    for cls, args, kwargs in reversed(middleware):
        app = cls(app, *args, **kwargs)
    return app


def _authenticated(
    server: Callable[[], Any], app: ASGIApp, public: Callable[[Any], bool] = lambda scope: False
) -> ASGIApp:
    """``app`` behind the server's ``authenticate``: the user in ``scope["user"]`` (and
    in the request's auth context, which graphdock's routes reuse); a failure answered
    with its status."""

    async def authenticated(scope: Any, receive: Any, send: Any) -> None:
        if not public(scope):
            try:
                ctx = await server().authorizer.authenticate(HTTPConnection(scope))
            except APIError as exc:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 4000 + exc.status_code, "reason": exc.detail[:120]})
                    return
                response = error_response(exc)
                assert response is not None
                await response(scope, receive, send)
                return
            scope.setdefault("state", {})["auth"] = ctx
            scope["user"] = ctx.user if ctx.user is not None else UnauthenticatedUser()
            scope["auth"] = AuthCredentials(list(ctx.permissions))
        await app(scope, receive, send)

    return authenticated


# -- the OpenAPI document ------------------------------------------------------------


def install_openapi(api: FastAPI, user: Starlette | None, prefix: str | None) -> None:
    """Make ``api``'s OpenAPI document list the user app's routes (``user``) and every
    path under ``prefix`` (``http.mount_prefix``)."""
    base = api.openapi
    if prefix:
        api.root_path_in_servers = False  # the prefix is in the paths themselves

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            document = base()
            if user is not None:
                _merge_user_routes(document, user)
            if prefix:
                document["paths"] = {prefix + path: item for path, item in document["paths"].items()}
            api.openapi_schema = document
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


def _merge_user_routes(document: dict[str, Any], user: Starlette) -> None:
    paths = document.setdefault("paths", {})
    if isinstance(user, FastAPI):
        theirs = user.openapi()
        user_paths = theirs.get("paths") or {}
        schemas = (theirs.get("components") or {}).get("schemas") or {}
        mine = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in schemas.items():
            mine.setdefault(name, schema)
    else:
        user_paths = _starlette_paths(user)
    for path, operations in user_paths.items():
        if path in RESERVED:
            continue
        paths.setdefault(path, {}).update(operations)


def _starlette_paths(user: Starlette) -> dict[str, dict[str, Any]]:
    """Minimal path items for a plain Starlette app's routes (summary from the endpoint)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in user.router.routes:
        if not isinstance(route, Route) or not route.include_in_schema:
            continue
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.path)
        doc = (getattr(route.endpoint, "__doc__", None) or "").strip()
        for method in sorted((route.methods or set()) - {"HEAD"}):
            operation: dict[str, Any] = {
                "summary": doc.splitlines()[0] if doc else route.name,
                "tags": ["custom"],
                "responses": {"200": {"description": "Successful Response"}},
            }
            params = re.findall(r"\{(\w+)\}", path)
            if params:
                operation["parameters"] = [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params
                ]
            paths.setdefault(path, {})[method.lower()] = operation
    return paths
