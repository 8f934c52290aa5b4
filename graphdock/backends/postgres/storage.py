"""PostgreSQL implementation of :class:`graphdock.backends.base.Storage`: assistants and
threads here, runs in :mod:`.runs`, the statements they share in :mod:`.rows`.

Semantics, error texts and row shapes are those of the SQLite adapter
(:mod:`graphdock.backends.sqlite.storage`); the differences are what several processes
need (see :mod:`.runs`). Filters (containment, authorization) run in SQL
(:mod:`.filters`); sort columns come from a whitelist, text ones in byte order
(``COLLATE "C"``, as SQLite sorts).
"""

from __future__ import annotations

from typing import Any, Sequence

from graphdock import serde
from graphdock.backends.base import Page, Row, SortOrder, Storage
from graphdock.backends.postgres import filters
from graphdock.backends.postgres.database import (
    ASSISTANT_COLUMNS,
    THREAD_COLUMNS,
    VERSION_COLUMNS,
    apply_steps,
    decode,
    js,
    js_or_null,
    setup_lock,
    ts,
)
from graphdock.backends.postgres.crons import (
    DELETE_ASSISTANT_CRONS,
    DELETE_THREAD_CRONS,
    DELETE_THREAD_TTL,
    CronRows,
)
from graphdock.backends.postgres.rows import Cursor
from graphdock.backends.postgres.runs import RunRows
from graphdock.errors import Conflict, NotFound
from graphdock.filters import auth_match

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


class PostgresStorage(CronRows, RunRows, Storage):
    """Storage on a pool shared with the queue, the saver and the store.

    ``worker_id`` is this process's lease holder identity (the queue's): a run this
    storage claims (``claim_run``, ``create_run(start=True)``) is held by it for
    ``lease_seconds`` and renewed by the queue of this process.
    """

    async def setup(self) -> None:
        """Bring graphdock's tables to the newest schema (under the set-up lock)."""
        async with self.pool.connection() as conn, setup_lock(conn):
            await apply_steps(conn)

    async def close(self) -> None:
        """Nothing to release: the pool belongs to :func:`open_postgres`, which closes it."""

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
            await cur.execute(DELETE_ASSISTANT_CRONS, (assistant_id,))
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
            await cur.execute(DELETE_THREAD_CRONS, (thread_id,))
            await cur.execute(DELETE_THREAD_TTL, (thread_id,))
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
