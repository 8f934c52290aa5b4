"""The workloads: one run of each, over HTTP and in-process, and the concurrent driver.

A workload run returns a :class:`Sample` (latency, optional stream timings) or
raises; the driver turns exceptions and wrong answers into counted errors.
Every simulated HTTP client holds one keep-alive connection: by default a
:mod:`bench.http1` client (``RawHTTP``), or an ``httpx.AsyncClient`` for
comparison (``HttpxHTTP``); see ``CLIENTS``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from bench import http1

GRAPHS = Path(__file__).resolve().parent / "graphs"


@dataclass
class Sample:
    latency_s: float
    first_event_s: float | None = None
    custom_event_s: float | None = None


@dataclass
class Workload:
    key: str
    name: str
    description: str
    graph: str


WORKLOADS: list[Workload] = [
    Workload("a", "stateless_wait", "POST /runs/wait, graph `trivial`", "trivial"),
    Workload("b", "threaded_wait", "POST /threads + POST /threads/{id}/runs/wait, graph `trivial`", "trivial"),
    Workload("c", "stream", "POST /runs/stream, stream_mode values+updates+custom, graph `writer`", "writer"),
    Workload("d", "custom_latency", "stream_writer call -> custom SSE event at the client, graph `writer`", "writer"),
    Workload("e", "ten_nodes_wait", "POST /runs/wait, graph `ten` (10 nodes)", "ten"),
    Workload(
        "f", "threaded_stream",
        "POST /threads + POST /threads/{id}/runs/stream, stream_mode values+updates+custom, graph `writer`", "writer",
    ),
]
#: the workloads run unless ``--workloads`` says otherwise
DEFAULT_WORKLOADS = "abcde"
BY_KEY = {w.key: w for w in WORKLOADS}


class WrongAnswer(Exception):
    """The server answered 2xx but not with what the graph produces."""


class NotServed(WrongAnswer):
    """The server has no such route (HTTP 404 or 405 on the workload's request)."""


# -- HTTP ----------------------------------------------------------------------

_JSON = {"Content-Type": "application/json"}
_SSE = {"Content-Type": "application/json", "Accept": "text/event-stream"}


class RawHTTP:
    """The default load generator: :mod:`bench.http1`, one keep-alive connection per client."""

    name = "raw"

    def __init__(self, base_url: str, timeout: float | None) -> None:
        self.client = http1.Client(base_url, timeout=timeout)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        resp = await self.client.request("POST", path, body, _JSON)
        return resp.status, resp.body

    def stream(self, path: str, body: bytes) -> Any:
        """``async with`` it: an object with ``status`` and ``aiter_bytes()``."""
        return self.client.stream("POST", path, body, _SSE)

    async def aclose(self) -> None:
        await self.client.aclose()


class HttpxHTTP:
    """The alternative load generator, for comparison: one ``httpx.AsyncClient`` per client."""

    name = "httpx"

    def __init__(self, base_url: str, timeout: float | None) -> None:
        import httpx

        self.client = httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        resp = await self.client.post(path, content=body, headers=_JSON)
        return resp.status_code, resp.content

    def stream(self, path: str, body: bytes) -> "_HttpxStream":
        return _HttpxStream(self.client.stream("POST", path, content=body, headers=_SSE))

    async def aclose(self) -> None:
        await self.client.aclose()


class _HttpxStream:
    """httpx's streaming response, with :class:`bench.http1.StreamResponse`'s ``status``/``aiter_bytes()``."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self._response: Any = None
        self.status = 0

    async def __aenter__(self) -> "_HttpxStream":
        self._response = await self._context.__aenter__()
        self.status = self._response.status_code
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._context.__aexit__(*exc)

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self._response.aiter_bytes()


HTTPClient = RawHTTP | HttpxHTTP
CLIENTS: dict[str, Callable[[str, float | None], HTTPClient]] = {"raw": RawHTTP, "httpx": HttpxHTTP}


def _check_status(status: int, body: bytes, path: str = "") -> None:
    if status >= 300:
        kind = NotServed if status in (404, 405) else WrongAnswer
        raise kind(f"HTTP {status}{' on ' + path if path else ''}: {body[:200].decode('utf-8', 'replace')}")


async def _post_json(client: HTTPClient, path: str, body: bytes) -> Any:
    status, content = await client.post(path, body)
    _check_status(status, content, path)
    return json.loads(content)


async def _sse(
    client: HTTPClient, path: str, body: bytes, t0: float
) -> tuple[list[tuple[str, Any]], float | None, float | None]:
    """POST ``body`` and read the SSE stream to its end.

    Returns the ``(event, data)`` pairs, seconds from ``t0`` to the first event,
    and the delay between the first ``custom`` event's ``t`` (wall clock, set by
    the node) and the arrival here of the chunk that completed it.
    """
    events: list[tuple[str, Any]] = []
    first: float | None = None
    custom_delay: float | None = None
    buf = b""
    async with client.stream(path, body) as resp:
        if resp.status >= 300:
            _check_status(resp.status, b"".join([chunk async for chunk in resp.aiter_bytes()]), path)
        async for chunk in resp.aiter_bytes():
            arrived = time.time()
            buf = (buf + chunk).replace(b"\r\n", b"\n")
            while b"\n\n" in buf:
                raw, buf = buf.split(b"\n\n", 1)
                name, data = "message", b""
                for line in raw.split(b"\n"):
                    if line.startswith(b"event:"):
                        name = line[6:].strip().decode()
                    elif line.startswith(b"data:"):
                        data += line[5:].strip()
                if not data and name == "message":
                    continue  # comment / heartbeat
                if first is None:
                    first = time.perf_counter() - t0
                payload = json.loads(data) if data else None
                if name == "custom" and custom_delay is None and isinstance(payload, dict) and "t" in payload:
                    custom_delay = arrived - float(payload["t"])
                events.append((name, payload))
    return events, first, custom_delay


def _expect(value: Any, expected: Any) -> None:
    if value != expected:
        raise WrongAnswer(f"expected {expected!r}, got {str(value)[:200]}")


def _body(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


# the request bodies never change: encoded once
_TRIVIAL = _body({"assistant_id": "trivial", "input": {"n": 1}})
_EMPTY = _body({})
_STREAM = _body({"assistant_id": "writer", "input": {"n": 1}, "stream_mode": ["values", "updates", "custom"]})
_CUSTOM = _body({"assistant_id": "writer", "input": {"n": 1}, "stream_mode": ["custom"]})
_TEN = _body({"assistant_id": "ten", "input": {"n": 0}})


async def http_stateless(client: HTTPClient) -> Sample:
    t0 = time.perf_counter()
    out = await _post_json(client, "/runs/wait", _TRIVIAL)
    latency = time.perf_counter() - t0
    _expect(out, {"n": 2, "out": "ok"})
    return Sample(latency)


async def http_threaded(client: HTTPClient) -> Sample:
    t0 = time.perf_counter()
    thread = await _post_json(client, "/threads", _EMPTY)
    out = await _post_json(client, f"/threads/{thread['thread_id']}/runs/wait", _TRIVIAL)
    latency = time.perf_counter() - t0
    _expect(out, {"n": 2, "out": "ok"})
    return Sample(latency)


async def http_stream(client: HTTPClient) -> Sample:
    t0 = time.perf_counter()
    events, first, custom = await _sse(client, "/runs/stream", _STREAM, t0)
    return _stream_sample(events, first, custom, time.perf_counter() - t0)


async def http_threaded_stream(client: HTTPClient) -> Sample:
    t0 = time.perf_counter()
    thread = await _post_json(client, "/threads", _EMPTY)
    events, first, custom = await _sse(client, f"/threads/{thread['thread_id']}/runs/stream", _STREAM, t0)
    return _stream_sample(events, first, custom, time.perf_counter() - t0)


def _stream_sample(events: list[tuple[str, Any]], first: float | None, custom: float | None, latency: float) -> Sample:
    """The sample of a values+updates+custom stream of ``writer``, checked."""
    names = [name for name, _ in events]
    if "custom" not in names or "updates" not in names:
        raise WrongAnswer(f"missing custom/updates events: {names}")
    values = [data for name, data in events if name == "values"]
    _expect(values[-1] if values else None, {"n": 2})
    return Sample(latency, first_event_s=first, custom_event_s=custom)


async def http_custom(client: HTTPClient) -> Sample:
    t0 = time.perf_counter()
    events, first, custom = await _sse(client, "/runs/stream", _CUSTOM, t0)
    latency = time.perf_counter() - t0
    if custom is None:
        raise WrongAnswer(f"no custom event: {[n for n, _ in events]}")
    return Sample(latency, first_event_s=first, custom_event_s=custom)


async def http_ten(client: HTTPClient) -> Sample:
    t0 = time.perf_counter()
    out = await _post_json(client, "/runs/wait", _TEN)
    latency = time.perf_counter() - t0
    _expect(out, {"n": 10})
    return Sample(latency)


HTTP_RUNS: dict[str, Callable[[HTTPClient], Awaitable[Sample]]] = {
    "a": http_stateless,
    "b": http_threaded,
    "c": http_stream,
    "d": http_custom,
    "e": http_ten,
    "f": http_threaded_stream,
}


# -- in-process ----------------------------------------------------------------


def load_graphs(config: Path = GRAPHS / "langgraph.json") -> dict[str, Any]:
    """The compiled graphs named in the bench ``langgraph.json``, imported by file path."""
    spec = json.loads(config.read_text())
    graphs: dict[str, Any] = {}
    for graph_id, ref in spec["graphs"].items():
        file_part, attr = ref.rsplit(":", 1)
        path = (config.parent / file_part).resolve()
        mod_spec = importlib.util.spec_from_file_location(f"graphdock_bench_graphs.{path.stem}", path)
        assert mod_spec is not None and mod_spec.loader is not None
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        graphs[graph_id] = getattr(module, attr)
    return graphs


@dataclass
class InProcess:
    """The bench graphs, run directly: the floor under any server's cost.

    Stateless shapes run without a checkpointer (graphdock executes temporary
    runs without one); the threaded shape uses the checkpointer graphdock uses
    (:func:`open_saver`), a fresh thread per run and ``durability="async"``.
    """

    graphs: dict[str, Any]
    saver: Any
    plain: dict[str, Any] = field(default_factory=dict)
    persistent: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for graph_id, graph in self.graphs.items():
            self.plain[graph_id] = graph.copy(update={"checkpointer": None})
            self.persistent[graph_id] = graph.copy(update={"checkpointer": self.saver})

    async def stateless(self) -> Sample:
        t0 = time.perf_counter()
        out = await self.plain["trivial"].ainvoke({"n": 1})
        latency = time.perf_counter() - t0
        _expect(out, {"n": 2, "out": "ok"})
        return Sample(latency)

    async def stateless_checkpointed(self) -> Sample:
        t0 = time.perf_counter()
        out = await self.persistent["trivial"].ainvoke(
            {"n": 1}, {"configurable": {"thread_id": str(uuid.uuid4())}}, durability="async"
        )
        latency = time.perf_counter() - t0
        _expect(out, {"n": 2, "out": "ok"})
        return Sample(latency)

    threaded = stateless_checkpointed

    async def stream(self, checkpointed: bool = False) -> Sample:
        t0 = time.perf_counter()
        first = custom = None
        seen: list[str] = []
        last_values = None
        if checkpointed:
            graph = self.persistent["writer"]
            config: Any = {"configurable": {"thread_id": str(uuid.uuid4())}}
            extra: dict[str, Any] = {"durability": "async"}
        else:
            graph, config, extra = self.plain["writer"], None, {}
        async for mode, chunk in graph.astream(
            {"n": 1}, config, stream_mode=["values", "updates", "custom"], **extra
        ):
            now = time.time()
            if first is None:
                first = time.perf_counter() - t0
            if mode == "custom" and custom is None:
                custom = now - chunk["t"]
            if mode == "values":
                last_values = chunk
            seen.append(mode)
        latency = time.perf_counter() - t0
        if "custom" not in seen or "updates" not in seen:
            raise WrongAnswer(f"missing custom/updates chunks: {seen}")
        _expect(last_values, {"n": 2})
        return Sample(latency, first_event_s=first, custom_event_s=custom)

    async def stream_checkpointed(self) -> Sample:
        """:meth:`stream` with the checkpointer graphdock uses, on a fresh thread."""
        return await self.stream(checkpointed=True)

    async def custom(self) -> Sample:
        t0 = time.perf_counter()
        first = custom = None
        async for chunk in self.plain["writer"].astream({"n": 1}, stream_mode="custom"):
            now = time.time()
            if first is None:
                first = time.perf_counter() - t0
            if custom is None:
                custom = now - chunk["t"]
        latency = time.perf_counter() - t0
        if custom is None:
            raise WrongAnswer("no custom chunk")
        return Sample(latency, first_event_s=first, custom_event_s=custom)

    async def ten(self) -> Sample:
        t0 = time.perf_counter()
        out = await self.plain["ten"].ainvoke({"n": 0})
        latency = time.perf_counter() - t0
        _expect(out, {"n": 10})
        return Sample(latency)

    def runs(self) -> dict[str, Callable[[], Awaitable[Sample]]]:
        return {
            "a": self.stateless, "b": self.threaded, "c": self.stream, "d": self.custom, "e": self.ten,
            "f": self.stream_checkpointed,
        }


@asynccontextmanager
async def sqlite_saver(path: Path) -> AsyncIterator[Any]:
    """:func:`open_saver` as a context manager: the saver, its database closed on exit."""
    saver, database = await open_saver(path)
    try:
        yield saver
    finally:
        database.close()


async def open_saver(path: Path) -> tuple[Any, Any]:
    """The checkpointer graphdock uses (langgraph's ``SqliteSaver`` on graphdock's shared
    connection: WAL, synchronous=NORMAL) on ``path``; (saver, database). Close the
    database with ``database.close()``."""
    from graphdock.backends.sqlite.database import Database
    from graphdock.backends.sqlite.persistence import SqliteSaver

    database = Database(path)
    database.open()
    saver = SqliteSaver(database)
    saver.setup()
    return saver, database


# -- the driver ----------------------------------------------------------------


@dataclass
class Batch:
    """What one timed batch of runs produced."""

    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    window: tuple[float, float] = (0.0, 0.0)  # monotonic start, end


async def drive(
    run_one: Callable[[int], Awaitable[Sample]],
    *,
    runs: int,
    clients: int,
    lead_in: int = 0,
    min_seconds: float = 0.0,
) -> Batch:
    """Calls of ``run_one(client_index)`` from ``clients`` concurrent loops, each starting
    its next run as soon as its last one ended (a closed loop).

    The first ``lead_in`` runs are not recorded: timing starts once every loop is busy and
    their runs no longer start together, so that what is measured is the steady state,
    not the burst of all clients starting at once. Then at least ``runs`` runs are
    recorded, and runs go on being started until ``min_seconds`` have passed.
    """
    batch = Batch()
    started = 0  # runs started, lead-in included
    timing_from: float | None = None  # perf_counter at the start of the timed window
    window_start = 0.0
    last_end = 0.0

    def next_is_timed() -> bool | None:
        """Whether the run about to start is recorded; None: stop."""
        nonlocal started, timing_from, window_start
        if started < lead_in:
            started += 1
            return False
        if timing_from is None:
            timing_from, window_start = time.perf_counter(), time.monotonic()
        timed = started - lead_in
        if timed >= runs and time.perf_counter() - timing_from >= min_seconds:
            return None
        started += 1
        return True

    async def loop(index: int) -> None:
        nonlocal last_end
        while (timed := next_is_timed()) is not None:
            try:
                sample = await run_one(index)
                if timed:
                    batch.samples.append(sample)
            except Exception as exc:  # counted, never fatal
                if timed:
                    batch.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            if timed:
                last_end = time.perf_counter()

    await asyncio.gather(*(loop(i) for i in range(min(clients, max(runs + lead_in, 1)))))
    if timing_from is not None:
        batch.wall_s = max(last_end - timing_from, 0.0)
        batch.window = (window_start, window_start + batch.wall_s)
    return batch
