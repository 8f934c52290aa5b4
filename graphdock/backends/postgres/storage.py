"""PostgreSQL implementation of :class:`graphdock.backends.base.Storage`.

Every method is one statement or one transaction on a connection of the shared pool,
committed before it returns; nothing is cached (other processes write the same rows).
The two writes of every run, ``create_run`` and ``finish_run``, are one call each of a
server-side function (:mod:`.schema`): one round trip instead of a transaction of four
to six statements.
Semantics, error texts and row shapes are those of the SQLite adapter
(:mod:`graphdock.backends.sqlite.storage`); the differences are what several processes
need:

- ``create_run`` locks the thread row (``SELECT ... FOR UPDATE``; a thread it creates is
  inserted with ``ON CONFLICT DO NOTHING`` and then locked) so that the in-flight list and
  multitask ``reject`` are right when two processes create runs on one thread at once;
- at most one run per thread is ``running``: a partial unique index says so, and
  :meth:`PostgresStorage.claim_run` returns None when it refuses;
- a run's status written from the task that executes it under a lease (see
  :data:`~graphdock.backends.postgres.database.CURRENT_LEASE`) is written only while
  that lease holds: a worker that lost a run to another cannot overwrite its outcome;
- when a write may have made a pending run claimable (a run created, handed back,
  cancelled, deleted or finished while others wait on its thread), workers are notified
  on :data:`~graphdock.backends.postgres.schema.RUN_READY` in the same transaction.

Filters (containment, authorization) run in SQL (:mod:`.filters`); sort columns come
from a whitelist, text ones in byte order (``COLLATE "C"``, as SQLite sorts).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Sequence

import psycopg
from psycopg import AsyncCursor
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool

from graphdock import serde
from graphdock.backends.base import Page, Row, SortOrder, Storage
from graphdock.backends.postgres import filters
from graphdock.backends.postgres.database import (
    ASSISTANT_COLUMNS,
    RUN_COLUMNS,
    RUN_READY,
    THREAD_COLUMNS,
    VERSION_COLUMNS,
    apply_steps,
    decode,
    decode_all,
    js,
    js_or_null,
    lease_for,
    setup_lock,
    ts,
)
from graphdock.errors import Conflict, NotFound
from graphdock.filters import auth_match

# Lock order: a transaction that locks runs and their thread locks the runs first.

logger = logging.getLogger("graphdock.postgres")

Cursor = AsyncCursor[DictRow]

_ASSISTANT_SORT = {
    "assistant_id": 'assistant_id COLLATE "C"',
    "created_at": "created_at",
    "updated_at": "updated_at",
    "name": 'name COLLATE "C"',
    "graph_id": 'graph_id COLLATE "C"',
}
_THREAD_SORT = {
    "thread_id": 'thread_id COLLATE "C"',
    "status": 'status COLLATE "C"',
    "created_at": "created_at",
    "updated_at": "updated_at",
    "state_updated_at": "state_updated_at",
}

_REJECT_MESSAGE = (
    "Thread is already running a task. Wait for it to finish or choose a"
    " different multitask strategy."
)

_CREATE_RUN = (
    "SELECT * FROM gd_create_run(%s::text, %s::text, %s::text, %s::timestamptz,"
    " %s::timestamptz, %s::text, %s::json, %s::json, %s::text, %s::integer, %s::json,"
    " %s::json, %s::boolean, %s::boolean, %s::boolean, %s::text, %s::float8, %s::text)"
)
_FINISH_RUN = (
    "SELECT gd_finish_run(%s::text, %s::text, %s::text, %s::integer, %s::boolean,"
    " %s::timestamptz, %s::text, %s::boolean, %s::json, %s::boolean, %s::json, %s::boolean,"
    " %s::json) AS outcome"
)

_INFLIGHT = "SELECT 1 FROM gd_runs WHERE thread_id = %s AND status IN ('pending','running')"
_LEASE = "now() + %s * interval '1 second'"


class PostgresStorage(Storage):
    """Storage on a pool shared with the queue, the saver and the store.

    ``worker_id`` is this process's lease holder identity (the queue's): a run this
    storage claims (``claim_run``, ``create_run(start=True)``) is held by it for
    ``lease_seconds`` and renewed by the queue of this process.
    """

    def __init__(
        self, pool: AsyncConnectionPool[Any], *, worker_id: str, lease_seconds: float
    ) -> None:
        self.pool = pool
        self.worker_id = worker_id
        self.lease_seconds = float(lease_seconds)

    async def setup(self) -> None:
        """Bring graphdock's tables to the newest schema (under the set-up lock)."""
        async with self.pool.connection() as conn, setup_lock(conn):
            await apply_steps(conn)

    async def close(self) -> None:
        """Nothing to release: the pool belongs to :func:`open_postgres`, which closes it."""

    # -- plumbing -------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Cursor]:
        async with self.pool.connection() as conn:
            async with conn.transaction():
                async with conn.cursor() as cur:
                    yield cur

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            row = await cur.fetchone()
        return decode(row) if row is not None else None

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return decode_all(await cur.fetchall())

    async def _count(self, sql: str, params: Sequence[Any]) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            row = await cur.fetchone()
        return int(row["n"]) if row else 0

    @staticmethod
    async def _fetch(cur: Cursor, sql: str, params: Sequence[Any] = ()) -> Row | None:
        await cur.execute(sql, params)
        row = await cur.fetchone()
        return decode(row) if row is not None else None

    @staticmethod
    async def _notify_if_pending(cur: Cursor, thread_id: str) -> None:
        """Wake the workers when ``thread_id`` has pending runs (sent at commit)."""
        await cur.execute(
            "SELECT pg_notify(%s, '') WHERE EXISTS"
            " (SELECT 1 FROM gd_runs WHERE thread_id = %s AND status = 'pending')",
            (RUN_READY, thread_id),
        )

    # -- assistants -----------------------------------------------------------

    @staticmethod
    async def _insert_assistant(cur: Cursor, row: Row) -> Row | None:
        """Insert an assistant and its version row; None when the id exists."""
        inserted = await PostgresStorage._fetch(
            cur,
            f"INSERT INTO gd_assistants ({ASSISTANT_COLUMNS})"
            " VALUES (%s, %s, %s::json, %s::json, %s::json, %s, %s, %s, %s, %s)"
            f" ON CONFLICT (assistant_id) DO NOTHING RETURNING {ASSISTANT_COLUMNS}",
            (
                row["assistant_id"],
                row["graph_id"],
                js(row["config"]),
                js(row["context"]),
                js(row["metadata"]),
                row["name"],
                row["description"],
                row["version"],
                ts(row["created_at"]),
                ts(row["updated_at"]),
            ),
        )
        if inserted is not None:
            await PostgresStorage._insert_version(cur, inserted)
        return inserted

    @staticmethod
    async def _insert_version(cur: Cursor, row: Row) -> None:
        await cur.execute(
            f"INSERT INTO gd_assistant_versions ({VERSION_COLUMNS})"
            " VALUES (%s, %s, %s, %s::json, %s::json, %s::json, %s, %s, %s)"
            " ON CONFLICT (assistant_id, version) DO NOTHING",
            (
                row["assistant_id"],
                row["version"],
                row["graph_id"],
                js(row["config"]),
                js(row["context"]),
                js(row["metadata"]),
                row["name"],
                row["description"],
                ts(row["updated_at"]),
            ),
        )

    async def put_assistant(
        self, row: Row, *, if_exists: str, auth_filter: Row | None = None
    ) -> tuple[Row, bool]:
        async with self._transaction() as cur:
            inserted = await self._insert_assistant(cur, row)
            if inserted is not None:
                return inserted, True
            existing = await self._fetch(
                cur,
                f"SELECT {ASSISTANT_COLUMNS} FROM gd_assistants WHERE assistant_id = %s",
                (row["assistant_id"],),
            )
        if existing is not None and not (auth_filter and not auth_match(existing["metadata"], auth_filter)):
            if if_exists == "do_nothing":
                return existing, False
        raise Conflict(f"Assistant {row['assistant_id']} already exists")

    async def ensure_system_assistant(
        self, assistant_id: str, graph_id: str, name: str, description: str | None
    ) -> None:
        now = serde.now()
        async with self._transaction() as cur:
            await cur.execute(
                f"INSERT INTO gd_assistants ({ASSISTANT_COLUMNS})"
                " VALUES (%s, %s, '{}', '{}', %s::json, %s, %s, 1, %s, %s)"
                " ON CONFLICT (assistant_id) DO UPDATE"
                " SET name = EXCLUDED.name, description = EXCLUDED.description"
                " WHERE gd_assistants.name IS DISTINCT FROM EXCLUDED.name"
                " OR gd_assistants.description IS DISTINCT FROM EXCLUDED.description"
                f" RETURNING (xmax = 0) AS inserted, {ASSISTANT_COLUMNS}",
                (assistant_id, graph_id, js({"created_by": "system"}), name, description, now, now),
            )
            row = await cur.fetchone()
            if row is not None and row["inserted"]:
                await self._insert_version(cur, decode(row))

    async def get_assistant(self, assistant_id: str, *, auth_filter: Row | None = None) -> Row | None:
        clause, params = filters.auth("metadata", auth_filter)
        return await self._one(
            f"SELECT {ASSISTANT_COLUMNS} FROM gd_assistants WHERE assistant_id = %s AND {clause}",
            (assistant_id, *params),
        )

    async def _current_assistant(
        self, cur: Cursor, assistant_id: str, auth_filter: Row | None
    ) -> Row | None:
        clause, params = filters.auth("metadata", auth_filter)
        return await self._fetch(
            cur,
            f"SELECT {ASSISTANT_COLUMNS} FROM gd_assistants WHERE assistant_id = %s AND {clause}"
            " FOR UPDATE",
            (assistant_id, *params),
        )

    @staticmethod
    async def _update_assistant(cur: Cursor, row: Row) -> Row:
        updated = await PostgresStorage._fetch(
            cur,
            "UPDATE gd_assistants SET graph_id = %s, config = %s::json, context = %s::json,"
            " metadata = %s::json, name = %s, description = %s, version = %s, updated_at = %s"
            f" WHERE assistant_id = %s RETURNING {ASSISTANT_COLUMNS}",
            (
                row["graph_id"],
                js(row["config"]),
                js(row["context"]),
                js(row["metadata"]),
                row["name"],
                row["description"],
                row["version"],
                ts(row["updated_at"]),
                row["assistant_id"],
            ),
        )
        assert updated is not None  # the row is locked by this transaction
        return updated

    async def patch_assistant(
        self, assistant_id: str, changes: Row, *, auth_filter: Row | None = None
    ) -> Row | None:
        async with self._transaction() as cur:
            current = await self._current_assistant(cur, assistant_id, auth_filter)
            if current is None:
                return None
            await cur.execute(
                "SELECT coalesce(max(version), 0) AS v FROM gd_assistant_versions"
                " WHERE assistant_id = %s",
                (assistant_id,),
            )
            found = await cur.fetchone()
            row = {**current, **changes}
            row["version"] = int(found["v"] if found else 0) + 1
            row["updated_at"] = serde.now_iso()
            updated = await self._update_assistant(cur, row)
            await self._insert_version(cur, updated)
            return updated

    async def delete_assistant(self, assistant_id: str, *, auth_filter: Row | None = None) -> bool:
        clause, params = filters.auth("metadata", auth_filter)
        async with self._transaction() as cur:
            await cur.execute(
                f"DELETE FROM gd_assistants WHERE assistant_id = %s AND {clause}",
                (assistant_id, *params),
            )
            if cur.rowcount == 0:
                return False
            await cur.execute(
                "DELETE FROM gd_assistant_versions WHERE assistant_id = %s", (assistant_id,)
            )
            return True

    @staticmethod
    def _assistant_where(
        graph_id: str | None,
        name: str | None,
        metadata: Row | None,
        graph_ids: Sequence[str] | None,
        auth_filter: Row | None,
    ) -> tuple[str, list[Any]]:
        clause, params = filters.auth("metadata", auth_filter)
        clauses = [clause]
        if graph_ids is not None:
            clauses.append("graph_id = ANY(%s::text[])")
            params.append(list(graph_ids))
        if graph_id is not None:
            clauses.append("graph_id = %s")
            params.append(graph_id)
        if name:
            clauses.append("strpos(lower(name), lower(%s)) > 0")
            params.append(name)
        if metadata:
            cond, more = filters.contains("metadata", metadata)
            clauses.append(cond)
            params.extend(more)
        return " AND ".join(f"({c})" for c in clauses), params

    async def search_assistants(
        self,
        *,
        graph_id: str | None,
        name: str | None,
        metadata: Row | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: SortOrder,
        graph_ids: Sequence[str] | None = None,
        auth_filter: Row | None = None,
    ) -> Page:
        where, params = self._assistant_where(graph_id, name, metadata, graph_ids, auth_filter)
        column = _ASSISTANT_SORT.get(sort_by, "created_at")
        select = f"SELECT {ASSISTANT_COLUMNS} FROM gd_assistants WHERE {where}"
        return await self._page(select, params, column, "assistant_id", sort_order, limit, offset)

    async def count_assistants(
        self,
        *,
        graph_id: str | None,
        name: str | None,
        metadata: Row | None,
        graph_ids: Sequence[str] | None = None,
        auth_filter: Row | None = None,
    ) -> int:
        where, params = self._assistant_where(graph_id, name, metadata, graph_ids, auth_filter)
        return await self._count(f"SELECT count(*) AS n FROM gd_assistants WHERE {where}", params)

    async def assistant_versions(
        self, assistant_id: str, *, metadata: Row | None, limit: int, offset: int
    ) -> list[Row]:
        clauses, params = ["assistant_id = %s"], [assistant_id]
        if metadata:
            cond, more = filters.contains("metadata", metadata)
            clauses.append(f"({cond})")
            params.extend(more)
        return await self._all(
            f"SELECT {VERSION_COLUMNS} FROM gd_assistant_versions WHERE {' AND '.join(clauses)}"
            " ORDER BY version DESC LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )

    async def set_assistant_version(
        self, assistant_id: str, version: int, *, auth_filter: Row | None = None
    ) -> Row | None:
        async with self._transaction() as cur:
            current = await self._current_assistant(cur, assistant_id, auth_filter)
            if current is None:
                raise NotFound(f"Assistant {assistant_id} not found")
            ver = await self._fetch(
                cur,
                f"SELECT {VERSION_COLUMNS} FROM gd_assistant_versions"
                " WHERE assistant_id = %s AND version = %s",
                (assistant_id, version),
            )
            if ver is None:
                return None
            row = dict(current)
            for key in ("graph_id", "config", "context", "metadata", "name", "description", "version"):
                row[key] = ver[key]
            row["updated_at"] = serde.now_iso()
            return await self._update_assistant(cur, row)

    # -- threads --------------------------------------------------------------

    @staticmethod
    async def _insert_thread(cur: Cursor, row: Row) -> Row | None:
        """Insert a thread row; None when the id exists."""
        return await PostgresStorage._fetch(
            cur,
            f"INSERT INTO gd_threads ({THREAD_COLUMNS})"
            " VALUES (%s, %s, %s, %s, %s::json, %s::json, %s, %s::json, %s::json, %s::json)"
            f" ON CONFLICT (thread_id) DO NOTHING RETURNING {THREAD_COLUMNS}",
            (
                row["thread_id"],
                ts(row["created_at"]),
                ts(row["updated_at"]),
                ts(row["state_updated_at"]),
                js(row["metadata"]),
                js(row["config"]),
                row["status"],
                js_or_null(row.get("values")),
                js_or_null(row.get("interrupts")),
                js_or_null(row.get("error")),
            ),
        )

    async def create_thread(
        self, row: Row, *, if_exists: str, auth_filter: Row | None = None
    ) -> tuple[Row, bool]:
        async with self.pool.connection() as conn:
            # one statement (its own transaction); an existing thread is then read
            async with conn.cursor() as cur:
                inserted = await self._insert_thread(cur, row)
                if inserted is not None:
                    return inserted, True
                existing = await self._fetch(
                    cur, f"SELECT {THREAD_COLUMNS} FROM gd_threads WHERE thread_id = %s", (row["thread_id"],)
                )
        if existing is not None and not (auth_filter and not auth_match(existing["metadata"], auth_filter)):
            if if_exists == "do_nothing":
                return existing, False
        raise Conflict(f"Thread with ID {row['thread_id']} already exists")

    async def get_thread(self, thread_id: str, *, auth_filter: Row | None = None) -> Row | None:
        clause, params = filters.auth("metadata", auth_filter)
        return await self._one(
            f"SELECT {THREAD_COLUMNS} FROM gd_threads WHERE thread_id = %s AND {clause}",
            (thread_id, *params),
        )

    async def patch_thread(
        self, thread_id: str, *, metadata: Row | None, auth_filter: Row | None = None
    ) -> Row | None:
        clause, params = filters.auth("metadata", auth_filter)
        async with self._transaction() as cur:
            row = await self._fetch(
                cur,
                f"SELECT metadata FROM gd_threads WHERE thread_id = %s AND {clause} FOR UPDATE",
                (thread_id, *params),
            )
            if row is None:
                return None
            return await self._fetch(
                cur,
                "UPDATE gd_threads SET metadata = %s::json, updated_at = %s WHERE thread_id = %s"
                f" RETURNING {THREAD_COLUMNS}",
                (js({**row["metadata"], **(metadata or {})}), serde.now(), thread_id),
            )

    async def delete_thread(self, thread_id: str, *, auth_filter: Row | None = None) -> bool:
        clause, params = filters.auth("metadata", auth_filter)
        async with self._transaction() as cur:
            # runs before their thread, as every transaction here locks them
            await cur.execute("SELECT 1 FROM gd_runs WHERE thread_id = %s FOR UPDATE", (thread_id,))
            await cur.execute(
                f"DELETE FROM gd_threads WHERE thread_id = %s AND {clause}", (thread_id, *params)
            )
            if cur.rowcount == 0:
                return False
            await cur.execute("DELETE FROM gd_runs WHERE thread_id = %s", (thread_id,))
            return True

    @staticmethod
    def _thread_where(
        ids: Sequence[str] | None,
        metadata: Row | None,
        values: Row | None,
        status: str | None,
        auth_filter: Row | None,
    ) -> tuple[str, list[Any]]:
        clause, params = filters.auth("metadata", auth_filter)
        clauses = [clause]
        if ids is not None:
            clauses.append("thread_id = ANY(%s::text[])")
            params.append(list(ids))
        for column, pattern in (("metadata", metadata), ('"values"', values)):
            if pattern:
                cond, more = filters.contains(column, pattern)
                clauses.append(cond)
                params.extend(more)
        if status is not None:
            clauses.append("status = %s")
            params.append(status)
        return " AND ".join(f"({c})" for c in clauses), params

    async def search_threads(
        self,
        *,
        ids: Sequence[str] | None,
        metadata: Row | None,
        values: Row | None,
        status: str | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: SortOrder,
        auth_filter: Row | None = None,
    ) -> Page:
        where, params = self._thread_where(ids, metadata, values, status, auth_filter)
        column = _THREAD_SORT.get(sort_by, "updated_at")
        select = f"SELECT {THREAD_COLUMNS} FROM gd_threads WHERE {where}"
        return await self._page(select, params, column, "thread_id", sort_order, limit, offset)

    async def _page(
        self,
        select: str,
        params: list[Any],
        column: str,
        key: str,
        sort_order: SortOrder,
        limit: int,
        offset: int,
    ) -> Page:
        """One page of ``select``, sorted by ``column`` then ``key`` (whitelisted names)."""
        direction = "ASC" if sort_order == "asc" else "DESC"
        rows = await self._all(
            f'{select} ORDER BY {column} {direction}, {key} COLLATE "C" {direction} LIMIT %s OFFSET %s',
            [*params, limit + 1, offset],
        )
        return Page(rows[:limit], len(rows) > limit)

    async def count_threads(
        self,
        *,
        metadata: Row | None,
        values: Row | None,
        status: str | None,
        auth_filter: Row | None = None,
    ) -> int:
        where, params = self._thread_where(None, metadata, values, status, auth_filter)
        return await self._count(f"SELECT count(*) AS n FROM gd_threads WHERE {where}", params)

    async def update_thread_state(
        self,
        thread_id: str,
        *,
        values: Any = ...,
        interrupts: Any = ...,
        error: Any = ...,
        status: str | None = None,
        metadata: Row | None = None,
        state_updated: bool = False,
    ) -> Row | None:
        async with self._transaction() as cur:
            return await self._update_thread(
                cur,
                thread_id,
                values=values,
                interrupts=interrupts,
                error=error,
                status=status,
                metadata=metadata,
                state_updated=state_updated,
            )

    async def _update_thread(
        self,
        cur: Cursor,
        thread_id: str,
        *,
        values: Any = ...,
        interrupts: Any = ...,
        error: Any = ...,
        status: str | None = None,
        metadata: Row | None = None,
        state_updated: bool = False,
    ) -> Row | None:
        """Update a thread's cached state in the caller's transaction (``status``
        becomes ``busy`` while runs are in flight); the row after, or None."""
        now = serde.now()
        sets: list[str] = ["updated_at = %s"]
        params: list[Any] = [now]
        if state_updated:
            sets.append("state_updated_at = %s")
            params.append(now)
        for column, value in (("values", values), ("interrupts", interrupts), ("error", error)):
            if value is not ...:
                sets.append(f'"{column}" = %s::json')
                params.append(js_or_null(value))
        if metadata:
            current = await self._fetch(
                cur, "SELECT metadata FROM gd_threads WHERE thread_id = %s FOR UPDATE", (thread_id,)
            )
            if current is None:
                return None
            sets.append("metadata = %s::json")
            params.append(js({**current["metadata"], **metadata}))
        if status == "busy":
            sets.append("status = 'busy'")
        elif status is not None:
            sets.append(f"status = CASE WHEN EXISTS ({_INFLIGHT}) THEN 'busy' ELSE %s END")
            params.extend([thread_id, status])
        return await self._fetch(
            cur,
            f"UPDATE gd_threads SET {', '.join(sets)} WHERE thread_id = %s RETURNING {THREAD_COLUMNS}",
            [*params, thread_id],
        )

    # -- runs -----------------------------------------------------------------

    async def create_run(
        self,
        run: Row,
        *,
        thread: Row,
        if_not_exists: str,
        multitask_strategy: str,
        start: bool = False,
    ) -> tuple[Row, list[str]]:
        """See :meth:`Storage.create_run`: one call of ``gd_create_run`` (:mod:`.schema`),
        which also announces a run written pending to the workers."""
        row = await self._one(_CREATE_RUN, (
            run["run_id"],
            run["thread_id"],
            run["assistant_id"],
            ts(run["created_at"]),
            ts(run["updated_at"]),
            run["status"],
            js(run["metadata"]),
            js(run["kwargs"]),
            run["multitask_strategy"],
            run["attempt"],
            js(thread["metadata"]),
            js(thread["config"]),
            if_not_exists == "create",
            multitask_strategy == "reject",
            start,
            self.worker_id,
            self.lease_seconds,
            run["created_at"],
        ))
        assert row is not None
        outcome = row.pop("outcome")
        if outcome == "not_found":
            raise NotFound("Thread or assistant not found.")
        if outcome == "conflict":
            raise Conflict(_REJECT_MESSAGE)
        inflight = list(row.pop("inflight") or [])
        return row, inflight

    async def get_run(self, run_id: str, thread_id: str | None = None) -> Row | None:
        if thread_id is None:
            return await self._one(f"SELECT {RUN_COLUMNS} FROM gd_runs WHERE run_id = %s", (run_id,))
        return await self._one(
            f"SELECT {RUN_COLUMNS} FROM gd_runs WHERE run_id = %s AND thread_id = %s",
            (run_id, thread_id),
        )

    async def list_runs(
        self, thread_id: str, *, limit: int, offset: int, status: str | None
    ) -> list[Row]:
        clauses, params = ["thread_id = %s"], [thread_id]
        if status is not None:
            clauses.append("status = %s")
            params.append(status)
        return await self._all(
            f"SELECT {RUN_COLUMNS} FROM gd_runs WHERE {' AND '.join(clauses)}"
            ' ORDER BY created_at DESC, run_id COLLATE "C" DESC LIMIT %s OFFSET %s',
            [*params, limit, offset],
        )

    async def delete_run(self, run_id: str, thread_id: str) -> bool:
        async with self._transaction() as cur:
            await cur.execute(
                "DELETE FROM gd_runs WHERE run_id = %s AND thread_id = %s RETURNING status",
                (run_id, thread_id),
            )
            deleted = await cur.fetchone()
            if deleted is None:
                return False
            await cur.execute(
                "UPDATE gd_threads SET status = 'idle', updated_at = %s"
                f" WHERE thread_id = %s AND status = 'busy' AND NOT EXISTS ({_INFLIGHT})",
                (serde.now(), thread_id, thread_id),
            )
            if deleted["status"] in ("pending", "running"):
                await self._notify_if_pending(cur, thread_id)
            return True

    async def claim_run(self, run_id: str) -> Row | None:
        try:
            return await self._one(
                "UPDATE gd_runs SET status = 'running', attempt = attempt + 1, updated_at = %s,"
                f" worker_id = %s, lease_until = {_LEASE}"
                f" WHERE run_id = %s AND status = 'pending' RETURNING {RUN_COLUMNS}",
                (serde.now(), self.worker_id, self.lease_seconds, run_id),
            )
        except psycopg.errors.UniqueViolation:
            return None  # another run of the thread is running

    async def cancel_pending_run(self, run_id: str, thread_id: str, *, delete: bool) -> bool:
        now = serde.now()
        async with self._transaction() as cur:
            found = await self._fetch(
                cur,
                "SELECT status FROM gd_runs WHERE run_id = %s AND thread_id = %s FOR UPDATE",
                (run_id, thread_id),
            )
            if found is None or found["status"] != "pending":
                return False
            if delete:
                await cur.execute("DELETE FROM gd_runs WHERE run_id = %s", (run_id,))
            else:
                await cur.execute(
                    "UPDATE gd_runs SET status = 'interrupted', updated_at = %s, worker_id = NULL,"
                    " lease_until = NULL WHERE run_id = %s",
                    (now, run_id),
                )
            state = await self._fetch(
                cur, "SELECT interrupts FROM gd_threads WHERE thread_id = %s FOR UPDATE", (thread_id,)
            )
            if state is not None:
                status = "interrupted" if state["interrupts"] else "idle"
                await self._update_thread(cur, thread_id, status=status)
            await self._notify_if_pending(cur, thread_id)
            return True

    async def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        thread_status: str,
        values: Any = ...,
        interrupts: Any = ...,
        error: Any = ...,
        delete_thread: bool = False,
    ) -> None:
        """See :meth:`Storage.finish_run`: one call of ``gd_finish_run`` (:mod:`.schema`).
        From a task holding a lease on the run, nothing is written unless the lease still
        holds (the run was not taken over)."""
        lease = lease_for(run_id)
        row = await self._one(_FINISH_RUN, (
            run_id,
            status,
            lease.worker_id if lease is not None else None,
            lease.attempt if lease is not None else None,
            delete_thread,
            serde.now(),
            thread_status,
            values is not ...,
            js_or_null(values) if values is not ... else None,
            interrupts is not ...,
            js_or_null(interrupts) if interrupts is not ... else None,
            error is not ...,
            js_or_null(error) if error is not ... else None,
        ))
        if row is not None and row["outcome"] == "lost":
            logger.warning("run %s: lease lost, its outcome (%s) is not recorded", run_id, status)

    async def release_run(self, run_id: str) -> None:
        """See :meth:`Storage.release_run`: the run is pending and held by nobody (workers
        are notified); from a task holding a lease on the run, only while it holds."""
        where = "run_id = %s AND status = 'running'"
        params: list[Any] = [run_id]
        lease = lease_for(run_id)
        if lease is not None:
            where += " AND worker_id = %s AND attempt = %s"
            params += [lease.worker_id, lease.attempt]
        async with self._transaction() as cur:
            row = await self._fetch(
                cur,
                "UPDATE gd_runs SET status = 'pending', updated_at = %s, worker_id = NULL,"
                f" lease_until = NULL WHERE {where} RETURNING created_at",
                [serde.now(), *params],
            )
            if row is not None:
                await cur.execute("SELECT pg_notify(%s, %s)", (RUN_READY, row["created_at"]))

    async def set_run_status(self, run_id: str, status: str) -> Row | None:
        """See :meth:`Storage.set_run_status`. A run set ``pending`` is no longer held by
        anyone (workers are notified); from a task holding a lease on the run, nothing is
        written unless the lease still holds (then the row is returned unchanged)."""
        sets = "status = %s, updated_at = %s"
        if status != "running":
            sets += ", lease_until = NULL"
        if status == "pending":
            sets += ", worker_id = NULL"
        where = "run_id = %s"
        params: list[Any] = [run_id]
        lease = lease_for(run_id)
        if lease is not None:
            where += " AND worker_id = %s AND attempt = %s AND status = 'running'"
            params += [lease.worker_id, lease.attempt]
        async with self._transaction() as cur:
            row = await self._fetch(
                cur,
                f"UPDATE gd_runs SET {sets} WHERE {where} RETURNING {RUN_COLUMNS}",
                [status, serde.now(), *params],
            )
            if row is None:
                if lease is None:
                    return None
                logger.warning("run %s: lease lost, status %s not recorded", run_id, status)
                return await self._fetch(cur, f"SELECT {RUN_COLUMNS} FROM gd_runs WHERE run_id = %s", (run_id,))
            if status == "pending":
                await cur.execute("SELECT pg_notify(%s, %s)", (RUN_READY, row["created_at"]))
            return row

    async def inflight_runs(self, thread_id: str) -> list[Row]:
        return await self._all(
            f"SELECT {RUN_COLUMNS} FROM gd_runs WHERE thread_id = %s"
            " AND status IN ('pending','running') ORDER BY created_at, run_id",
            (thread_id,),
        )

    async def runs_with_status(self, statuses: Sequence[str]) -> list[Row]:
        return await self._all(
            f"SELECT {RUN_COLUMNS} FROM gd_runs WHERE status = ANY(%s::text[])"
            " ORDER BY created_at, run_id",
            (list(statuses),),
        )
