"""Threads: conversations with cached state, checkpoints and their state APIs."""

from __future__ import annotations

import copy
import logging
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import InvalidUpdateError
from langgraph.types import StateSnapshot

from graphdock import serde
from graphdock import models
from graphdock.auth import ANONYMOUS, AuthContext
from graphdock.auth.handlers import Authorizer
from graphdock.filters import auth_match
from graphdock.backends.base import EventLog, Page, Row, Storage
from graphdock.errors import APIError, BadRequest, Conflict, Forbidden, NotFound
from graphdock.hosting import Hosting
from graphdock.hosting.state import EMPTY_STATE, snapshot_json, thread_interrupts
from graphdock.services.common import clean_metadata, parse_uuid

logger = logging.getLogger("graphdock.threads")


# What a bad update (unknown node, wrong value type for a reducer, ...) raises inside langgraph.
_BAD_UPDATE = (InvalidUpdateError, ValueError, TypeError, KeyError)


def thread_status_for(snapshot: StateSnapshot | None) -> str:
    """``interrupted`` when the latest checkpoint has pending work, else ``idle``."""
    return "interrupted" if snapshot is not None and snapshot.next else "idle"


def public_thread(row: Row) -> Row:
    """A thread row as the API shows it.

    ``interrupts`` (and ``error``, when there is none) appear only once the thread's
    state has been recorded by a run or an update; a fresh thread has neither key.
    """
    if row.get("interrupts") is None:
        row = {k: v for k, v in row.items() if k != "interrupts"}
        if row.get("error") is None:
            row.pop("error", None)
    return row


def _extract(row: Row, path: str) -> Any:
    """Follow ``a.b[0].c`` through a thread row; None where the path does not exist."""
    value: Any = row
    token = ""
    parts: list[Any] = []
    for ch in path:
        if ch == ".":
            if token:
                parts.append(token)
            token = ""
        elif ch == "[":
            if token:
                parts.append(token)
            token = "["
        elif ch == "]":
            try:
                parts.append(int(token[1:]))
            except ValueError:
                parts.append(token[1:])
            token = ""
        else:
            token += ch
    if token:
        parts.append(token)
    for part in parts:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


class ThreadsService:
    def __init__(
        self,
        storage: Storage,
        hosting: Hosting,
        events: EventLog,
        checkpointer: BaseCheckpointSaver,
        authorizer: Authorizer,
    ) -> None:
        self.storage = storage
        self.hosting = hosting
        self.events = events
        self.checkpointer = checkpointer
        self.authorizer = authorizer
        #: thread TTLs (graphdock.services.thread_ttl.ThreadTTLs), set by the server
        self.ttls: Any = None

    # -- rows -------------------------------------------------------------------

    async def get(self, thread_id: str, auth: AuthContext = ANONYMOUS) -> Row:
        return public_thread(await self.visible(thread_id, auth))

    async def visible(
        self, thread_id: str, auth: AuthContext, action: str = "read", value: Row | None = None
    ) -> Row:
        """The thread row if ``auth`` may perform ``action`` on it, else 404."""
        flt = await self.authorizer.authorize(auth, "threads", action, value or {"thread_id": thread_id})
        return await self._row(thread_id, flt)

    async def _row(self, thread_id: str, flt: Row | None = None) -> Row:
        row = await self.storage.get_thread(thread_id, auth_filter=flt)
        if row is None:
            raise NotFound(f"Thread with ID {thread_id} not found")
        return row

    async def create(self, body: models.ThreadCreate, auth: AuthContext = ANONYMOUS) -> tuple[Row, str | None]:
        """Create a thread; with ``supersteps`` also seed its state.

        Returns the row and, when seeding failed, the problem (the thread is kept).
        """
        thread_id = parse_uuid(body.thread_id, "thread") if body.thread_id else serde.uuid7()
        value: dict[str, Any] = {
            "thread_id": thread_id,
            "metadata": clean_metadata(body.metadata),
            "if_exists": body.if_exists,
        }
        flt = await self.authorizer.authorize(auth, "threads", "create", value)
        now = serde.now_iso()
        row, created = await self.storage.create_thread(
            {
                "thread_id": thread_id,
                "created_at": now,
                "updated_at": now,
                "state_updated_at": now,
                "metadata": clean_metadata(value.get("metadata")),
                "config": {},
                "status": "idle",
            },
            if_exists=body.if_exists,
            auth_filter=flt,
        )
        if self.ttls is not None and (created or body.ttl is not None):
            await self.ttls.apply(thread_id, body.ttl, created=created)
        user = auth.user
        problem = None
        if created and body.supersteps:
            try:
                row = await self._apply_supersteps(row, body.supersteps, user)
            except Exception as exc:  # the thread stays, without any of the state; report why
                detail = exc.detail if isinstance(exc, APIError) else str(exc) or type(exc).__name__
                problem = f"Thread {thread_id} was created, but there were problems updating the state: {detail}"
                await self.checkpointer.adelete_thread(thread_id)
        return public_thread(row), problem

    async def _apply_supersteps(self, row: Row, supersteps: list[models.Superstep], user: Any) -> Row:
        from langgraph.types import StateUpdate

        from graphdock.runs.executor import build_command

        graph_id = row["metadata"].get("graph_id")
        if not graph_id:
            raise BadRequest("the thread has no graph_id in its metadata (pass graph_id when creating it)")
        updates = [
            [
                StateUpdate(build_command(u.command) if u.command else u.values, u.as_node)
                for u in step.updates
            ]
            for step in supersteps
        ]
        config = self._config(row)
        async with self.hosting.open_graph(graph_id, "state.update", config=config, user=user) as graph:
            await graph.abulk_update_state(config, updates)
            async with self.hosting.open_graph(graph_id, "state.read", config=config, user=user) as reader:
                snapshot = await reader.aget_state(config)
        updated = await self.storage.update_thread_state(
            row["thread_id"],
            values=serde.to_jsonable(snapshot.values),
            interrupts=thread_interrupts(snapshot),
            status=thread_status_for(snapshot),
            state_updated=True,
        )
        return updated or row

    async def patch(self, thread_id: str, body: models.ThreadPatch, auth: AuthContext = ANONYMOUS) -> Row:
        value: dict[str, Any] = {"thread_id": thread_id, "metadata": clean_metadata(body.metadata)}
        flt = await self.authorizer.authorize(auth, "threads", "update", value)
        row = await self.storage.patch_thread(
            thread_id, metadata=clean_metadata(value.get("metadata")), auth_filter=flt
        )
        if row is None:
            raise NotFound("Not Found")
        if body.ttl is not None and self.ttls is not None:
            await self.ttls.apply(thread_id, body.ttl, created=False)
        return public_thread(row)

    async def delete(self, thread_id: str, flt: Row | None = None) -> None:
        if not await self.storage.delete_thread(thread_id, auth_filter=flt):
            raise NotFound(f"Thread with ID {thread_id} not found")
        await self.checkpointer.adelete_thread(thread_id)

    async def _search_filter(self, auth: AuthContext, body: Any) -> Row | None:
        value: dict[str, Any] = {
            "metadata": body.metadata,
            "values": body.values,
            "status": body.status,
            "limit": getattr(body, "limit", None),
            "offset": getattr(body, "offset", None),
        }
        return await self.authorizer.authorize(auth, "threads", "search", value)

    async def search(self, body: models.ThreadSearch, auth: AuthContext = ANONYMOUS) -> Page:
        ids = [parse_uuid(i, "thread") for i in body.ids] if body.ids is not None else None
        flt = await self._search_filter(auth, body)
        page = await self.storage.search_threads(
            auth_filter=flt,
            ids=ids,
            metadata=body.metadata,
            values=body.values,
            status=body.status,
            limit=body.limit,
            offset=body.offset,
            sort_by=body.sort_by or "updated_at",
            sort_order=body.sort_order or "desc",
        )
        rows = [public_thread(row) for row in page.rows]
        if body.extract:
            for row in rows:
                row["extracted"] = {alias: _extract(row, path) for alias, path in body.extract.items()}
        return Page(rows, page.has_more)

    async def count(self, body: models.ThreadCount, auth: AuthContext = ANONYMOUS) -> int:
        flt = await self._search_filter(auth, body)
        return await self.storage.count_threads(
            metadata=body.metadata, values=body.values, status=body.status, auth_filter=flt
        )

    async def copy(self, thread_id: str, auth: AuthContext = ANONYMOUS) -> Row:
        read = await self.authorizer.authorize(auth, "threads", "read", {"thread_id": thread_id})
        source = await self.storage.get_thread(thread_id, auth_filter=read)
        if source is None:
            raise Conflict("Conflict")
        new_id = serde.uuid7()
        value: dict[str, Any] = {"thread_id": new_id, "metadata": copy.deepcopy(source["metadata"])}
        await self.authorizer.authorize(auth, "threads", "create", value)
        now = serde.now_iso()
        row, _ = await self.storage.create_thread(
            {
                "thread_id": new_id,
                "created_at": now,
                "updated_at": now,
                "state_updated_at": now,
                "metadata": value.get("metadata") or {},
                "config": {},
                "status": "idle",
                "values": source.get("values"),
                "interrupts": source.get("interrupts"),
            },
            if_exists="raise",
        )
        try:
            await self._copy_checkpoints(thread_id, new_id)
        except BaseException:
            await self.storage.delete_thread(new_id)
            await self.checkpointer.adelete_thread(new_id)
            raise
        status = source["status"] if source["status"] in ("interrupted",) else "idle"
        return public_thread(await self.storage.update_thread_state(new_id, status=status) or row)

    async def _copy_checkpoints(self, source_id: str, target_id: str) -> None:
        tuples = [t async for t in self.checkpointer.alist({"configurable": {"thread_id": source_id}})]
        for tup in reversed(tuples):
            conf = tup.config["configurable"]
            ns = conf.get("checkpoint_ns", "")
            parent_id = (tup.parent_config or {}).get("configurable", {}).get("checkpoint_id")
            target = {"configurable": {"thread_id": target_id, "checkpoint_ns": ns}}
            if parent_id:
                target["configurable"]["checkpoint_id"] = parent_id
            metadata = {**tup.metadata, "thread_id": target_id} if "thread_id" in tup.metadata else tup.metadata
            saved = await self.checkpointer.aput(
                target, tup.checkpoint, metadata, dict(tup.checkpoint.get("channel_versions", {}))
            )
            by_task: dict[str, list[tuple[str, Any]]] = {}
            for task_id, channel, value in tup.pending_writes or ():
                by_task.setdefault(task_id, []).append((channel, value))
            for task_id, writes in by_task.items():
                await self.checkpointer.aput_writes(saved, writes, task_id)

    async def prune(self, body: models.ThreadPrune, auth: AuthContext = ANONYMOUS) -> int:
        """Keep only the latest checkpoint of each listed thread; unknown ids are skipped.

        A thread with a pending or running run is a 409 (its run is still writing
        checkpoints); nothing is pruned then. (Strategy ``delete`` is
        :meth:`graphdock.server.Server.delete_thread` per id.)
        """
        ids = await self.prunable(body, auth)
        for thread_id in ids:
            if await self.storage.inflight_runs(thread_id):
                raise Conflict(f"Thread {thread_id} is busy: a run is pending or running on it")
        if ids:
            await self.checkpointer.aprune(ids, strategy="keep_latest")  # type: ignore[attr-defined]
        return len(ids)

    async def prunable(self, body: models.ThreadPrune, auth: AuthContext) -> list[str]:
        """The existing threads among ``body.thread_ids``; 404 if ``auth`` may not delete one."""
        ids = list(dict.fromkeys(parse_uuid(i, "thread") for i in body.thread_ids))
        await self.authorizer.authorize(auth, "threads", "delete", {"thread_ids": ids})
        found = []
        for thread_id in ids:
            if await self.storage.get_thread(thread_id) is None:
                continue
            await self.visible(thread_id, auth, "delete")
            found.append(thread_id)
        return found

    # -- state (access contexts threads.read / threads.update) -------------------

    @staticmethod
    def _config(row: Row, checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
        base = copy.deepcopy(row.get("config") or {})
        configurable = dict(base.get("configurable") or {})
        configurable.update({"thread_id": row["thread_id"], "checkpoint_ns": ""})
        if checkpoint:
            for key in ("checkpoint_id", "checkpoint_ns", "checkpoint_map"):
                if checkpoint.get(key) is not None:
                    configurable[key] = checkpoint[key]
        base["configurable"] = configurable
        return base

    async def _require_checkpoint(self, config: dict[str, Any]) -> None:
        """404 when ``config`` names a checkpoint that the thread does not have."""
        conf = config["configurable"]
        checkpoint_id = conf.get("checkpoint_id")
        if checkpoint_id is None:
            return
        lookup = {
            "configurable": {
                "thread_id": conf["thread_id"],
                "checkpoint_ns": conf.get("checkpoint_ns", ""),
                "checkpoint_id": checkpoint_id,
            }
        }
        if await self.checkpointer.aget_tuple(lookup) is None:
            raise NotFound(f"Checkpoint {checkpoint_id} not found on thread {conf['thread_id']}")

    async def state(
        self,
        thread_id: str,
        *,
        subgraphs: bool = False,
        checkpoint: dict[str, Any] | None = None,
        auth: AuthContext = ANONYMOUS,
    ) -> dict[str, Any]:
        row = await self.visible(thread_id, auth)
        user = auth.user
        graph_id = row["metadata"].get("graph_id")
        if not graph_id or graph_id not in self.hosting:
            return dict(EMPTY_STATE)
        config = self._config(row, checkpoint)
        await self._require_checkpoint(config)
        async with self.hosting.open_graph(graph_id, "state.read", config=config, user=user) as graph:
            snapshot = await graph.aget_state(config, subgraphs=subgraphs)
        return snapshot_json(snapshot)

    async def history(
        self,
        thread_id: str,
        *,
        limit: int,
        before: Any = None,
        metadata: dict[str, Any] | None = None,
        checkpoint: dict[str, Any] | None = None,
        auth: AuthContext = ANONYMOUS,
    ) -> list[dict[str, Any]]:
        row = await self.visible(thread_id, auth)
        user = auth.user
        graph_id = row["metadata"].get("graph_id")
        if not graph_id or graph_id not in self.hosting:
            return []
        config = self._config(row, checkpoint)
        before_config = None
        if isinstance(before, str):
            before_config = {"configurable": {"checkpoint_id": before}}
        elif isinstance(before, dict):
            inner = before.get("configurable", before)
            if not isinstance(inner, dict) or not inner.get("checkpoint_id"):
                raise BadRequest("before must be a checkpoint id or a checkpoint config with checkpoint_id")
            before_config = {"configurable": {"checkpoint_id": inner["checkpoint_id"]}}
        async with self.hosting.open_graph(graph_id, "state.read", config=config, user=user) as graph:
            return [
                snapshot_json(s)
                async for s in graph.aget_state_history(
                    config, filter=metadata or None, before=before_config, limit=limit
                )
            ]

    async def update_state(
        self, thread_id: str, body: models.ThreadStateUpdate, auth: AuthContext = ANONYMOUS
    ) -> dict[str, Any]:
        update = await self.authorizer.authorize(auth, "threads", "update", {"thread_id": thread_id})
        row = await self.visible(thread_id, auth)
        if update and not auth_match(row["metadata"], update):
            raise Forbidden("Forbidden")
        user = auth.user
        if await self.storage.inflight_runs(thread_id):
            raise Conflict("Thread is busy: a run is pending or running on it")
        graph_id = row["metadata"].get("graph_id")
        if not graph_id:
            raise BadRequest(f"Thread {thread_id} has no graph ID; run it once or set metadata.graph_id")
        checkpoint = body.checkpoint.model_dump(exclude_none=True) if body.checkpoint else {}
        if body.checkpoint_id:
            checkpoint["checkpoint_id"] = body.checkpoint_id
        config = self._config(row, checkpoint)
        await self._require_checkpoint(config)
        async with self.hosting.open_graph(graph_id, "state.update", config=config, user=user) as graph:
            try:
                next_config = await graph.aupdate_state(config, body.values, as_node=body.as_node)
            except _BAD_UPDATE as exc:
                raise BadRequest(f"Invalid state update: {exc}") from None
            read_config = self._config(row)
            async with self.hosting.open_graph(
                graph_id, "state.read", config=read_config, user=user
            ) as reader:
                snapshot = await reader.aget_state(read_config)
        await self.storage.update_thread_state(
            thread_id,
            values=serde.to_jsonable(snapshot.values),
            interrupts=thread_interrupts(snapshot),
            error=None,
            status=thread_status_for(snapshot),
            state_updated=True,
        )
        state = snapshot_json(snapshot)
        await self.events.publish_thread(
            thread_id, "state_update", serde.dumps({"state": state, "thread_id": thread_id})
        )
        conf = next_config["configurable"]
        ref = {
            "thread_id": conf.get("thread_id"),
            "checkpoint_ns": conf.get("checkpoint_ns", ""),
            "checkpoint_id": conf.get("checkpoint_id"),
        }
        return {"checkpoint": ref, "configurable": ref, "checkpoint_id": ref["checkpoint_id"]}
