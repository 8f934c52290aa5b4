"""OpenTelemetry traces: a server span per request, a span per run, child spans per node,
LLM and tool call.

Off unless the standard OTLP variables name a destination (``OTEL_EXPORTER_OTLP_ENDPOINT``
or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none`` turn it off again). Off, this module imports nothing of
OpenTelemetry and the callers look at :data:`enabled` only. On, the OpenTelemetry SDK is
configured from the environment by the SDK itself (resource from ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES``, sampler from ``OTEL_TRACES_SAMPLER``, batching from the
``OTEL_BSP_*`` variables, endpoint, headers, timeout and compression read by the OTLP
exporter); graphdock only picks the exporter that ``OTEL_EXPORTER_OTLP_PROTOCOL`` names
(``http/protobuf``, the default, or ``grpc``) and names the service ``graphdock`` when the
environment does not.

A run's trace context is stored with the run when it is created (``__otel_traceparent__``
and ``__otel_tracestate__`` in its ``configurable``, the W3C headers of the span current
then: the request's server span), so that whichever process executes the run, and however
long it waited in the queue, starts the run's span in the trace of the request that
created it (:func:`run_span`). While the graph executes, the run span is the current span,
the graph sees the run span's context in ``configurable`` (its own instrumentation joins
the trace) and a callback handler (:mod:`graphdock.observability.callbacks`) adds a span
per node, LLM call and tool call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Iterator

from graphdock.config import ConfigError

logger = logging.getLogger("graphdock.tracing")

#: whether this process exports traces (set by :func:`setup`)
enabled = False

TRACEPARENT = "__otel_traceparent__"
TRACESTATE = "__otel_tracestate__"
PROTOCOLS = ("http/protobuf", "grpc")

_provider: Any = None
_tracer: Any = None
_w3c: Any = None  # the W3C trace-context propagator of the carriers stored with runs
_run: ContextVar["_RunTrace | None"] = ContextVar("graphdock_run_trace", default=None)


def configured() -> bool:
    """Whether the environment asks for traces (no OpenTelemetry import)."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )


def _protocol() -> str:
    env = os.environ
    value = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    return value.strip().lower() or "http/protobuf"


def _exporter_class(protocol: str) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter


def check() -> str | None:
    """The one-line problem with the tracing variables, or None (also when tracing is off)."""
    if not configured():
        return None
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter and exporter != "otlp":
        return f"OTEL_TRACES_EXPORTER={exporter!r}: graphdock exports traces with 'otlp' only (or 'none': no traces)"
    protocol = _protocol()
    if protocol not in PROTOCOLS:
        name = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") else "OTEL_EXPORTER_OTLP_PROTOCOL"
        return f"{name}={protocol!r} is not supported: use http/protobuf or grpc"
    try:
        _exporter_class(protocol)
    except ImportError as exc:
        return f"traces over {protocol} need the OpenTelemetry OTLP exporter, which does not import: {exc}"
    return None


def setup() -> bool:
    """Configure the OpenTelemetry SDK from the environment, once per process; whether
    traces are on. Raises :class:`ConfigError` naming a bad variable."""
    global enabled, _provider, _tracer, _w3c
    if _provider is not None:
        return True
    if not configured():
        return False
    problem = check()
    if problem is not None:
        raise ConfigError(problem)
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from graphdock import __version__

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = Resource.create({SERVICE_NAME: "graphdock"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(_exporter_class(_protocol())()))
    trace.set_tracer_provider(provider)  # a graph's own instrumentation exports through it too
    _provider, _tracer, _w3c = provider, provider.get_tracer("graphdock", __version__), TraceContextTextMapPropagator()
    enabled = True
    return True


def shutdown() -> None:
    """Export the spans still buffered and stop (blocking: run it off the event loop)."""
    global enabled, _provider
    provider, _provider, enabled = _provider, None, False
    if provider is not None:
        try:
            provider.shutdown()
        except Exception:
            logger.exception("flushing the traces failed")


async def ashutdown() -> None:
    """:func:`shutdown`, in a thread."""
    await asyncio.to_thread(shutdown)


def tracer() -> Any:
    """The tracer of graphdock's spans (after :func:`setup`)."""
    return _tracer


# -- runs ------------------------------------------------------------------------


def carrier() -> dict[str, str]:
    """The current trace context as the ``configurable`` keys stored with a new run
    (empty without a current span)."""
    headers: dict[str, str] = {}
    _w3c.inject(headers)
    out = {}
    if "traceparent" in headers:
        out[TRACEPARENT] = headers["traceparent"]
        if headers.get("tracestate"):
            out[TRACESTATE] = headers["tracestate"]
    return out


class _RunTrace:
    def __init__(self, span: Any) -> None:
        self.span = span
        self.status: str | None = None


def _queue_wait(created_at: Any) -> float | None:
    try:
        created = created_at if isinstance(created_at, datetime) else datetime.fromisoformat(str(created_at))
    except (TypeError, ValueError):
        return None
    return max(0.0, time.time() - created.timestamp())


@contextmanager
def run_span(run: dict[str, Any]) -> Iterator[None]:
    """The span of one attempt at ``run`` (a claimed run row), current inside the block: a
    child of the trace context stored with the run, ended with the run's final status
    (:func:`run_finished`; ``pending`` when the attempt was handed back)."""
    from opentelemetry import context, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    kwargs = run.get("kwargs") or {}
    configurable = (kwargs.get("config") or {}).get("configurable") or {}
    headers = {}
    if configurable.get(TRACEPARENT):
        headers["traceparent"] = str(configurable[TRACEPARENT])
        if configurable.get(TRACESTATE):
            headers["tracestate"] = str(configurable[TRACESTATE])
    parent = _w3c.extract(headers)
    graph_id = str(configurable.get("graph_id") or "")
    attributes: dict[str, Any] = {
        "run_id": str(run["run_id"]),
        "thread_id": str(run.get("thread_id") or ""),
        "assistant_id": str(run.get("assistant_id") or ""),
        "graph_id": graph_id,
        "attempt": int(run.get("attempt") or 1),
    }
    wait = _queue_wait(run.get("created_at"))
    if wait is not None:
        attributes["queue_wait_seconds"] = wait
    span = _tracer.start_span(f"run {graph_id}".strip(), context=parent, kind=SpanKind.INTERNAL, attributes=attributes)
    state = _RunTrace(span)
    token = context.attach(trace.set_span_in_context(span))
    run_token = _run.set(state)
    try:
        yield
    except asyncio.CancelledError:
        state.status = state.status or "pending"  # the process is stopping: handed back
        span.add_event("run handed back to the queue")
        raise
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        state.status = state.status or "error"
        raise
    finally:
        if state.status is not None:
            span.set_attribute("status", state.status)
        span.end()
        _run.reset(run_token)
        context.detach(token)


def run_finished(status: str, error: BaseException | dict[str, Any] | None = None) -> None:
    """Record the final ``status`` of the run whose span is current (and its error when
    it ended in ``error`` or ``timeout``); nothing outside :func:`run_span`."""
    state = _run.get()
    if state is None:
        return
    from opentelemetry.trace import Status, StatusCode

    state.status = status
    if status in ("error", "timeout"):
        span = state.span
        if isinstance(error, BaseException):
            span.record_exception(error)
            description = f"{type(error).__name__}: {error}"
        elif isinstance(error, dict):
            description = f"{error.get('error')}: {error.get('message')}"
            span.add_event("exception", {"exception.type": str(error.get("error")), "exception.message": str(error.get("message"))})
        else:
            description = status
        span.set_status(Status(StatusCode.ERROR, description))


def traced_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` for the graph of the run whose span is current: the run span's context
    in ``configurable`` (``__otel_traceparent__``), and the callback handler that adds the
    node, LLM and tool spans."""
    from opentelemetry import trace

    from graphdock.observability.callbacks import SpanCallbacks

    config = dict(config)
    configurable = dict(config.get("configurable") or {})
    configurable.pop(TRACESTATE, None)
    configurable.update(carrier())
    config["configurable"] = configurable
    handler = SpanCallbacks(_tracer, trace.get_current_span())
    callbacks = config.get("callbacks")
    if callbacks is None:
        config["callbacks"] = [handler]
    elif isinstance(callbacks, list):
        config["callbacks"] = [*callbacks, handler]
    else:  # a callback manager
        callbacks = callbacks.copy()
        callbacks.add_handler(handler, inherit=True)
        config["callbacks"] = callbacks
    return config


# -- requests --------------------------------------------------------------------


def record_exception(exc: BaseException) -> None:
    """Record ``exc`` on the current span (a request's unexpected error) and mark it failed."""
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    span = trace.get_current_span()
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


class ServerSpans:
    """ASGI middleware (added only when traces are on): a ``SERVER`` span per HTTP request,
    in the trace of the client's W3C ``traceparent``/``tracestate`` (the propagators of
    ``OTEL_PROPAGATORS``) when it sent one, named ``METHOD /route/{template}`` and current
    while the request is answered."""

    def __init__(self, app: Any) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.app = app
        self._context, self._propagate, self._trace = context, propagate, trace
        self._kind, self._status, self._error = SpanKind.SERVER, Status, StatusCode.ERROR
        self._fields = {name.lower().encode("latin-1") for name in propagate.get_global_textmap().fields}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or _tracer is None:
            await self.app(scope, receive, send)
            return
        fields = self._fields
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in fields
        }
        parent = self._propagate.extract(headers) if headers else None
        method = scope["method"]
        span = _tracer.start_span(
            method,
            context=parent,
            kind=self._kind,
            attributes={
                "http.request.method": method,
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
            },
        )
        token = self._context.attach(self._trace.set_span_in_context(span))
        status = 0

        async def traced_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, traced_send)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(self._status(self._error, type(exc).__name__))
            raise
        finally:
            template = getattr(scope.get("route"), "path", None)
            if template:
                span.update_name(f"{method} {template}")
                span.set_attribute("http.route", template)
            if status:
                span.set_attribute("http.response.status_code", status)
                recorded = getattr(getattr(span, "status", None), "status_code", None)
                if status >= 500 and recorded != self._error:  # (an exception's status is kept)
                    span.set_status(self._status(self._error, f"HTTP {status}"))
            span.end()
            self._context.detach(token)
