"""What graphdock's PostgreSQL row classes share: statements on the pool, and the update
of a thread's cached state that both thread and run writes make.

Every method of the classes built on :class:`Rows` is one statement or one transaction
on a connection of the shared pool, committed before it returns; nothing is cached
(other processes write the same rows).

Lock order: a transaction that locks runs and their thread locks the runs first.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Sequence

from psycopg import AsyncCursor
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool

from graphdock import serde
from graphdock.backends.base import Row
from graphdock.backends.postgres.database import RUN_READY, THREAD_COLUMNS, decode, decode_all, js, js_or_null

Cursor = AsyncCursor[DictRow]

#: the runs in flight on a thread (parameter: the thread id)
INFLIGHT = "SELECT 1 FROM gd_runs WHERE thread_id = %s AND status IN ('pending','running')"


class Rows:
    """Statements on ``pool`` for a process whose lease holder identity is ``worker_id``
    (the queue's): a run this process claims is held by it for ``lease_seconds`` and
    renewed by the queue of this process."""

    def __init__(
        self, pool: AsyncConnectionPool[Any], *, worker_id: str, lease_seconds: float
    ) -> None:
        self.pool = pool
        self.worker_id = worker_id
        self.lease_seconds = float(lease_seconds)

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
            sets.append(f"status = CASE WHEN EXISTS ({INFLIGHT}) THEN 'busy' ELSE %s END")
            params.extend([thread_id, status])
        return await self._fetch(
            cur,
            f"UPDATE gd_threads SET {', '.join(sets)} WHERE thread_id = %s RETURNING {THREAD_COLUMNS}",
            [*params, thread_id],
        )
