"""Executing one run: open the graph, drive ``astream``, record the outcome.

The graph is opened through :meth:`Hosting.open_graph` in access context
``threads.create_run`` and stays open until the run's last event; a cancel
signal (interrupt or rollback) or the run timeout stops the stream at once.

A run's later attempt (its process died while executing it, and a lease expired or
the server restarted) goes on from the run's own last checkpoint when it wrote one,
so that the thread shows its output once; a run that has used up ``max_attempts``
ends in ``error`` without being executed again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from langgraph._internal._constants import CONFIG_KEY_STREAM_MESSAGES_V2
from langgraph.types import Command, Send, StateSnapshot

from graphdock import serde
from graphdock.auth.user import AuthenticatedUser
from graphdock.backends.base import EventLog, Row, Storage
from graphdock.hosting import Hosting, loopback
from graphdock.hosting.context import filter_to_schema
from graphdock.hosting.state import thread_interrupts
from graphdock.observability import logs, metrics, tracing
from graphdock.runs.protocol_events import GRAPH_MODES, PREFIX, ProtocolConverter
from graphdock.runs.stream import EventConverter, graph_modes
from graphdock.webhooks import delivery as webhooks

logger = logging.getLogger("graphdock.runs")


class UserInterrupt(Exception):
    """A run stopped by a cancel request with action ``interrupt``."""


class UserRollback(Exception):
    """A run stopped by a cancel request with action ``rollback``."""


def build_command(command: dict[str, Any]) -> Command:
    """A langgraph Command from the API's ``{resume, update, goto}``."""
    update = command.get("update")
    if isinstance(update, list):
        update = [tuple(pair) for pair in update]
    goto = command.get("goto")

    def _target(item: Any) -> Any:
        if isinstance(item, dict):
            return Send(item["node"], item.get("input"))
        return item

    if isinstance(goto, list):
        goto = [_target(g) for g in goto]
    elif goto is not None:
        goto = _target(goto)
    kwargs: dict[str, Any] = {}
    if "resume" in command:
        kwargs["resume"] = command["resume"]
    if update is not None:
        kwargs["update"] = update
    if goto is not None:
        kwargs["goto"] = goto
    return Command(**kwargs)


def filter_context(graph: Any, context: dict[str, Any] | None) -> dict[str, Any] | None:
    """Drop context keys that the graph's context schema does not declare."""
    if context is None:
        return None
    return filter_to_schema(getattr(graph, "context_schema", None), context)


async def restore_thread_status(storage: Storage, thread_id: str) -> None:
    """Status of a thread whose run went away without touching its recorded state.

    ``interrupted`` while the recorded state waits on interrupts, else ``idle``
    (storage keeps ``busy`` while other runs are in flight).
    """
    thread = await storage.get_thread(thread_id)
    if thread is not None:
        status = "interrupted" if thread.get("interrupts") else "idle"
        await storage.update_thread_state(thread_id, status=status)


@dataclass
class _Outcome:
    snapshot: StateSnapshot | None = None
    error: BaseException | None = None
    converter: EventConverter | None = None
    protocol: ProtocolConverter | None = None
    started: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Executor:
    def __init__(
        self,
        storage: Storage,
        hosting: Hosting,
        events: EventLog,
        *,
        run_timeout: float,
        max_attempts: int = 3,
    ) -> None:
        self.storage = storage
        self.hosting = hosting
        self.events = events
        self.run_timeout = run_timeout
        self.max_attempts = max_attempts

    async def execute(self, run_id: str, claimed: Row | None = None) -> None:
        """Run ``run_id``: claim it (``claimed``: the row of a run created already claimed)."""
        run = claimed if claimed is not None else await self.storage.claim_run(run_id)
        if run is None:
            return
        log_token = logs.bind_run(run)  # log lines written while it executes name the run
        metrics.run_started(run, self._graph_id(run))
        try:
            if tracing.enabled:
                with tracing.run_span(run):  # the run's span, current while it executes
                    await self._execute(run)
            else:
                await self._execute(run)
        finally:
            metrics.run_left(run_id)
            logs.RUN.reset(log_token)

    async def _execute(self, run: Row) -> None:
        run_id, thread_id = run["run_id"], run["thread_id"]
        kwargs = run["kwargs"]
        await self.events.open(run_id, thread_id, resumable=bool(kwargs.get("resumable")))
        if run["attempt"] > self.max_attempts:
            await self._give_up(run)
            return
        outcome = _Outcome()
        checkpointer = self.hosting.checkpointer
        if not kwargs.get("temporary"):
            if run["attempt"] > 1:
                await self._resume_point(run)
            # what a rollback must put back on the checkpoints this run may add writes to
            start = ((kwargs.get("config") or {}).get("configurable") or {}).get("checkpoint_id")
            try:
                outcome.extra["head_writes"] = await checkpointer.ahead_writes(thread_id, start)
            except Exception:
                logger.exception("reading the pending writes of thread %s failed", thread_id)
        # The graph runs in this (the worker's) task; a cancel request or the run timeout
        # cancels the task while it is inside _stream, and only then.
        task = asyncio.current_task()
        assert task is not None
        stopped: list[str] = []  # why the graph was stopped: "cancel" or "timeout"
        streaming = False

        def stop(reason: str) -> None:
            if streaming and not stopped:
                stopped.append(reason)
                task.cancel()

        actions = await self.events.on_cancel(run_id, lambda action: stop("cancel"))
        shutdown = False
        if actions:
            stopped.append("cancel")  # cancelled before it started: the graph is not opened
        else:
            timer = asyncio.get_running_loop().call_later(self.run_timeout, stop, "timeout")
            streaming = True
            caller = loopback.calling_run(run)  # get_client() in the graph acts as the run's user
            try:
                await self._stream(run, outcome)
            except asyncio.CancelledError:
                if stopped:
                    shutdown = task.uncancel() > 0  # cancelled by us, and by someone else too?
                elif task.cancelling():
                    shutdown = True
                else:
                    # a graph that raised CancelledError itself (nobody cancelled the run) failed
                    outcome.error = asyncio.CancelledError("the graph cancelled itself")
            except Exception as exc:
                outcome.error = exc
            else:
                if stopped:
                    task.uncancel()  # the graph swallowed our cancellation
            finally:
                loopback.CALLER.reset(caller)
                streaming = False
                timer.cancel()
        if shutdown:
            # the process is stopping: the queue hands the run back, its log stays open for
            # the attempt that goes on with it
            await self.events.release_cancel(run_id)
            raise asyncio.CancelledError()
        status: str
        if not stopped:
            status = "error" if outcome.error is not None else "success"
        elif stopped[0] == "cancel":
            status = "rollback" if actions and actions[-1] == "rollback" else "interrupted"
        else:
            status = "timeout"
            outcome.error = TimeoutError(f"Run exceeded the timeout of {self.run_timeout:g} seconds")
        temporary = bool(kwargs.get("temporary"))
        try:
            try:
                await self._record(run, status, outcome, temporary=temporary)
            except Exception as exc:
                # never leave the run `running`: record a plain error instead
                logger.exception("recording the outcome of run %s failed", run_id)
                status = "error"
                try:
                    await self._record_failure(run_id, outcome.error if outcome.error is not None else exc)
                finally:
                    # a temporary run's thread is gone before anyone waiting on the run is told
                    if temporary:
                        await self.storage.delete_thread(thread_id)
                        await checkpointer.adelete_thread(thread_id)
            metrics.run_finished(run_id, self._graph_id(run), status)
            if tracing.enabled:
                tracing.run_finished(status, outcome.error)
            # the run's webhook, if any: scheduled here, delivered in the background
            webhooks.run_finished(
                run,
                status,
                values=serde.to_jsonable(
                    outcome.snapshot.values if outcome.snapshot is not None
                    else outcome.converter.last_values if outcome.converter is not None else None
                ),
                error=serde.error_payload(outcome.error) if outcome.error is not None else None,
            )
            if kwargs.get("protocol"):
                await self._publish_terminal(run, status, outcome)
        finally:
            await self.events.release_cancel(run_id)
            await self.events.close(run_id)

    async def _give_up(self, run: Row) -> None:
        """End a run whose process was lost on each of its ``max_attempts`` attempts."""
        message = (
            f"the run's process was lost on each of its {self.max_attempts} attempts;"
            " it is not executed again"
        )
        logger.error("run %s: %s", run["run_id"], message)
        await self.fail(run, {"error": "RunAttemptsExhausted", "message": message})

    async def fail(self, run: Row, error: dict[str, Any]) -> None:
        """End ``run`` in error without executing it: the error event, the run and its
        thread recorded (a temporary run's thread deleted), the stream closed."""
        run_id = run["run_id"]
        try:
            await self.events.publish(run_id, "error", serde.dumps(error))
            if run["kwargs"].get("protocol"):
                converter = ProtocolConverter(self._graph_id(run))
                for method, params in converter.finished("failed", str(error.get("message") or error.get("error"))):
                    await self.events.publish(run_id, PREFIX + method, serde.dumps(params))
            await self.storage.finish_run(
                run_id,
                "error",
                thread_status="error",
                error=error,
                delete_thread=bool(run["kwargs"].get("temporary")),
            )
            metrics.run_finished(run_id, self._graph_id(run), "error")
            if tracing.enabled:
                tracing.run_finished("error", error)
            webhooks.run_finished(run, "error", error=error)
        finally:
            await self.events.close(run_id)

    @staticmethod
    def _graph_id(run: Row) -> str:
        configurable = (run["kwargs"].get("config") or {}).get("configurable") or {}
        return str(configurable.get("graph_id") or run.get("assistant_id") or "")

    async def _publish_terminal(self, run: Row, status: str, outcome: _Outcome) -> None:
        """A protocol run's terminal lifecycle: ``completed``, ``interrupted`` (it stopped on
        an interrupt or breakpoint, the thread waits for input) or ``failed`` (an error, a
        timeout, or a cancel: the run will not go on by itself)."""
        converter = outcome.protocol or ProtocolConverter(self._graph_id(run))
        error: str | None = None
        if status == "success":
            snapshot = outcome.snapshot
            waiting = converter.interrupted or bool(snapshot is not None and snapshot.next)
            event = "interrupted" if waiting else "completed"
        elif status in ("interrupted", "rollback"):
            event, error = "failed", "Run was cancelled"
        else:
            event = "failed"
            error = str(serde.error_payload(outcome.error)["message"]) if outcome.error else "Run failed"
        for method, params in converter.finished(event, error):
            await self.events.publish(run["run_id"], PREFIX + method, serde.dumps(params))

    async def _resume_point(self, run: Row) -> None:
        """Make a later attempt go on from the run's own last checkpoint, if it wrote one:
        its input is then already in the thread's state, so the graph is resumed (input
        None, from the thread's latest checkpoint) instead of started again."""
        thread_id = run["thread_id"]
        latest = await self.hosting.checkpointer.aget_tuple(
            {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        )
        if latest is None or (latest.metadata or {}).get("run_id") != run["run_id"]:
            return  # nothing of this run was saved: it starts again from its input
        kwargs = run["kwargs"]
        kwargs["input"], kwargs["command"] = None, None
        configurable = (kwargs.get("config") or {}).get("configurable") or {}
        for key in ("checkpoint_id", "checkpoint_map"):
            configurable.pop(key, None)
        logger.info("run %s: attempt %d goes on from its last checkpoint", run["run_id"], run["attempt"])

    async def _record_failure(self, run_id: str, exc: BaseException) -> None:
        error = {"error": type(exc).__name__, "message": "An internal error occurred"}
        await self.events.publish(run_id, "error", serde.dumps(error))
        await self.storage.finish_run(run_id, "error", thread_status="error", error=error)

    async def _stream(self, run: Row, outcome: _Outcome) -> None:
        run_id, thread_id = run["run_id"], run["thread_id"]
        kwargs = run["kwargs"]
        temporary = bool(kwargs.get("temporary"))
        # the run row was just read from storage: its config is this run's own copy
        config = kwargs.get("config") or {}
        configurable = config.setdefault("configurable", {})
        configurable["thread_id"] = thread_id
        configurable["run_id"] = run_id
        config["run_id"] = uuid.UUID(run_id)
        metadata = config.setdefault("metadata", {})
        metadata.update({"run_attempt": run["attempt"], "langgraph_host": "self-hosted"})
        graph_id = configurable.get("graph_id")
        requested = list(kwargs.get("stream_mode") or ["values"])
        subgraphs = bool(kwargs.get("subgraphs"))
        converter = EventConverter(requested, subgraphs=subgraphs)
        outcome.converter = converter
        context = kwargs.get("context")
        user = configurable.get("langgraph_auth_user")
        if isinstance(user, dict) and "identity" in user:
            # stored as JSON with the run: the same user object again, for nodes and factories
            user = AuthenticatedUser.from_dict(user)
            configurable["langgraph_auth_user"] = user
        # the token usage of the chat model messages the graph produces (graphdock_llm_tokens_total)
        # (only once a chat model class exists in this process: see metrics.token_usage)
        usage = metrics.token_usage(self._graph_id(run))
        if usage is not None:
            callbacks = config.get("callbacks")
            config["callbacks"] = [*(callbacks if isinstance(callbacks, list) else ()), usage]
        if tracing.enabled:  # node, LLM and tool spans; the run span's context for the graph
            config = tracing.traced_config(config)
        open_kwargs: dict[str, Any] = {"config": config, "context": context, "user": user}
        if temporary:
            open_kwargs["checkpointer"] = None
        publish = self.events.publish
        async with self.hosting.open_graph(graph_id, "threads.create_run", **open_kwargs) as graph:
            metadata_event: dict[str, Any] = {"run_id": run_id, "attempt": run["attempt"]}
            if kwargs.get("protocol"):
                metadata_event["protocol"] = True  # thread streams leave its events to the protocol's own
            await publish(run_id, "metadata", serde.dumps(metadata_event))
            outcome.started = True
            if kwargs.get("command") is not None:
                graph_input: Any = build_command(kwargs["command"])
            else:
                graph_input = kwargs.get("input")
            stream_kwargs: dict[str, Any] = {
                "context": filter_context(graph, context),
                "interrupt_before": kwargs.get("interrupt_before"),
                "interrupt_after": kwargs.get("interrupt_after"),
                "subgraphs": subgraphs,
            }
            if not temporary:
                stream_kwargs["durability"] = kwargs.get("durability") or "async"
            modes = graph_modes(requested)
            try:
                if kwargs.get("protocol"):
                    await self._stream_protocol(graph, graph_input, config, stream_kwargs, outcome, run)
                elif "events" in requested:
                    await self._stream_events(
                        graph, graph_input, config, modes, stream_kwargs, converter, run_id
                    )
                else:
                    async for chunk in graph.astream(
                        graph_input, config, stream_mode=modes or ["values"], **stream_kwargs
                    ):
                        await self._publish_chunk(run_id, converter, chunk, subgraphs)
            finally:
                if not temporary:
                    try:
                        outcome.snapshot = await graph.aget_state(
                            {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
                        )
                    except Exception:
                        logger.exception("reading the final state of run %s failed", run_id)

    async def _stream_protocol(
        self,
        graph: Any,
        graph_input: Any,
        config: dict[str, Any],
        stream_kwargs: dict[str, Any],
        outcome: _Outcome,
        run: Row,
    ) -> None:
        """Drive a protocol run: every channel, every namespace, messages as langgraph's
        protocol events (see :mod:`graphdock.runs.protocol_events`)."""
        run_id = run["run_id"]
        converter = ProtocolConverter(self._graph_id(run))
        outcome.protocol = converter
        publish = self.events.publish
        method, params = converter.started()
        await publish(run_id, PREFIX + method, serde.dumps(params))
        config["configurable"][CONFIG_KEY_STREAM_MESSAGES_V2] = True
        kwargs = {k: v for k, v in stream_kwargs.items() if k != "subgraphs"}
        async for part in graph.astream(
            graph_input, config, stream_mode=GRAPH_MODES, subgraphs=True, version="v2", **kwargs
        ):
            for method, params in converter.convert(part):
                await publish(run_id, PREFIX + method, serde.dumps(params))

    async def _publish_chunk(
        self, run_id: str, converter: EventConverter, chunk: Any, subgraphs: bool
    ) -> None:
        if subgraphs:
            ns, mode, payload = chunk
        else:
            (mode, payload), ns = chunk, ()
        for name, data in converter.convert(tuple(ns), mode, payload):
            await self.events.publish(run_id, name, serde.dumps(data))

    async def _stream_events(
        self,
        graph: Any,
        graph_input: Any,
        config: dict[str, Any],
        modes: list[str],
        stream_kwargs: dict[str, Any],
        converter: EventConverter,
        run_id: str,
    ) -> None:
        root = str(config["run_id"])
        subgraphs = stream_kwargs["subgraphs"]
        async for event in graph.astream_events(
            graph_input, config, version="v2", stream_mode=modes or ["values"], **stream_kwargs
        ):
            if event.get("event") == "on_chain_stream" and str(event.get("run_id")) == root:
                if modes:
                    await self._publish_chunk(run_id, converter, event["data"]["chunk"], subgraphs)
                continue
            if "langsmith:hidden" in (event.get("tags") or ()):
                continue
            await self.events.publish(run_id, "events", serde.dumps(event))

    async def _record(self, run: Row, status: str, outcome: _Outcome, *, temporary: bool = False) -> None:
        """Record the run's outcome; a temporary run's thread (with its runs and checkpoints)
        is deleted in the same step, before anyone waiting on the run is told."""
        run_id, thread_id = run["run_id"], run["thread_id"]
        snapshot = outcome.snapshot
        if status in ("error", "timeout"):
            assert outcome.error is not None
            if not isinstance(outcome.error, (UserInterrupt, UserRollback)):
                logger.info("run %s failed: %r", run_id, outcome.error, exc_info=outcome.error)
            await self.events.publish(run_id, "error", serde.dumps(serde.error_payload(outcome.error)))
        if status == "rollback":
            checkpointer = self.hosting.checkpointer
            await checkpointer.adelete_for_runs([run_id])
            if outcome.extra.get("head_writes") is not None:
                await checkpointer.arestore_writes(thread_id, outcome.extra["head_writes"])
            await self.storage.delete_run(run_id, thread_id)
            if temporary:
                await self.storage.delete_thread(thread_id)
                await checkpointer.adelete_thread(thread_id)
            else:
                await restore_thread_status(self.storage, thread_id)
            return
        state_fields: dict[str, Any] = {}
        if snapshot is not None and snapshot.created_at is not None:
            state_fields["values"] = serde.to_jsonable(snapshot.values)
            state_fields["interrupts"] = thread_interrupts(snapshot)
        pending_work = bool(snapshot is not None and snapshot.next)
        if status == "success":
            thread_status, error = ("interrupted" if pending_work else "idle"), None
        elif status == "interrupted":
            thread_status = "interrupted" if pending_work else "idle"
            error = {
                "error": "UserInterrupt",
                "message": f"interrupt requested via POST /threads/{thread_id}/runs/{run_id}/cancel",
            }
        else:  # error, timeout
            thread_status = "error"
            error = serde.error_payload(outcome.error) if outcome.error else None
        await self.storage.finish_run(
            run_id,
            status,
            thread_status=thread_status,
            error=error,
            delete_thread=temporary,
            **state_fields,
        )
