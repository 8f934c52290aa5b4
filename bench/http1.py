"""A minimal asyncio HTTP/1.1 keep-alive client: the benchmark's load generator.

One :class:`Client` is one persistent connection to one server (as a ``wrk``
connection is): requests on it are sequential, never pipelined. It does only
what the harness needs, with as little Python per request as possible:

* :meth:`Client.request` sends a request and returns a :class:`Response`
  (status, lower-cased headers, whole body). Bodies framed by ``Content-Length``,
  by ``Transfer-Encoding: chunked`` or by the end of the connection.
* :meth:`Client.stream` is an async context manager whose :class:`StreamResponse`
  yields the body as it arrives (one item per HTTP chunk for a chunked body), so
  that a caller can timestamp each chunk on arrival (server-sent events).
* Keep-alive: the connection is reused until the server says
  ``Connection: close``, the body ran to the end of the connection, or an error
  or timeout left it in an unknown state. A reused connection the server has
  closed meanwhile (uvicorn closes idle ones after 5 s) is replaced before
  sending when the close has already been seen; when it is seen only after
  sending (EOF or reset before a single byte of the answer), the request is sent
  once more on a new connection. Nothing is ever resent once part of an answer
  has arrived, nor after a failure on a fresh connection.

Requests carry ``Host``, ``Content-Length`` (for a body and for POST, PUT and
PATCH), ``Content-Type: application/json`` when there is a body and the caller
gave no content type, and whatever ``headers`` the caller adds (e.g. ``Accept``).
No TLS, no proxies, no redirects, no content decoding (``Accept-Encoding`` is
never sent, so servers answer uncompressed).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Mapping
from urllib.parse import urlsplit

__all__ = ["Client", "Response", "StreamResponse", "ProtocolError", "ServerDisconnected"]

_HEAD_END = b"\r\n\r\n"
_CRLF = b"\r\n"
_READ = 65536

# body framing
_NONE, _LENGTH, _CHUNKED, _CLOSE = range(4)


class ProtocolError(Exception):
    """The answer is not HTTP/1.1 this client understands, or it was cut short."""


class ServerDisconnected(ConnectionError):
    """The server closed the connection before sending any of the answer."""


class Response:
    """A complete answer: ``status``, ``headers`` (lower-cased names) and ``body``."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.body)} bytes>"


def _parse_head(head: bytes) -> tuple[int, bool, dict[str, str]]:
    """(status, is HTTP/1.0, headers) from a response head ending in a blank line."""
    lines = head[:-4].split(_CRLF)
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ProtocolError(f"bad status line: {lines[0][:100]!r}")
    try:
        status = int(parts[1])
    except ValueError:
        raise ProtocolError(f"bad status line: {lines[0][:100]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ProtocolError(f"bad header line: {line[:100]!r}")
        key = name.strip().lower().decode("latin-1")
        val = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {val}" if key in headers else val
    return status, parts[0] == b"HTTP/1.0", headers


def _framing(method: str, status: int, headers: dict[str, str]) -> tuple[int, int]:
    """How the body is delimited (RFC 9112 section 6.3): (kind, length)."""
    if method == "HEAD" or status < 200 or status in (204, 304):
        return _NONE, 0
    te = headers.get("transfer-encoding")
    if te is not None:
        if te.rsplit(",", 1)[-1].strip().lower() == "chunked":
            return _CHUNKED, 0
        return _CLOSE, 0
    cl = headers.get("content-length")
    if cl is not None:
        try:
            length = int(cl)
        except ValueError:
            raise ProtocolError(f"bad Content-Length: {cl!r}") from None
        if length < 0:
            raise ProtocolError(f"bad Content-Length: {cl!r}")
        return (_LENGTH, length) if length else (_NONE, 0)
    return _CLOSE, 0


def _keep_alive(http10: bool, headers: dict[str, str], kind: int) -> bool:
    if kind == _CLOSE:
        return False
    conn = headers.get("connection")
    if conn is None:
        return not http10
    conn = conn.lower()
    if "close" in conn:
        return False
    return not http10 or "keep-alive" in conn


def _chunk_size(line: bytes) -> int:
    try:
        size = int(line.split(b";", 1)[0], 16)
    except ValueError:
        raise ProtocolError(f"bad chunk size line: {line[:100]!r}") from None
    if size < 0:
        raise ProtocolError(f"bad chunk size line: {line[:100]!r}")
    return size


class Client:
    """One keep-alive HTTP/1.1 connection to ``base_url`` (``http://host:port``).

    The connection is opened on the first request. ``timeout`` (seconds, None
    for none) bounds each :meth:`request` as a whole, and for a stream the
    wait for the head and for each chunk. Not for concurrent use: one request
    at a time (:class:`RuntimeError` otherwise).
    """

    def __init__(self, base_url: str, *, timeout: float | None = None, limit: int = 2**16) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"only http://host[:port] URLs are supported, not {base_url!r}")
        self.host = url.hostname
        self.port = url.port or 80
        self.timeout = timeout
        self.connections = 0  # connections opened so far
        self._limit = limit
        self._prefix = url.path.rstrip("/")
        self._host_header = url.netloc.rpartition("@")[2]
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._busy = False

    # -- public ----------------------------------------------------------------

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Response:
        """Send one request and read the whole answer."""
        data = self._build(method, path, body, headers)
        self._acquire()
        try:
            async with asyncio.timeout(self.timeout):
                status, http10, hdrs = await self._exchange(data)
                kind, length = _framing(method, status, hdrs)
                reader = self._reader
                assert reader is not None
                if kind == _LENGTH:
                    content = await reader.readexactly(length)
                elif kind == _CHUNKED:
                    content = await self._read_chunked(reader)
                elif kind == _CLOSE:
                    content = await reader.read()
                else:
                    content = b""
        except BaseException:
            self._drop()
            raise
        finally:
            self._busy = False
        if not _keep_alive(http10, hdrs, kind):
            self._drop()
        return Response(status, hdrs, content)

    def stream(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> "_StreamContext":
        """``async with client.stream(...) as resp:`` then ``async for chunk in resp.aiter_bytes()``.

        The head has been read when the block is entered. Leaving the block
        before the body ended closes the connection (the next request opens a
        new one).
        """
        return _StreamContext(self, method, self._build(method, path, body, headers))

    async def aclose(self) -> None:
        """Close the connection (if any); the client may still be used afterwards."""
        writer = self._writer
        self._drop()
        if writer is not None:
            try:
                await writer.wait_closed()
            except (OSError, asyncio.CancelledError):  # pragma: no cover - closing anyway
                pass

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- internals -------------------------------------------------------------

    def _build(self, method: str, path: str, body: bytes, headers: Mapping[str, str] | None) -> bytes:
        parts = [method, " ", self._prefix, path, " HTTP/1.1\r\nHost: ", self._host_header, "\r\n"]
        typed = False
        if headers:
            for name, value in headers.items():
                parts += (name, ": ", value, "\r\n")
                if not typed and name.lower() == "content-type":
                    typed = True
        if body:
            if not typed:
                parts.append("Content-Type: application/json\r\n")
            parts += ("Content-Length: ", str(len(body)), "\r\n\r\n")
        elif method in ("POST", "PUT", "PATCH"):
            parts.append("Content-Length: 0\r\n\r\n")
        else:
            parts.append("\r\n")
        return b"".join(("".join(parts).encode("latin-1"), body))

    def _acquire(self) -> None:
        if self._busy:
            raise RuntimeError("http1.Client: one request at a time")
        self._busy = True

    def _drop(self) -> None:
        """Forget the connection (closing it without waiting)."""
        writer = self._writer
        self._reader = self._writer = None
        if writer is not None:
            writer.close()

    def _stale(self) -> bool:
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        return reader.at_eof() or reader.exception() is not None or writer.transport.is_closing()

    async def _exchange(self, data: bytes) -> tuple[int, bool, dict[str, str]]:
        """Send ``data``; the parsed head of the (final, non-1xx) answer."""
        for attempt in (1, 2):
            reused = self._writer is not None
            if reused and self._stale():
                self._drop()
                reused = False
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port, limit=self._limit)
                self.connections += 1
            reader, writer = self._reader, self._writer
            assert reader is not None and writer is not None
            writer.write(data)
            try:
                head = await reader.readuntil(_HEAD_END)
            except asyncio.IncompleteReadError as exc:
                self._drop()
                if exc.partial:
                    raise ProtocolError(f"connection closed inside the response head ({len(exc.partial)} bytes)") from None
                if reused and attempt == 1:
                    continue
                raise ServerDisconnected("server closed the connection without answering") from None
            except ConnectionError:
                # Bytes of the answer may already sit in the buffer: then never resend.
                answered = len(getattr(reader, "_buffer", b"?")) > 0
                self._drop()
                if reused and attempt == 1 and not answered:
                    continue
                raise
            except asyncio.LimitOverrunError:
                self._drop()
                raise ProtocolError(f"response head longer than {self._limit} bytes") from None
            status, http10, headers = _parse_head(head)
            while 100 <= status < 200 and status != 101:  # interim answers: skip
                status, http10, headers = _parse_head(await reader.readuntil(_HEAD_END))
            return status, http10, headers
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts = []
        while True:
            size = _chunk_size(await reader.readuntil(_CRLF))
            if size == 0:
                while await reader.readuntil(_CRLF) != _CRLF:  # trailers
                    pass
                return b"".join(parts)
            chunk = await reader.readexactly(size + 2)
            if chunk[-2:] != _CRLF:
                raise ProtocolError("chunk not followed by CRLF")
            parts.append(chunk[:-2])


class StreamResponse:
    """The answer of :meth:`Client.stream`: ``status``, ``headers``, and the body as it arrives."""

    def __init__(self, client: Client, status: int, headers: dict[str, str], kind: int, length: int, keep: bool) -> None:
        self.status = status
        self.headers = headers
        self._client = client
        self._kind = kind
        self._remaining = length
        self._keep = keep
        self._done = False
        if kind == _NONE:
            self._finish()

    def aiter_bytes(self) -> "StreamResponse":
        """The body, piece by piece as it arrives: one item per chunk of a chunked body."""
        return self

    def __aiter__(self) -> "StreamResponse":
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        client = self._client
        try:
            async with asyncio.timeout(client.timeout):
                data = await self._next()
        except BaseException:
            self._done = True
            client._busy = False
            client._drop()
            raise
        if not data:
            self._finish()
            raise StopAsyncIteration
        return data

    async def aread(self) -> bytes:
        """The rest of the body."""
        return b"".join([chunk async for chunk in self])

    async def _next(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        reader = self._client._reader
        assert reader is not None
        kind = self._kind
        if kind == _CHUNKED:
            size = _chunk_size(await reader.readuntil(_CRLF))
            if size == 0:
                while await reader.readuntil(_CRLF) != _CRLF:  # trailers
                    pass
                return b""
            chunk = await reader.readexactly(size + 2)
            if chunk[-2:] != _CRLF:
                raise ProtocolError("chunk not followed by CRLF")
            return chunk[:-2]
        if kind == _LENGTH:
            if self._remaining == 0:
                return b""
            data = await reader.read(min(self._remaining, _READ))
            if not data:
                raise ProtocolError(f"connection closed with {self._remaining} body bytes missing")
            self._remaining -= len(data)
            return data
        return await reader.read(_READ)  # _CLOSE: until EOF

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        client = self._client
        client._busy = False
        if not self._keep:
            client._drop()


class _StreamContext:
    def __init__(self, client: Client, method: str, data: bytes) -> None:
        self._client = client
        self._method = method
        self._data = data
        self._response: StreamResponse | None = None

    async def __aenter__(self) -> StreamResponse:
        client = self._client
        client._acquire()
        try:
            async with asyncio.timeout(client.timeout):
                status, http10, headers = await client._exchange(self._data)
            kind, length = _framing(self._method, status, headers)
        except BaseException:
            client._busy = False
            client._drop()
            raise
        self._response = StreamResponse(client, status, headers, kind, length, _keep_alive(http10, headers, kind))
        return self._response

    async def __aexit__(self, *exc: object) -> None:
        resp = self._response
        if resp is not None and not resp._done:  # body not read to its end: the connection is unusable
            resp._done = True
            self._client._busy = False
            self._client._drop()
