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
in the FastAPI app (and its OpenAPI document) as they are.
"""

from __future__ import annotations

import re
from typing import Any, Awaitable, Callable

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from graphdock import models
from graphdock.api.errors import error_response
from graphdock.api.runs import answer_stream, answer_wait
from graphdock.api.threads import answer_create_thread
from graphdock.auth import request_auth

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


async def _thread_create(request: Request, body: Any, match: re.Match[str], auth: Any) -> Any:
    return await answer_create_thread(request, body, auth)


async def _run_wait(request: Request, body: Any, match: re.Match[str], auth: Any) -> Any:
    return await answer_wait(request, body, match.groupdict().get("thread_id"), auth)


async def _run_stream(request: Request, body: Any, match: re.Match[str], auth: Any) -> Any:
    return await answer_stream(request, body, match.groupdict().get("thread_id"), auth)


# (path, request model, answer): every one a POST with a JSON body
_ROUTES: list[tuple[re.Pattern[str], type[BaseModel], Callable[..., Awaitable[Any]]]] = [
    (re.compile(r"^/runs/wait$"), models.RunCreate, _run_wait),
    (re.compile(r"^/threads/(?P<thread_id>[^/]+)/runs/wait$"), models.RunCreate, _run_wait),
    (re.compile(r"^/runs/stream$"), models.RunCreate, _run_stream),
    (re.compile(r"^/threads/(?P<thread_id>[^/]+)/runs/stream$"), models.RunCreate, _run_stream),
    (re.compile(r"^/threads$"), models.ThreadCreate, _thread_create),
]


def _json_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


def _route(scope: Scope) -> tuple[re.Match[str], type[BaseModel], Callable[..., Awaitable[Any]]] | None:
    if scope["type"] != "http" or scope["method"] != "POST" or not _json_body(scope):
        return None
    path = scope["path"]
    root = scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root) :]
    for pattern, model, answer in _ROUTES:
        match = pattern.match(path)
        if match is not None:
            return match, model, answer
    return None


class RunFastPath:
    """ASGI middleware: the requests of :data:`_ROUTES`, answered directly."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        route = _route(scope)
        if route is None:
            await self.app(scope, receive, send)
            return
        match, model, answer = route
        body = await _read_body(receive)
        try:
            parsed = model.model_validate(orjson.loads(body)) if body else None
        except (orjson.JSONDecodeError, ValidationError):
            parsed = None
        if parsed is None:  # the app answers, with its own error message
            await self.app(scope, _replay(body, receive), send)
            return
        request = Request(scope, receive)
        try:
            response = await answer(request, parsed, match, await request_auth(request))
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
