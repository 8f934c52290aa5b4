"""OpenTelemetry traces, black-box: ``graphdock serve`` with the OTLP variables pointing at an
OTLP/HTTP receiver in the test (protobuf decoded with the OTLP proto package), on the
embedded default (runs in the server process, and in a run process), and on PostgreSQL +
Redis (an API process that executes no runs and a worker).

Checked: the server span of a request in the client's trace (``traceparent`` and
``tracestate`` honoured), named by route template also on the fast path; the run span in
the trace of the request that created the run, also for a background run executed in
another process, with its attributes and final status; node spans children of the run
span, LLM and tool spans children of their node, errors recorded on the failing node's
span and the run span; the trace context handed to the graph in ``configurable`` and the
run span current while a node executes. Without the variables: no spans, no middleware,
no trace context stored; bad variables stop start-up with one line; gRPC export.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import secrets
import subprocess
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from langgraph_sdk import get_client
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from conftest import ROOT, ServerProcess, free_port

CONFIG = Path(__file__).resolve().parent / "tracing" / "langgraph.json"
PLACEMENTS = ["embedded", "run-process", "scaled-out"]
SERVER_KIND, INTERNAL_KIND, CLIENT_KIND = 2, 1, 3  # Span.SpanKind values
STATUS_ERROR = 2


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def _attrs(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


class Spans:
    """Spans received, decoded from OTLP export requests, in :attr:`spans`."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def add(self, request: Any) -> None:
        found = []
        for resource_spans in request.resource_spans:
            resource = _attrs(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        {
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "trace_state": span.trace_state,
                            "name": span.name,
                            "kind": span.kind,
                            "attributes": _attrs(span.attributes),
                            "status": span.status.code,
                            "status_message": span.status.message,
                            "events": [{"name": e.name, "attributes": _attrs(e.attributes)} for e in span.events],
                            "resource": resource,
                        }
                    )
        with self.lock:
            self.spans.extend(found)

    def find(self, **match: Any) -> list[dict[str, Any]]:
        with self.lock:
            spans = list(self.spans)
        return [s for s in spans if all(s.get(k) == v for k, v in match.items())]

    def wait(self, predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.05)
        raise AssertionError(f"spans did not arrive in {timeout}s; received: {[s['name'] for s in self.spans]}")

    def trace(self, trace_id: str, names: set[str], timeout: float = 20.0) -> list[dict[str, Any]]:
        """The spans of ``trace_id`` once spans with each of ``names`` have arrived."""

        def ready() -> list[dict[str, Any]] | None:
            spans = self.find(trace_id=trace_id)
            return spans if names <= {s["name"] for s in spans} else None

        return self.wait(ready, timeout)


class Receiver(Spans):
    """An OTLP/HTTP trace receiver on a free port (``POST /v1/traces``)."""

    def __init__(self) -> None:
        super().__init__()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding") == "gzip":
                    raw = gzip.decompress(raw)
                if self.path == "/v1/traces":
                    request = trace_service_pb2.ExportTraceServiceRequest()
                    request.ParseFromString(raw)
                    outer.add(request)
                    body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                    self.send_response(200)
                else:
                    body = b""
                    self.send_response(404)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _one(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [s for s in spans if s["name"] == name]
    assert len(found) == 1, (name, [s["name"] for s in spans])
    return found[0]


def _client_context() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def _otel_env(receiver: Receiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "gd-tracing-test",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.server.shutdown()


@pytest.fixture(scope="module", params=PLACEMENTS)
def traced(request: pytest.FixtureRequest, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    env = _otel_env(receiver)
    data = tmp_path_factory.mktemp(f"tracing-{request.param}")
    if request.param == "scaled-out":
        from deployment import Deployment
        from services import require_services

        require_services()
        srv: Any = Deployment(data, apis=1, workers=1, config=CONFIG, env=env).start()
    else:
        args = ["--run-process-policy", "always"] if request.param == "run-process" else []
        srv = ServerProcess(data, config=CONFIG, env=env, args=args).start()
    yield srv
    (getattr(srv, "destroy", None) or srv.stop)()


def test_request_span_in_client_trace(traced: Any, receiver: Receiver) -> None:
    trace_id, parent_id, traceparent = _client_context()
    headers = {"traceparent": traceparent, "tracestate": "vendor=abc"}
    created = httpx.post(f"{traced.url}/threads", json={}, headers=headers)  # the fast path
    assert created.status_code == 200
    thread_id = created.json()["thread_id"]
    assert httpx.get(f"{traced.url}/threads/{thread_id}", headers=headers).status_code == 200
    assert httpx.get(f"{traced.url}/threads/{secrets.token_hex(4)}", headers=headers).status_code == 422
    spans = receiver.trace(trace_id, {"POST /threads", "GET /threads/{thread_id}"})
    post = _one(spans, "POST /threads")
    assert post["kind"] == SERVER_KIND
    assert post["parent_span_id"] == parent_id
    assert post["trace_state"] == "vendor=abc"
    assert post["attributes"]["http.request.method"] == "POST"
    assert post["attributes"]["http.route"] == "/threads"
    assert post["attributes"]["http.response.status_code"] == 200
    assert post["resource"]["service.name"] == "gd-tracing-test"
    assert post["resource"]["deployment.environment"] == "test"
    gets = receiver.wait(lambda: len(found := receiver.find(trace_id=trace_id, name="GET /threads/{thread_id}")) == 2 and found)
    assert sorted(s["attributes"]["http.response.status_code"] for s in gets) == [200, 422]
    assert all(s["parent_span_id"] == parent_id and s["attributes"]["http.route"] == "/threads/{thread_id}" for s in gets)


def _check_run_trace(spans: list[dict[str, Any]], request: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The run span of ``run`` in ``spans``: a child of ``request``, with node, LLM and tool spans below it."""
    span = _one(spans, "run agent")
    assert span["parent_span_id"] == request["span_id"]
    attributes = span["attributes"]
    assert attributes["run_id"] == run["run_id"]
    assert attributes["thread_id"] == run["thread_id"]
    assert attributes["assistant_id"] == run["assistant_id"]
    assert attributes["graph_id"] == "agent"
    assert attributes["attempt"] == 1
    assert attributes["status"] == "success"
    assert attributes["queue_wait_seconds"] >= 0
    assert span["status"] != STATUS_ERROR
    nodes = {name: _one(spans, name) for name in ("model", "tools", "record")}
    for name, node in nodes.items():
        assert node["parent_span_id"] == span["span_id"], name
        assert node["attributes"]["langgraph.node"] == name
    assert not [s for s in spans if s["name"].startswith("__") or s["name"] in ("LangGraph", "agent")]
    chat = [s for s in spans if s["name"].startswith("chat")]
    assert len(chat) == 1 and chat[0]["parent_span_id"] == nodes["model"]["span_id"]
    assert chat[0]["kind"] == CLIENT_KIND
    assert chat[0]["attributes"]["gen_ai.usage.input_tokens"] == 7
    assert chat[0]["attributes"]["gen_ai.usage.output_tokens"] == 5
    tool = _one(spans, "execute_tool add")
    assert tool["parent_span_id"] == nodes["tools"]["span_id"]
    assert tool["attributes"]["gen_ai.tool.name"] == "add"
    return span


async def test_waited_run(traced: Any, receiver: Receiver) -> None:
    trace_id, parent_id, traceparent = _client_context()
    client = get_client(url=traced.url, headers={"traceparent": traceparent, "tracestate": "vendor=xyz"})
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "agent", input={"messages": [{"role": "user", "content": "hi"}]})
    assert result["tool_result"] == 3
    runs = await client.runs.list(thread["thread_id"])
    spans = receiver.trace(trace_id, {"POST /threads/{thread_id}/runs/wait", "run agent", "record"})
    request = _one(spans, "POST /threads/{thread_id}/runs/wait")
    assert request["parent_span_id"] == parent_id
    run_span = _check_run_trace(spans, request, runs[0])
    assert run_span["trace_state"] == "vendor=xyz"
    # what the graph sees: the trace context in configurable, the run span current in a node
    configurable = result["seen_configurable"]
    assert configurable["__otel_traceparent__"] == f"00-{trace_id}-{run_span['span_id']}-01"
    assert configurable["__otel_tracestate__"] == "vendor=xyz"
    assert result["current_span"] == {"trace_id": trace_id, "span_id": run_span["span_id"]}
    # the carrier stored with the run: the request's context
    stored = runs[0]["kwargs"]["config"]["configurable"]
    assert stored["__otel_traceparent__"] == f"00-{trace_id}-{request['span_id']}-01"


async def test_background_run_in_request_trace(traced: Any, receiver: Receiver) -> None:
    """Created by one request, executed later (in a run process or a worker): still in that
    request's trace."""
    trace_id, parent_id, traceparent = _client_context()
    client = get_client(url=traced.url, headers={"traceparent": traceparent})
    thread = await get_client(url=traced.url).threads.create()
    run = await client.runs.create(thread["thread_id"], "agent", input={"messages": [{"role": "user", "content": "hi"}]})
    await get_client(url=traced.url).runs.join(thread["thread_id"], run["run_id"])
    spans = receiver.trace(trace_id, {"POST /threads/{thread_id}/runs", "run agent", "record"})
    request = _one(spans, "POST /threads/{thread_id}/runs")
    assert request["parent_span_id"] == parent_id
    _check_run_trace(spans, request, run)


async def test_run_without_client_context(traced: Any, receiver: Receiver) -> None:
    client = get_client(url=traced.url)
    result = await client.runs.wait(None, "agent", input={"messages": []})
    trace_id = result["current_span"]["trace_id"]
    spans = receiver.trace(trace_id, {"POST /runs/wait", "run agent", "record"})
    request = _one(spans, "POST /runs/wait")
    assert request["parent_span_id"] == ""  # a root span
    assert _one(spans, "run agent")["parent_span_id"] == request["span_id"]


def test_error_recorded(traced: Any, receiver: Receiver) -> None:
    trace_id, _, traceparent = _client_context()
    answer = httpx.post(
        f"{traced.url}/runs/wait",
        json={"assistant_id": "failing", "input": {}},
        headers={"traceparent": traceparent},
        timeout=30,
    )
    assert answer.status_code == 200 and "boom" in answer.text
    spans = receiver.trace(trace_id, {"run failing", "explode", "POST /runs/wait"})
    run_span, node = _one(spans, "run failing"), _one(spans, "explode")
    assert node["parent_span_id"] == run_span["span_id"]
    for span in (node, run_span):
        assert span["status"] == STATUS_ERROR, span["name"]
        assert "boom" in span["status_message"]
        events = [e for e in span["events"] if e["name"] == "exception"]
        assert events and events[0]["attributes"]["exception.type"].endswith("ValueError"), span["name"]
    assert run_span["attributes"]["status"] == "error"


async def test_cancelled_run(traced: Any, receiver: Receiver) -> None:
    """A run cancelled while its node executes: status ``interrupted``, not an error."""
    trace_id, _, traceparent = _client_context()
    client = get_client(url=traced.url, headers={"traceparent": traceparent})
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "slow", input={})
    for _ in range(200):  # until it executes
        if (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "running":
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)  # its node has started
    await client.runs.cancel(thread["thread_id"], run["run_id"], wait=True)
    spans = receiver.trace(trace_id, {"run slow", "wait"})
    run_span = _one(spans, "run slow")
    assert run_span["attributes"]["status"] == "interrupted"
    assert run_span["status"] != STATUS_ERROR
    node = _one(spans, "wait")
    assert node["parent_span_id"] == run_span["span_id"]
    assert node["status"] != STATUS_ERROR


# -- off, bad variables, gRPC ------------------------------------------------------


def test_off_without_variables(tmp_path: Path, receiver: Receiver) -> None:
    env = {k: "" for k in os.environ if k.startswith("OTEL_")}
    srv = ServerProcess(tmp_path, config=CONFIG, env=env).start()
    try:
        before = len(receiver.spans)
        trace_id, _, traceparent = _client_context()
        client = httpx.Client(base_url=srv.url, headers={"traceparent": traceparent}, timeout=30)
        thread_id = client.post("/threads", json={}).json()["thread_id"]
        result = client.post(
            f"/threads/{thread_id}/runs/wait", json={"assistant_id": "agent", "input": {"messages": []}}
        ).json()
        assert "__otel_traceparent__" not in result["seen_configurable"]
        assert result["current_span"]["trace_id"] == "0" * 32  # no span current in the node
        run = client.get(f"/threads/{thread_id}/runs").json()[0]
        assert "__otel_traceparent__" not in run["kwargs"]["config"]["configurable"]
        time.sleep(1.0)
        assert len(receiver.spans) == before and not receiver.find(trace_id=trace_id)
    finally:
        srv.stop()
    # no middleware, no callback handler, no SDK configured: the app as it is without traces
    assert _app_probe(tmp_path, env, traced=False).returncode == 0
    on = _app_probe(tmp_path, _otel_env(receiver), traced=True)
    assert on.returncode == 0, on.stderr


def _app_probe(tmp_path: Path, env: dict[str, str], *, traced: bool) -> subprocess.CompletedProcess[str]:
    """Build the app in a fresh interpreter with ``env``; check its middleware and what is loaded."""
    probe = (
        "import sys, pathlib\n"
        "from graphdock.app import create_app\n"
        "from graphdock.config import Settings, load_config\n"
        "from graphdock.observability import tracing\n"
        f"app = create_app(Settings(config=load_config({str(CONFIG)!r}), data_dir=pathlib.Path({str(tmp_path)!r})))\n"
        "names = [m.cls.__name__ for m in app.user_middleware]\n"
        f"assert ('ServerSpans' in names) is {traced}, names\n"
        "assert 'graphdock.observability.callbacks' not in sys.modules\n"
        f"assert tracing.setup() is {traced}\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out


def test_flushed_at_shutdown(tmp_path: Path, receiver: Receiver) -> None:
    """Spans still buffered (a batch delay longer than the test) are exported when the
    server stops, those of its run process too."""
    env = {**_otel_env(receiver), "OTEL_BSP_SCHEDULE_DELAY": "600000"}
    srv = ServerProcess(tmp_path, config=CONFIG, env=env, args=["--run-process-policy", "always"]).start()
    trace_id, _, traceparent = _client_context()
    try:
        answer = httpx.post(
            f"{srv.url}/runs/wait", json={"assistant_id": "agent", "input": {"messages": []}},
            headers={"traceparent": traceparent}, timeout=30,
        )  # fmt: skip
        assert answer.status_code == 200
        time.sleep(0.5)
        assert not receiver.find(trace_id=trace_id)
    finally:
        srv.stop()
    receiver.trace(trace_id, {"POST /runs/wait", "run agent", "record"}, timeout=5)


@pytest.mark.parametrize(
    "variables, message",
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL='http/json' is not supported"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER='zipkin'"),
    ],
)
def test_bad_variables_stop_start_up(tmp_path: Path, variables: dict[str, str], message: str) -> None:
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", **variables}
    out = subprocess.run(
        [sys.executable, "-m", "graphdock.cli", "serve", "--config", str(CONFIG), "--data-dir", str(tmp_path),
         "--port", str(free_port())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if message in line]
    assert len(errors) == 1 and "Traceback" not in out.stderr, out.stderr


def test_grpc_export(tmp_path: Path) -> None:
    """``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``: spans reach an OTLP/gRPC receiver; the service
    is named graphdock when the environment names none."""
    grpc = pytest.importorskip("grpc")
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    received = Spans()

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:  # noqa: N802
            received.add(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    env = {k: "" for k in os.environ if k.startswith("OTEL_")}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    srv = ServerProcess(tmp_path, config=CONFIG, env=env).start()
    try:
        trace_id, _, traceparent = _client_context()
        answer = httpx.post(
            f"{srv.url}/runs/wait", json={"assistant_id": "agent", "input": {"messages": []}},
            headers={"traceparent": traceparent}, timeout=30,
        )  # fmt: skip
        assert answer.status_code == 200
        spans = received.trace(trace_id, {"POST /runs/wait", "run agent", "record"})
        assert _one(spans, "POST /runs/wait")["resource"]["service.name"] == "graphdock"
    finally:
        srv.stop()
        server.stop(0)
