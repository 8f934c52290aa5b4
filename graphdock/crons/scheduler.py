"""The cron scheduler: one task per server process that fires due crons.

It sleeps until the earliest ``next_run_date`` of the enabled crons, at most
``max_sleep`` seconds (so crons created by another process of the deployment are seen
that late at worst), and is woken at once by :meth:`CronScheduler.wake` when a cron of
this process is created, changed or deleted. Each due cron is first claimed in storage
(``Storage.claim_cron``: ``next_run_date`` advanced from the value read, atomically), and
only the process whose claim succeeded fires it: each due time fires once across any
number of processes. ``next_run_date`` is advanced from now, not from the missed time,
so a cron that came due while no server ran fires once at start-up.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, Awaitable, Callable

from graphdock import serde
from graphdock.backends.base import Row, Storage
from graphdock.services.crons import compute_next

logger = logging.getLogger("graphdock.crons")

BATCH = 100  # due crons read at once


class CronScheduler:
    def __init__(self, storage: Storage, fire: Callable[[Row], Awaitable[Any]], *, max_sleep: float) -> None:
        self.storage = storage
        self.fire = fire
        self.max_sleep = max_sleep
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Look at the crons again now (one of them was created, changed or deleted)."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="graphdock-cron-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def tick(self) -> int:
        """Fire every cron due now (each claimed first); the number fired here."""
        fired = 0
        while True:
            now = serde.now()
            due = await self.storage.due_crons(serde.iso(now), limit=BATCH)
            for row in due:
                if await self._claim(row, now):
                    fired += 1
                    try:
                        await self.fire(row)
                    except Exception:
                        logger.exception("cron %s: its run could not be created", row["cron_id"])
            if len(due) < BATCH:
                return fired

    async def _claim(self, row: Row, now: datetime) -> bool:
        try:
            nxt = compute_next(row["schedule"], row["timezone"], row["end_time"], now)
        except Exception:
            logger.exception("cron %s: bad schedule %r; it fires no more", row["cron_id"], row["schedule"])
            await self.storage.claim_cron(row["cron_id"], row["next_run_date"], None)
            return False
        if row["end_time"] is not None and row["next_run_date"] > row["end_time"]:
            await self.storage.claim_cron(row["cron_id"], row["next_run_date"], None)
            return False
        return await self.storage.claim_cron(row["cron_id"], row["next_run_date"], nxt)

    async def _delay(self) -> float:
        earliest = await self.storage.next_cron_date()
        if earliest is None:
            return self.max_sleep
        wait = (datetime.fromisoformat(earliest) - serde.now()).total_seconds()
        return min(max(wait, 0.01), self.max_sleep)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            delay = self.max_sleep
            try:
                await self.tick()
                delay = await self._delay()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("cron scheduler: a pass failed; trying again in %.0f s", delay)
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass
