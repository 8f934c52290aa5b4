"""PostgreSQL rows for crons and thread TTLs: a mixin of :class:`.storage.PostgresStorage`.

A due cron is claimed by ``UPDATE ... WHERE cron_id = %s AND next_run_date = <the value
read> RETURNING``: of any number of processes that read the same due row, exactly one
sees its update succeed (the others find ``next_run_date`` already moved), so each due
time fires once across the deployment.
"""

from __future__ import annotations

from typing import Any

from graphdock import serde
from graphdock.backends.base import Page, Row, SortOrder
from graphdock.backends.postgres import filters
from graphdock.backends.postgres.database import js, ts

CRON_COLUMNS = (
    "cron_id, assistant_id, thread_id, user_id, payload, schedule, timezone, next_run_date,"
    " end_time, enabled, on_run_completed, metadata, created_at, updated_at"
)
_NAMES = [c.strip() for c in CRON_COLUMNS.split(",")]
_JSON = {"payload", "metadata"}
_TIMES = {"next_run_date", "end_time", "created_at", "updated_at"}
_CRON_SORT = {
    "cron_id": 'cron_id COLLATE "C"',
    "assistant_id": 'assistant_id COLLATE "C"',
    "thread_id": 'thread_id COLLATE "C"',
    "next_run_date": "next_run_date",
    "end_time": "end_time",
    "created_at": "created_at",
    "updated_at": "updated_at",
}


def _param(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in _JSON:
        return js(value)
    if column in _TIMES:
        return ts(value)
    return value


def _placeholder(column: str) -> str:
    return "%s::json" if column in _JSON else "%s"


#: statements that delete a thread's or an assistant's crons (in the caller's transaction)
DELETE_THREAD_CRONS = "DELETE FROM gd_crons WHERE thread_id = %s"
DELETE_THREAD_TTL = "DELETE FROM gd_thread_ttls WHERE thread_id = %s"
DELETE_ASSISTANT_CRONS = "DELETE FROM gd_crons WHERE assistant_id = %s"


class CronRows:
    """Crons and thread TTLs; the host class provides the pool statements of
    :class:`.rows.Rows` and ``_page``."""

    _one: Any
    _all: Any
    _count: Any
    _page: Any
    _transaction: Any
    pool: Any

    async def create_cron(self, row: Row) -> Row:
        created = await self._one(
            f"INSERT INTO gd_crons ({CRON_COLUMNS}) VALUES ({', '.join(_placeholder(c) for c in _NAMES)})"
            f" RETURNING {CRON_COLUMNS}",
            [_param(c, row.get(c)) for c in _NAMES],
        )
        assert created is not None
        return created

    async def get_cron(self, cron_id: str, *, auth_filter: Row | None = None) -> Row | None:
        clause, params = filters.auth("metadata", auth_filter)
        return await self._one(
            f"SELECT {CRON_COLUMNS} FROM gd_crons WHERE cron_id = %s AND {clause}", (cron_id, *params)
        )

    async def update_cron(self, cron_id: str, changes: Row, *, auth_filter: Row | None = None) -> Row | None:
        clause, params = filters.auth("metadata", auth_filter)
        changes = {**{k: v for k, v in changes.items() if k in _NAMES and k != "cron_id"}, "updated_at": serde.now()}
        sets = ", ".join(f"{c} = {_placeholder(c)}" for c in changes)
        return await self._one(
            f"UPDATE gd_crons SET {sets} WHERE cron_id = %s AND {clause} RETURNING {CRON_COLUMNS}",
            [*(_param(c, v) for c, v in changes.items()), cron_id, *params],
        )

    async def delete_cron(self, cron_id: str, *, auth_filter: Row | None = None) -> bool:
        clause, params = filters.auth("metadata", auth_filter)
        row = await self._one(
            f"DELETE FROM gd_crons WHERE cron_id = %s AND {clause} RETURNING cron_id", (cron_id, *params)
        )
        return row is not None

    @staticmethod
    def _cron_where(
        assistant_id: str | None,
        thread_id: str | None,
        enabled: bool | None,
        metadata: Row | None,
        auth_filter: Row | None,
    ) -> tuple[str, list[Any]]:
        clause, params = filters.auth("metadata", auth_filter)
        clauses = [clause]
        for column, value in (("assistant_id", assistant_id), ("thread_id", thread_id), ("enabled", enabled)):
            if value is not None:
                clauses.append(f"{column} = %s")
                params.append(value)
        if metadata:
            cond, more = filters.contains("metadata", metadata)
            clauses.append(cond)
            params.extend(more)
        return " AND ".join(f"({c})" for c in clauses), params

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
        column = _CRON_SORT.get(sort_by, "created_at")
        select = f"SELECT {CRON_COLUMNS} FROM gd_crons WHERE {where}"
        return await self._page(select, params, column, "cron_id", sort_order, limit, offset)

    async def count_crons(
        self,
        *,
        assistant_id: str | None,
        thread_id: str | None,
        metadata: Row | None,
        auth_filter: Row | None = None,
    ) -> int:
        where, params = self._cron_where(assistant_id, thread_id, None, metadata, auth_filter)
        return await self._count(f"SELECT count(*) AS n FROM gd_crons WHERE {where}", params)

    async def due_crons(self, now: str, *, limit: int) -> list[Row]:
        return await self._all(
            f"SELECT {CRON_COLUMNS} FROM gd_crons WHERE enabled AND next_run_date <= %s"
            " ORDER BY next_run_date LIMIT %s",
            (ts(now), limit),
        )

    async def next_cron_date(self) -> str | None:
        row = await self._one("SELECT min(next_run_date) AS next FROM gd_crons WHERE enabled")
        return row["next"] if row else None

    async def claim_cron(self, cron_id: str, seen: str, next_run_date: str | None) -> bool:
        row = await self._one(
            "UPDATE gd_crons SET next_run_date = %s WHERE cron_id = %s AND next_run_date = %s AND enabled"
            " RETURNING cron_id",
            (_param("next_run_date", next_run_date), cron_id, ts(seen)),
        )
        return row is not None

    # -- thread TTLs

    async def set_thread_ttl(
        self, thread_id: str, *, strategy: str | None, minutes: float | None, expires_at: str | None
    ) -> None:
        if minutes is None:
            await self._one(f"{DELETE_THREAD_TTL} RETURNING thread_id", (thread_id,))
            return
        await self._one(
            "INSERT INTO gd_thread_ttls (thread_id, strategy, minutes, expires_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (thread_id) DO UPDATE SET strategy = excluded.strategy,"
            " minutes = excluded.minutes, expires_at = excluded.expires_at RETURNING thread_id",
            (thread_id, strategy, float(minutes), ts(expires_at)),  # type: ignore[arg-type]
        )

    async def expired_threads(self, now: str, *, limit: int) -> list[Row]:
        return await self._all(
            "SELECT x.thread_id, x.strategy, x.minutes, x.expires_at, t.updated_at, t.status"
            " FROM gd_thread_ttls x LEFT JOIN gd_threads t ON t.thread_id = x.thread_id"
            " WHERE x.expires_at <= %s ORDER BY x.expires_at LIMIT %s",
            (ts(now), limit),
        )

    async def delete_idle_thread(self, thread_id: str) -> bool:
        async with self._transaction() as cur:
            # runs before their thread, as every transaction here locks them
            await cur.execute("SELECT status FROM gd_runs WHERE thread_id = %s FOR UPDATE", (thread_id,))
            if any(r["status"] in ("pending", "running") for r in await cur.fetchall()):
                return False
            await cur.execute("DELETE FROM gd_threads WHERE thread_id = %s", (thread_id,))
            if cur.rowcount == 0:
                return False
            for sql in ("DELETE FROM gd_runs WHERE thread_id = %s", DELETE_THREAD_CRONS, DELETE_THREAD_TTL):
                await cur.execute(sql, (thread_id,))
            return True


