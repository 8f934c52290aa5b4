"""Prometheus metrics of one graphdock process, served at ``GET /metrics``.

Counters and histograms live in :data:`REGISTRY`, one per process: HTTP requests (labelled
by route template, never by raw path), runs (by graph and final status) and their queue
wait (series of :mod:`graphdock.observability.series`: a dict update per record), and the
LLM token usage of the messages graphs produce (:class:`TokenUsage`, a callback
handler the executor attaches to every run once a chat model class exists in the process). Gauges that describe the deployment (the
queue) or the process's state (run slots, run processes, stream subscribers) are set when
``/metrics`` is scraped (:func:`observe`), so they cost nothing in between.

A run process records nothing itself: :func:`forward_to` makes every record a message the
run process sends to its server process, which applies it (:func:`apply`), so the runs a
server process hands to run processes are counted on its own ``/metrics``.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import Any, Callable, Iterable
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    PlatformCollector,
    disable_created_metrics,
    ProcessCollector,
    generate_latest,
)

from graphdock.observability.series import CounterSeries, HistogramSeries

disable_created_metrics()  # no *_created series: half the text for nothing a scraper needs
REGISTRY = CollectorRegistry(auto_describe=False)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

#: the route label of a request that matched no route (one fixed value: no raw paths)
UNMATCHED = "unmatched"
_METHODS = frozenset(("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"))

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_RUN_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

HTTP_REQUESTS = CounterSeries(
    "graphdock_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ("method", "route", "status"),
    registry=REGISTRY,
)
HTTP_DURATION = HistogramSeries(
    "graphdock_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by method and route template.",
    ("method", "route"),
    buckets=_SECONDS,
    registry=REGISTRY,
)
RUNS = CounterSeries(
    "graphdock_runs",
    "Runs executed to an end, by graph and status (success, error, timeout, interrupted, rollback).",
    ("graph_id", "status"),
    registry=REGISTRY,
)
RUN_DURATION = HistogramSeries(
    "graphdock_run_duration_seconds",
    "Time a run took from its claim to its recorded outcome, by graph and status.",
    ("graph_id", "status"),
    buckets=_RUN_SECONDS,
    registry=REGISTRY,
)
RUN_QUEUE_WAIT = HistogramSeries(
    "graphdock_run_queue_wait_seconds",
    "Time a run waited from when it could start (created_at) to its claim, by graph.",
    ("graph_id",),
    buckets=_RUN_SECONDS,
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "graphdock_llm_tokens",
    "LLM tokens of the chat model messages graphs produced (usage_metadata), by graph, model and type.",
    ("graph_id", "model", "type"),
    registry=REGISTRY,
)
RUNS_PENDING = Gauge(
    "graphdock_runs_pending", "Runs of the deployment waiting to be executed.", registry=REGISTRY
)
RUNS_RUNNING = Gauge(
    "graphdock_runs_running", "Runs of the deployment being executed.", registry=REGISTRY
)
QUEUE_WAIT_MAX = Gauge(
    "graphdock_runs_pending_wait_max_seconds",
    "How long the oldest pending run of the deployment has waited.",
    registry=REGISTRY,
)
QUEUE_UNBLOCKED_WAIT_MAX = Gauge(
    "graphdock_runs_pending_unblocked_wait_max_seconds",
    "How long the oldest pending run whose thread has no running run has waited.",
    registry=REGISTRY,
)
RUN_SLOTS = Gauge(
    "graphdock_run_slots",
    "Runs this process may execute at once (--n-jobs-per-worker), busy or free.",
    ("state",),
    registry=REGISTRY,
)
RUN_PROCESSES = Gauge(
    "graphdock_run_processes",
    "Run processes of this server process, busy (executing runs) or idle.",
    ("state",),
    registry=REGISTRY,
)
STREAM_SUBSCRIBERS = Gauge(
    "graphdock_stream_subscribers",
    "Event streams (SSE responses) this process is sending now.",
    registry=REGISTRY,
)

#: event streams being sent by this process (a plain int on the hot path; read at scrape)
streams_open = 0

# -- HTTP requests ----------------------------------------------------------------------


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request (``route``: its template, or :data:`UNMATCHED`)."""
    if method not in _METHODS:  # any token is a method: keep the label sets bounded
        method = "OTHER"
    HTTP_REQUESTS.inc((method, route, status))
    HTTP_DURATION.observe((method, route), seconds)


# -- runs -------------------------------------------------------------------------------

_forward: Callable[[list[Any]], None] | None = None


def forward_to(send: Callable[[list[Any]], None] | None) -> None:
    """Send every run and token record to ``send`` instead of recording it (a run
    process: its server process records them, see :func:`apply`)."""
    global _forward
    _forward = send


_started: dict[str, float] = {}  # run id -> when this process claimed it (perf_counter)


def run_started(run: dict[str, Any], graph_id: str) -> None:
    """A run was claimed: its queue wait (from its ``created_at``) is recorded."""
    _started[run["run_id"]] = time.perf_counter()
    created_at = run.get("created_at")
    wait = 0.0
    if isinstance(created_at, str):
        created_at = datetime.fromisoformat(created_at)
    if isinstance(created_at, datetime):
        wait = max(0.0, time.time() - created_at.timestamp())
    _record(["wait", graph_id, wait])


def run_finished(run_id: str, graph_id: str, status: str) -> None:
    """A run's outcome was recorded; its duration is counted when :func:`run_started` saw
    its claim in this process."""
    started = _started.pop(run_id, None)
    _record(["run", graph_id, status, None if started is None else time.perf_counter() - started])


def run_left(run_id: str) -> None:
    """The execution of ``run_id`` returned here (finished, or handed back)."""
    _started.pop(run_id, None)


def tokens(graph_id: str, model: str, usage: dict[str, Any]) -> None:
    counts = [int(usage.get(kind) or 0) for kind in ("input_tokens", "output_tokens", "total_tokens")]
    if any(counts):
        _record(["tokens", graph_id, model, *counts])


def _record(entry: list[Any]) -> None:
    if _forward is not None:
        _forward(entry)
    else:
        apply(entry)


def apply(entry: list[Any]) -> None:
    """Record one entry of :func:`run_started`, :func:`run_finished` or :func:`tokens`."""
    kind = entry[0]
    if kind == "run":
        _, graph_id, status, seconds = entry
        RUNS.inc((graph_id, status))
        if seconds is not None:
            RUN_DURATION.observe((graph_id, status), seconds)
    elif kind == "wait":
        RUN_QUEUE_WAIT.observe((entry[1],), entry[2])
    elif kind == "tokens":
        _, graph_id, model, n_input, n_output, n_total = entry
        for kind_name, n in (("input", n_input), ("output", n_output), ("total", n_total)):
            if n:
                LLM_TOKENS.labels(graph_id, model, kind_name).inc(n)


#: the module every langchain chat model class comes from (``BaseChatModel``)
_CHAT_MODELS = "langchain_core.language_models.chat_models"


def token_usage(graph_id: str) -> "TokenUsage | None":
    """The handler that counts a run's tokens, or None while this process has no chat
    model class at all (``BaseChatModel``'s module not imported: no model call can
    happen, and no handler costs langchain a dispatch on every node's start and end).
    A graph that imports its chat model only inside a node has the tokens of the run
    that imported it uncounted; every run after it is counted."""
    if _CHAT_MODELS not in sys.modules:
        return None
    return TokenUsage(graph_id)


class TokenUsage(BaseCallbackHandler):
    """Counts the ``usage_metadata`` of every chat model message produced in one run
    (once per model call, when it ends), labelled with the run's graph and the model."""

    run_inline = True  # called in the run's task, never in a thread
    raise_error = False
    ignore_chain = True
    ignore_agent = True
    ignore_retriever = True
    ignore_retry = True
    ignore_custom_event = True

    def __init__(self, graph_id: str) -> None:
        self.graph_id = graph_id
        self._models: dict[UUID, str] = {}

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: Any, *, run_id: UUID, metadata: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        model = (metadata or {}).get("ls_model_name")
        if not isinstance(model, str) or not model:
            model = (serialized or {}).get("name") or ((serialized or {}).get("id") or ["unknown"])[-1]
        self._models[run_id] = str(model)

    def on_llm_start(self, serialized: dict[str, Any], prompts: Any, *, run_id: UUID, **kwargs: Any) -> None:
        pass

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._models.pop(run_id, None)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        model = self._models.pop(run_id, None)
        for generations in getattr(response, "generations", None) or ():
            for generation in generations:
                message = getattr(generation, "message", None)
                usage = getattr(message, "usage_metadata", None)
                if usage:
                    name = model or (getattr(message, "response_metadata", None) or {}).get("model_name") or "unknown"
                    tokens(self.graph_id, str(name), usage)


# -- scrape -----------------------------------------------------------------------------


def observe(
    queue: dict[str, Any], *, slots: int, busy: int, run_processes: Iterable[int] = ()
) -> None:
    """Set the gauges before a scrape: ``queue`` from ``Storage.queue_stats``, this
    process's run slots, and the runs in flight of each of its run processes."""
    RUNS_PENDING.set(queue["n_pending"])
    RUNS_RUNNING.set(queue["n_running"])
    QUEUE_WAIT_MAX.set(queue["pending_runs_wait_time_max_secs"])
    QUEUE_UNBLOCKED_WAIT_MAX.set(queue["pending_unblocked_runs_wait_time_max_secs"])
    RUN_SLOTS.labels("busy").set(min(busy, slots))
    RUN_SLOTS.labels("free").set(max(0, slots - busy))
    inflight = list(run_processes)
    RUN_PROCESSES.labels("busy").set(sum(1 for n in inflight if n))
    RUN_PROCESSES.labels("idle").set(sum(1 for n in inflight if not n))
    STREAM_SUBSCRIBERS.set(streams_open)


def prometheus_text() -> bytes:
    return generate_latest(REGISTRY)


def as_json(queue: dict[str, Any], *, slots: int, busy: int) -> dict[str, Any]:
    """The ``format=json`` document: the queue, this process's run slots, and the samples
    of the request, run and token metrics."""

    def samples(metric: Any, suffix: str) -> list[dict[str, Any]]:
        out = []
        for family in metric.collect():
            for sample in family.samples:
                if sample.name.endswith(suffix):
                    out.append({**sample.labels, "value": sample.value})
        return out

    return {
        "queue": {
            "n_pending": queue["n_pending"],
            "n_running": queue["n_running"],
            "pending_runs_wait_time_max_secs": queue["pending_runs_wait_time_max_secs"],
            "pending_runs_wait_time_med_secs": queue["pending_runs_wait_time_med_secs"],
            "pending_unblocked_runs_wait_time_max_secs": queue["pending_unblocked_runs_wait_time_max_secs"],
        },
        "workers": {"max": slots, "active": min(busy, slots), "available": max(0, slots - busy)},
        "api": {"http_requests_total": samples(HTTP_REQUESTS, "_total")},
        "runs": {
            "runs_total": samples(RUNS, "_total"),
            "llm_tokens_total": samples(LLM_TOKENS, "_total"),
        },
    }
