"""In-process :class:`Queue`: worker slots, one active run per thread.

Runs are started the moment a slot and their thread are free (no polling), in the order
they became ready; delayed runs (``after_seconds``) are scheduled with the event loop's
timer. The queue is the embedded backend's: one process owns the SQLite file, so at start
every run left ``running`` by an earlier process is pending again (a crash's run goes on
with its next attempt), and a run handed back at stop is pending again for the next start.
The executor claims each run it is given (``Storage.claim_run``), which also drops a run
cancelled or deleted while it waited here.

**Admission under CPU saturation.** ``concurrency`` (``--n-jobs-per-worker``) is how many
runs may be active at once. Runs waiting on I/O (a model call) cost no CPU while they
wait, so the more of them the better; runs that only compute share one event loop (and,
for synchronous nodes, the threads langgraph runs them in, under one GIL), and past the
point where the process is busy all the time, more of them at once adds no
throughput: it only spreads every run's work over a longer time (each run's steps wait
behind all the others'), so latency grows and varies with the number of runs in flight.
The queue therefore watches the process's CPU time: while it is saturated (busy for
nearly all of each :data:`WINDOW_S`) *and* the runs finishing are short (a mean under
:data:`SHORT_RUN_S`, i.e. they are not waiting on anything slow), it lowers the number
of runs it starts at once, one step per window, down to :data:`FLOOR` (never above
``concurrency``); the runs not started wait in order, so each takes about the same time.
As soon as the loop has time to spare while runs wait, or runs take long, the limit goes
back up (doubling per window). Runs already active are never stopped; with I/O-bound runs
the limit stays at ``concurrency``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING, Awaitable, Callable

from graphdock import serde
from graphdock.backends.base import EventLog, Execute, Queue, Row

if TYPE_CHECKING:
    from graphdock.backends.sqlite.storage import SqliteStorage

logger = logging.getLogger("graphdock.queue")

WINDOW_S = 0.025  # how often the event loop's load is looked at while runs are active
SATURATED = 0.9  # the process busy for at least this share of a window: saturated
SPARE = 0.75  # busy for less than this share: time to spare
SHORT_RUN_S = 0.25  # runs whose mean duration is below this are taken to be CPU-bound
FLOOR = 4  # the fewest runs started at once when saturated (enough to overlap short waits)


def next_limit(
    limit: int, *, maximum: int, busy: float, waiting: int, mean_run_s: float | None
) -> int:
    """The number of runs to allow at once after a window in which the process
    was busy for ``busy`` (0..1) of the time, ``waiting`` runs waited for a slot and runs
    that finished lately took ``mean_run_s`` on average (None: none finished yet)."""
    floor = min(FLOOR, maximum)
    short = mean_run_s is not None and mean_run_s < SHORT_RUN_S
    if busy >= SATURATED and short:
        return max(floor, min(limit, maximum) - 1)
    if limit >= maximum:
        return maximum
    if not short or (waiting and busy < SPARE):
        return min(maximum, limit * 2)
    return limit


def not_before(run: Row) -> float | None:
    """The event loop time before which ``run`` may not start (its ``created_at`` lies in
    the future: ``after_seconds``); None when it may start now."""
    delay = (datetime.fromisoformat(run["created_at"]) - serde.now()).total_seconds()
    if delay <= 0:
        return None
    return asyncio.get_running_loop().time() + delay


class MemoryQueue(Queue):
    def __init__(
        self,
        storage: "SqliteStorage | None" = None,
        events: EventLog | None = None,
        *,
        concurrency: int = 10,
        adaptive: bool = True,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        self.worker_id = "embedded"
        self._storage = storage
        self._events = events
        self.concurrency = max(1, concurrency)
        self.limit = self.concurrency  # runs started at once now (see the module docstring)
        self._cpu_clock = cpu_clock  # CPU time of the process (its loop and its threads)
        self._sampler: asyncio.TimerHandle | None = None
        self._window: tuple[float, float] = (0.0, 0.0)  # (loop time, cpu time) at its start
        self._mean_run_s: float | None = None  # moving mean duration of finished runs
        self._execute: Callable[..., Awaitable[None]] | None = None
        self._pending: dict[str, deque[str]] = {}
        self._ready: deque[str] = deque()
        self._active_threads: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._stopping = False
        self._busy = 0.0  # the share of the last window the process was busy (CPU time / wall)
        self.workers = 1  # processes executing runs (the server's and its run processes)
        self.adaptive = adaptive  # False: runs never execute on this loop, whose load says nothing

    @property
    def busy(self) -> float:
        return self._busy

    @property
    def maximum(self) -> int:
        """Runs active at once at most: ``concurrency`` per process executing runs."""
        return self.concurrency * self.workers

    def set_executors(self, workers: int) -> None:
        """Runs execute in ``workers`` processes now. With more than one, the limit is
        ``concurrency`` per process and no longer follows this loop's load (the runs'
        work is no longer all on this loop)."""
        if workers != self.workers:
            self.workers = workers
            if workers > 1:
                self.limit = self.maximum
                self._pump()
            else:
                self.limit = min(self.limit, self.maximum)

    async def start(self, execute: Execute | None) -> None:
        if self._storage is not None:
            # the runs an earlier process of this file left: pending again, in order
            for run in await self._storage.runnable_runs():
                if self._events is not None:
                    resumable = bool(run["kwargs"].get("resumable"))
                    await self._events.open(run["run_id"], run["thread_id"], resumable=resumable)
                await self.enqueue(run)
        self._execute = execute
        self._stopping = False
        self._pump()

    async def stop(self, grace: float = 0.0) -> None:
        self._stopping = True
        if grace > 0 and self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=grace)
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None
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

    async def enqueue(self, run: Row) -> None:
        run_id, thread_id = run["run_id"], run["thread_id"]
        when = not_before(run)
        if when is not None:
            loop = asyncio.get_running_loop()
            delay = when - loop.time()
            if delay > 0:
                self._timers[run_id] = loop.call_later(delay, self._due, run_id, thread_id)
                return
        self._add(run_id, thread_id)

    async def release(self, run_id: str) -> None:
        if self._storage is not None:
            await self._storage.release_run(run_id)

    def can_start(self, thread_id: str) -> bool:
        return (
            self._execute is not None
            and not self._stopping
            and not self._ready
            and len(self._tasks) < self.limit
            and thread_id not in self._active_threads
            and thread_id not in self._pending
        )

    async def start_claimed(self, run: Row) -> bool:
        run_id, thread_id = run["run_id"], run["thread_id"]
        if not self.can_start(thread_id):
            return False
        self._start(run_id, thread_id, run)
        return True

    def _start(self, run_id: str, thread_id: str, claimed: Row | None = None) -> None:
        if self._sampler is None:
            loop = asyncio.get_running_loop()
            self._window = (loop.time(), self._cpu_clock())
            self._sampler = loop.call_later(WINDOW_S, self._sample)
        self._active_threads.add(thread_id)
        task = asyncio.create_task(self._run(run_id, thread_id, claimed), name=f"run-{run_id}")
        self._tasks[run_id] = task

    def _due(self, run_id: str, thread_id: str) -> None:
        self._timers.pop(run_id, None)
        self._add(run_id, thread_id)

    def _add(self, run_id: str, thread_id: str) -> None:
        queue = self._pending.setdefault(thread_id, deque())
        queue.append(run_id)
        if thread_id not in self._active_threads and len(queue) == 1:
            self._ready.append(thread_id)
        self._pump()

    def _pump(self) -> None:
        if self._execute is None or self._stopping:
            return
        while self._ready and len(self._tasks) < self.limit:
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
        started = asyncio.get_running_loop().time()
        try:
            await self._execute(run_id, claimed)
        except asyncio.CancelledError:
            if self._stopping:
                await asyncio.shield(self.release(run_id))  # stopping: pending for the next start
            raise
        except Exception:
            logger.exception("worker failed on run %s", run_id)
        finally:
            took = asyncio.get_running_loop().time() - started
            mean = self._mean_run_s
            self._mean_run_s = took if mean is None else mean + (took - mean) * 0.1
            self._tasks.pop(run_id, None)
            self._active_threads.discard(thread_id)
            if self._pending.get(thread_id):
                self._ready.append(thread_id)
            self._pump()

    def _sample(self) -> None:
        """End of a window: adjust :attr:`limit` to the event loop's load (module docstring)."""
        self._sampler = None
        if self._stopping:
            return
        if not self._tasks and not self._ready:
            self.limit = self.maximum  # idle: the next burst starts from the full limit
            self._busy = 0.0
            return
        loop = asyncio.get_running_loop()
        now, cpu = loop.time(), self._cpu_clock()
        wall = now - self._window[0]
        busy = self._busy = (cpu - self._window[1]) / wall if wall > 0 else 0.0
        if self.workers > 1 or not self.adaptive:
            self.limit = self.maximum
        else:
            self.limit = next_limit(
                self.limit,
                maximum=self.maximum,
                busy=busy,
                waiting=len(self._ready),
                mean_run_s=self._mean_run_s,
            )
        self._window = (now, cpu)
        self._sampler = loop.call_later(WINDOW_S, self._sample)
        self._pump()
