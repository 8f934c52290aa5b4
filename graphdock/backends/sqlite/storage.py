"""SQLite implementation of :class:`graphdock.backends.base.Storage`.

One aiosqlite connection serialised by an asyncio lock; every public method is a
single transaction. JSON columns hold compact JSON text. Metadata containment
filters are evaluated inside the query by the ``json_contains`` SQL function.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import aiosqlite

from graphdock import serde
from graphdock.backends.base import Page, Row, SortOrder, Storage
from graphdock.errors import Conflict, NotFound
from graphdock.filters import auth_match, json_auth_match, json_contains

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gd_assistants (
    assistant_id TEXT PRIMARY KEY,
    graph_id TEXT NOT NULL,
    config TEXT NOT NULL,
    context TEXT NOT NULL,
    metadata TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gd_assistant_versions (
    assistant_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    graph_id TEXT NOT NULL,
    config TEXT NOT NULL,
    context TEXT NOT NULL,
    metadata TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (assistant_id, version)
);
CREATE TABLE IF NOT EXISTS gd_threads (
    thread_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    state_updated_at TEXT NOT NULL,
    metadata TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    "values" TEXT,
    interrupts TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS gd_threads_updated ON gd_threads(updated_at);
CREATE TABLE IF NOT EXISTS gd_runs (
    run_id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    assistant_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT NOT NULL,
    kwargs TEXT NOT NULL,
    multitask_strategy TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS gd_runs_thread ON gd_runs(thread_id, created_at);
CREATE INDEX IF NOT EXISTS gd_runs_status ON gd_runs(status);
"""

_JSON_COLUMNS = {"config", "context", "metadata", "values", "interrupts", "error", "kwargs"}

_ASSISTANT_SORT = {"assistant_id", "created_at", "updated_at", "name", "graph_id"}
_THREAD_SORT = {"thread_id", "status", "created_at", "updated_at", "state_updated_at"}


def _row(cursor: aiosqlite.Cursor, raw: Sequence[Any]) -> Row:
    out: Row = {}
    for (name, *_), value in zip(cursor.description, raw):
        if name in _JSON_COLUMNS and value is not None:
            value = serde.loads(value)
        out[name] = value
    return out


def _j(value: Any) -> str:
    return serde.dumps_str(value)


def _auth(flt: Row | None, column: str = "metadata") -> tuple[str, list[Any]]:
    """An SQL condition restricting rows to those whose ``column`` passes an auth filter."""
    if not flt:
        return "1=1", []
    return f"json_auth_match({column}, ?)", [_j(flt)]


class SqliteStorage(Storage):
    """Storage over one SQLite file (WAL mode)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def setup(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA busy_timeout=30000")
        await conn.create_function("json_contains", 2, json_contains, deterministic=True)
        await conn.create_function("json_auth_match", 2, json_auth_match, deterministic=True)
        await conn.executescript(_SCHEMA)
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        assert self._conn is not None, "storage is not set up"
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            else:
                await self._conn.execute("COMMIT")

    @staticmethod
    async def _one(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with conn.execute(sql, params) as cur:
            raw = await cur.fetchone()
            return _row(cur, raw) if raw is not None else None

    @staticmethod
    async def _all(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with conn.execute(sql, params) as cur:
            return [_row(cur, raw) for raw in await cur.fetchall()]

    # -- assistants -----------------------------------------------------------

    async def put_assistant(
        self, row: Row, *, if_exists: str, auth_filter: Row | None = None
    ) -> tuple[Row, bool]:
        async with self._tx() as conn:
            existing = await self._one(
                conn, "SELECT * FROM gd_assistants WHERE assistant_id = ?", (row["assistant_id"],)
            )
            if existing is not None:
                if auth_filter and not auth_match(existing["metadata"], auth_filter):
                    raise Conflict(f"Assistant {row['assistant_id']} already exists")
                if if_exists == "do_nothing":
                    return existing, False
                raise Conflict(f"Assistant {row['assistant_id']} already exists")
            await self._insert_assistant(conn, row)
            return row, True

    async def _insert_assistant(self, conn: aiosqlite.Connection, row: Row) -> None:
        await conn.execute(
            "INSERT INTO gd_assistants (assistant_id, graph_id, config, context, metadata, name,"
            " description, version, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                row["assistant_id"],
                row["graph_id"],
                _j(row["config"]),
                _j(row["context"]),
                _j(row["metadata"]),
                row["name"],
                row["description"],
                row["version"],
                row["created_at"],
                row["updated_at"],
            ),
        )
        await self._insert_version(conn, row)

    @staticmethod
    async def _insert_version(conn: aiosqlite.Connection, row: Row) -> None:
        await conn.execute(
            "INSERT INTO gd_assistant_versions (assistant_id, version, graph_id, config, context,"
            " metadata, name, description, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                row["assistant_id"],
                row["version"],
                row["graph_id"],
                _j(row["config"]),
                _j(row["context"]),
                _j(row["metadata"]),
                row["name"],
                row["description"],
                row["updated_at"],
            ),
        )

    async def ensure_system_assistant(
        self, assistant_id: str, graph_id: str, name: str, description: str | None
    ) -> None:
        now = serde.now_iso()
        async with self._tx() as conn:
            existing = await self._one(
                conn, "SELECT * FROM gd_assistants WHERE assistant_id = ?", (assistant_id,)
            )
            if existing is None:
                await self._insert_assistant(
                    conn,
                    {
                        "assistant_id": assistant_id,
                        "graph_id": graph_id,
                        "config": {},
                        "context": {},
                        "metadata": {"created_by": "system"},
                        "name": name,
                        "description": description,
                        "version": 1,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
            elif existing["name"] != name or existing["description"] != description:
                await conn.execute(
                    "UPDATE gd_assistants SET name = ?, description = ? WHERE assistant_id = ?",
                    (name, description, assistant_id),
                )

    async def get_assistant(self, assistant_id: str, *, auth_filter: Row | None = None) -> Row | None:
        clause, params = _auth(auth_filter)
        async with self._tx() as conn:
            return await self._one(
                conn,
                f"SELECT * FROM gd_assistants WHERE assistant_id = ? AND {clause}",
                (assistant_id, *params),
            )

    async def patch_assistant(
        self, assistant_id: str, changes: Row, *, auth_filter: Row | None = None
    ) -> Row | None:
        clause, params = _auth(auth_filter)
        async with self._tx() as conn:
            current = await self._one(
                conn,
                f"SELECT * FROM gd_assistants WHERE assistant_id = ? AND {clause}",
                (assistant_id, *params),
            )
            if current is None:
                return None
            async with conn.execute(
                "SELECT MAX(version) FROM gd_assistant_versions WHERE assistant_id = ?",
                (assistant_id,),
            ) as cur:
                (max_version,) = await cur.fetchone()  # type: ignore[misc]
            row = dict(current)
            row.update(changes)
            row["version"] = int(max_version or 0) + 1
            row["updated_at"] = serde.now_iso()
            await conn.execute(
                "UPDATE gd_assistants SET graph_id=?, config=?, context=?, metadata=?, name=?,"
                " description=?, version=?, updated_at=? WHERE assistant_id=?",
                (
                    row["graph_id"],
                    _j(row["config"]),
                    _j(row["context"]),
                    _j(row["metadata"]),
                    row["name"],
                    row["description"],
                    row["version"],
                    row["updated_at"],
                    assistant_id,
                ),
            )
            await self._insert_version(conn, row)
            return row

    async def delete_assistant(self, assistant_id: str, *, auth_filter: Row | None = None) -> bool:
        clause, params = _auth(auth_filter)
        async with self._tx() as conn:
            cur = await conn.execute(
                f"DELETE FROM gd_assistants WHERE assistant_id = ? AND {clause}", (assistant_id, *params)
            )
            if cur.rowcount == 0:
                return False
            await conn.execute(
                "DELETE FROM gd_assistant_versions WHERE assistant_id = ?", (assistant_id,)
            )
            return True

    @staticmethod
    def _assistant_where(
        graph_id: str | None,
        name: str | None,
        metadata: Row | None,
        graph_ids: Sequence[str] | None = None,
        auth_filter: Row | None = None,
    ) -> tuple[str, list[Any]]:
        clause, params = _auth(auth_filter)
        clauses = [clause]
        if graph_ids is not None:
            clauses.append(f"graph_id IN ({','.join('?' * len(graph_ids)) or 'NULL'})")
            params.extend(graph_ids)
        if graph_id is not None:
            clauses.append("graph_id = ?")
            params.append(graph_id)
        if name:
            clauses.append("instr(lower(name), lower(?)) > 0")
            params.append(name)
        if metadata:
            clauses.append("json_contains(metadata, ?)")
            params.append(_j(metadata))
        return " AND ".join(clauses), params

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
        column = sort_by if sort_by in _ASSISTANT_SORT else "created_at"
        direction = "ASC" if sort_order == "asc" else "DESC"
        async with self._tx() as conn:
            rows = await self._all(
                conn,
                f"SELECT * FROM gd_assistants WHERE {where} ORDER BY {column} {direction},"
                f" assistant_id {direction} LIMIT ? OFFSET ?",
                [*params, limit + 1, offset],
            )
        return Page(rows[:limit], len(rows) > limit)

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
        async with self._tx() as conn:
            async with conn.execute(f"SELECT COUNT(*) FROM gd_assistants WHERE {where}", params) as cur:
                (n,) = await cur.fetchone()  # type: ignore[misc]
        return int(n)

    async def assistant_versions(
        self, assistant_id: str, *, metadata: Row | None, limit: int, offset: int
    ) -> list[Row]:
        clauses, params = ["assistant_id = ?"], [assistant_id]
        if metadata:
            clauses.append("json_contains(metadata, ?)")
            params.append(_j(metadata))
        async with self._tx() as conn:
            return await self._all(
                conn,
                f"SELECT * FROM gd_assistant_versions WHERE {' AND '.join(clauses)}"
                " ORDER BY version DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )

    async def set_assistant_version(
        self, assistant_id: str, version: int, *, auth_filter: Row | None = None
    ) -> Row | None:
        clause, params = _auth(auth_filter)
        async with self._tx() as conn:
            current = await self._one(
                conn,
                f"SELECT * FROM gd_assistants WHERE assistant_id = ? AND {clause}",
                (assistant_id, *params),
            )
            if current is None:
                raise NotFound(f"Assistant {assistant_id} not found")
            ver = await self._one(
                conn,
                "SELECT * FROM gd_assistant_versions WHERE assistant_id = ? AND version = ?",
                (assistant_id, version),
            )
            if ver is None:
                return None
            row = dict(current)
            for key in ("graph_id", "config", "context", "metadata", "name", "description", "version"):
                row[key] = ver[key]
            row["updated_at"] = serde.now_iso()
            await conn.execute(
                "UPDATE gd_assistants SET graph_id=?, config=?, context=?, metadata=?, name=?,"
                " description=?, version=?, updated_at=? WHERE assistant_id=?",
                (
                    row["graph_id"],
                    _j(row["config"]),
                    _j(row["context"]),
                    _j(row["metadata"]),
                    row["name"],
                    row["description"],
                    row["version"],
                    row["updated_at"],
                    assistant_id,
                ),
            )
            return row

    # -- threads --------------------------------------------------------------

    @staticmethod
    async def _insert_thread(conn: aiosqlite.Connection, row: Row) -> None:
        await conn.execute(
            'INSERT INTO gd_threads (thread_id, created_at, updated_at, state_updated_at, metadata,'
            ' config, status, "values", interrupts, error) VALUES (?,?,?,?,?,?,?,?,?,?)',
            (
                row["thread_id"],
                row["created_at"],
                row["updated_at"],
                row["state_updated_at"],
                _j(row["metadata"]),
                _j(row["config"]),
                row["status"],
                None if row.get("values") is None else _j(row["values"]),
                None if row.get("interrupts") is None else _j(row["interrupts"]),
                None if row.get("error") is None else _j(row["error"]),
            ),
        )

    async def create_thread(
        self, row: Row, *, if_exists: str, auth_filter: Row | None = None
    ) -> tuple[Row, bool]:
        async with self._tx() as conn:
            existing = await self._one(
                conn, "SELECT * FROM gd_threads WHERE thread_id = ?", (row["thread_id"],)
            )
            if existing is not None:
                if auth_filter and not auth_match(existing["metadata"], auth_filter):
                    raise Conflict(f"Thread with ID {row['thread_id']} already exists")
                if if_exists == "do_nothing":
                    return existing, False
                raise Conflict(f"Thread with ID {row['thread_id']} already exists")
            await self._insert_thread(conn, row)
            return await self._one(
                conn, "SELECT * FROM gd_threads WHERE thread_id = ?", (row["thread_id"],)
            ) or row, True

    async def get_thread(self, thread_id: str, *, auth_filter: Row | None = None) -> Row | None:
        clause, params = _auth(auth_filter)
        async with self._tx() as conn:
            return await self._one(
                conn, f"SELECT * FROM gd_threads WHERE thread_id = ? AND {clause}", (thread_id, *params)
            )

    async def patch_thread(
        self, thread_id: str, *, metadata: Row | None, auth_filter: Row | None = None
    ) -> Row | None:
        clause, params = _auth(auth_filter)
        async with self._tx() as conn:
            row = await self._one(
                conn, f"SELECT * FROM gd_threads WHERE thread_id = ? AND {clause}", (thread_id, *params)
            )
            if row is None:
                return None
            merged = {**row["metadata"], **(metadata or {})}
            now = serde.now_iso()
            await conn.execute(
                "UPDATE gd_threads SET metadata = ?, updated_at = ? WHERE thread_id = ?",
                (_j(merged), now, thread_id),
            )
            row["metadata"], row["updated_at"] = merged, now
            return row

    async def delete_thread(self, thread_id: str, *, auth_filter: Row | None = None) -> bool:
        clause, params = _auth(auth_filter)
        async with self._tx() as conn:
            cur = await conn.execute(
                f"DELETE FROM gd_threads WHERE thread_id = ? AND {clause}", (thread_id, *params)
            )
            if cur.rowcount == 0:
                return False
            await conn.execute("DELETE FROM gd_runs WHERE thread_id = ?", (thread_id,))
            return cur.rowcount > 0

    @staticmethod
    def _thread_where(
        ids: Sequence[str] | None,
        metadata: Row | None,
        values: Row | None,
        status: str | None,
        auth_filter: Row | None = None,
    ) -> tuple[str, list[Any]]:
        clause, params = _auth(auth_filter)
        clauses = [clause]
        if ids is not None:
            clauses.append(f"thread_id IN ({','.join('?' * len(ids)) or 'NULL'})")
            params.extend(ids)
        if metadata:
            clauses.append("json_contains(metadata, ?)")
            params.append(_j(metadata))
        if values:
            clauses.append('json_contains("values", ?)')
            params.append(_j(values))
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        return " AND ".join(clauses), params

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
        column = sort_by if sort_by in _THREAD_SORT else "updated_at"
        direction = "ASC" if sort_order == "asc" else "DESC"
        async with self._tx() as conn:
            rows = await self._all(
                conn,
                f"SELECT * FROM gd_threads WHERE {where} ORDER BY {column} {direction},"
                f" thread_id {direction} LIMIT ? OFFSET ?",
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
        async with self._tx() as conn:
            async with conn.execute(f"SELECT COUNT(*) FROM gd_threads WHERE {where}", params) as cur:
                (n,) = await cur.fetchone()  # type: ignore[misc]
        return int(n)

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
        async with self._tx() as conn:
            return await self._update_thread(
                conn,
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
        conn: aiosqlite.Connection,
        thread_id: str,
        *,
        values: Any = ...,
        interrupts: Any = ...,
        error: Any = ...,
        status: str | None = None,
        metadata: Row | None = None,
        config: Row | None = None,
        state_updated: bool = False,
    ) -> Row | None:
        row = await self._one(conn, "SELECT * FROM gd_threads WHERE thread_id = ?", (thread_id,))
        if row is None:
            return None
        now = serde.now_iso()
        sets, params = ["updated_at = ?"], [now]
        row["updated_at"] = now
        if state_updated:
            sets.append("state_updated_at = ?")
            params.append(now)
            row["state_updated_at"] = now
        for column, value in (("values", values), ("interrupts", interrupts), ("error", error)):
            if value is not ...:
                sets.append(f'"{column}" = ?')
                params.append(None if value is None else _j(value))
                row[column] = value
        if metadata:
            merged = {**row["metadata"], **metadata}
            sets.append("metadata = ?")
            params.append(_j(merged))
            row["metadata"] = merged
        if config is not None:
            sets.append("config = ?")
            params.append(_j(config))
            row["config"] = config
        if status is not None:
            if status != "busy" and await self._has_inflight(conn, thread_id):
                status = "busy"
            sets.append("status = ?")
            params.append(status)
            row["status"] = status
        await conn.execute(
            f"UPDATE gd_threads SET {', '.join(sets)} WHERE thread_id = ?", [*params, thread_id]
        )
        return row

    @staticmethod
    async def _has_inflight(conn: aiosqlite.Connection, thread_id: str) -> bool:
        async with conn.execute(
            "SELECT 1 FROM gd_runs WHERE thread_id = ? AND status IN ('pending','running') LIMIT 1",
            (thread_id,),
        ) as cur:
            return await cur.fetchone() is not None

    # -- runs -----------------------------------------------------------------

    async def create_run(
        self,
        run: Row,
        *,
        thread: Row,
        if_not_exists: str,
        multitask_strategy: str,
    ) -> tuple[Row, list[str]]:
        thread_id = run["thread_id"]
        async with self._tx() as conn:
            existing = await self._one(
                conn, "SELECT * FROM gd_threads WHERE thread_id = ?", (thread_id,)
            )
            inflight: list[str] = []
            if existing is None:
                if if_not_exists != "create":
                    raise NotFound("Thread or assistant not found.")
                now = run["created_at"]
                await self._insert_thread(
                    conn,
                    {
                        "thread_id": thread_id,
                        "created_at": now,
                        "updated_at": now,
                        "state_updated_at": now,
                        "metadata": thread["metadata"],
                        "config": thread["config"],
                        "status": "busy",
                    },
                )
            else:
                async with conn.execute(
                    "SELECT run_id FROM gd_runs WHERE thread_id = ? AND status IN ('pending','running')"
                    " ORDER BY created_at",
                    (thread_id,),
                ) as cur:
                    inflight = [r[0] for r in await cur.fetchall()]
                if inflight and multitask_strategy == "reject":
                    raise Conflict(
                        "Thread is already running a task. Wait for it to finish or choose a"
                        " different multitask strategy."
                    )
                merged_meta = {**existing["metadata"], **thread["metadata"]}
                await conn.execute(
                    "UPDATE gd_threads SET status = 'busy', metadata = ?, config = ?, updated_at = ?"
                    " WHERE thread_id = ?",
                    (_j(merged_meta), _j(thread["config"]), run["created_at"], thread_id),
                )
            await conn.execute(
                "INSERT INTO gd_runs (run_id, thread_id, assistant_id, created_at, updated_at, status,"
                " metadata, kwargs, multitask_strategy, attempt) VALUES (?,?,?,?,?,?,?,?,?,0)",
                (
                    run["run_id"],
                    thread_id,
                    run["assistant_id"],
                    run["created_at"],
                    run["updated_at"],
                    "pending",
                    _j(run["metadata"]),
                    _j(run["kwargs"]),
                    run["multitask_strategy"],
                ),
            )
            return run, inflight

    async def get_run(self, run_id: str, thread_id: str | None = None) -> Row | None:
        async with self._tx() as conn:
            if thread_id is None:
                return await self._one(conn, "SELECT * FROM gd_runs WHERE run_id = ?", (run_id,))
            return await self._one(
                conn, "SELECT * FROM gd_runs WHERE run_id = ? AND thread_id = ?", (run_id, thread_id)
            )

    async def list_runs(
        self, thread_id: str, *, limit: int, offset: int, status: str | None
    ) -> list[Row]:
        clauses, params = ["thread_id = ?"], [thread_id]
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        async with self._tx() as conn:
            return await self._all(
                conn,
                f"SELECT * FROM gd_runs WHERE {' AND '.join(clauses)}"
                " ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )

    async def delete_run(self, run_id: str, thread_id: str) -> bool:
        async with self._tx() as conn:
            cur = await conn.execute(
                "DELETE FROM gd_runs WHERE run_id = ? AND thread_id = ?", (run_id, thread_id)
            )
            deleted = cur.rowcount > 0
            if deleted:
                thread = await self._one(
                    conn, "SELECT status FROM gd_threads WHERE thread_id = ?", (thread_id,)
                )
                if thread and thread["status"] == "busy" and not await self._has_inflight(conn, thread_id):
                    await conn.execute(
                        "UPDATE gd_threads SET status = 'idle', updated_at = ? WHERE thread_id = ?",
                        (serde.now_iso(), thread_id),
                    )
            return deleted

    async def claim_run(self, run_id: str) -> Row | None:
        async with self._tx() as conn:
            row = await self._one(conn, "SELECT * FROM gd_runs WHERE run_id = ?", (run_id,))
            if row is None or row["status"] != "pending":
                return None
            now = serde.now_iso()
            await conn.execute(
                "UPDATE gd_runs SET status = 'running', attempt = attempt + 1, updated_at = ?"
                " WHERE run_id = ?",
                (now, run_id),
            )
            row["status"], row["attempt"], row["updated_at"] = "running", row["attempt"] + 1, now
            return row

    async def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        thread_status: str,
        values: Any = ...,
        interrupts: Any = ...,
        error: Any = ...,
    ) -> None:
        async with self._tx() as conn:
            row = await self._one(conn, "SELECT thread_id FROM gd_runs WHERE run_id = ?", (run_id,))
            if row is None:
                return
            await conn.execute(
                "UPDATE gd_runs SET status = ?, updated_at = ? WHERE run_id = ?",
                (status, serde.now_iso(), run_id),
            )
            await self._update_thread(
                conn,
                row["thread_id"],
                values=values,
                interrupts=interrupts,
                error=error,
                status=thread_status,
                state_updated=values is not ...,
            )

    async def set_run_status(self, run_id: str, status: str) -> Row | None:
        async with self._tx() as conn:
            row = await self._one(conn, "SELECT * FROM gd_runs WHERE run_id = ?", (run_id,))
            if row is None:
                return None
            now = serde.now_iso()
            await conn.execute(
                "UPDATE gd_runs SET status = ?, updated_at = ? WHERE run_id = ?", (status, now, run_id)
            )
            row["status"], row["updated_at"] = status, now
            return row

    async def inflight_runs(self, thread_id: str) -> list[Row]:
        async with self._tx() as conn:
            return await self._all(
                conn,
                "SELECT * FROM gd_runs WHERE thread_id = ? AND status IN ('pending','running')"
                " ORDER BY created_at",
                (thread_id,),
            )

    async def runnable_runs(self) -> list[Row]:
        async with self._tx() as conn:
            await conn.execute("UPDATE gd_runs SET status = 'pending' WHERE status = 'running'")
            return await self._all(
                conn, "SELECT * FROM gd_runs WHERE status = 'pending' ORDER BY created_at"
            )

    # -- checkpoint housekeeping (langgraph's tables live in the same file) ----

    async def delete_checkpoints_for_run(self, thread_id: str, run_id: str) -> None:
        """Delete the checkpoints (and their writes) that ``run_id`` wrote on ``thread_id``."""
        async with self._tx() as conn:
            async with conn.execute(
                "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ?"
                " AND json_extract(CAST(metadata AS TEXT), '$.run_id') = ?",
                (thread_id, run_id),
            ) as cur:
                ids = [r[0] for r in await cur.fetchall()]
            for cid in ids:
                await conn.execute(
                    "DELETE FROM writes WHERE thread_id = ? AND checkpoint_id = ?", (thread_id, cid)
                )
                await conn.execute(
                    "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_id = ?", (thread_id, cid)
                )

    _WRITE_COLUMNS = "thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value"

    async def head_writes(self, thread_id: str, checkpoint_id: str | None = None) -> Any:
        async with self._tx() as conn:
            async with conn.execute(
                "SELECT checkpoint_ns, MAX(checkpoint_id) FROM checkpoints WHERE thread_id = ?"
                " GROUP BY checkpoint_ns",
                (thread_id,),
            ) as cur:
                heads = [(ns, cid) for ns, cid in await cur.fetchall()]
            if checkpoint_id is not None and ("", checkpoint_id) not in heads:
                heads.append(("", checkpoint_id))
            writes: list[tuple[Any, ...]] = []
            for ns, cid in heads:
                async with conn.execute(
                    f"SELECT {self._WRITE_COLUMNS} FROM writes WHERE thread_id = ? AND checkpoint_ns = ?"
                    " AND checkpoint_id = ?",
                    (thread_id, ns, cid),
                ) as cur:
                    writes.extend(tuple(row) for row in await cur.fetchall())
        return {"checkpoints": heads, "writes": writes}

    async def restore_writes(self, thread_id: str, snapshot: Any) -> None:
        async with self._tx() as conn:
            for ns, cid in snapshot["checkpoints"]:
                await conn.execute(
                    "DELETE FROM writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
                    (thread_id, ns, cid),
                )
            await conn.executemany(
                f"INSERT OR REPLACE INTO writes ({self._WRITE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                snapshot["writes"],
            )

    async def prune_checkpoints(self, thread_id: str) -> None:
        """Keep only the latest checkpoint of each namespace of ``thread_id``."""
        async with self._tx() as conn:
            async with conn.execute(
                "SELECT checkpoint_ns, MAX(checkpoint_id) FROM checkpoints WHERE thread_id = ?"
                " GROUP BY checkpoint_ns",
                (thread_id,),
            ) as cur:
                latest = await cur.fetchall()
            for ns, keep in latest:
                await conn.execute(
                    "DELETE FROM writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id != ?",
                    (thread_id, ns, keep),
                )
                await conn.execute(
                    "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id != ?",
                    (thread_id, ns, keep),
                )
                await conn.execute(
                    "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = ?"
                    " AND checkpoint_ns = ? AND checkpoint_id = ?",
                    (thread_id, ns, keep),
                )

    async def runs_with_status(self, statuses: Sequence[str]) -> list[Row]:
        async with self._tx() as conn:
            return await self._all(
                conn,
                f"SELECT * FROM gd_runs WHERE status IN ({','.join('?' * len(statuses))})"
                " ORDER BY created_at",
                list(statuses),
            )
