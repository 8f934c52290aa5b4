"""Runs: creation (config/context/metadata merging, multitask strategies), control and lookup."""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from graphdock import serde
from graphdock import models
from graphdock.backends.base import EventLog, LocalEventLog, Queue, Row, Storage
from graphdock.config import Settings
from graphdock.auth import ANONYMOUS, AuthContext
from graphdock.auth.handlers import Authorizer
from graphdock.errors import BadRequest, Forbidden, NotFound, Unprocessable
from graphdock.filters import auth_match
from graphdock.hosting import system_assistant_id
from graphdock.services.threads import ThreadsService
from graphdock.hosting import Hosting
from graphdock.observability import tracing
from graphdock.runs.executor import Executor
from graphdock.runs.processes import RunProcesses, RunProcessLost
from graphdock.services.assistants import AssistantsService
from graphdock.webhooks.policy import WebhookPolicy
from graphdock.services.common import (
    clean_configurable,
    clean_metadata,
    mirror_context,
    normalise_config,
    parse_uuid,
)

NO_RUNS_TO_CANCEL = (
    "No matching runs to cancel. Please verify the thread ID and run IDs are correct, and the"
    " runs haven't been deleted or completed."
)


@dataclass
class PreparedRun:
    """A validated run request: the run row and the thread defaults to insert with it."""

    run: Row
    thread: Row
    if_not_exists: str


class RunsService:
    def __init__(
        self,
        storage: Storage,
        hosting: Hosting,
        events: EventLog,
        queue: Queue,
        assistants: AssistantsService,
        settings: Settings,
        authorizer: Authorizer,
        threads: ThreadsService,
    ) -> None:
        self.storage = storage
        self.hosting = hosting
        self.events = events
        self.queue = queue
        self.assistants = assistants
        self.settings = settings
        self.authorizer = authorizer
        self.threads = threads
        self.webhook_policy: WebhookPolicy = settings.config.webhooks
        self.executor = Executor(
            storage, hosting, events, run_timeout=settings.run_timeout, max_attempts=settings.max_attempts
        )
        # run processes share this process's in-memory event log (the embedded backend)
        local = isinstance(events, LocalEventLog)
        self.processes = RunProcesses(
            settings.to_json(),
            events,
            hosting.topology,
            size=settings.run_processes if local else 0,
            per_process=settings.n_jobs_per_worker,
            policy=settings.run_process_policy,
            busy=lambda: queue.busy,
        )
        self._local = 0  # runs executing in this process
        # whether this process executes runs (an API process with --n-jobs-per-worker 0 does not)
        self.executes = settings.n_jobs_per_worker > 0

    async def start(self) -> None:
        await self.processes.start()
        await self.queue.start(self._execute if self.executes else None)

    async def stop(self) -> None:
        await self.queue.stop(self.settings.shutdown_timeout)
        await self.processes.stop()

    async def _execute(self, run_id: str, claimed: Row | None = None) -> None:
        """Execute a run here or hand it to a run process (see :mod:`graphdock.runs.processes`)."""
        proc = self.processes.pick(self._local)
        if proc is None and self.processes.policy == "always" and self.processes.enabled:
            try:
                proc = await self.processes.wait_ready()  # graph code never runs here
            except RunProcessLost as exc:
                await self._lost(run_id, exc)
                return
        executing = len(self.processes.running) + (0 if self.processes.policy == "always" else 1)
        self.queue.set_executors(max(1, executing))
        if proc is None:
            self._local += 1
            try:
                await self.executor.execute(run_id, claimed)
            finally:
                self._local -= 1
            return
        future = proc.execute(run_id, claimed is not None)
        await self.events.on_cancel(run_id, lambda action: proc.cancel(run_id, action))
        try:
            await future
        except RunProcessLost as exc:
            await self._lost(run_id, exc)
        finally:
            await self.events.release_cancel(run_id)

    async def _lost(self, run_id: str, exc: Exception) -> None:
        """A run whose process exited before it ended: recorded as failed (executing it
        again could take the server down with it)."""
        row = await self.storage.get_run(run_id)
        if row is not None and row["status"] in ("pending", "running"):
            await self.executor.fail(row, {"error": type(exc).__name__, "message": str(exc)})
        else:
            await self.events.close(run_id)

    # -- creation ----------------------------------------------------------------

    async def create(
        self,
        body: models.RunCreate,
        *,
        thread_id: str | None,
        auth: AuthContext = ANONYMOUS,
        request_id: str | None = None,
        attached: bool = False,
        headers: dict[str, str] | None = None,
    ) -> Row:
        """Insert a pending run (and its thread when needed) and hand it to the queue
        (``attached``: see :meth:`insert`; ``headers``: see :meth:`prepare`)."""
        prepared = await self.prepare(
            body, thread_id=thread_id, auth=auth, request_id=request_id, headers=headers
        )
        return await self.insert(prepared, attached=attached)

    async def create_batch(
        self,
        bodies: list[models.RunCreate],
        *,
        auth: AuthContext = ANONYMOUS,
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> list[Row]:
        """Stateless runs, all validated before any is inserted (a bad item inserts nothing)."""
        prepared = [
            await self.prepare(body, thread_id=None, auth=auth, request_id=request_id, headers=headers)
            for body in bodies
        ]
        return [await self.insert(item) for item in prepared]

    async def prepare(
        self,
        body: models.RunCreate,
        *,
        thread_id: str | None,
        auth: AuthContext = ANONYMOUS,
        request_id: str | None = None,
        extra_configurable: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> "PreparedRun":
        """Validate and authorize a run request and build its row; nothing is written yet.

        ``extra_configurable``: server keys set in the run's ``config.configurable`` (a
        cron fire's ``cron_id``). ``headers``: the request headers that go into the run's
        configurable (``http.configurable_headers``); the server keys win over them."""
        auth_user, auth_identity, permissions = auth.user, auth.identity, list(auth.permissions)
        stateless = thread_id is None
        assistant_id = self.assistants.resolve_id(body.assistant_id)
        assistant = await self.storage.get_assistant(assistant_id)
        if assistant is None or assistant["graph_id"] not in self.hosting:
            raise NotFound("Thread or assistant not found.")
        if assistant_id != system_assistant_id(assistant["graph_id"]):
            read = await self.authorizer.authorize(auth, "assistants", "read", {"assistant_id": assistant_id})
            if read and not auth_match(assistant["metadata"], read):
                raise NotFound("Thread or assistant not found.")
        temporary = stateless and body.on_completion != "keep"
        if body.command is not None and body.command.get("resume") is not None and stateless:
            # a stateless run always starts on a fresh thread: there is nothing to resume
            raise BadRequest("You must provide a thread_id when resuming.")
        if stateless:
            thread_id = serde.uuid7()
            existing_thread = None
        else:
            assert thread_id is not None
            existing_thread = await self.storage.get_thread(thread_id)
            if existing_thread is None and (body.if_not_exists or "reject") != "create":
                raise NotFound("Thread or assistant not found.")
        run_id = serde.uuid7()
        graph_id = assistant["graph_id"]

        run_config = normalise_config(body.config.model_dump(exclude_none=True) if body.config else {})
        run_config, run_context = mirror_context(run_config, body.context)
        thread_config = (existing_thread or {}).get("config") or {}
        assistant_config = assistant["config"] or {}

        merged_config = {**assistant_config, **run_config}
        configurable = {
            **(assistant_config.get("configurable") or {}),
            **(thread_config.get("configurable") or {}),
            **clean_configurable(run_config.get("configurable")),
        }
        user_id = (
            (run_config.get("configurable") or {}).get("user_id")
            or (thread_config.get("configurable") or {}).get("user_id")
            or (assistant_config.get("configurable") or {}).get("user_id")
            or auth_identity
        )
        after = float(body.after_seconds or 0)
        now = serde.now()
        created_at = serde.iso(now + timedelta(seconds=after)) if after > 0 else serde.iso(now)
        configurable.update(headers or {})
        configurable.update(
            {
                "run_id": run_id,
                "thread_id": thread_id,
                "graph_id": graph_id,
                "assistant_id": assistant_id,
                "user_id": user_id,
                "langgraph_auth_user": auth_user,
                "langgraph_auth_user_id": auth_identity,
                "langgraph_auth_permissions": list(permissions or []),
                "langgraph_request_id": request_id or serde.uuid7(),
                "__request_start_time_ms__": int(time.time() * 1000),
                "__after_seconds__": after,
                **(extra_configurable or {}),
            }
        )
        if tracing.enabled:  # the run's span starts in this trace, wherever it executes
            configurable.update(tracing.carrier())
        checkpoint = dict(body.checkpoint or {})
        if body.checkpoint_id:
            checkpoint["checkpoint_id"] = parse_uuid(body.checkpoint_id, "checkpoint")
        for key in ("checkpoint_id", "checkpoint_ns", "checkpoint_map"):
            if checkpoint.get(key) is not None:
                configurable[key] = checkpoint[key]
        if body.strict_resume:
            configurable["__pregel_strict_resume"] = True
        value: dict[str, Any] = {
            "thread_id": None if temporary else thread_id,
            "assistant_id": assistant_id,
            "run_id": run_id,
            "status": "pending",
            "metadata": clean_metadata(body.metadata),
            "prevent_insert_if_inflight": body.multitask_strategy == "reject",
            "multitask_strategy": body.multitask_strategy or "enqueue",
            "if_not_exists": "create" if stateless else (body.if_not_exists or "reject"),
            "after_seconds": body.after_seconds,
            "kwargs": {
                "input": body.input,
                "command": body.command,
                "config": run_config,
                "context": run_context,
                "stream_mode": body.stream_mode,
            },
        }
        flt = await self.authorizer.authorize(auth, "threads", "create_run", value)
        if existing_thread is not None and flt and not auth_match(existing_thread["metadata"], flt):
            raise NotFound("Thread or assistant not found.")
        run_metadata = clean_metadata(value.get("metadata"))
        metadata = {
            **(assistant["metadata"] or {}),
            **((existing_thread or {}).get("metadata") or {}),
            **clean_metadata(run_config.get("metadata")),
            **run_metadata,
            "assistant_id": assistant_id,
        }
        merged_config["configurable"] = configurable
        merged_config["metadata"] = metadata
        context = {**(assistant["context"] or {}), **run_context}
        self.hosting.validate_context(graph_id, context)

        if body.durability is not None:
            durability = body.durability
        elif body.checkpoint_during is False:
            durability = "exit"
        else:
            durability = "async"
        stream_mode = body.stream_mode if body.stream_mode is not None else ["values"]
        if isinstance(stream_mode, str):
            stream_mode = [stream_mode]
        kwargs = {
            "input": body.input,
            "command": body.command,
            "config": merged_config,
            "context": context,
            "stream_mode": list(dict.fromkeys(stream_mode)),
            "interrupt_before": body.interrupt_before,
            "interrupt_after": body.interrupt_after,
            "webhook": self.webhook_policy.check(body.webhook) if body.webhook is not None else None,
            "feedback_keys": None,
            "temporary": temporary,
            "subgraphs": bool(body.stream_subgraphs),
            "resumable": bool(body.stream_resumable),
            "checkpoint_during": durability != "exit",
            "durability": durability,
        }
        strategy = body.multitask_strategy or "enqueue"
        run = {
            "run_id": run_id,
            "thread_id": thread_id,
            "assistant_id": assistant_id,
            "created_at": created_at,
            "updated_at": created_at,
            "status": "pending",
            "metadata": run_metadata,
            "kwargs": kwargs,
            "multitask_strategy": strategy,
            "attempt": 0,
        }
        thread_metadata = {"graph_id": graph_id, "assistant_id": assistant_id}
        if existing_thread is None:
            thread_metadata = {
                **clean_metadata(run_config.get("metadata")),
                **run_metadata,
                **thread_metadata,
            }
        thread_defaults = {
            "metadata": thread_metadata,
            "config": {
                **{k: v for k, v in merged_config.items() if k not in ("configurable", "metadata")},
                "configurable": copy.deepcopy(assistant_config.get("configurable") or {}),
            },
        }
        return PreparedRun(
            run=run,
            thread=thread_defaults,
            if_not_exists="create" if stateless else (body.if_not_exists or "reject"),
        )

    async def insert(self, prepared: "PreparedRun", *, attached: bool = False) -> Row:
        """Write a prepared run (and its thread), apply its multitask strategy, queue it.

        ``attached`` (the client waits on the run, whose row it is not shown): when a worker
        and the thread are free, the run is written already claimed and handed straight to
        a worker, one transaction fewer than writing it pending and claiming it.
        """
        run = prepared.run
        run_id, thread_id = run["run_id"], run["thread_id"]
        strategy = run["multitask_strategy"]
        delayed = run["created_at"] > serde.now_iso()  # after_seconds
        start = attached and self.executes and not delayed and self.queue.can_start(thread_id)
        await self.events.open(run_id, thread_id, resumable=bool(run["kwargs"]["resumable"]))
        try:
            row, inflight = await self.storage.create_run(
                run,
                thread=prepared.thread,
                if_not_exists=prepared.if_not_exists,
                multitask_strategy=strategy,
                start=start,
            )
        except BaseException:
            await self.events.close(run_id)
            raise
        if row["status"] == "running":
            if await self.queue.start_claimed(row):
                return row
            # a worker was taken meanwhile: back to pending, and through the queue (its
            # attempt count then starts at 2)
            row = await self.storage.set_run_status(run_id, "pending") or row
        if strategy in ("interrupt", "rollback") and inflight:
            for other in inflight:
                await self._cancel_one(other, thread_id, strategy)  # type: ignore[arg-type]
        await self.queue.enqueue(row)
        return row

    # -- lookup -------------------------------------------------------------------

    async def get(self, thread_id: str, run_id: str, auth: AuthContext = ANONYMOUS) -> Row:
        await self.threads.visible(thread_id, auth)
        row = await self.storage.get_run(run_id, thread_id)
        if row is None:
            raise NotFound("Not Found")
        return row

    async def list(
        self, thread_id: str, *, limit: int, offset: int, status: str | None, auth: AuthContext = ANONYMOUS
    ) -> list[Row]:
        await self.threads.visible(thread_id, auth)
        return await self.storage.list_runs(thread_id, limit=limit, offset=offset, status=status)

    async def delete(self, thread_id: str, run_id: str, auth: AuthContext = ANONYMOUS) -> None:
        await self.threads.visible(thread_id, auth, "delete", {"thread_id": thread_id, "run_id": run_id})
        row = await self.storage.get_run(run_id, thread_id)
        if row is None:
            raise NotFound("Run not found")
        if row["status"] in ("pending", "running"):
            await self._cancel_one(run_id, thread_id, "interrupt")
            await self.wait_until_finished(run_id)
        await self.hosting.checkpointer.adelete_for_runs([run_id])
        await self.storage.delete_run(run_id, thread_id)

    # -- cancellation ----------------------------------------------------------------

    async def _cancel_one(self, run_id: str, thread_id: str, action: str) -> bool:
        """Stop a pending or running run; False when it is neither."""
        row = await self.storage.get_run(run_id, thread_id)
        if row is None or row["status"] not in ("pending", "running"):
            return False
        if row["status"] == "pending" and await self.storage.cancel_pending_run(
            run_id, thread_id, delete=action == "rollback"
        ):
            # settled before any process started it
            await self.events.close(run_id)
            return True
        # running (or claimed meanwhile): whichever process executes it stops it
        await self.events.request_cancel(run_id, action)  # type: ignore[arg-type]
        return True

    async def cancel(
        self, thread_id: str, run_ids: list[str], *, action: str, wait: bool, auth: AuthContext = ANONYMOUS
    ) -> list[str]:
        value = {"thread_id": thread_id, "action": action, "metadata": {"run_ids": run_ids, "status": None}}
        try:
            await self.threads.visible(thread_id, auth, "update", value)
        except NotFound:
            raise NotFound(NO_RUNS_TO_CANCEL) from None
        cancelled = [rid for rid in run_ids if await self._cancel_one(rid, thread_id, action)]
        if not cancelled:
            raise NotFound(NO_RUNS_TO_CANCEL)
        if wait:
            for rid in cancelled:
                await self.wait_until_finished(rid)
        return cancelled

    async def cancel_many(
        self,
        *,
        thread_id: str | None,
        run_ids: list[str] | None,
        status: str | None,
        action: str,
        auth: AuthContext = ANONYMOUS,
    ) -> int:
        if status is not None:
            if thread_id is not None or run_ids is not None:
                raise Unprocessable("status cannot be combined with thread_id or run_ids")
            statuses = ("pending", "running") if status == "all" else (status,)
            targets = [
                (r["run_id"], r["thread_id"])
                for r in await self.storage.runs_with_status(statuses)
            ]
        elif thread_id is not None:
            if run_ids:
                targets = [(rid, thread_id) for rid in run_ids]
            else:
                targets = [(r["run_id"], thread_id) for r in await self.storage.inflight_runs(thread_id)]
        elif run_ids:
            targets = []
            for rid in run_ids:
                row = await self.storage.get_run(rid)
                if row is not None:
                    targets.append((rid, row["thread_id"]))
        else:
            raise Unprocessable("give status, or thread_id and/or run_ids")
        allowed: dict[str, bool] = {}
        n = 0
        for rid, tid in targets:
            if tid not in allowed:
                value = {"thread_id": tid, "action": action, "metadata": {"run_ids": run_ids, "status": status}}
                try:
                    await self.threads.visible(tid, auth, "update", value)
                    allowed[tid] = True
                except (NotFound, Forbidden):
                    allowed[tid] = False
            if allowed[tid] and await self._cancel_one(rid, tid, action):
                n += 1
        if n == 0:
            raise NotFound("No runs found to cancel.")
        return n

    async def cancel_thread_runs(self, thread_id: str, *, action: str, wait: bool) -> None:
        for row in await self.storage.inflight_runs(thread_id):
            await self._cancel_one(row["run_id"], thread_id, action)
            if wait:
                await self.wait_until_finished(row["run_id"])

    async def cancel_assistant_runs(self, assistant_id: str) -> None:
        for row in await self.storage.runs_with_status(("pending", "running")):
            if row["assistant_id"] == assistant_id:
                await self._cancel_one(row["run_id"], row["thread_id"], "interrupt")

    async def wait_until_finished(self, run_id: str) -> None:
        async for _ in self.events.subscribe(run_id, at_end=True):
            pass
