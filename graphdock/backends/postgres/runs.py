"""The run rows of :class:`~graphdock.backends.postgres.storage.PostgresStorage`.

- ``create_run`` and ``finish_run``, the two writes of every run, are one call each of a
  server-side function (:mod:`.schema`): one round trip instead of a transaction of four
  to six statements. ``gd_create_run`` locks the thread row (a thread it creates is
  inserted with ``ON CONFLICT DO NOTHING`` and then locked), so that the in-flight list
  and multitask ``reject`` are right when two processes create runs on one thread at
  once;
- at most one run per thread is ``running``: a partial unique index says so, and
  :meth:`RunRows.claim_run` returns None when it refuses;
- a run's status written from the task that executes it under a lease (see
  :data:`~graphdock.backends.postgres.database.CURRENT_LEASE`) is written only while
  that lease holds: a worker that lost a run to another cannot overwrite its outcome;
- when a write may have made a pending run claimable (a run created, handed back,
  cancelled, deleted or finished while others wait on its thread), workers are notified
  on :data:`~graphdock.backends.postgres.schema.RUN_READY` in the same transaction.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import psycopg

from graphdock import serde
from graphdock.backends.base import Row
from graphdock.backends.postgres.database import RUN_COLUMNS, RUN_READY, js, js_or_null, lease_for, ts
from graphdock.backends.postgres.rows import INFLIGHT, Rows
from graphdock.errors import Conflict, NotFound

logger = logging.getLogger("graphdock.postgres")

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

_LEASE = "now() + %s * interval '1 second'"


def _waited(created_at: str) -> str:
    return f"coalesce(greatest(0, extract(epoch FROM now() - {created_at})), 0)::float8"


# counts by status off the status index; the wait of the oldest, median and oldest
# unblocked pending run
_QUEUE_STATS = f"""
SELECT
    count(*) FILTER (WHERE status = 'pending') AS n_pending,
    count(*) FILTER (WHERE status = 'running') AS n_running,
    {_waited("min(created_at) FILTER (WHERE status = 'pending')")} AS pending_runs_wait_time_max_secs,
    {_waited("percentile_disc(0.5) WITHIN GROUP (ORDER BY created_at) FILTER (WHERE status = 'pending')")}
        AS pending_runs_wait_time_med_secs,
    (SELECT {_waited("min(p.created_at)")} FROM gd_runs p WHERE p.status = 'pending' AND NOT EXISTS
        (SELECT 1 FROM gd_runs r WHERE r.thread_id = p.thread_id AND r.status = 'running'))
        AS pending_unblocked_runs_wait_time_max_secs
FROM gd_runs WHERE status IN ('pending', 'running')
"""


class RunRows(Rows):
    """Runs: the run methods of :class:`~graphdock.backends.base.Storage`."""

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
                f" WHERE thread_id = %s AND status = 'busy' AND NOT EXISTS ({INFLIGHT})",
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

    async def queue_stats(self) -> Row:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_QUEUE_STATS)
            row = await cur.fetchone()
        assert row is not None
        return {key: (int(value) if key.startswith("n_") else float(value)) for key, value in row.items()}

    async def ping(self) -> None:
        async with self.pool.connection(timeout=2.0) as conn:
            await conn.execute("SELECT 1")

    async def runs_with_status(self, statuses: Sequence[str]) -> list[Row]:
        return await self._all(
            f"SELECT {RUN_COLUMNS} FROM gd_runs WHERE status = ANY(%s::text[])"
            " ORDER BY created_at, run_id",
            (list(statuses),),
        )
