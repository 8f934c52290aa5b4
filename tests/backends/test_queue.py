"""The :class:`graphdock.backends.base.Queue` contract, against every adapter.

Each test starts the queue with an ``execute`` of its own (:class:`Executions`) that
claims the run when the queue did not, records what it was given, waits for the test's
go-ahead when asked to, and finishes the run. Runs are written with
``Storage.create_run`` and announced with ``Queue.enqueue``, as the services do.

Every test gets a database of its own on PostgreSQL: a queue also takes over the runs a
deployment left, and must not find another test's.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest

from graphdock import serde
from graphdock.backends import Backend
from graphdock.backends.base import Execute, Queue, Row, Storage
from graphdock.config import Settings

from .conftest import TIMEOUT, BackendOpener, add_run, at, new_id, not_within, within

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def database_uri(fresh_database_uri: str) -> str:
    """A database per test (see the module docstring)."""
    return fresh_database_uri


class Executions:
    """What the queues of a test executed: shared by every worker of the test."""

    def __init__(self, *, hold: bool = False) -> None:
        self.hold = hold  # wait for release() before finishing each run
        self.started: list[tuple[str, int, str]] = []  # (run_id, attempt, worker)
        self.finished: list[str] = []
        self.cancelled: list[str] = []
        self.unclaimable: list[str] = []
        self.active: dict[str, str] = {}  # run_id -> thread_id
        self.most_active = 0
        self.overlaps: list[tuple[str, str]] = []  # (thread_id, run_id) started while another ran
        self.gates: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Event()

    def execute(self, storage: Storage, worker: str = "a") -> Execute:
        async def execute(run_id: str, claimed: Row | None) -> None:
            row = claimed if claimed is not None else await storage.claim_run(run_id)
            if row is None:
                self.unclaimable.append(run_id)
                self._notify()
                return
            assert row["status"] == "running", row
            thread_id = row["thread_id"]
            if thread_id in self.active.values():
                self.overlaps.append((thread_id, run_id))
            self.active[run_id] = thread_id
            self.most_active = max(self.most_active, len(self.active))
            self.started.append((run_id, row["attempt"], worker))
            self._notify()
            try:
                if self.hold:
                    await self.gates.setdefault(run_id, asyncio.Event()).wait()
                await storage.finish_run(run_id, "success", thread_status="idle")
            except asyncio.CancelledError:
                self.cancelled.append(run_id)
                raise
            finally:
                self.active.pop(run_id, None)
                self._notify()
            self.finished.append(run_id)
            self._notify()

        return execute

    def _notify(self) -> None:
        self._changed.set()

    def release(self, *run_ids: str) -> None:
        for run_id in run_ids:
            self.gates.setdefault(run_id, asyncio.Event()).set()

    def release_all(self) -> None:
        self.hold = False
        for gate in self.gates.values():
            gate.set()

    def started_ids(self) -> list[str]:
        return [run_id for run_id, _, _ in self.started]

    async def until(self, condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        """Wait until ``condition()`` holds (checked at each execution step)."""

        async def wait() -> None:
            while not condition():
                self._changed.clear()
                await self._changed.wait()

        await within(wait(), timeout)

    def waiter(self, condition: Callable[[], bool]) -> "asyncio.Task[None]":
        return asyncio.ensure_future(self.until(condition, timeout=TIMEOUT * 3))


@asynccontextmanager
async def started(queue: Queue | None, execute: Execute | None, *, grace: float = 0.0) -> AsyncIterator[Queue]:
    """A started queue, stopped on exit."""
    assert queue is not None
    await queue.start(execute)
    try:
        yield queue
    finally:
        await queue.stop(grace)


async def enqueue_new(backend: Backend, thread_id: str | None = None, **changes: object) -> Row:
    """Create a pending run (and its thread) and announce it."""
    assert backend.queue is not None
    row = await add_run(backend, thread_id or new_id(), **changes)
    await backend.queue.enqueue(row)
    return row


async def test_each_run_executes_once(backend: Backend) -> None:
    done = Executions()
    async with started(backend.queue, done.execute(backend.storage)):
        runs = [await enqueue_new(backend) for _ in range(12)]
        run_ids = {r["run_id"] for r in runs}
        await done.until(lambda: run_ids <= set(done.finished))
    assert sorted(done.started_ids()) == sorted(run_ids)
    assert all(attempt == 1 for _, attempt, _ in done.started)
    for run in runs:
        row = await backend.storage.get_run(run["run_id"])
        assert row is not None and row["status"] == "success"
        assert (await backend.storage.get_thread(run["thread_id"]) or {}).get("status") == "idle"
    assert done.unclaimable == [] and done.cancelled == []


async def test_start_takes_over_pending_runs_left_behind(backend: Backend) -> None:
    left = [await add_run(backend, new_id()) for _ in range(3)]  # written, never announced here
    done = Executions()
    async with started(backend.queue, done.execute(backend.storage)):
        await done.until(lambda: {r["run_id"] for r in left} <= set(done.finished))
    assert sorted(done.started_ids()) == sorted(r["run_id"] for r in left)


async def test_runs_of_a_thread_never_overlap_and_start_in_created_at_order(backend: Backend) -> None:
    done = Executions(hold=True)
    threads = [new_id(), new_id()]
    async with started(backend.queue, done.execute(backend.storage)):
        runs = [
            await enqueue_new(backend, threads[i % 2], created_at=at(i - 100)) for i in range(8)
        ]
        per_thread = {t: [r["run_id"] for r in runs if r["thread_id"] == t] for t in threads}
        for step in range(4):
            heads = [per_thread[t][step] for t in threads]
            # the head of each thread runs, and nothing else of those threads
            await done.until(lambda: set(heads) <= set(done.active))
            assert set(done.active) == set(heads)
            done.release(*heads)
        await done.until(lambda: len(done.finished) == 8)
    assert done.overlaps == []
    for thread_id in threads:
        assert [r for r in done.started_ids() if r in per_thread[thread_id]] == per_thread[thread_id]


@pytest.mark.scaled_only  # the embedded queue is the only writer: it is told of runs in created_at order
async def test_created_at_order_wins_over_enqueue_order(backend: Backend) -> None:
    assert backend.queue is not None
    tid = new_id()
    done = Executions()
    async with started(backend.queue, done.execute(backend.storage)):
        runs = [await add_run(backend, tid, created_at=at(i * 10 - 100)) for i in range(3)]
        for run in reversed(runs):
            await backend.queue.enqueue(run)
        await done.until(lambda: len(done.finished) == 3)
    assert done.started_ids() == [r["run_id"] for r in runs]
    assert done.overlaps == []


async def test_a_delayed_run_does_not_start_before_its_created_at(backend: Backend) -> None:
    done = Executions()
    seen: dict[str, datetime] = {}
    execute = done.execute(backend.storage)

    async def timed(run_id: str, claimed: Row | None) -> None:
        seen[run_id] = serde.now()
        await execute(run_id, claimed)

    async with started(backend.queue, timed):
        delayed = await enqueue_new(backend, created_at=at(600))  # after_seconds=0.6
        prompt = await enqueue_new(backend)
        await done.until(lambda: prompt["run_id"] in done.finished)
        assert delayed["run_id"] not in seen
        await done.until(lambda: delayed["run_id"] in done.finished)
    assert seen[delayed["run_id"]] >= datetime.fromisoformat(delayed["created_at"])
    assert done.started_ids() == [prompt["run_id"], delayed["run_id"]]


async def test_concurrency_limit(make_backend: BackendOpener) -> None:
    async with make_backend(n_jobs_per_worker=2) as backend:
        done = Executions(hold=True)
        async with started(backend.queue, done.execute(backend.storage)):
            runs = [await enqueue_new(backend) for _ in range(6)]
            await done.until(lambda: len(done.active) == 2)
            third = done.waiter(lambda: len(done.started) > 2)
            await not_within(third, 0.3)
            third.cancel()
            done.release_all()
            await done.until(lambda: len(done.finished) == 6)
        assert done.most_active == 2
        assert sorted(done.started_ids()) == sorted(r["run_id"] for r in runs)


async def test_stop_hands_unfinished_runs_back(backend: Backend) -> None:
    assert backend.queue is not None
    done = Executions(hold=True)
    await backend.queue.start(done.execute(backend.storage))
    stopping: asyncio.Future[None] | None = None
    try:
        quick = await enqueue_new(backend)
        stuck = await enqueue_new(backend)
        await done.until(lambda: {quick["run_id"], stuck["run_id"]} <= set(done.active))
        stopping = asyncio.ensure_future(backend.queue.stop(1.0))
        done.release(quick["run_id"])  # ends within the grace period
        await within(stopping)
    finally:
        if stopping is None:
            await backend.queue.stop()
    assert done.finished == [quick["run_id"]]
    assert done.cancelled == [stuck["run_id"]]
    assert (await backend.storage.get_run(quick["run_id"]) or {}).get("status") == "success"
    handed_back = await backend.storage.get_run(stuck["run_id"])
    assert handed_back is not None and handed_back["status"] == "pending"
    claimed = await backend.storage.claim_run(stuck["run_id"])
    assert claimed is not None and claimed["attempt"] == 2  # the next attempt


async def test_start_claimed_executes_a_run_created_running(backend: Backend) -> None:
    assert backend.queue is not None
    done = Executions(hold=True)
    async with started(backend.queue, done.execute(backend.storage)):
        tid = new_id()
        assert backend.queue.can_start(tid) is True
        run = await add_run(backend, tid, start=True)
        assert run["status"] == "running"
        assert await backend.queue.start_claimed(run) is True
        await done.until(lambda: run["run_id"] in done.active)
        assert backend.queue.can_start(tid) is False  # its thread is active here
        assert await backend.queue.start_claimed({**run, "run_id": new_id()}) is False
        done.release_all()
        await done.until(lambda: run["run_id"] in done.finished)
    assert done.started == [(run["run_id"], 1, "a")]
    assert done.unclaimable == []


# -- several workers (scaled out) ------------------------------------------------------------


@pytest.mark.scaled_only
async def test_two_workers_share_the_runs(make_backend: BackendOpener) -> None:
    done = Executions(hold=True)
    async with make_backend("worker", n_jobs_per_worker=2) as one, make_backend("worker", n_jobs_per_worker=2) as two:
        async with started(one.queue, done.execute(one.storage, "one")), started(
            two.queue, done.execute(two.storage, "two")
        ):
            first = [await enqueue_new(one if i % 2 else two) for i in range(4)]
            # four runs at once need both workers (two each)
            await done.until(lambda: len(done.active) == 4)
            assert {worker for _, _, worker in done.started} == {"one", "two"}
            more = [await enqueue_new(one if i % 3 else two, created_at=at(i - 50)) for i in range(12)]
            done.release_all()
            run_ids = {r["run_id"] for r in first + more}
            await done.until(lambda: run_ids <= set(done.finished))
    assert sorted(done.started_ids()) == sorted(run_ids)  # each once
    assert done.most_active <= 4 and done.overlaps == [] and done.unclaimable == []


@pytest.mark.scaled_only
async def test_an_idle_worker_is_woken_for_a_run_another_cannot_take(make_backend: BackendOpener) -> None:
    done = Executions(hold=True)
    async with make_backend("worker", n_jobs_per_worker=1) as busy, make_backend("worker", n_jobs_per_worker=1) as idle:
        async with started(busy.queue, done.execute(busy.storage, "busy")):
            blocker = await enqueue_new(busy)
            await done.until(lambda: blocker["run_id"] in done.active)
            async with started(idle.queue, done.execute(idle.storage, "idle")):
                run = await enqueue_new(busy)  # announced by the full worker
                await done.until(lambda: run["run_id"] in done.active)
                assert (run["run_id"], 1, "idle") in done.started
                done.release_all()
                await done.until(lambda: {blocker["run_id"], run["run_id"]} <= set(done.finished))


@pytest.mark.scaled_only
async def test_runs_handed_back_at_stop_go_to_another_worker(make_backend: BackendOpener) -> None:
    done = Executions(hold=True)
    async with make_backend("worker") as leaving, make_backend("worker") as staying:
        assert leaving.queue is not None
        await leaving.queue.start(done.execute(leaving.storage, "leaving"))
        try:
            run = await enqueue_new(leaving)
            await done.until(lambda: run["run_id"] in done.active)
        finally:
            await leaving.queue.stop(0.0)
        assert done.cancelled == [run["run_id"]]
        done.release_all()
        async with started(staying.queue, done.execute(staying.storage, "staying")):
            await done.until(lambda: run["run_id"] in done.finished)
    assert done.started == [(run["run_id"], 1, "leaving"), (run["run_id"], 2, "staying")]


_WORKER = """
import asyncio, sys
from graphdock.backends import open_backend
from graphdock.config import Settings

async def main():
    settings = Settings.from_json(sys.argv[1])
    async with open_backend(settings, "worker") as backend:
        async def execute(run_id, claimed):
            row = claimed if claimed is not None else await backend.storage.claim_run(run_id)
            if row is not None:
                print("executing", run_id, row["attempt"], flush=True)
                await asyncio.Event().wait()  # until killed

        await backend.queue.start(execute)
        print("started", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.mark.scaled_only
async def test_a_lost_worker_s_run_is_executed_again(
    backend: Backend, make_backend: BackendOpener, settings: Settings
) -> None:
    """A worker that dies holding a run (SIGKILL: no hand-back, no more lease renewals):
    once its lease expired, another worker executes the run again, as attempt 2."""
    lease = 1.0
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WORKER, replace(settings, lease_seconds=lease).to_json(),
        cwd=str(ROOT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output: list[str] = []

    async def line_with(word: str) -> list[str]:
        assert proc.stdout is not None
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                raise AssertionError(f"the worker exited ({await proc.wait()}):\n{''.join(output)}")
            output.append(raw.decode(errors="replace"))
            if raw.decode().split()[:1] == [word]:
                return raw.decode().split()

    done = Executions(hold=True)
    try:
        await within(line_with("started"), 60)
        assert backend.queue is not None
        async with started(backend.queue, None):  # this process only announces
            run = await enqueue_new(backend)
            _, run_id, attempt = await within(line_with("executing"))
            assert (run_id, attempt) == (run["run_id"], "1")
            async with make_backend("worker", lease_seconds=lease) as survivor:
                async with started(survivor.queue, done.execute(survivor.storage, "survivor")):
                    # the lease is renewed while its worker lives
                    taken = done.waiter(lambda: bool(done.started))
                    await not_within(taken, lease * 2)
                    taken.cancel()
                    proc.kill()
                    await within(proc.wait())
                    await done.until(lambda: bool(done.started), timeout=lease * 10)
                    assert done.started == [(run["run_id"], 2, "survivor")]
                    done.release_all()
                    await done.until(lambda: run["run_id"] in done.finished)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert (await backend.storage.get_run(run["run_id"]) or {}).get("status") == "success"
