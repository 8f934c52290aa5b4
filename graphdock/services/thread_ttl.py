"""Thread TTLs: a thread given a TTL (``ttl`` on create/patch, or ``checkpointer.ttl
.default_ttl`` for every new thread) is swept ``ttl`` minutes after its last update.

The sweeper runs every ``sweep_interval_minutes`` in the background (its storage reads
are small and indexed; it never holds a request up). A thread with a run pending or
running is never swept: ``delete`` removes the thread only when no run of it is in
flight, checked in the same storage step (``Storage.delete_idle_thread``), then its
checkpoints; ``keep_latest`` prunes the thread's checkpoints to the latest one and
starts its TTL over. A thread updated since its expiry was set gets a later expiry.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from graphdock import models, serde
from graphdock.backends.base import Row, Storage
from graphdock.config import ThreadTTLConfig

logger = logging.getLogger("graphdock.ttl")


class ThreadTTLs:
    def __init__(self, storage: Storage, checkpointer: Any, config: ThreadTTLConfig | None) -> None:
        self.storage = storage
        self.checkpointer = checkpointer
        self.config = config
        self._task: asyncio.Task[None] | None = None

    def interval(self) -> float:
        """Seconds between sweeps."""
        minutes = self.config.sweep_interval_minutes if self.config else 5.0
        return max(minutes * 60.0, 0.05)

    async def apply(self, thread_id: str, ttl: models.ThreadTTL | None, *, created: bool) -> None:
        """Give a thread its TTL: the one requested, else (for a new thread) the default."""
        if ttl is not None:
            strategy, minutes = ttl.strategy, ttl.ttl
        elif created and self.config is not None and self.config.default_ttl is not None:
            strategy, minutes = self.config.strategy, self.config.default_ttl
        else:
            return
        expires = serde.iso(serde.now() + timedelta(minutes=minutes))
        await self.storage.set_thread_ttl(thread_id, strategy=strategy, minutes=minutes, expires_at=expires)

    async def sweep(self) -> int:
        """One pass: sweep every expired, idle thread; the number swept."""
        now = serde.now()
        limit = self.config.sweep_limit if self.config else 10_000
        swept = 0
        for row in await self.storage.expired_threads(serde.iso(now), limit=limit):
            try:
                swept += await self._sweep_one(row, now)
            except Exception:
                logger.exception("sweeping thread %s failed", row["thread_id"])
        return swept

    async def _sweep_one(self, row: Row, now: datetime) -> int:
        thread_id, minutes = row["thread_id"], float(row["minutes"])
        if row.get("updated_at") is None:  # the thread is gone
            await self.storage.set_thread_ttl(thread_id, strategy=None, minutes=None, expires_at=None)
            return 0
        due = datetime.fromisoformat(row["updated_at"]) + timedelta(minutes=minutes)
        if due > now or row.get("status") == "busy":
            later = max(due, now + timedelta(seconds=self.interval()))
            await self.storage.set_thread_ttl(
                thread_id, strategy=row["strategy"], minutes=minutes, expires_at=serde.iso(later)
            )
            return 0
        if row["strategy"] == "keep_latest":
            await self.checkpointer.aprune([thread_id], strategy="keep_latest")
            await self.storage.set_thread_ttl(
                thread_id,
                strategy=row["strategy"],
                minutes=minutes,
                expires_at=serde.iso(now + timedelta(minutes=minutes)),
            )
            return 1
        if not await self.storage.delete_idle_thread(thread_id):
            return 0  # a run started meanwhile: the next sweep looks again
        await self.checkpointer.adelete_thread(thread_id)
        logger.info("thread %s swept (TTL of %g minutes)", thread_id, minutes)
        return 1

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="graphdock-thread-ttl")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval())
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("thread TTL sweep failed")
