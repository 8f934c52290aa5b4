"""The protocol's commands on a thread, each a call of the services.

:meth:`Commands.handle` takes a command envelope (``{"id", "method", "params"}``) and
returns the protocol's success or error response; it never raises for bad input (an
unknown method, invalid params, a missing thread, a refused authorization each become an
error response naming the problem). Authorization is the services' own, with the
request's auth: ``run.start`` / ``input.respond`` / ``input.inject`` create runs
(``threads.create_run``), ``state.get`` / ``state.listCheckpoints`` read the thread
(``threads.read``), ``state.fork`` updates it (``threads.update``) before creating its
run, ``agent.getTree`` reads the assistant (``assistants.read``).

A run created here is a run of :class:`graphdock.runs.service.RunsService` like any
other (listed, joinable, cancellable, under the multitask strategies); it is prepared and
inserted by the service, with ``protocol: true`` in its kwargs so that the executor
streams every channel of it as protocol events, and resumable so that its events are
kept for streams that attach or reconnect later.

Subscription commands belong to a WebSocket connection
(:mod:`graphdock.protocol.sockets`); over HTTP they are answered ``not_supported``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from pydantic import ValidationError

from graphdock import models, serde
from graphdock.auth import AuthContext
from graphdock.errors import APIError
from graphdock.protocol.wire import MARK, error, seq_of, success

if TYPE_CHECKING:
    from graphdock.server import Server

logger = logging.getLogger("graphdock.protocol")

_MARK_TIMEOUT = 5.0
# how long a command waits for a running run to record the interrupt it announced
_SETTLE_START = 2.0
_SETTLE_RESPOND = 10.0

Answer = tuple[dict[str, Any], dict[str, Any]]  # (result, response meta)
Handler = Callable[[str, dict[str, Any], AuthContext], Awaitable[Answer]]

SUBSCRIPTION_METHODS = ("subscription.subscribe", "subscription.unsubscribe", "subscription.reconnect")


class CommandError(Exception):
    """A command that cannot be carried out: the protocol error code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_envelope(payload: Any) -> tuple[int, str, dict[str, Any]]:
    """``(id, method, params)`` of a command envelope; CommandError when malformed."""
    if not isinstance(payload, dict):
        raise CommandError("invalid_argument", "a command must be a JSON object {id, method, params}")
    unknown = set(payload) - {"id", "method", "params"}
    if unknown:
        raise CommandError("invalid_argument", f"unknown command fields {sorted(unknown)}; expected id, method, params")
    command_id = payload.get("id")
    if not isinstance(command_id, int) or isinstance(command_id, bool) or command_id < 0:
        raise CommandError("invalid_argument", "a command needs an integer id >= 0")
    method = payload.get("method")
    if not isinstance(method, str) or not method:
        raise CommandError("invalid_argument", "a command needs a string method")
    params = payload.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise CommandError("invalid_argument", f"{method}: params must be an object")
    return command_id, method, params


def _only(
    method: str, params: dict[str, Any], allowed: set[str], required: frozenset[str] | set[str] = frozenset()
) -> None:
    """CommandError naming the params that ``method`` does not take, or lacks."""
    unknown = set(params) - allowed
    if unknown:
        raise CommandError("invalid_argument", f"{method}: unknown params {sorted(unknown)}; expected {sorted(allowed)}")
    missing = required - set(params)
    if missing:
        raise CommandError("invalid_argument", f"{method}: missing params {sorted(missing)}")


def _object(method: str, params: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = params.get(key)
    if value is not None and not isinstance(value, dict):
        raise CommandError("invalid_argument", f"{method}: {key} must be an object")
    return value


def _namespace(method: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise CommandError("invalid_argument", f"{method}: namespace must be a list of strings")
    return value


def _api_error(exc: APIError) -> CommandError:
    if exc.status_code in (401, 403):
        return CommandError("permission_denied", exc.detail)
    return CommandError("invalid_argument", exc.detail)


# the headers of the command being handled, for the runs it creates (set by Commands.handle)
_HEADERS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "graphdock_command_headers", default=None
)


class Commands:
    """The command handler of a server (shared by the HTTP and WebSocket transports)."""

    def __init__(self, server: "Server") -> None:
        self.srv = server
        self._methods: dict[str, Handler] = {
            "run.start": self.run_start,
            "input.respond": self.input_respond,
            "input.inject": self.input_inject,
            "state.get": self.state_get,
            "state.listCheckpoints": self.list_checkpoints,
            "state.fork": self.state_fork,
            "agent.getTree": self.get_tree,
        }

    async def handle(
        self, thread_id: str, payload: Any, auth: AuthContext, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """The response to one command envelope on ``thread_id`` (``headers``: the request
        headers that go into the configurable of the runs it creates)."""
        _HEADERS.set(headers)
        command_id: int | None = payload.get("id") if isinstance(payload, dict) else None
        if not isinstance(command_id, int) or isinstance(command_id, bool):
            command_id = None
        try:
            command_id, method, params = parse_envelope(payload)
            if method in SUBSCRIPTION_METHODS:
                raise CommandError("not_supported", f"{method} is a WebSocket command: send it on GET /threads/{{thread_id}}/stream/events")
            handler = self._methods.get(method)
            if handler is None:
                known = sorted([*self._methods, *SUBSCRIPTION_METHODS])
                raise CommandError("unknown_command", f"unknown method {method!r}; expected one of {known}")
            result, meta = await handler(thread_id, params, auth)
        except CommandError as exc:
            return error(command_id, exc.code, exc.message)
        except APIError as exc:
            err = _api_error(exc)
            return error(command_id, err.code, err.message)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            return error(command_id, "invalid_argument", problems)
        except Exception as exc:
            logger.exception("protocol command failed on thread %s", thread_id)
            return error(command_id, "unknown_error", f"{type(exc).__name__}: the command failed")
        return success(command_id, result, meta)

    # -- runs --------------------------------------------------------------------------

    async def mark(self, thread_id: str) -> int | None:
        """The seq of "now" on the thread's stream: every event published later has a
        greater one (None when the event log did not answer in time)."""
        events = self.srv.events
        subscription = events.subscribe_thread(thread_id)
        try:
            await events.publish_thread(thread_id, MARK, b"{}")

            async def first_mark() -> int:
                async for event in subscription:
                    if event.event == MARK:
                        return seq_of(event.id)
                raise LookupError("the thread stream ended")

            return await asyncio.wait_for(first_mark(), _MARK_TIMEOUT)
        except (asyncio.TimeoutError, LookupError, ValueError):
            return None
        finally:
            await subscription.aclose()

    async def _start(self, thread_id: str, body: models.RunCreate, auth: AuthContext) -> Answer:
        """Create a protocol run on the thread; ``(run row, response meta)``."""
        runs = self.srv.runs
        prepared = await runs.prepare(body, thread_id=thread_id, auth=auth, headers=_HEADERS.get())
        kwargs = prepared.run["kwargs"]
        kwargs["protocol"] = True
        kwargs["resumable"] = True
        kwargs["subgraphs"] = True
        seq = await self.mark(thread_id)
        run = await runs.insert(prepared)
        meta: dict[str, Any] = {"thread_id": thread_id}
        if seq is not None:
            meta["applied_through_seq"] = seq
        return run, meta

    async def _settle(self, thread_id: str, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) for the thread's running run to end.

        A run that stopped on an interrupt announces it (``input.requested``) a moment
        before its outcome is recorded on the thread; a client that answers at once must
        find the interrupt pending.
        """
        running = [r for r in await self.srv.storage.inflight_runs(thread_id) if r["status"] == "running"]
        if not running:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.srv.runs.wait_until_finished(running[0]["run_id"]), timeout)

    async def _pending_interrupts(self, thread_id: str) -> dict[str, list[str]] | None:
        """The ids of the thread's pending interrupts by task (None: no such thread)."""
        thread = await self.srv.storage.get_thread(thread_id)
        if thread is None:
            return None
        found = thread.get("interrupts") or {}
        return {
            task: [i["id"] for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)]
            for task, items in found.items()
            if items
        }

    async def run_start(self, thread_id: str, params: dict[str, Any], auth: AuthContext) -> Answer:
        method = "run.start"
        _only(
            method,
            params,
            {"assistant_id", "input", "config", "context", "metadata", "langsmith_tracer", "multitaskStrategy", "multitask_strategy"},
            {"assistant_id"},
        )
        assistant_id = params["assistant_id"]
        if not isinstance(assistant_id, str) or not assistant_id:
            raise CommandError("invalid_argument", "run.start: assistant_id must be a non-empty string")
        strategy = params.get("multitask_strategy", params.get("multitaskStrategy"))
        graph_input = params.get("input")
        command = None
        # an interrupted thread is resumed: the input is the resume value (as the SDK expects)
        if graph_input is not None and strategy in (None, "enqueue"):
            await self._settle(thread_id, _SETTLE_START)
        pending = await self._pending_interrupts(thread_id)
        if graph_input is not None and pending:
            command, graph_input = {"resume": graph_input}, None
        body = models.RunCreate(
            assistant_id=assistant_id,
            input=graph_input,
            command=command,
            config=_object(method, params, "config"),
            context=_object(method, params, "context"),
            metadata=_object(method, params, "metadata"),
            langsmith_tracer=_object(method, params, "langsmith_tracer"),
            multitask_strategy=strategy,
            if_not_exists="create",
            stream_resumable=True,
            stream_subgraphs=True,
        )
        run, meta = await self._start(thread_id, body, auth)
        return {"run_id": run["run_id"]}, meta

    async def input_respond(self, thread_id: str, params: dict[str, Any], auth: AuthContext) -> Answer:
        method = "input.respond"
        common = {"update", "goto", "config", "metadata"}
        responses: dict[str, Any] = {}
        if "responses" in params:
            _only(method, params, {"responses", *common}, {"responses"})
            entries = params["responses"]
            if not isinstance(entries, list) or not entries:
                raise CommandError("invalid_argument", "input.respond: responses must be a non-empty list")
            for entry in entries:
                if not isinstance(entry, dict) or not isinstance(entry.get("interrupt_id"), str):
                    raise CommandError("invalid_argument", "input.respond: each response needs an interrupt_id")
                _only(method, entry, {"namespace", "interrupt_id", "response"}, {"interrupt_id"})
                _namespace(method, entry.get("namespace"))
                responses[entry["interrupt_id"]] = entry.get("response")
        else:
            _only(method, params, {"namespace", "interrupt_id", "response", *common}, {"interrupt_id"})
            if not isinstance(params["interrupt_id"], str):
                raise CommandError("invalid_argument", "input.respond: interrupt_id must be a string")
            _namespace(method, params.get("namespace"))
            responses[params["interrupt_id"]] = params.get("response")
        await self.srv.threads.visible(thread_id, auth)
        await self._settle(thread_id, _SETTLE_RESPOND)
        pending = await self._pending_interrupts(thread_id) or {}
        known = {i for ids in pending.values() for i in ids}
        if not known:
            raise CommandError("no_such_run", f"thread {thread_id} has no interrupted run to respond to")
        unknown = sorted(set(responses) - known)
        if unknown:
            raise CommandError("no_such_interrupt", f"no pending interrupt {unknown[0]!r} on thread {thread_id}; pending: {sorted(known)}")
        thread = await self.srv.storage.get_thread(thread_id)
        assistant_id = ((thread or {}).get("metadata") or {}).get("assistant_id")
        if not isinstance(assistant_id, str):
            raise CommandError("no_such_run", f"thread {thread_id} has no assistant to resume")
        command: dict[str, Any] = {"resume": responses}
        if params.get("update") is not None:
            command["update"] = params["update"]
        if params.get("goto") is not None:
            command["goto"] = params["goto"]
        body = models.RunCreate(
            assistant_id=assistant_id,
            command=command,
            config=_object(method, params, "config"),
            metadata=_object(method, params, "metadata"),
            stream_resumable=True,
            stream_subgraphs=True,
        )
        _, meta = await self._start(thread_id, body, auth)
        return {}, meta

    async def input_inject(self, thread_id: str, params: dict[str, Any], auth: AuthContext) -> Answer:
        method = "input.inject"
        _only(method, params, {"namespace", "message"}, {"message"})
        if _namespace(method, params.get("namespace")):
            raise CommandError("not_supported", "input.inject: messages can only be injected at the root namespace []")
        message = params["message"]
        if not isinstance(message, dict):
            raise CommandError("invalid_argument", "input.inject: message must be an object {role, content, name?}")
        _only(method, message, {"role", "content", "name"}, {"role", "content"})
        if message["role"] not in ("user", "system") or not isinstance(message["content"], str):
            raise CommandError("invalid_argument", "input.inject: message.role must be user or system, content a string")
        thread = await self.srv.threads.visible(thread_id, auth)
        assistant_id = (thread.get("metadata") or {}).get("assistant_id")
        if not isinstance(assistant_id, str):
            raise CommandError("no_such_run", f"thread {thread_id} has no assistant yet: start a run with run.start")
        body = models.RunCreate(
            assistant_id=assistant_id,
            input={"messages": [dict(message)]},
            multitask_strategy="enqueue",
            stream_resumable=True,
            stream_subgraphs=True,
        )
        _, meta = await self._start(thread_id, body, auth)
        return {}, meta

    # -- state ---------------------------------------------------------------------------

    async def state_get(self, thread_id: str, params: dict[str, Any], auth: AuthContext) -> Answer:
        method = "state.get"
        _only(method, params, {"namespace", "keys"})
        namespace = _namespace(method, params.get("namespace"))
        keys = params.get("keys")
        if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)):
            raise CommandError("invalid_argument", "state.get: keys must be a list of strings")
        state = await self.srv.threads.state(thread_id, subgraphs=bool(namespace), auth=auth)
        for segment in namespace:
            child = next(
                (
                    task.get("state")
                    for task in state.get("tasks") or ()
                    if task.get("state") and segment in (task.get("name"), f"{task.get('name')}:{task.get('id')}")
                ),
                None,
            )
            if child is None:
                raise CommandError("no_such_namespace", f"state.get: no running subgraph at namespace {namespace}")
            state = child
        values = state.get("values")
        if keys is not None and isinstance(values, dict):
            values = {k: v for k, v in values.items() if k in keys}
        result: dict[str, Any] = {"values": values if values is not None else {}}
        checkpoint = state.get("checkpoint") or {}
        if checkpoint.get("checkpoint_id"):
            result["checkpoint"] = {"id": checkpoint["checkpoint_id"], "ns": checkpoint.get("checkpoint_ns") or ""}
        return result, {"thread_id": thread_id}

    async def list_checkpoints(self, thread_id: str, params: dict[str, Any], auth: AuthContext) -> Answer:
        method = "state.listCheckpoints"
        _only(method, params, {"namespace", "limit", "before"})
        namespace = _namespace(method, params.get("namespace"))
        limit = params.get("limit", 10)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise CommandError("invalid_argument", "state.listCheckpoints: limit must be an integer from 1 to 1000")
        before = params.get("before")
        if before is not None and not isinstance(before, str):
            raise CommandError("invalid_argument", "state.listCheckpoints: before must be a checkpoint id")
        checkpoint = {"checkpoint_ns": "|".join(namespace)} if namespace else None
        states = await self.srv.threads.history(thread_id, limit=limit, before=before, checkpoint=checkpoint, auth=auth)
        summaries = []
        for state in states:
            ref = state.get("checkpoint") or {}
            metadata = state.get("metadata") or {}
            summary: dict[str, Any] = {
                "id": ref.get("checkpoint_id"),
                "timestamp": state.get("created_at"),
                "step": metadata.get("step", -1),
                "metadata": metadata,
            }
            writes = metadata.get("writes")
            if isinstance(writes, dict) and len(writes) == 1:
                summary["node_name"] = next(iter(writes))
            parent = state.get("parent_checkpoint") or {}
            if parent.get("checkpoint_id"):
                summary["parent_id"] = parent["checkpoint_id"]
            summaries.append(summary)
        return {"checkpoints": summaries}, {"thread_id": thread_id}

    async def state_fork(self, thread_id: str, params: dict[str, Any], auth: AuthContext) -> Answer:
        method = "state.fork"
        _only(method, params, {"checkpoint_id", "input", "config"}, {"checkpoint_id"})
        checkpoint_id = params["checkpoint_id"]
        if not isinstance(checkpoint_id, str) or not checkpoint_id:
            raise CommandError("invalid_argument", "state.fork: checkpoint_id must be a string")
        thread = await self.srv.threads.visible(thread_id, auth, "update", {"thread_id": thread_id})
        found = await self.srv.checkpointer.aget_tuple(
            {"configurable": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}}
        )
        if found is None:
            raise CommandError("no_such_checkpoint", f"state.fork: thread {thread_id} has no checkpoint {checkpoint_id}")
        assistant_id = (thread.get("metadata") or {}).get("assistant_id")
        if not isinstance(assistant_id, str):
            raise CommandError("invalid_argument", f"thread {thread_id} has no assistant to run")
        body = models.RunCreate(
            assistant_id=assistant_id,
            input=params.get("input"),
            config=_object(method, params, "config"),
            checkpoint_id=checkpoint_id,
            stream_resumable=True,
            stream_subgraphs=True,
        )
        run, meta = await self._start(thread_id, body, auth)
        return {"run_id": run["run_id"], "thread_id": thread_id}, meta

    # -- agent -----------------------------------------------------------------------------

    async def get_tree(self, thread_id: str, params: dict[str, Any], auth: AuthContext) -> Answer:
        method = "agent.getTree"
        _only(method, params, {"run_id"})
        run_id = params.get("run_id")
        if run_id is not None and not isinstance(run_id, str):
            raise CommandError("invalid_argument", "agent.getTree: run_id must be a string")
        thread = await self.srv.threads.visible(thread_id, auth)
        storage = self.srv.storage
        if run_id is not None:
            run = await storage.get_run(run_id, thread_id)
            if run is None:
                raise CommandError("no_such_run", f"agent.getTree: no run {run_id} on thread {thread_id}")
        else:
            latest = await storage.list_runs(thread_id, limit=1, offset=0, status=None)
            run = latest[0] if latest else None
        assistant_id = (run or {}).get("assistant_id") or (thread.get("metadata") or {}).get("assistant_id")
        if not isinstance(assistant_id, str):
            raise CommandError("no_such_run", f"agent.getTree: thread {thread_id} has no run yet")
        assistant = await self.srv.assistants.get(assistant_id, auth)
        state = await self.srv.threads.state(thread_id, subgraphs=True, auth=auth)
        root_status = _run_status(run, thread)
        tree = _tree([], str(assistant.get("graph_id") or ""), root_status, state)
        return {"tree": tree}, {"thread_id": thread_id}


def _run_status(run: dict[str, Any] | None, thread: dict[str, Any]) -> str:
    status = (run or {}).get("status")
    if status in ("pending", "running"):
        return "running"
    if status in ("error", "timeout"):
        return "failed"
    if status == "interrupted":
        return "failed"
    return "interrupted" if thread.get("status") == "interrupted" else "completed"


def _tree(namespace: list[str], graph_name: str, status: str, state: dict[str, Any]) -> dict[str, Any]:
    """An agent tree node for ``state`` with a child per task that runs a subgraph."""
    children = []
    for task in state.get("tasks") or ():
        child_state = task.get("state")
        if not child_state:
            continue
        if task.get("interrupts"):
            child_status = "interrupted"
        elif task.get("error"):
            child_status = "failed"
        else:
            child_status = "running" if status == "running" else status
        segment = f"{task.get('name')}:{task.get('id')}"
        children.append(_tree([*namespace, segment], str(task.get("name")), child_status, child_state))
    node: dict[str, Any] = {"namespace": namespace, "status": status, "graph_name": graph_name}
    if children:
        node["children"] = children
    return serde.to_jsonable(node)
