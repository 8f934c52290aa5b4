"""In-process :class:`Queue`: a fixed number of worker slots, one active run per thread.

Runs are started the moment a slot and their thread are free (no polling);
delayed runs (``after_seconds``) are scheduled with the event loop's timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Awaitable, Callable

from graphdock.backends.base import CancelAction, Queue, Row

logger = logging.getLogger("graphdock.queue")


class MemoryQueue(Queue):
    def __init__(self, *, concurrency: int = 10) -> None:
        self.concurrency = max(1, concurrency)
        self._execute: Callable[..., Awaitable[None]] | None = None
        self._pending: dict[str, deque[str]] = {}
        self._ready: deque[str] = deque()
        self._active_threads: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._stopping = False

    async def start(self, execute: Callable[..., Awaitable[None]]) -> None:
        self._execute = execute
        self._stopping = False
        self._pump()

    async def stop(self) -> None:
        self._stopping = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def running(self) -> int:
        return len(self._tasks)

    def enqueue(self, run_id: str, thread_id: str, *, not_before: float | None = None) -> None:
        if not_before is not None:
            loop = asyncio.get_running_loop()
            delay = not_before - loop.time()
            if delay > 0:
                self._timers[run_id] = loop.call_later(delay, self._release, run_id, thread_id)
                return
        self._add(run_id, thread_id)

    def can_start(self, thread_id: str) -> bool:
        return (
            self._execute is not None
            and not self._stopping
            and not self._ready
            and len(self._tasks) < self.concurrency
            and thread_id not in self._active_threads
            and thread_id not in self._pending
        )

    def start_claimed(self, run: Row) -> bool:
        run_id, thread_id = run["run_id"], run["thread_id"]
        if not self.can_start(thread_id):
            return False
        self._start(run_id, thread_id, run)
        return True

    def _start(self, run_id: str, thread_id: str, claimed: Row | None = None) -> None:
        self._active_threads.add(thread_id)
        task = asyncio.create_task(self._run(run_id, thread_id, claimed), name=f"run-{run_id}")
        self._tasks[run_id] = task

    def _release(self, run_id: str, thread_id: str) -> None:
        self._timers.pop(run_id, None)
        self._add(run_id, thread_id)

    def _add(self, run_id: str, thread_id: str) -> None:
        queue = self._pending.setdefault(thread_id, deque())
        queue.append(run_id)
        if thread_id not in self._active_threads and len(queue) == 1:
            self._ready.append(thread_id)
        self._pump()

    def discard(self, run_id: str) -> None:
        """Forget a run that is no longer pending (cancelled or deleted before it started)."""
        timer = self._timers.pop(run_id, None)
        if timer is not None:
            timer.cancel()
        for thread_id, queue in list(self._pending.items()):
            if run_id in queue:
                queue.remove(run_id)
                if not queue:
                    del self._pending[thread_id]
                    if thread_id in self._ready:
                        self._ready.remove(thread_id)

    def _pump(self) -> None:
        if self._execute is None or self._stopping:
            return
        while self._ready and len(self._tasks) < self.concurrency:
            thread_id = self._ready.popleft()
            queue = self._pending.get(thread_id)
            if not queue:
                self._pending.pop(thread_id, None)
                continue
            run_id = queue.popleft()
            if not queue:
                del self._pending[thread_id]
            self._start(run_id, thread_id)

    async def _run(self, run_id: str, thread_id: str, claimed: Row | None = None) -> None:
        assert self._execute is not None
        try:
            if claimed is None:
                await self._execute(run_id)
            else:
                await self._execute(run_id, claimed)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("worker failed on run %s", run_id)
        finally:
            self._tasks.pop(run_id, None)
            self._active_threads.discard(thread_id)
            if self._pending.get(thread_id):
                self._ready.append(thread_id)
            self._pump()

    def cancel(self, run_id: str, action: CancelAction) -> bool:
        return run_id in self._tasks
