"""SQLite rows for crons and thread TTLs: a mixin of :class:`.storage.SqliteStorage`.

Timestamps are stored as :func:`graphdock.serde.iso` strings (UTC, fixed width), so that
comparing the text compares the times. A cron is claimed by ``UPDATE ... WHERE
next_run_date = <the value read>``: only one caller sees its row change.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Sequence

from graphdock import serde
from graphdock.backends.base import Page, Row, SortOrder

Conn = sqlite3.Connection

SCHEMA = """
CREATE TABLE IF NOT EXISTS gd_crons (
    cron_id TEXT PRIMARY KEY,
    assistant_id TEXT NOT NULL,
    thread_id TEXT,
    user_id TEXT,
    payload TEXT NOT NULL,
    schedule TEXT NOT NULL,
    timezone TEXT,
    next_run_date TEXT,
    end_time TEXT,
    enabled INTEGER NOT NULL,
    on_run_completed TEXT,
    metadata TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS gd_crons_next ON gd_crons(enabled, next_run_date);
CREATE INDEX IF NOT EXISTS gd_crons_thread ON gd_crons(thread_id);
CREATE INDEX IF NOT EXISTS gd_crons_assistant ON gd_crons(assistant_id);
CREATE TABLE IF NOT EXISTS gd_thread_ttls (
    thread_id TEXT PRIMARY KEY,
    strategy TEXT NOT NULL,
    minutes REAL NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS gd_thread_ttls_expiry ON gd_thread_ttls(expires_at);
"""

CRON_COLUMNS = (
    "cron_id", "assistant_id", "thread_id", "user_id", "payload", "schedule", "timezone",
    "next_run_date", "end_time", "enabled", "on_run_completed", "metadata", "created_at", "updated_at",
)  # fmt: skip
_CRON_JSON = {"payload", "metadata"}
_CRON_SORT = {"cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at", "updated_at"}


def _encode(column: str, value: Any) -> Any:
    if column in _CRON_JSON:
        return serde.dumps_str(value)
    if column == "enabled":
        return int(bool(value))
    return value


def _cron(raw: Sequence[Any] | None) -> Row | None:
    if raw is None:
        return None
    row = dict(zip(CRON_COLUMNS, raw))
    for column in _CRON_JSON:
        row[column] = serde.loads(row[column])
    row["enabled"] = bool(row["enabled"])
    return row


_SELECT = f"SELECT {', '.join(CRON_COLUMNS)} FROM gd_crons"


def delete_crons_of(conn: Conn, *, thread_id: str | None = None, assistant_id: str | None = None) -> None:
    """Delete the crons of a thread or an assistant (in the caller's transaction)."""
    if thread_id is not None:
        conn.execute("DELETE FROM gd_crons WHERE thread_id = ?", (thread_id,))
        conn.execute("DELETE FROM gd_thread_ttls WHERE thread_id = ?", (thread_id,))
    if assistant_id is not None:
        conn.execute("DELETE FROM gd_crons WHERE assistant_id = ?", (assistant_id,))


class CronRows:
    """Crons and thread TTLs; the host class provides ``_write``, ``_read``, ``_scan``
    and ``_delete_thread``."""

    _write: Any
    _read: Any
    _scan: Any
    _delete_thread: Any

    async def create_cron(self, row: Row) -> Row:
        def insert(conn: Conn) -> Row:
            conn.execute(
                f"INSERT INTO gd_crons ({', '.join(CRON_COLUMNS)}) VALUES ({', '.join('?' * len(CRON_COLUMNS))})",
                [_encode(c, row.get(c)) for c in CRON_COLUMNS],
            )
            return _cron(conn.execute(f"{_SELECT} WHERE cron_id = ?", (row["cron_id"],)).fetchone())  # type: ignore[return-value]

        return await self._write(insert)

    async def get_cron(self, cron_id: str, *, auth_filter: Row | None = None) -> Row | None:
        from graphdock.backends.sqlite.storage import _auth

        clause, params = _auth(auth_filter)
        return await self._read(
            lambda conn: _cron(conn.execute(f"{_SELECT} WHERE cron_id = ? AND {clause}", (cron_id, *params)).fetchone())
        )

    async def update_cron(self, cron_id: str, changes: Row, *, auth_filter: Row | None = None) -> Row | None:
        from graphdock.backends.sqlite.storage import _auth

        clause, params = _auth(auth_filter)
        changes = {**{k: v for k, v in changes.items() if k in CRON_COLUMNS and k != "cron_id"}, "updated_at": serde.now_iso()}

        def update(conn: Conn) -> Row | None:
            sets = ", ".join(f"{c} = ?" for c in changes)
            cur = conn.execute(
                f"UPDATE gd_crons SET {sets} WHERE cron_id = ? AND {clause}",
                [*(_encode(c, v) for c, v in changes.items()), cron_id, *params],
            )
            if cur.rowcount == 0:
                return None
            return _cron(conn.execute(f"{_SELECT} WHERE cron_id = ?", (cron_id,)).fetchone())

        return await self._write(update)

    async def delete_cron(self, cron_id: str, *, auth_filter: Row | None = None) -> bool:
        from graphdock.backends.sqlite.storage import _auth

        clause, params = _auth(auth_filter)
        return await self._write(
            lambda conn: conn.execute(f"DELETE FROM gd_crons WHERE cron_id = ? AND {clause}", (cron_id, *params)).rowcount
            > 0
        )

    @staticmethod
    def _cron_where(
        assistant_id: str | None,
        thread_id: str | None,
        enabled: bool | None,
        metadata: Row | None,
        auth_filter: Row | None,
    ) -> tuple[str, list[Any]]:
        from graphdock.backends.sqlite.storage import _auth

        clause, params = _auth(auth_filter)
        clauses = [clause]
        for column, value in (("assistant_id", assistant_id), ("thread_id", thread_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if enabled is not None:
            clauses.append("enabled = ?")
            params.append(int(enabled))
        if metadata:
            clauses.append("json_contains(metadata, ?)")
            params.append(serde.dumps_str(metadata))
        return " AND ".join(clauses), params

    async def search_crons(
        self,
        *,
        assistant_id: str | None,
        thread_id: str | None,
        enabled: bool | None,
        metadata: Row | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: SortOrder,
        auth_filter: Row | None = None,
    ) -> Page:
        where, params = self._cron_where(assistant_id, thread_id, enabled, metadata, auth_filter)
        column = sort_by if sort_by in _CRON_SORT else "created_at"
        direction = "ASC" if sort_order == "asc" else "DESC"
        raws = await self._scan(
            lambda conn: conn.execute(
                f"{_SELECT} WHERE {where} ORDER BY {column} {direction}, cron_id {direction} LIMIT ? OFFSET ?",
                [*params, limit + 1, offset],
            ).fetchall()
        )
        rows = [_cron(raw) for raw in raws]
        return Page(rows[:limit], len(rows) > limit)  # type: ignore[arg-type]

    async def count_crons(
        self,
        *,
        assistant_id: str | None,
        thread_id: str | None,
        metadata: Row | None,
        auth_filter: Row | None = None,
    ) -> int:
        where, params = self._cron_where(assistant_id, thread_id, None, metadata, auth_filter)
        return await self._scan(lambda conn: conn.execute(f"SELECT count(*) FROM gd_crons WHERE {where}", params).fetchone()[0])

    async def due_crons(self, now: str, *, limit: int) -> list[Row]:
        raws = await self._read(
            lambda conn: conn.execute(
                f"{_SELECT} WHERE enabled = 1 AND next_run_date IS NOT NULL AND next_run_date <= ?"
                " ORDER BY next_run_date LIMIT ?",
                (now, limit),
            ).fetchall()
        )
        return [_cron(raw) for raw in raws]  # type: ignore[misc]

    async def next_cron_date(self) -> str | None:
        return await self._read(
            lambda conn: conn.execute(
                "SELECT min(next_run_date) FROM gd_crons WHERE enabled = 1 AND next_run_date IS NOT NULL"
            ).fetchone()[0]
        )

    async def claim_cron(self, cron_id: str, seen: str, next_run_date: str | None) -> bool:
        return await self._write(
            lambda conn: conn.execute(
                "UPDATE gd_crons SET next_run_date = ? WHERE cron_id = ? AND next_run_date = ? AND enabled = 1",
                (next_run_date, cron_id, seen),
            ).rowcount
            == 1
        )

    # -- thread TTLs

    async def set_thread_ttl(
        self, thread_id: str, *, strategy: str | None, minutes: float | None, expires_at: str | None
    ) -> None:
        def put(conn: Conn) -> None:
            if minutes is None:
                conn.execute("DELETE FROM gd_thread_ttls WHERE thread_id = ?", (thread_id,))
                return
            conn.execute(
                "INSERT INTO gd_thread_ttls (thread_id, strategy, minutes, expires_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (thread_id) DO UPDATE SET strategy = excluded.strategy,"
                " minutes = excluded.minutes, expires_at = excluded.expires_at",
                (thread_id, strategy, float(minutes), expires_at),
            )

        await self._write(put)

    async def expired_threads(self, now: str, *, limit: int) -> list[Row]:
        raws = await self._read(
            lambda conn: conn.execute(
                "SELECT x.thread_id, x.strategy, x.minutes, x.expires_at, t.updated_at, t.status"
                " FROM gd_thread_ttls x LEFT JOIN gd_threads t ON t.thread_id = x.thread_id"
                " WHERE x.expires_at <= ? ORDER BY x.expires_at LIMIT ?",
                (now, limit),
            ).fetchall()
        )
        keys = ("thread_id", "strategy", "minutes", "expires_at", "updated_at", "status")
        return [dict(zip(keys, raw)) for raw in raws]

    async def delete_idle_thread(self, thread_id: str) -> bool:
        def delete(conn: Conn) -> bool:
            busy = conn.execute(
                "SELECT 1 FROM gd_runs WHERE thread_id = ? AND status IN ('pending','running') LIMIT 1", (thread_id,)
            ).fetchone()
            if busy is not None:
                return False
            return bool(self._delete_thread(conn, thread_id, None))

        return await self._write(delete)
