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

from typing import Any, Sequence

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.postgres.aio import AsyncPostgresStore

from graphdock.backends.base import Housekeeping

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

_HEADS = """
SELECT checkpoint_ns, max(checkpoint_id) AS checkpoint_id FROM checkpoints
WHERE thread_id = %s GROUP BY checkpoint_ns
"""

_WRITES_OF = f"""
SELECT {_WRITE_COLUMNS} FROM checkpoint_writes
WHERE thread_id = %s AND checkpoint_ns = %s AND checkpoint_id = %s
ORDER BY task_id, idx
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
    housekeeping method is one transaction."""

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
        root checkpoint ``checkpoint_id``), read in one snapshot."""
        async with self._cursor(pipeline=False) as cur:
            async with cur.connection.transaction():
                await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                await cur.execute(_HEADS, (thread_id,))
                heads = [(r["checkpoint_ns"], r["checkpoint_id"]) for r in await cur.fetchall()]
                if checkpoint_id is not None and ("", checkpoint_id) not in heads:
                    heads.append(("", checkpoint_id))
                writes: list[tuple[Any, ...]] = []
                for ns, cid in heads:
                    await cur.execute(_WRITES_OF, (thread_id, ns, cid))
                    writes.extend(tuple(row[k] for k in _KEYS) for row in await cur.fetchall())
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
