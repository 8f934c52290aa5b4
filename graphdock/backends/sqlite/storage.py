"""SQLite implementation of :class:`graphdock.backends.base.Storage`.

Every public method is one synchronous function run as one transaction on the
shared :class:`~graphdock.backends.sqlite.database.Database` connection (writes
with ``BEGIN IMMEDIATE``, point reads holding the connection); searches, counts and
listings run on the database's reader thread. JSON columns hold compact JSON
text. Metadata containment filters are evaluated inside the query by the
``json_contains`` SQL function.

Assistant rows (up to 1024) are cached as their raw column values, decoded on each
read, until this storage changes them; nothing else writes them while the server runs.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from graphdock import serde
from graphdock.backends.base import Page, Row, SortOrder, Storage
from graphdock.backends.sqlite.crons import SCHEMA as CRON_SCHEMA, CronRows, delete_crons_of
from graphdock.backends.sqlite.database import Database, Synchronous
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

_ASSISTANT_CACHE_SIZE = 1024

_REJECT_MESSAGE = (
    "Thread is already running a task. Wait for it to finish or choose a"
    " different multitask strategy."
)


Conn = sqlite3.Connection


def _decoder(description: Sequence[Any]) -> list[tuple[str, bool]]:
    return [(d[0], d[0] in _JSON_COLUMNS) for d in description]


def _decode(columns: list[tuple[str, bool]], raw: Sequence[Any]) -> Row:
    out: Row = {}
    for (name, is_json), value in zip(columns, raw):
        if is_json and value is not None:
            value = serde.loads(value)
        out[name] = value
    return out


def _one(conn: Conn, sql: str, params: Sequence[Any] = ()) -> Row | None:
    cur = conn.execute(sql, params)
    raw = cur.fetchone()
    return _decode(_decoder(cur.description), raw) if raw is not None else None


def _all(conn: Conn, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    cur = conn.execute(sql, params)
    raws = cur.fetchall()
    if not raws:
        return []
    columns = _decoder(cur.description)
    return [_decode(columns, raw) for raw in raws]


def _j(value: Any) -> str:
    return serde.dumps_str(value)


def _auth(flt: Row | None, column: str = "metadata") -> tuple[str, list[Any]]:
    """An SQL condition restricting rows to those whose ``column`` passes an auth filter."""
    if not flt:
        return "1=1", []
    return f"json_auth_match({column}, ?)", [_j(flt)]


def _has_inflight(conn: Conn, thread_id: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM gd_runs WHERE thread_id = ? AND status IN ('pending','running') LIMIT 1",
            (thread_id,),
        ).fetchone()
        is not None
    )


class SqliteStorage(CronRows, Storage):
    """Storage over one SQLite file (WAL mode), on a :class:`Database` it shares with
    langgraph's checkpointer and store."""

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: Synchronous = "NORMAL",
    ) -> None:
        self.path = str(path)
        self.database = Database(
            path,
            synchronous=synchronous,
            functions={"json_contains": json_contains, "json_auth_match": json_auth_match},
        )
        self._assistants: dict[str, tuple[list[tuple[str, bool]], tuple[Any, ...]]] = {}

    async def setup(self) -> None:
        self.database.open()
        with self.database.locked() as conn:
            conn.executescript(_SCHEMA)
            conn.executescript(CRON_SCHEMA)

    async def close(self) -> None:
        self.database.close()

    async def _write(self, fn: Any, *args: Any) -> Any:
        return await self.database.awrite(fn, *args)

    async def _read(self, fn: Any, *args: Any) -> Any:
        return self.database.read(fn, *args)

    async def _scan(self, fn: Any, *args: Any) -> Any:
        return await self.database.scan(fn, *args)

    # -- assistants -----------------------------------------------------------

    def _forget_assistant(self, assistant_id: str) -> None:
        self._assistants.pop(assistant_id, None)

    def _assistant_row(self, conn: Conn, assistant_id: str) -> Row | None:
        """The current assistant row, from the cache or the table."""
        cached = self._assistants.get(assistant_id)
        if cached is None:
            cur = conn.execute("SELECT * FROM gd_assistants WHERE assistant_id = ?", (assistant_id,))
            raw = cur.fetchone()
            if raw is None:
                return None
            cached = (_decoder(cur.description), tuple(raw))
            if len(self._assistants) >= _ASSISTANT_CACHE_SIZE:
                del self._assistants[next(iter(self._assistants))]  # the oldest entry
            self._assistants[assistant_id] = cached
        return _decode(*cached)

    async def put_assistant(
        self, row: Row, *, if_exists: str, auth_filter: Row | None = None
    ) -> tuple[Row, bool]:
        return await self._write(self._put_assistant, row, if_exists, auth_filter)

    def _put_assistant(
        self, conn: Conn, row: Row, if_exists: str, auth_filter: Row | None
    ) -> tuple[Row, bool]:
        existing = self._assistant_row(conn, row["assistant_id"])
        if existing is not None:
            if auth_filter and not auth_match(existing["metadata"], auth_filter):
                raise Conflict(f"Assistant {row['assistant_id']} already exists")
            if if_exists == "do_nothing":
                return existing, False
            raise Conflict(f"Assistant {row['assistant_id']} already exists")
        self._forget_assistant(row["assistant_id"])
        self._insert_assistant(conn, row)
        return row, True

    @staticmethod
    def _insert_assistant(conn: Conn, row: Row) -> None:
        conn.execute(
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
        SqliteStorage._insert_version(conn, row)

    @staticmethod
    def _insert_version(conn: Conn, row: Row) -> None:
        conn.execute(
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
        await self._write(self._ensure_system_assistant, assistant_id, graph_id, name, description)

    def _ensure_system_assistant(
        self, conn: Conn, assistant_id: str, graph_id: str, name: str, description: str | None
    ) -> None:
        now = serde.now_iso()
        existing = self._assistant_row(conn, assistant_id)
        self._forget_assistant(assistant_id)
        if existing is None:
            self._insert_assistant(
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
            conn.execute(
                "UPDATE gd_assistants SET name = ?, description = ? WHERE assistant_id = ?",
                (name, description, assistant_id),
            )

    async def get_assistant(self, assistant_id: str, *, auth_filter: Row | None = None) -> Row | None:
        return await self._read(self._get_assistant, assistant_id, auth_filter)

    def _get_assistant(self, conn: Conn, assistant_id: str, auth_filter: Row | None) -> Row | None:
        row = self._assistant_row(conn, assistant_id)
        if row is None or (auth_filter and not auth_match(row["metadata"], auth_filter)):
            return None
        return row

    async def patch_assistant(
        self, assistant_id: str, changes: Row, *, auth_filter: Row | None = None
    ) -> Row | None:
        return await self._write(self._patch_assistant, assistant_id, changes, auth_filter)

    def _patch_assistant(
        self, conn: Conn, assistant_id: str, changes: Row, auth_filter: Row | None
    ) -> Row | None:
        current = self._get_assistant(conn, assistant_id, auth_filter)
        if current is None:
            return None
        self._forget_assistant(assistant_id)
        (max_version,) = conn.execute(
            "SELECT MAX(version) FROM gd_assistant_versions WHERE assistant_id = ?", (assistant_id,)
        ).fetchone()
        row = dict(current)
        row.update(changes)
        row["version"] = int(max_version or 0) + 1
        row["updated_at"] = serde.now_iso()
        self._update_assistant(conn, assistant_id, row)
        self._insert_version(conn, row)
        return row

    @staticmethod
    def _update_assistant(conn: Conn, assistant_id: str, row: Row) -> None:
        conn.execute(
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

    async def delete_assistant(self, assistant_id: str, *, auth_filter: Row | None = None) -> bool:
        return await self._write(self._delete_assistant, assistant_id, auth_filter)

    def _delete_assistant(self, conn: Conn, assistant_id: str, auth_filter: Row | None) -> bool:
        clause, params = _auth(auth_filter)
        self._forget_assistant(assistant_id)
        cur = conn.execute(
            f"DELETE FROM gd_assistants WHERE assistant_id = ? AND {clause}", (assistant_id, *params)
        )
        if cur.rowcount == 0:
            return False
        conn.execute("DELETE FROM gd_assistant_versions WHERE assistant_id = ?", (assistant_id,))
        delete_crons_of(conn, assistant_id=assistant_id)
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
        rows = await self._scan(
            _all,
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
        return await self._scan(_count, f"SELECT COUNT(*) FROM gd_assistants WHERE {where}", params)

    async def assistant_versions(
        self, assistant_id: str, *, metadata: Row | None, limit: int, offset: int
    ) -> list[Row]:
        clauses, params = ["assistant_id = ?"], [assistant_id]
        if metadata:
            clauses.append("json_contains(metadata, ?)")
            params.append(_j(metadata))
        return await self._scan(
            _all,
            f"SELECT * FROM gd_assistant_versions WHERE {' AND '.join(clauses)}"
            " ORDER BY version DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    async def set_assistant_version(
        self, assistant_id: str, version: int, *, auth_filter: Row | None = None
    ) -> Row | None:
        return await self._write(self._set_assistant_version, assistant_id, version, auth_filter)

    def _set_assistant_version(
        self, conn: Conn, assistant_id: str, version: int, auth_filter: Row | None
    ) -> Row | None:
        current = self._get_assistant(conn, assistant_id, auth_filter)
        if current is None:
            raise NotFound(f"Assistant {assistant_id} not found")
        ver = _one(
            conn,
            "SELECT * FROM gd_assistant_versions WHERE assistant_id = ? AND version = ?",
            (assistant_id, version),
        )
        if ver is None:
            return None
        self._forget_assistant(assistant_id)
        row = dict(current)
        for key in ("graph_id", "config", "context", "metadata", "name", "description", "version"):
            row[key] = ver[key]
        row["updated_at"] = serde.now_iso()
        self._update_assistant(conn, assistant_id, row)
        return row

    # -- threads --------------------------------------------------------------

    @staticmethod
    def _insert_thread(conn: Conn, row: Row) -> None:
        conn.execute(
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
        return await self._write(self._create_thread, row, if_exists, auth_filter)

    def _create_thread(
        self, conn: Conn, row: Row, if_exists: str, auth_filter: Row | None
    ) -> tuple[Row, bool]:
        existing = _one(conn, "SELECT * FROM gd_threads WHERE thread_id = ?", (row["thread_id"],))
        if existing is not None:
            if auth_filter and not auth_match(existing["metadata"], auth_filter):
                raise Conflict(f"Thread with ID {row['thread_id']} already exists")
            if if_exists == "do_nothing":
                return existing, False
            raise Conflict(f"Thread with ID {row['thread_id']} already exists")
        self._insert_thread(conn, row)
        # the row as a read would return it (JSON columns round-tripped, absent ones None)
        stored = {
            "thread_id": row["thread_id"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "state_updated_at": row["state_updated_at"],
            "metadata": serde.loads(_j(row["metadata"])),
            "config": serde.loads(_j(row["config"])),
            "status": row["status"],
        }
        for column in ("values", "interrupts", "error"):
            value = row.get(column)
            stored[column] = None if value is None else serde.loads(_j(value))
        return stored, True

    async def get_thread(self, thread_id: str, *, auth_filter: Row | None = None) -> Row | None:
        clause, params = _auth(auth_filter)
        return await self._read(
            _one, f"SELECT * FROM gd_threads WHERE thread_id = ? AND {clause}", (thread_id, *params)
        )

    async def patch_thread(
        self, thread_id: str, *, metadata: Row | None, auth_filter: Row | None = None
    ) -> Row | None:
        return await self._write(self._patch_thread, thread_id, metadata, auth_filter)

    @staticmethod
    def _patch_thread(
        conn: Conn, thread_id: str, metadata: Row | None, auth_filter: Row | None
    ) -> Row | None:
        clause, params = _auth(auth_filter)
        row = _one(conn, f"SELECT * FROM gd_threads WHERE thread_id = ? AND {clause}", (thread_id, *params))
        if row is None:
            return None
        merged = {**row["metadata"], **(metadata or {})}
        now = serde.now_iso()
        conn.execute(
            "UPDATE gd_threads SET metadata = ?, updated_at = ? WHERE thread_id = ?",
            (_j(merged), now, thread_id),
        )
        row["metadata"], row["updated_at"] = merged, now
        return row

    async def delete_thread(self, thread_id: str, *, auth_filter: Row | None = None) -> bool:
        return await self._write(self._delete_thread, thread_id, auth_filter)

    @staticmethod
    def _delete_thread(conn: Conn, thread_id: str, auth_filter: Row | None) -> bool:
        clause, params = _auth(auth_filter)
        cur = conn.execute(f"DELETE FROM gd_threads WHERE thread_id = ? AND {clause}", (thread_id, *params))
        if cur.rowcount == 0:
            return False
        conn.execute("DELETE FROM gd_runs WHERE thread_id = ?", (thread_id,))
        delete_crons_of(conn, thread_id=thread_id)
        return True

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
        rows = await self._scan(
            _all,
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
        return await self._scan(_count, f"SELECT COUNT(*) FROM gd_threads WHERE {where}", params)

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
        return await self._write(
            _update_thread, thread_id, values, interrupts, error, status, metadata, None, state_updated
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
        return await self._write(_create_run, run, thread, if_not_exists, multitask_strategy, start)

    async def get_run(self, run_id: str, thread_id: str | None = None) -> Row | None:
        if thread_id is None:
            return await self._read(_one, "SELECT * FROM gd_runs WHERE run_id = ?", (run_id,))
        return await self._read(
            _one, "SELECT * FROM gd_runs WHERE run_id = ? AND thread_id = ?", (run_id, thread_id)
        )

    async def list_runs(
        self, thread_id: str, *, limit: int, offset: int, status: str | None
    ) -> list[Row]:
        clauses, params = ["thread_id = ?"], [thread_id]
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        return await self._scan(
            _all,
            f"SELECT * FROM gd_runs WHERE {' AND '.join(clauses)}"
            " ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    async def delete_run(self, run_id: str, thread_id: str) -> bool:
        return await self._write(_delete_run, run_id, thread_id)

    async def claim_run(self, run_id: str) -> Row | None:
        return await self._write(_claim_run, run_id)

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
        """See :meth:`Storage.finish_run`; ``delete_thread`` then deletes the run's thread,
        its runs and its checkpoints in the same transaction (a temporary run's end)."""
        await self._write(
            _finish_run, run_id, status, thread_status, values, interrupts, error, delete_thread
        )

    async def set_run_status(self, run_id: str, status: str) -> Row | None:
        return await self._write(_set_run_status, run_id, status)

    async def inflight_runs(self, thread_id: str) -> list[Row]:
        return await self._read(
            _all,
            "SELECT * FROM gd_runs WHERE thread_id = ? AND status IN ('pending','running')"
            " ORDER BY created_at",
            (thread_id,),
        )

    async def runnable_runs(self) -> list[Row]:
        """Pending runs, oldest first, after putting runs left running back to pending: what
        a process that owns the file (the embedded queue at start) takes over."""
        return await self._write(_runnable_runs)

    async def runs_with_status(self, statuses: Sequence[str]) -> list[Row]:
        return await self._scan(
            _all,
            f"SELECT * FROM gd_runs WHERE status IN ({','.join('?' * len(statuses))})"
            " ORDER BY created_at",
            list(statuses),
        )

    async def queue_stats(self) -> Row:
        return await self._scan(_queue_stats)

    async def ping(self) -> None:
        await self._read(_count, "SELECT 1", ())

    async def release_run(self, run_id: str) -> None:
        await self._write(_release_run, run_id)

    async def cancel_pending_run(self, run_id: str, thread_id: str, *, delete: bool) -> bool:
        return await self._write(_cancel_pending_run, run_id, thread_id, delete)


# -- the transactions (each runs with the connection held) ------------------------


def _count(conn: Conn, sql: str, params: Sequence[Any]) -> int:
    (n,) = conn.execute(sql, params).fetchone()
    return int(n)


def _queue_stats(conn: Conn) -> Row:
    counts = dict(
        conn.execute(
            "SELECT status, COUNT(*) FROM gd_runs WHERE status IN ('pending','running') GROUP BY status"
        ).fetchall()
    )
    n_pending = int(counts.get("pending", 0))
    oldest = median = unblocked = None
    if n_pending:
        pending = "SELECT created_at FROM gd_runs p WHERE status = 'pending'"
        (oldest,) = conn.execute(f"{pending} ORDER BY created_at LIMIT 1").fetchone()
        (median,) = conn.execute(f"{pending} ORDER BY created_at LIMIT 1 OFFSET ?", (n_pending // 2,)).fetchone()
        row = conn.execute(
            f"{pending} AND NOT EXISTS (SELECT 1 FROM gd_runs r WHERE r.thread_id = p.thread_id"
            " AND r.status = 'running') ORDER BY created_at LIMIT 1"
        ).fetchone()
        unblocked = row[0] if row else None
    now = serde.now()

    def waited(created_at: str | None) -> float:
        return 0.0 if created_at is None else max(0.0, (now - datetime.fromisoformat(created_at)).total_seconds())

    return {
        "n_pending": n_pending,
        "n_running": int(counts.get("running", 0)),
        "pending_runs_wait_time_max_secs": waited(oldest),
        "pending_runs_wait_time_med_secs": waited(median),
        "pending_unblocked_runs_wait_time_max_secs": waited(unblocked),
    }


def _update_thread(
    conn: Conn,
    thread_id: str,
    values: Any = ...,
    interrupts: Any = ...,
    error: Any = ...,
    status: str | None = None,
    metadata: Row | None = None,
    config: Row | None = None,
    state_updated: bool = False,
    returning: bool = True,
) -> Row | None:
    """Update a thread row; the row after the update, or None when there is no such thread
    (``returning=False``: None either way, and the row is not read unless merging metadata)."""
    if returning or metadata:
        row = _one(conn, "SELECT * FROM gd_threads WHERE thread_id = ?", (thread_id,))
        if row is None:
            return None
    else:
        row = {}
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
        if status != "busy" and _has_inflight(conn, thread_id):
            status = "busy"
        sets.append("status = ?")
        params.append(status)
        row["status"] = status
    conn.execute(f"UPDATE gd_threads SET {', '.join(sets)} WHERE thread_id = ?", [*params, thread_id])
    return row if returning else None


def _create_run(
    conn: Conn, run: Row, thread: Row, if_not_exists: str, multitask_strategy: str, start: bool = False
) -> tuple[Row, list[str]]:
    thread_id = run["thread_id"]
    existing = conn.execute(
        "SELECT metadata FROM gd_threads WHERE thread_id = ?", (thread_id,)
    ).fetchone()
    inflight: list[str] = []
    if existing is None:
        if if_not_exists != "create":
            raise NotFound("Thread or assistant not found.")
        now = run["created_at"]
        SqliteStorage._insert_thread(
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
        inflight = [
            r[0]
            for r in conn.execute(
                "SELECT run_id FROM gd_runs WHERE thread_id = ? AND status IN ('pending','running')"
                " ORDER BY created_at",
                (thread_id,),
            ).fetchall()
        ]
        if inflight and multitask_strategy == "reject":
            raise Conflict(_REJECT_MESSAGE)
        merged_meta = {**serde.loads(existing[0]), **thread["metadata"]}
        conn.execute(
            "UPDATE gd_threads SET status = 'busy', metadata = ?, config = ?, updated_at = ?"
            " WHERE thread_id = ?",
            (_j(merged_meta), _j(thread["config"]), run["created_at"], thread_id),
        )
    if start and not inflight:
        run = {**run, "status": "running", "attempt": 1}
    conn.execute(
        "INSERT INTO gd_runs (run_id, thread_id, assistant_id, created_at, updated_at, status,"
        " metadata, kwargs, multitask_strategy, attempt) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            run["run_id"],
            thread_id,
            run["assistant_id"],
            run["created_at"],
            run["updated_at"],
            run["status"],
            _j(run["metadata"]),
            _j(run["kwargs"]),
            run["multitask_strategy"],
            run["attempt"],
        ),
    )
    return run, inflight


def _delete_run(conn: Conn, run_id: str, thread_id: str) -> bool:
    cur = conn.execute("DELETE FROM gd_runs WHERE run_id = ? AND thread_id = ?", (run_id, thread_id))
    deleted = cur.rowcount > 0
    if deleted:
        thread = conn.execute("SELECT status FROM gd_threads WHERE thread_id = ?", (thread_id,)).fetchone()
        if thread and thread[0] == "busy" and not _has_inflight(conn, thread_id):
            conn.execute(
                "UPDATE gd_threads SET status = 'idle', updated_at = ? WHERE thread_id = ?",
                (serde.now_iso(), thread_id),
            )
    return deleted


def _claim_run(conn: Conn, run_id: str) -> Row | None:
    row = _one(conn, "SELECT * FROM gd_runs WHERE run_id = ?", (run_id,))
    if row is None or row["status"] != "pending":
        return None
    if conn.execute(
        "SELECT 1 FROM gd_runs WHERE thread_id = ? AND status = 'running' LIMIT 1", (row["thread_id"],)
    ).fetchone():
        return None  # one running run per thread (the queue never asks for a second)
    now = serde.now_iso()
    conn.execute(
        "UPDATE gd_runs SET status = 'running', attempt = attempt + 1, updated_at = ? WHERE run_id = ?",
        (now, run_id),
    )
    row["status"], row["attempt"], row["updated_at"] = "running", row["attempt"] + 1, now
    return row


def _finish_run(
    conn: Conn,
    run_id: str,
    status: str,
    thread_status: str,
    values: Any,
    interrupts: Any,
    error: Any,
    delete_thread: bool,
) -> None:
    found = conn.execute("SELECT thread_id FROM gd_runs WHERE run_id = ?", (run_id,)).fetchone()
    if found is None:
        return
    thread_id = found[0]
    if delete_thread:
        # the run, its thread and its runs go together: nothing to record first (a
        # temporary run writes no checkpoints)
        conn.execute("DELETE FROM gd_threads WHERE thread_id = ?", (thread_id,))
        conn.execute("DELETE FROM gd_runs WHERE thread_id = ?", (thread_id,))
        return
    conn.execute(
        "UPDATE gd_runs SET status = ?, updated_at = ? WHERE run_id = ?",
        (status, serde.now_iso(), run_id),
    )
    _update_thread(
        conn,
        thread_id,
        values=values,
        interrupts=interrupts,
        error=error,
        status=thread_status,
        state_updated=values is not ...,
        returning=False,
    )


def _set_run_status(conn: Conn, run_id: str, status: str) -> Row | None:
    row = _one(conn, "SELECT * FROM gd_runs WHERE run_id = ?", (run_id,))
    if row is None:
        return None
    now = serde.now_iso()
    conn.execute("UPDATE gd_runs SET status = ?, updated_at = ? WHERE run_id = ?", (status, now, run_id))
    row["status"], row["updated_at"] = status, now
    return row


def _runnable_runs(conn: Conn) -> list[Row]:
    conn.execute("UPDATE gd_runs SET status = 'pending' WHERE status = 'running'")
    return _all(conn, "SELECT * FROM gd_runs WHERE status = 'pending' ORDER BY created_at")


def _release_run(conn: Conn, run_id: str) -> None:
    conn.execute(
        "UPDATE gd_runs SET status = 'pending', updated_at = ?"
        " WHERE run_id = ? AND status = 'running'",
        (serde.now_iso(), run_id),
    )


def _cancel_pending_run(conn: Conn, run_id: str, thread_id: str, delete: bool) -> bool:
    if delete:
        cur = conn.execute(
            "DELETE FROM gd_runs WHERE run_id = ? AND thread_id = ? AND status = 'pending'",
            (run_id, thread_id),
        )
    else:
        cur = conn.execute(
            "UPDATE gd_runs SET status = 'interrupted', updated_at = ?"
            " WHERE run_id = ? AND thread_id = ? AND status = 'pending'",
            (serde.now_iso(), run_id, thread_id),
        )
    if cur.rowcount == 0:
        return False
    # the run never touched the thread's recorded state
    found = conn.execute("SELECT interrupts FROM gd_threads WHERE thread_id = ?", (thread_id,)).fetchone()
    if found is not None:
        interrupts = serde.loads(found[0]) if found[0] is not None else None
        _update_thread(
            conn, thread_id, status="interrupted" if interrupts else "idle", returning=False
        )
    return True
