"""graphdock's logs: plain lines by default, one JSON object per line with ``LOG_JSON=true``.

:func:`configure` sets up the root logger of a process (the server, a worker, a run
process) from the environment, so that every process of a deployment writes the same
kind of line. In JSON mode every line is an object with ``timestamp``, ``level``,
``logger`` and ``message``, an ``exception`` (the traceback, as one string) when there is
one, and whatever applies where the line was written: ``request_id`` (the request being
answered), ``run_id``, ``thread_id``, ``assistant_id`` (the run being executed) and
``trace_id``/``span_id`` (the current OpenTelemetry span, when OpenTelemetry is installed
and a span is recording). Warnings, uncaught exceptions and uvicorn's own lines go
through the same formatter.
"""

from __future__ import annotations

import contextvars
import io
import logging
import os
import sys
import threading
from datetime import datetime, timezone
from typing import Any, Mapping

import orjson

#: the id of the request being answered (see graphdock.observability.middleware)
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("graphdock_request_id", default=None)
#: the run being executed: run_id, thread_id, assistant_id
RUN: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar("graphdock_run", default=None)
#: the keys of the current run (:data:`RUN`) a log line names
_RUN_KEYS = ("run_id", "thread_id", "assistant_id")

ENV = "LOG_JSON"
PLAIN_FORMAT = "%(levelname)s %(name)s: %(message)s"

try:  # OpenTelemetry is optional: trace ids only when it is installed
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - depends on the environment
    _otel_trace = None  # type: ignore[assignment]

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName", "color_message"}


def json_enabled(environ: Any = os.environ) -> bool:
    """Whether ``LOG_JSON`` asks for JSON lines."""
    return str(environ.get(ENV, "")).strip().lower() in ("1", "true", "yes", "on")


class JSONFormatter(logging.Formatter):
    """One JSON object per record (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        run = RUN.get()
        if run:
            for key in _RUN_KEYS:
                value = run.get(key)
                if value is not None:
                    entry[key] = str(value)
        if _otel_trace is not None:
            context = _otel_trace.get_current_span().get_span_context()
            if context.is_valid:
                entry["trace_id"] = format(context.trace_id, "032x")
                entry["span_id"] = format(context.span_id, "016x")
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


_configured: str | None = None


class _LineStream(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` in JSON mode: each line written by ``print`` (graph
    code, libraries, the command line) becomes a JSON log line of logger ``stdout`` /
    ``stderr`` (a line starting with ``error:`` at level error)."""

    def __init__(self, stream: Any, name: str, formatter: logging.Formatter) -> None:
        self._stream = stream
        self._name = name
        self._formatter = formatter
        self._pending = ""
        self._lock = threading.Lock()  # graph code prints from threads too

    def __getattr__(self, name: str) -> Any:  # buffer, errors, ...: the real stream's
        return getattr(self._stream, name)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            while "\n" in self._pending:
                line, self._pending = self._pending.split("\n", 1)
                self._emit(line)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                line, self._pending = self._pending, ""
                self._emit(line)
        self._stream.flush()

    def _emit(self, line: str) -> None:
        line = line.rstrip("\r")
        if not line.strip():
            return
        level = logging.INFO if self._name == "stdout" else logging.WARNING
        if line.startswith("error:"):
            level, line = logging.ERROR, line[len("error:") :].strip()
        record = logging.LogRecord(self._name, level, "", 0, line, None, None)
        self._stream.write(self._formatter.format(record) + "\n")
        self._stream.flush()


def configure(level: int | str | None = None, *, json: bool | None = None) -> bool:
    """Set up this process's root logger (``level``: None keeps it; ``json``: None reads
    ``LOG_JSON``); True when the lines are JSON. In JSON mode warnings, uncaught
    exceptions and lines printed to stdout/stderr become JSON lines too."""
    global _configured
    use_json = json_enabled() if json is None else json
    root = logging.getLogger()
    if level is not None:
        root.setLevel(level)
    mode = "json" if use_json else "plain"
    if _configured == mode:
        return use_json
    for handler in list(root.handlers):
        root.removeHandler(handler)
    stderr = sys.__stderr__ if isinstance(sys.stderr, _LineStream) else sys.stderr
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(JSONFormatter() if use_json else logging.Formatter(PLAIN_FORMAT))
    root.addHandler(handler)
    _configured = mode
    if use_json:
        formatter = JSONFormatter()
        if not isinstance(sys.stdout, _LineStream):
            sys.stdout = _LineStream(sys.stdout, "stdout", formatter)
        if not isinstance(sys.stderr, _LineStream):
            sys.stderr = _LineStream(sys.stderr, "stderr", formatter)
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = lambda args: _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)
        sys.unraisablehook = _log_unraisable
    return use_json


def _log_uncaught(exc_type: Any, exc: Any, tb: Any) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("graphdock").critical("uncaught exception", exc_info=(exc_type, exc, tb))


def _log_unraisable(unraisable: Any) -> None:
    exc = unraisable.exc_value
    logging.getLogger("graphdock").error(
        "%s: %r",
        unraisable.err_msg or "Exception ignored in",
        unraisable.object,
        exc_info=(unraisable.exc_type, exc, unraisable.exc_traceback) if exc is not None else None,
    )


def bind_run(run: Mapping[str, Any]) -> contextvars.Token[Mapping[str, Any] | None]:
    """Name the run the current task executes in its log lines (undo with ``RUN.reset``;
    the run's ids are read when a line is written)."""
    return RUN.set(run)
