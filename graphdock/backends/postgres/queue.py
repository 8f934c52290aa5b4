"""The run queue in PostgreSQL: claims with ``FOR UPDATE SKIP LOCKED``, leases, and
``LISTEN/NOTIFY`` wake-ups.

A pending run is claimable when its ``created_at`` has come, no run of its thread is
running, and no older run of its thread is pending; one statement claims the oldest
claimable runs, as many as this process has free slots (status ``running``,
``attempt + 1``, this worker's id, a lease of ``lease_seconds``). At most one running
run per thread is also enforced by a partial unique index; a claim it refuses is
retried.

A process that executes runs claims while it has free slots: when one frees, when a
notification arrives on :data:`~graphdock.backends.postgres.schema.RUN_READY` (a run
was written pending anywhere: the storage notifies in the transaction that writes
it), and when the earliest delayed run comes due (one loop timer, set from the
notification's ``created_at`` or from a query after each round). New runs are never
looked for by polling. The notifications are received on a connection of their own,
reconnected when lost (then a claim round catches up).

Two timers keep leases: every ``lease_seconds / 3`` one statement renews the leases of
every run this worker holds, and a run executing here whose row now belongs to another
holder (or is pending again) has lost its lease: its task is cancelled and it is not
handed back. Every ``lease_seconds / 2`` (with jitter), runs whose lease expired (their
process died or stalled) are made pending again and the workers notified; the next claim
counts another attempt (the executor fails a run past its maximum).

Each execution runs with :data:`~graphdock.backends.postgres.database.CURRENT_LEASE`
set, so that the storage writes its outcome only while the lease holds, and with
:data:`~graphdock.backends.postgres.database.RELAXED_COMMIT` unless the run asked for
``durability="sync"``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from graphdock import serde
from graphdock.backends.base import Execute, Queue, Row
from graphdock.backends.postgres.database import (
    CURRENT_LEASE,
    RELAXED_COMMIT,
    RUN_COLUMNS,
    RUN_READY,
    Lease,
    decode,
    with_timeout,
)

logger = logging.getLogger("graphdock.queue")

_CLAIM = f"""
UPDATE gd_runs SET status = 'running', attempt = attempt + 1, worker_id = %(me)s,
    lease_until = now() + %(lease)s * interval '1 second', updated_at = now()
WHERE run_id = ANY(ARRAY(
    SELECT r.run_id FROM gd_runs r
    WHERE r.status = 'pending' AND r.created_at <= now()
    AND NOT EXISTS (
        SELECT 1 FROM gd_runs o WHERE o.thread_id = r.thread_id AND o.status = 'running')
    AND NOT EXISTS (
        SELECT 1 FROM gd_runs o WHERE o.thread_id = r.thread_id AND o.status = 'pending'
        AND (o.created_at, o.run_id) < (r.created_at, r.run_id))
    ORDER BY r.created_at, r.run_id
    LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
)) AND status = 'pending'
RETURNING {RUN_COLUMNS}
"""

_NEXT_DUE = """
SELECT extract(epoch FROM min(created_at) - now()) AS delay FROM gd_runs
WHERE status = 'pending' AND created_at > now()
"""

_RENEW = """
WITH renewed AS (
    UPDATE gd_runs SET lease_until = now() + %(lease)s * interval '1 second'
    WHERE worker_id = %(me)s AND status = 'running'
    RETURNING run_id
)
SELECT run_id, status, worker_id, attempt FROM gd_runs WHERE run_id = ANY(%(local)s::text[])
"""

_EXPIRE = """
UPDATE gd_runs SET status = 'pending', worker_id = NULL, lease_until = NULL, updated_at = now()
WHERE status = 'running' AND lease_until < now()
RETURNING run_id
"""

_RELEASE = """
UPDATE gd_runs SET status = 'pending', worker_id = NULL, lease_until = NULL, updated_at = now()
WHERE run_id = %s AND worker_id = %s AND status = 'running'
RETURNING created_at
"""

_BACKOFF_MAX = 5.0


@dataclass
class _Held:
    """A run executing here."""

    lease: Lease
    thread_id: str
    task: "asyncio.Task[None]"
    claimed_at: float  # loop time the claim was committed by
    lost: bool = False


class PostgresQueue(Queue):
    """Dispatch through the ``gd_runs`` table of the pool's database.

    ``uri`` opens the listening connection (the pool's are for statements);
    ``concurrency`` is how many runs execute here at once (0: none, as with
    ``execute=None``); ``lease_seconds`` is how long a claim holds without renewal.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        uri: str,
        *,
        concurrency: int,
        lease_seconds: float,
        worker_id: str | None = None,
    ) -> None:
        self.pool = pool
        self.uri = uri
        self.concurrency = max(0, int(concurrency))
        self.lease_seconds = float(lease_seconds)
        self.worker_id = worker_id or str(uuid.uuid4())
        self._execute: Execute | None = None
        self._held: dict[str, _Held] = {}
        self._stopping = False
        self._wanted = asyncio.Event()
        self._check_due = True  # look up the earliest delayed run after the next round
        self._due: asyncio.TimerHandle | None = None
        self._claiming: asyncio.Future[bool] | None = None  # a claim in flight
        self._dispatch: list[asyncio.Task[None]] = []  # the claimer and the listener
        self._leases: list[asyncio.Task[None]] = []  # the renewal and the expiry timers

    # -- lifecycle ------------------------------------------------------------

    async def start(self, execute: Execute | None) -> None:
        self._stopping = False
        if execute is None or self.concurrency == 0:
            self._execute = None
            return
        self._execute = execute
        listener: AsyncConnection[Any] | None = None
        try:
            listener = await self._listen()
        except psycopg.Error as exc:
            logger.warning("cannot listen for runs on PostgreSQL (%s); retrying", exc)
        self._dispatch = [
            asyncio.create_task(self._listener(listener), name="gd-queue-listener"),
            asyncio.create_task(self._claimer(), name="gd-queue-claimer"),
        ]
        self._leases = [
            asyncio.create_task(self._renewer(), name="gd-queue-renewal"),
            asyncio.create_task(self._expirer(), name="gd-queue-expiry"),
        ]
        self._check_due = True
        self._wake()

    async def stop(self, grace: float = 0.0) -> None:
        self._stopping = True
        if self._due is not None:
            self._due.cancel()
            self._due = None
        await _cancel(self._dispatch)  # no more claims; the listening connection closes
        self._dispatch = []
        if self._claiming is not None and not self._claiming.done():
            await asyncio.wait([self._claiming])  # a claim committed meanwhile is handed back
        held = list(self._held.values())
        tasks = [h.task for h in held]
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        await _cancel([t for t in tasks if not t.done()])
        for h in held:
            if h.task.cancelled() and not h.lost:
                try:
                    await self._release(h.lease)
                except Exception:  # logged: its lease expires and another worker takes it
                    logger.exception("handing back run %s failed", h.lease.run_id)
        await _cancel(self._leases)  # the lease timers last, once nothing executes here
        self._leases = []
        self._execute = None

    # -- the port -------------------------------------------------------------

    async def enqueue(self, run: Row) -> None:
        """The deployment's workers were told when the run was written (the storage
        notifies in the transaction that writes a run pending); this wakes the claimer of
        this process without waiting for the notification to come back."""
        self._on_ready(run.get("created_at") or "")

    @property
    def running(self) -> int:
        return len(self._held)

    def can_start(self, thread_id: str) -> bool:
        """A slot is free here and no run of the thread executes here (whether the
        thread has runs in flight elsewhere, ``create_run(start=True)`` decides)."""
        return (
            self._execute is not None
            and not self._stopping
            and len(self._held) < self.concurrency
            and all(h.thread_id != thread_id for h in self._held.values())
        )

    async def start_claimed(self, run: Row) -> bool:
        """Execute here a run that ``create_run(start=True)`` inserted already claimed by
        this worker (its lease renewed from now on)."""
        if run.get("status") != "running" or not self.can_start(run["thread_id"]):
            return False
        self._spawn(run)
        return True

    async def release(self, run_id: str) -> None:
        """Hand back ``run_id`` if this worker still holds it (pending again, announced;
        its next claim counts the next attempt)."""
        held = self._held.get(run_id)
        await self._release(held.lease if held else Lease(run_id, self.worker_id, -1))

    async def _release(self, lease: Lease) -> None:
        async with self.pool.connection() as conn:
            async with conn.transaction():
                cur = await conn.execute(_RELEASE, (lease.run_id, lease.worker_id))
                row = await cur.fetchone()
                if row is not None:
                    created = decode(row)["created_at"]
                    await conn.execute("SELECT pg_notify(%s, %s)", (RUN_READY, created))

    # -- claiming -------------------------------------------------------------

    def _wake(self) -> None:
        if self._execute is not None and not self._stopping:
            self._wanted.set()

    def _on_ready(self, created_at: str) -> None:
        """A run may be claimable: now, or at ``created_at`` when that is to come."""
        if self._execute is None or self._stopping:
            return
        delay = 0.0
        if created_at:
            try:
                delay = (datetime.fromisoformat(created_at) - serde.now()).total_seconds()
            except ValueError:
                delay = 0.0
        if delay > 0:
            self._schedule(delay)
        else:
            self._wake()

    def _schedule(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + max(0.0, delay)
        if self._due is not None and self._due.when() <= when:
            return
        if self._due is not None:
            self._due.cancel()
        self._due = loop.call_at(when, self._came_due)

    def _came_due(self) -> None:
        self._due = None
        self._check_due = True
        self._wake()

    async def _claimer(self) -> None:
        backoff = 0.1
        while not self._stopping:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                while not self._stopping and len(self._held) < self.concurrency:
                    # shielded: a claim that commits is always started (or handed back)
                    wanted = self.concurrency - len(self._held)
                    self._claiming = asyncio.ensure_future(self._claim_some(wanted))
                    if await asyncio.shield(self._claiming) < wanted:
                        break  # nothing more is claimable now
                if self._check_due:
                    self._check_due = False
                    await self._schedule_next_due()
                backoff = 0.1
            except Exception as exc:  # the database went away, or a bug: logged, retried
                log = logger.warning if isinstance(exc, psycopg.Error) else logger.exception
                log("claiming runs failed (%s); retrying in %.1fs", exc, backoff)
                self._check_due = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                self._wanted.set()

    async def _claim_some(self, n: int) -> int:
        """Claim up to ``n`` runs and start executing them; returns how many were claimed."""
        rows = await self._claim(n)
        for row in rows:
            if self._stopping:
                await self._release(Lease(row["run_id"], self.worker_id, int(row["attempt"])))
            else:
                self._spawn(row)
        return len(rows)

    async def _claim(self, n: int) -> list[Row]:
        """Claim the ``n`` oldest claimable runs, oldest first (fewer: no more now).

        Runs of one thread are never claimed together (only the oldest pending one of a
        thread is claimable); when the one-running-run index refuses a claim (a run of
        that thread started meanwhile), the claim is retried one run at a time."""
        params = {"me": self.worker_id, "lease": self.lease_seconds, "n": n}
        while True:
            try:
                async with self.pool.connection() as conn:
                    cur = await conn.execute(_CLAIM, params)
                    rows = await cur.fetchall()
                rows = sorted((decode(r) for r in rows), key=lambda r: (r["created_at"], r["run_id"]))
                return rows
            except psycopg.errors.UniqueViolation:
                params["n"] = 1  # the next candidate, alone
                continue

    async def _schedule_next_due(self) -> None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_NEXT_DUE)
            row = await cur.fetchone()
        if row is not None and row["delay"] is not None:
            self._schedule(float(row["delay"]))

    def _spawn(self, row: Row) -> None:
        run_id = row["run_id"]
        lease = Lease(run_id, self.worker_id, int(row["attempt"]))
        previous = self._held.get(run_id)
        if previous is not None:  # our own lease had expired and we claimed it again
            previous.lost = True
            previous.task.cancel()
        task = asyncio.create_task(self._run(lease, row, previous), name=f"run-{run_id}")
        self._held[run_id] = _Held(lease, row["thread_id"], task, asyncio.get_running_loop().time())

    async def _run(self, lease: Lease, row: Row, previous: _Held | None) -> None:
        run_id = lease.run_id
        execute = self._execute
        try:
            if previous is not None:
                await asyncio.wait([previous.task])
            CURRENT_LEASE.set(lease)  # this task's context only
            kwargs = row.get("kwargs") or {}
            RELAXED_COMMIT.set(kwargs.get("durability") != "sync")
            assert execute is not None
            await execute(run_id, row)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("executing run %s failed", run_id)
        finally:
            current = self._held.get(run_id)
            if current is not None and current.task is asyncio.current_task():
                del self._held[run_id]
            self._wake()

    # -- wake-ups -------------------------------------------------------------

    async def _listen(self) -> AsyncConnection[Any]:
        conn = await AsyncConnection.connect(self.uri, autocommit=True, **with_timeout(self.uri))
        try:
            await conn.execute(f"LISTEN {RUN_READY}")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _listener(self, conn: AsyncConnection[Any] | None) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                if conn is None:
                    conn = await self._listen()
                    self._check_due = True  # notifications may have been missed
                    self._wake()
                backoff = 0.1
                async for notify in conn.notifies():
                    self._on_ready(notify.payload)
            except Exception as exc:  # the connection was lost (or a bug): logged, reconnected
                if self._stopping:
                    break
                log = logger.warning if isinstance(exc, psycopg.Error) else logger.exception
                log("listening for runs failed (%s); reconnecting in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            finally:
                if conn is not None and (self._stopping or conn.broken or conn.closed):
                    await conn.close()
                    conn = None
        if conn is not None:
            await conn.close()

    # -- leases ---------------------------------------------------------------

    async def _renewer(self) -> None:
        interval = self.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self._renew()
            except Exception as exc:  # logged; the next renewal tries again
                log = logger.warning if isinstance(exc, psycopg.Error) else logger.exception
                log("renewing leases failed (%s)", exc)

    async def _renew(self) -> None:
        started = asyncio.get_running_loop().time()
        local = list(self._held)
        params = {"me": self.worker_id, "lease": self.lease_seconds, "local": local}
        async with self.pool.connection() as conn:
            cur = await conn.execute(_RENEW, params)
            rows = await cur.fetchall()
        for row in rows:
            held = self._held.get(row["run_id"])
            if held is None or held.lost or held.claimed_at >= started:
                continue
            ours = (
                row["status"] == "running"
                and row["worker_id"] == self.worker_id
                and row["attempt"] == held.lease.attempt
            )
            if not ours and row["status"] in ("pending", "running"):
                held.lost = True
                logger.warning("run %s: lease lost to another worker; stopping it here", row["run_id"])
                if not self._stopping:
                    held.task.cancel()

    async def _expirer(self) -> None:
        while True:  # first at start: take over what the deployment left
            try:
                await self.expire()
            except Exception as exc:  # logged; the next sweep tries again
                log = logger.warning if isinstance(exc, psycopg.Error) else logger.exception
                log("requeueing runs with expired leases failed (%s)", exc)
            await asyncio.sleep(self.lease_seconds / 2 * random.uniform(0.8, 1.2))

    async def expire(self) -> list[str]:
        """Make pending again the running runs whose lease expired; notify the workers.
        Returns their ids."""
        async with self.pool.connection() as conn:
            async with conn.transaction():
                cur = await conn.execute(_EXPIRE)
                ids = [r["run_id"] for r in await cur.fetchall()]
                if ids:
                    await conn.execute("SELECT pg_notify(%s, '')", (RUN_READY,))
        if ids:
            logger.info("requeued %d run(s) whose lease expired: %s", len(ids), ", ".join(ids))
        return ids


async def _cancel(tasks: list["asyncio.Task[Any]"]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)

