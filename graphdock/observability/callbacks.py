"""The langchain callback handler that turns a run's nodes, LLM calls and tool calls into
OpenTelemetry spans (imported only when traces are on, see :mod:`.tracing`).

Spans are made for the graph's tasks (a chain run whose name is its ``langgraph_node``:
nodes, ``Send`` tasks, subgraph nodes and their own nodes), chat model / LLM calls and
tool calls, each a child of the nearest such ancestor or of the run span. Everything else
(the graph itself, langgraph's hidden internals such as ``__start__`` and channel writes,
routing functions, runnables inside a node) makes no span: its children attach to its
parent's span. An error ends a span with status ERROR and the exception recorded;
langgraph's interrupts and parent commands (``GraphBubbleUp``) and a cancelled run's
cancellation are not errors.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langgraph.errors import GraphBubbleUp
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

HIDDEN = "langsmith:hidden"


class SpanCallbacks(BaseCallbackHandler):
    """Spans of one run's graph; ``root``: the run span they descend from."""

    run_inline = True  # called on the event loop, not in a thread per event
    raise_error = False

    def __init__(self, tracer: Any, root: Span) -> None:
        self._tracer = tracer
        self._root = root
        # langchain run id -> the span its children attach to (their parent's for runs
        # that make no span); `_own`: the runs that made one
        self._parents: dict[UUID, Span] = {}
        self._own: dict[UUID, Span] = {}

    def _parent(self, parent_run_id: UUID | None) -> Span:
        if parent_run_id is None:
            return self._root
        return self._parents.get(parent_run_id, self._root)

    def _start(self, run_id: UUID, parent_run_id: UUID | None, name: str, attributes: dict[str, Any], kind: SpanKind = SpanKind.INTERNAL) -> None:
        parent = self._parent(parent_run_id)
        span = self._tracer.start_span(
            name, context=trace.set_span_in_context(parent), kind=kind, attributes=attributes
        )
        self._parents[run_id] = span
        self._own[run_id] = span

    def _pass(self, run_id: UUID, parent_run_id: UUID | None) -> None:
        self._parents[run_id] = self._parent(parent_run_id)

    def _end(self, run_id: UUID, error: BaseException | None = None) -> Span | None:
        self._parents.pop(run_id, None)
        span = self._own.pop(run_id, None)
        if span is None:
            return None
        if error is not None and not isinstance(error, (GraphBubbleUp, asyncio.CancelledError)):
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        return span

    # -- nodes ---------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name")
        meta = metadata or {}
        node = meta.get("langgraph_node")
        if parent_run_id is None or node is None or name != node or (tags and HIDDEN in tags):
            self._pass(run_id, parent_run_id)
            return
        attributes: dict[str, Any] = {"langgraph.node": str(node)}
        if meta.get("langgraph_step") is not None:
            attributes["langgraph.step"] = int(meta["langgraph_step"])
        if meta.get("langgraph_checkpoint_ns"):
            attributes["langgraph.checkpoint_ns"] = str(meta["langgraph_checkpoint_ns"])
        self._start(run_id, parent_run_id, str(node), attributes)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._end(run_id)
        if span is not None:
            span.end()

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._end(run_id, error)
        if span is not None:
            span.end()

    # -- LLM calls -------------------------------------------------------------

    def _llm_start(self, operation: str, run_id: UUID, parent_run_id: UUID | None, metadata: dict[str, Any] | None, kwargs: dict[str, Any]) -> None:
        meta = metadata or {}
        params = kwargs.get("invocation_params") or {}
        model = meta.get("ls_model_name") or params.get("model") or params.get("model_name") or kwargs.get("name") or ""
        attributes: dict[str, Any] = {"gen_ai.operation.name": operation}
        if model:
            attributes["gen_ai.request.model"] = str(model)
        if meta.get("ls_provider"):
            attributes["gen_ai.provider.name"] = str(meta["ls_provider"])
        name = f"{operation} {model}" if model else operation
        self._start(run_id, parent_run_id, name, attributes, SpanKind.CLIENT)

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, run_id: UUID, parent_run_id: UUID | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self._llm_start("chat", run_id, parent_run_id, metadata, kwargs)

    def on_llm_start(
        self, serialized: Any, prompts: Any, *, run_id: UUID, parent_run_id: UUID | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self._llm_start("text_completion", run_id, parent_run_id, metadata, kwargs)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._end(run_id)
        if span is None:
            return
        usage: dict[str, int] = {}
        for generations in getattr(response, "generations", None) or ():
            for generation in generations:
                found = getattr(getattr(generation, "message", None), "usage_metadata", None) or {}
                for key in ("input_tokens", "output_tokens"):
                    if isinstance(found.get(key), int):
                        usage[key] = usage.get(key, 0) + found[key]
        for key, value in usage.items():
            span.set_attribute(f"gen_ai.usage.{key}", value)
        span.end()

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._end(run_id, error)
        if span is not None:
            span.end()

    # -- tool calls ------------------------------------------------------------

    def on_tool_start(
        self, serialized: dict[str, Any] | None, input_str: str, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        name = str(kwargs.get("name") or (serialized or {}).get("name") or "tool")
        self._start(run_id, parent_run_id, f"execute_tool {name}", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name})

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._end(run_id)
        if span is not None:
            span.end()

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._end(run_id, error)
        if span is not None:
            span.end()
