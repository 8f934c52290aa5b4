"""The outermost ASGI layer of graphdock's apps: request ids, request metrics, access log.

Every HTTP request gets an id: the client's ``X-Request-ID`` when it sent a usable one
(at most 200 printable ASCII characters, no spaces), else a new one written as a UUID is
(``8-4-4-4-12`` hex digits): 80 random bits drawn when the process starts (and again in
a forked child) and a 48-bit counter, unique without a system call per request. The id is echoed on
the response and named in every log line written while the request is answered
(:data:`graphdock.observability.logs.REQUEST_ID`). When the response has ended the
request is counted in ``graphdock_http_requests_total`` and
``graphdock_http_request_duration_seconds`` under its route template (the route the
router, or the run fast path, matched: ``scope["route"]``), or
:data:`~graphdock.observability.metrics.UNMATCHED`. With ``access_log`` one line per
request is logged to ``graphdock.access``.

Per request this costs a header scan, two clock reads, a context variable and two dict
updates of the request series (:mod:`graphdock.observability.series`; label values are
formatted when ``/metrics`` is scraped).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from typing import Any

from graphdock.observability import metrics
from graphdock.observability.logs import REQUEST_ID

access_logger = logging.getLogger("graphdock.access")

_HEADER = b"x-request-id"


def _client_request_id(value: bytes) -> str | None:
    if 0 < len(value) <= 200 and all(0x21 <= byte <= 0x7E for byte in value):
        return value.decode("ascii")
    return None


_id_prefix = ""
_id_counter = itertools.count()


def _new_id_prefix() -> None:
    global _id_prefix, _id_counter
    h = os.urandom(10).hex()
    _id_prefix, _id_counter = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-", itertools.count()


_new_id_prefix()
os.register_at_fork(after_in_child=_new_id_prefix)


def _new_request_id() -> str:
    return f"{_id_prefix}{next(_id_counter) & 0xFFFFFFFFFFFF:012x}"


class RequestObserver:
    """ASGI middleware: see the module's docstring."""

    def _headers(self, scope: Any) -> dict[str, Any]:
        if self.log_headers is None:
            return {}
        pairs = ((name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"])
        selected = self.log_headers.select(pairs)
        return {"headers": selected} if selected else {}

    def __init__(self, app: Any, *, access_log: bool = False, log_headers: Any = None) -> None:
        self.app = app
        self.access_log = access_log
        # http.logging_headers: an object whose select((name, value) pairs) names the request
        # headers the access log shows (none when it selects nothing)
        self.log_headers = log_headers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == _HEADER:
                request_id = _client_request_id(value)
                break
        if request_id is None:
            request_id = _new_request_id()
        token = REQUEST_ID.set(request_id)
        header = (_HEADER, request_id.encode())
        status = 500
        started = time.perf_counter()

        def _send(message: Any) -> Any:  # no coroutine of its own: send's is awaited
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            return send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or metrics.UNMATCHED
            metrics.http_request(scope["method"], route, status, elapsed)
            if self.access_log:
                client = scope.get("client")
                access_logger.info(
                    '%s "%s %s HTTP/%s" %d',
                    f"{client[0]}:{client[1]}" if client else "-",
                    scope["method"],
                    scope["path"],
                    scope.get("http_version", "1.1"),
                    status,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        **self._headers(scope),
                    },
                )
            REQUEST_ID.reset(token)
