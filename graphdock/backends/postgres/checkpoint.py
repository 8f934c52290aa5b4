"""langgraph's PostgreSQL checkpointer with graphdock's housekeeping, and its store.

:class:`PostgresSaver` is langgraph's ``AsyncPostgresSaver`` unchanged (its SQL, its
serialisation, its tables ``checkpoints``, ``checkpoint_blobs``, ``checkpoint_writes``,
its own ``aprune``) plus what :class:`~graphdock.backends.base.Housekeeping` adds; the
SQL on the saver's tables lives here, next to the saver that owns them, and nowhere else.

The store is langgraph's ``AsyncPostgresStore`` as it is: a put that replaces an item
updates ``value`` and ``updated_at`` and keeps ``created_at`` (its upsert leaves that
column alone), which is what graphdock's SQLite store guarantees.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Sequence

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from langgraph.store.postgres.aio import AsyncPostgresStore

from graphdock.backends.base import Housekeeping
from graphdock.backends.postgres.database import RELAXED_COMMIT

__all__ = ["PostgresSaver", "AsyncPostgresStore"]

_WRITE_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob"
)

_DELETE_RUN_CHECKPOINTS = """
DELETE FROM checkpoints WHERE metadata ->> 'run_id' = ANY(%s::text[])
RETURNING thread_id, checkpoint_ns, checkpoint_id, checkpoint -> 'channel_versions' AS versions
"""

_DELETE_WRITES_OF = """
DELETE FROM checkpoint_writes w
USING unnest(%s::text[], %s::text[], %s::text[]) AS d(thread_id, checkpoint_ns, checkpoint_id)
WHERE w.thread_id = d.thread_id AND w.checkpoint_ns = d.checkpoint_ns
AND w.checkpoint_id = d.checkpoint_id
"""

_REFERENCED_BLOBS = """
SELECT DISTINCT v.key AS channel, v.value AS version
FROM checkpoints c
CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
WHERE c.thread_id = %s AND c.checkpoint_ns = %s
"""

_DELETE_BLOBS = """
DELETE FROM checkpoint_blobs
WHERE thread_id = %s AND checkpoint_ns = %s AND channel = %s AND version = ANY(%s::text[])
"""

_HEAD_WRITES = f"""
WITH heads AS (
    SELECT checkpoint_ns, max(checkpoint_id) AS checkpoint_id FROM checkpoints
    WHERE thread_id = %(thread_id)s GROUP BY checkpoint_ns
    UNION
    SELECT '', %(checkpoint_id)s::text WHERE %(checkpoint_id)s::text IS NOT NULL
)
SELECT h.checkpoint_ns AS head_ns, h.checkpoint_id AS head_id, {", ".join("w." + c for c in _WRITE_COLUMNS.split(", "))}
FROM heads h LEFT JOIN checkpoint_writes w
ON w.thread_id = %(thread_id)s AND w.checkpoint_ns = h.checkpoint_ns
AND w.checkpoint_id = h.checkpoint_id
ORDER BY h.checkpoint_ns, h.checkpoint_id, w.task_id, w.idx
"""

_CLEAR_WRITES = """
DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_ns = %s AND checkpoint_id = %s
"""

_PUT_WRITE = f"""
INSERT INTO checkpoint_writes ({_WRITE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET
    task_path = EXCLUDED.task_path, channel = EXCLUDED.channel,
    type = EXCLUDED.type, blob = EXCLUDED.blob
"""

_KEYS = ("thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "task_path", "idx", "channel", "type", "blob")


class PostgresSaver(AsyncPostgresSaver, Housekeeping):
    """``AsyncPostgresSaver`` on graphdock's pool, with checkpoint housekeeping. Each
    housekeeping method is one transaction.

    On a pool, each operation takes a connection of its own, so operations of different
    runs go on at once: the saver's lock, which serialises every operation of the
    process (it guards a single shared connection), is not taken then. ``relaxed`` is a
    pool whose connections commit without waiting for the WAL flush; operations made
    while :data:`~graphdock.backends.postgres.database.RELAXED_COMMIT` is set (the
    checkpoint writes of a run a worker executes) use it.
    """

    def __init__(self, conn: Any, *, relaxed: AsyncConnectionPool[Any] | None = None) -> None:
        super().__init__(conn)
        self.relaxed = relaxed

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        if self.pipe is not None or not isinstance(self.conn, AsyncConnectionPool):
            async with super()._cursor(pipeline=pipeline) as cur:
                yield cur
            return
        pool = self.relaxed if self.relaxed is not None and RELAXED_COMMIT.get() else self.conn
        async with pool.connection() as conn:
            if pipeline and self.supports_pipeline:
                async with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            elif pipeline:
                async with conn.transaction(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            else:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints whose metadata ``run_id`` is one of ``run_ids``, their
        pending writes, and the channel blobs no remaining checkpoint refers to."""
        if isinstance(run_ids, str):
            raise TypeError("run_ids must be a sequence of run IDs, not a str")
        ids = [str(r) for r in run_ids]
        if not ids:
            return
        async with self._cursor(pipeline=False) as cur:
            async with cur.connection.transaction():
                await cur.execute(_DELETE_RUN_CHECKPOINTS, (ids,), prepare=False)
                deleted = await cur.fetchall()
                if not deleted:
                    return
                await cur.execute(
                    _DELETE_WRITES_OF,
                    (
                        [d["thread_id"] for d in deleted],
                        [d["checkpoint_ns"] for d in deleted],
                        [d["checkpoint_id"] for d in deleted],
                    ),
                    prepare=False,
                )
                freed: dict[tuple[str, str], set[tuple[str, str]]] = {}
                for d in deleted:
                    pairs = freed.setdefault((d["thread_id"], d["checkpoint_ns"]), set())
                    pairs.update((str(k), str(v)) for k, v in (d["versions"] or {}).items())
                for (thread_id, ns), pairs in freed.items():
                    await cur.execute(_REFERENCED_BLOBS, (thread_id, ns), prepare=False)
                    kept = {(r["channel"], r["version"]) for r in await cur.fetchall()}
                    garbage: dict[str, list[str]] = {}
                    for channel, version in pairs - kept:
                        garbage.setdefault(channel, []).append(version)
                    for channel, versions in garbage.items():
                        await cur.execute(
                            _DELETE_BLOBS, (thread_id, ns, channel, versions), prepare=False
                        )

    async def ahead_writes(self, thread_id: str, checkpoint_id: str | None = None) -> Any:
        """The pending writes of the thread's latest checkpoint in each namespace (and of
        root checkpoint ``checkpoint_id``), read by one statement (so in one snapshot)."""
        params = {"thread_id": thread_id, "checkpoint_id": checkpoint_id}
        async with self._cursor(pipeline=False) as cur:
            await cur.execute(_HEAD_WRITES, params)
            rows = await cur.fetchall()
        heads: list[tuple[str, str]] = []
        writes: list[tuple[Any, ...]] = []
        for row in rows:
            head = (row["head_ns"], row["head_id"])
            if not heads or heads[-1] != head:
                heads.append(head)
            if row["thread_id"] is not None:  # the head has writes
                writes.append(tuple(row[k] for k in _KEYS))
        return {"thread_id": thread_id, "checkpoints": heads, "writes": writes}

    async def arestore_writes(self, thread_id: str, snapshot: Any) -> None:
        """Make the pending writes of the checkpoints in ``snapshot`` (from
        :meth:`ahead_writes` of ``thread_id``) exactly what they were."""
        async with self._cursor(pipeline=False) as cur:
            async with cur.connection.transaction():
                for ns, cid in snapshot["checkpoints"]:
                    await cur.execute(_CLEAR_WRITES, (thread_id, ns, cid))
                if snapshot["writes"]:
                    await cur.executemany(_PUT_WRITE, [tuple(w) for w in snapshot["writes"]])
