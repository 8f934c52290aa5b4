"""The in-process client: ``langgraph_sdk.get_client()`` and ``get_sync_client()`` without a
url, called inside a graph graphdock serves, reach graphdock itself, as the calling run's user.

How the SDK's clients get there:

- ``get_client()`` (no url) creates an ASGI transport with no app (graphdock sets the SDK's
  ``__LANGGRAPH_DEFER_LOOPBACK_TRANSPORT``) and appends it to
  ``langgraph_sdk._shared.utilities._registered_transports``; :func:`prepare` replaces that
  list with a registry that hands each transport the process's loopback app as soon as it
  is appended (the SDK's own ``configure_loopback_transports`` only reaches the transports
  that exist when it is called), and keeps none once the app is installed. The transport
  is :class:`StreamingTransport` (the SDK asks ``get_asgi_transport()`` for its class):
  unlike ``httpx.ASGITransport``, which returns a response once the app has sent all of
  it, it streams (``runs.stream(...)`` yields events as the run produces them).
- ``get_sync_client()`` (no url) would go to ``http://localhost:8123``: :func:`prepare`
  wraps it so that, with no url, its transport calls the loopback app on the process's
  event loop from the node's thread (a sync node runs in a thread). Called on that event
  loop itself (from async code) it raises: it would wait on the loop it blocks.

The loopback app of each kind of process:

- API process (``graphdock serve``/``dev``): graphdock's own ASGI app, called in-process
  (no network hop), in a task with a fresh context (the node's own context variables, such
  as its runnable config, must not reach the request, nor a run executed in its task);
- worker (``graphdock worker``): an API app built around the worker's own server (every API
  operation works from any process of a PostgreSQL deployment), called the same way;
- run process (embedded default): the queue and event logs live in the server process, so
  requests are relayed over loopback HTTP to the server's port, carrying the calling run's
  user in a header the server trusts only with the secret it gave its run processes.

The user: the executor sets :data:`CALLER` for a run's task (:func:`calling_run`); langgraph's
tasks and threads inherit it, and the loopback app reads it when called. A request of the
in-process client carries that user in its ASGI scope (a key no HTTP request can set); graphdock's
authentication takes it instead of calling ``authenticate`` (:func:`caller_of`). Outside a
run (no calling user) the request is authenticated as any other, with the headers the caller
gave the client. An external request with root path ``/noauth`` or graphdock's loopback
headers (without the secret) is authenticated normally.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hmac
import json
import logging
import os
import secrets
from contextvars import ContextVar
from typing import Any, AsyncIterator, Iterator, Mapping

import httpx

from graphdock.auth.context import AuthContext
from graphdock.auth.user import AuthenticatedUser

logger = logging.getLogger("graphdock.loopback")

CALLER: ContextVar[AuthContext | None] = ContextVar("graphdock_loopback_caller", default=None)
"""The user of the run executing in this task (None outside a run)."""

SCOPE_KEY = "graphdock.loopback_caller"  # in the ASGI scope of an in-process request
SECRET_HEADER = "x-graphdock-loopback"  # a relayed request: the server's loopback secret
USER_HEADER = "x-graphdock-loopback-user"  # a relayed request: JSON {"user", "permissions"}
URL_ENV = "GRAPHDOCK_LOOPBACK_URL"  # for run processes: where their server listens
SECRET_ENV = "GRAPHDOCK_LOOPBACK_SECRET"  # for run processes: the secret it trusts

_target: Any = None  # the process's loopback ASGI app (None until installed)
_loop: asyncio.AbstractEventLoop | None = None  # the event loop it runs on
_secret: str | None = None  # the secret relayed requests must carry (server process)


# -- the calling user ----------------------------------------------------------


def calling_run(run: Mapping[str, Any]) -> contextvars.Token[AuthContext | None]:
    """While executing ``run`` (until ``CALLER.reset`` of what this returns): the in-process
    client acts as the run's user (the one stored with the run), or, for a run without one,
    authenticates normally."""
    configurable = ((run.get("kwargs") or {}).get("config") or {}).get("configurable") or {}
    user = configurable.get("langgraph_auth_user")
    if isinstance(user, Mapping) and not isinstance(user, AuthenticatedUser) and "identity" in user:
        user = AuthenticatedUser.from_dict(user)
    caller = None
    if user is not None:
        caller = AuthContext(user=user, permissions=list(configurable.get("langgraph_auth_permissions") or []))
    return CALLER.set(caller)


def caller_of(conn: Any) -> AuthContext | None:
    """The user a request of the in-process client acts as, or None for any other request
    (it is authenticated normally)."""
    caller = conn.scope.get(SCOPE_KEY)
    if caller is not None:
        return caller
    presented = conn.headers.get(SECRET_HEADER)
    if presented is None or _secret is None or not hmac.compare_digest(presented, _secret):
        return None
    try:
        raw = json.loads(conn.headers.get(USER_HEADER) or "")
        return AuthContext(user=AuthenticatedUser.from_dict(raw["user"]), permissions=list(raw["permissions"]))
    except (ValueError, KeyError, TypeError):
        return None


# -- hooking the SDK -------------------------------------------------------------


class _Registry(list):  # type: ignore[type-arg]
    """The SDK's list of deferred loopback transports: once the loopback app is installed,
    each transport appended gets it at once and is not kept."""

    def append(self, transport: Any) -> None:
        if _target is not None:
            transport.app = _target
        else:
            super().append(transport)


def prepare() -> None:
    """Hook the SDK's clients before user code runs (idempotent; every process that
    executes graphs calls it before importing them)."""
    os.environ["__LANGGRAPH_DEFER_LOOPBACK_TRANSPORT"] = "true"
    import langgraph_sdk
    import langgraph_sdk._async.client as async_client
    import langgraph_sdk._shared.utilities as utilities
    import langgraph_sdk._sync.client as sync_client
    import langgraph_sdk.client as client

    if not isinstance(utilities._registered_transports, _Registry):
        registry = _Registry(utilities._registered_transports)
        utilities._registered_transports = registry  # type: ignore[assignment]
        async_client._registered_transports = registry  # type: ignore[assignment]
    async_client.get_asgi_transport = lambda: StreamingTransport  # type: ignore[attr-defined]
    original = sync_client.get_sync_client
    if getattr(original, "_graphdock_loopback", False):
        return

    @functools.wraps(original)
    def get_sync_client(
        *,
        url: str | None = None,
        api_key: Any = utilities.NOT_PROVIDED,
        headers: Mapping[str, str] | None = None,
        timeout: Any = None,
    ) -> Any:
        if url is not None:
            return original(url=url, api_key=api_key, headers=headers, timeout=timeout)
        http = httpx.Client(
            base_url="http://api",
            transport=SyncLoopbackTransport(),
            timeout=httpx.Timeout(timeout) if timeout is not None else httpx.Timeout(connect=5, read=300, write=300, pool=5),
            headers=utilities._get_headers(api_key, headers),
        )
        return sync_client.SyncLangGraphClient(http)

    get_sync_client._graphdock_loopback = True  # type: ignore[attr-defined]
    for module in (sync_client, client, langgraph_sdk):
        module.get_sync_client = get_sync_client  # type: ignore[attr-defined]


def new_secret() -> None:
    """(Server process, before its run processes start.) The secret and url with which its
    run processes relay their in-process clients' requests to it."""
    global _secret
    _secret = secrets.token_urlsafe(32)
    os.environ[SECRET_ENV] = _secret


def set_relay_url(host: str, port: int, prefix: str = "") -> None:
    """(Server process.) Where its run processes relay to: its own port."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    os.environ[URL_ENV] = f"http://{host}:{port}{prefix}"


def _use(target: Any) -> None:
    global _target, _loop
    _target, _loop = target, asyncio.get_running_loop()
    from langgraph_sdk._shared import utilities

    registered = list(utilities._registered_transports)
    utilities._registered_transports.clear()
    for transport in registered:
        transport.app = target


def install(app: Any, *, prefix: str = "") -> None:
    """(API process, worker; on the event loop, before the server starts.) Requests of the
    in-process client go to ``app`` (served under ``prefix``: ``http.mount_prefix``), once
    :func:`ready` is called."""
    _use(InProcessApp(app, prefix))


def ready() -> None:
    """(API process, worker.) The server has started: the in-process client's requests go on."""
    if isinstance(_target, InProcessApp):
        _target.started.set()


def install_relay() -> None:
    """(Run process; on the event loop.) Requests of the in-process client are relayed to
    the server process (see :data:`URL_ENV`)."""
    url, secret = os.environ.get(URL_ENV), os.environ.get(SECRET_ENV)
    if not url or not secret:
        logger.warning("no loopback url from the server process: get_client() without url will fail here")
        return
    _use(RelayApp(url, secret))


# -- the loopback apps -----------------------------------------------------------


class InProcessApp:
    """The in-process client's view of graphdock's app: the request is marked with the
    calling run's user (see :func:`caller_of`) and served without the SDK's ``/noauth``
    root path, under the app's mount prefix, in a task with a context of its own."""

    def __init__(self, app: Any, prefix: str = "") -> None:
        self.app = app
        self.prefix = prefix
        self.started = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self.started.is_set():
            await self.started.wait()
        scope = {**scope, "root_path": ""}
        if self.prefix:
            scope["path"] = self.prefix + scope["path"]
            scope["raw_path"] = self.prefix.encode() + (scope.get("raw_path") or b"")
        caller = CALLER.get()
        if caller is not None:
            scope[SCOPE_KEY] = caller
        # served in a context of its own: the caller's (a node's runnable config, langgraph's
        # own variables, its log and trace context) would otherwise reach the request and a
        # run executed in its task, which langgraph would then take for a subgraph
        task = asyncio.get_running_loop().create_task(self.app(scope, receive, send), context=contextvars.Context())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            raise


class RelayApp:
    """The in-process client of a run process: each request is sent to the server process
    over loopback HTTP, with the calling run's user and the server's secret."""

    def __init__(self, url: str, secret: str) -> None:
        self.url = url.rstrip("/")
        self.secret = secret
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        skip = {b"host", b"content-length", SECRET_HEADER.encode(), USER_HEADER.encode()}
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in skip]
        caller = CALLER.get()
        if caller is not None:
            from graphdock import serde

            payload = json.dumps({"user": serde.to_jsonable(caller.user), "permissions": list(caller.permissions)})
            headers += [(SECRET_HEADER.encode(), self.secret.encode()), (USER_HEADER.encode(), payload.encode())]
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None, write=None))
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string") or b""
        url = self.url + path.decode("latin-1") + (("?" + query.decode("latin-1")) if query else "")
        request = self._client.build_request(scope["method"], url, headers=headers, content=b"".join(chunks))
        response = await self._client.send(request, stream=True)
        left = asyncio.Event()

        async def watch() -> None:  # the client closed the response: so does the relay
            while (await receive())["type"] != "http.disconnect":
                pass
            left.set()
            await response.aclose()

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": response.status_code, "headers": response.headers.raw})
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (httpx.HTTPError, httpx.StreamError):
                if not left.is_set():
                    raise
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            await response.aclose()


class StreamingTransport(httpx.AsyncBaseTransport):
    """An ASGI transport that streams: the app runs in a task of its own (started from,
    and so with the context of, the caller's task), and the response is returned as soon as
    it starts; its body is read as the app sends it. Closing the response early tells the
    app the client went away (``http.disconnect``)."""

    def __init__(self, app: Any = None, root_path: str = "") -> None:
        self.app = app
        self.root_path = root_path

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        app = self.app
        if app is None:
            raise RuntimeError("get_client() without url: no graphdock server runs in this process")
        body = await request.aread()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": ("127.0.0.1", 0),
            "root_path": self.root_path,
        }
        sent_request = False
        finished = asyncio.Event()  # the response is complete, or the client closed it
        started: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = asyncio.get_running_loop().create_future()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def receive() -> dict[str, Any]:
            nonlocal sent_request
            if not sent_request:
                sent_request = True
                return {"type": "http.request", "body": body, "more_body": False}
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.set_result((message["status"], list(message.get("headers") or [])))
            elif message["type"] == "http.response.body" and not finished.is_set():
                if message.get("body"):
                    chunks.put_nowait(message["body"])
                if not message.get("more_body", False):
                    finished.set()
                    chunks.put_nowait(None)

        async def serve() -> None:
            try:
                await app(scope, receive, send)
            except BaseException as exc:
                if not started.done():
                    started.set_exception(exc)
                elif not isinstance(exc, asyncio.CancelledError):
                    logger.exception("the in-process client's request %s %s failed", request.method, request.url.path)
                raise
            finally:
                if not started.done():
                    started.set_exception(RuntimeError("the app returned without a response"))
                finished.set()
                chunks.put_nowait(None)

        task = asyncio.create_task(serve())
        _serving.add(task)  # (a task nobody references may be collected mid-way)
        task.add_done_callback(_served)
        try:
            status, headers = await asyncio.shield(started)
        except asyncio.CancelledError:
            task.cancel()  # the caller went away before the response started
            raise
        return httpx.Response(status, headers=headers, stream=_Body(chunks, finished), request=request)


_serving: set["asyncio.Task[None]"] = set()


def _served(task: "asyncio.Task[None]") -> None:
    _serving.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved (serve logged it)


class _Body(httpx.AsyncByteStream):
    def __init__(self, chunks: "asyncio.Queue[bytes | None]", finished: asyncio.Event) -> None:
        self._chunks, self._finished = chunks, finished

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._chunks.get()) is not None:
            yield chunk

    async def aclose(self) -> None:
        self._finished.set()  # the app sees the client leave


class SyncLoopbackTransport(httpx.BaseTransport):
    """The transport of ``get_sync_client()`` without url: each request is served by the
    loopback app on the process's event loop (:class:`StreamingTransport`) while the
    calling thread waits for each part of the response."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target, loop = _target, _loop
        if target is None or loop is None:
            raise RuntimeError("get_sync_client() without url: no graphdock server runs in this process")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError(
                "get_sync_client() without url was called on the server's event loop, which it would"
                " block while waiting for the server: use langgraph_sdk.get_client() in async code"
            )
        body = request.read()
        caller = CALLER.get()

        async def call() -> httpx.Response:
            CALLER.set(caller)
            inner = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            return await StreamingTransport(target).handle_async_request(inner)

        response = asyncio.run_coroutine_threadsafe(call(), loop).result()
        return httpx.Response(
            response.status_code, headers=response.headers.raw, stream=_SyncBody(response, loop), request=request
        )


class _SyncBody(httpx.SyncByteStream):
    """A response of :class:`StreamingTransport`, read from another thread."""

    def __init__(self, response: httpx.Response, loop: asyncio.AbstractEventLoop) -> None:
        self._stream = response.stream
        self._loop = loop

    def __iter__(self) -> Iterator[bytes]:
        chunks = self._stream.__aiter__()  # type: ignore[union-attr]

        async def next_chunk() -> bytes | None:
            try:
                return await chunks.__anext__()
            except StopAsyncIteration:
                return None

        while (chunk := asyncio.run_coroutine_threadsafe(next_chunk(), self._loop).result()) is not None:
            yield chunk

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stream.aclose(), self._loop).result()  # type: ignore[union-attr]
