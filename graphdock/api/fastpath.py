"""A shorter way through the framework for the requests every run makes.

``POST /threads``, ``POST /runs/wait``, ``/runs/stream``, ``/threads/{thread_id}/runs/wait``
and ``/threads/{thread_id}/runs/stream`` are answered by the same functions as their
FastAPI routes (:func:`graphdock.api.threads.answer_create_thread`,
:func:`graphdock.api.runs.answer_wait`, :func:`graphdock.api.runs.answer_stream`), but
without FastAPI's per-request machinery: route matching over the whole table,
dependency solving, its exception and exit-stack layers and the wrappers they put
around every ``send``. Measured on the benchmark's one-node graph, that machinery was
about a tenth of the server's CPU per run.

Only requests whose body is a valid JSON object for the route's model take this way.
Anything else (a body that is not JSON, fails validation, or comes with another content
type) is handed to the FastAPI app unchanged, body included, so that every error answer
is the app's own. Errors raised while answering are mapped by the same function as the
app's exception handlers (:func:`graphdock.api.errors.error_response`). The routes stay
in the FastAPI app (and its OpenAPI document) as they are: the fast path's table is made
from the app's own routes, those whose endpoint is marked with :func:`fast`.
"""

from __future__ import annotations

import re
import typing
from typing import Any, Awaitable, Callable

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from graphdock.api.errors import error_response
from graphdock.auth import request_auth
from graphdock.bounds import RAW_CHECKED, raw_json_storable

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
# (request, parsed body, path parameters, auth) -> response
Answer = Callable[[Request, Any, dict[str, str], Any], Awaitable[Any]]


def fast(answer: Answer) -> Callable[[Any], Any]:
    """Mark a FastAPI route's endpoint as answered by ``answer`` on the fast path too (its
    ``body`` parameter's model validates the request)."""

    def mark(endpoint: Any) -> Any:
        endpoint.fast_answer = answer
        return endpoint

    return mark


FastRoute = tuple[re.Pattern[str], type[BaseModel], Answer]


def fast_routes(routes: typing.Iterable[BaseRoute]) -> list[FastRoute]:
    """The POST routes marked with :func:`fast`, as (path pattern, body model, answer)."""
    table = []
    for route in routes:
        answer = getattr(getattr(route, "endpoint", None), "fast_answer", None)
        if isinstance(route, Route) and answer is not None and "POST" in (route.methods or ()):
            model = typing.get_type_hints(route.endpoint)["body"]
            table.append((route.path_regex, model, answer))
    return table


def _json_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


class RunFastPath:
    """ASGI middleware: the requests of the app's routes marked with :func:`fast`,
    answered directly."""

    def __init__(self, app: ASGIApp, routes: typing.Iterable[BaseRoute] = ()) -> None:
        self.app = app
        routes = list(routes)
        self.routes = fast_routes(routes)
        # the route a request matched, put in its scope as the router does (``scope["route"]``:
        # route templates for metrics and span names)
        self._route_of = {route.path_regex: route for route in routes if isinstance(route, Route)}

    def _route(self, scope: Scope) -> tuple[re.Match[str], type[BaseModel], Answer] | None:
        if scope["type"] != "http" or scope["method"] != "POST" or not _json_body(scope):
            return None
        path = scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root) :]
        for pattern, model, answer in self.routes:
            match = pattern.match(path)
            if match is not None:
                return match, model, answer
        return None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        route = self._route(scope)
        if route is None:
            await self.app(scope, receive, send)
            return
        match, model, answer = route
        body = await _read_body(receive)
        try:
            # the bounds check of every value, done on the bytes when they allow it
            context = RAW_CHECKED if raw_json_storable(body) else None
            parsed = model.model_validate(orjson.loads(body), context=context) if body else None
        except (orjson.JSONDecodeError, ValidationError):
            parsed = None
        if parsed is None:  # the app answers, with its own error message
            await self.app(scope, _replay(body, receive), send)
            return
        scope["route"] = self._route_of[match.re]
        request = Request(scope, receive)
        try:
            response = await answer(request, parsed, match.groupdict(), await request_auth(request))
        except Exception as exc:
            response = error_response(exc)
            if response is None:
                raise
        await response(scope, receive, send)


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
