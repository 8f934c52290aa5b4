"""The in-process queue's admission under CPU saturation (pure logic, no server).

The queue lowers the number of runs it starts at once while the server process is
saturated by short runs, and raises it again when the loop has time to spare or runs take
long (``graphdock.backends.memory.queue``). The load is given here by a fake CPU clock and
windows closed by hand, so nothing depends on the machine's speed.
"""

from __future__ import annotations

import asyncio

from graphdock.backends.memory import queue as q
from graphdock.backends.memory.queue import MemoryQueue, next_limit


def test_saturated_by_short_runs_lowers_the_limit_one_step_to_the_floor() -> None:
    assert next_limit(10, maximum=10, busy=0.99, waiting=5, mean_run_s=0.01) == 9
    assert next_limit(q.FLOOR, maximum=10, busy=1.0, waiting=5, mean_run_s=0.01) == q.FLOOR
    # never above the configured concurrency, and the floor never above it either
    assert next_limit(3, maximum=2, busy=1.0, waiting=1, mean_run_s=0.01) == 2
    assert next_limit(1, maximum=1, busy=1.0, waiting=1, mean_run_s=0.01) == 1


def test_long_runs_or_none_finished_restore_the_limit() -> None:
    # saturated, but runs wait on something slow: more at once is what helps
    assert next_limit(4, maximum=10, busy=1.0, waiting=3, mean_run_s=2.0) == 8
    assert next_limit(8, maximum=10, busy=1.0, waiting=3, mean_run_s=2.0) == 10
    assert next_limit(4, maximum=10, busy=1.0, waiting=0, mean_run_s=None) == 8


def test_spare_time_with_runs_waiting_doubles_the_limit() -> None:
    assert next_limit(4, maximum=10, busy=0.2, waiting=1, mean_run_s=0.01) == 8
    # nothing waits: the limit changes nothing, so it stays
    assert next_limit(4, maximum=10, busy=0.2, waiting=0, mean_run_s=0.01) == 4
    # between saturated and spare: hold (the measure is noisy)
    mid = (q.SATURATED + q.SPARE) / 2
    assert next_limit(5, maximum=10, busy=mid, waiting=4, mean_run_s=0.01) == 5
    assert next_limit(10, maximum=10, busy=mid, waiting=4, mean_run_s=0.01) == 10


async def test_queue_starts_waiting_runs_in_order_with_the_lowered_limit(monkeypatch) -> None:
    # windows are closed by hand only: the queue's own timer must not fire mid-test
    monkeypatch.setattr(q, "WINDOW_S", 3600.0)
    cpu = [0.0]
    queue = MemoryQueue(concurrency=6, cpu_clock=lambda: cpu[0])
    gates: dict[str, asyncio.Event] = {}
    started: list[str] = []
    active: set[str] = set()
    most = [0]

    async def execute(run_id: str, claimed: object = None) -> None:
        started.append(run_id)
        active.add(run_id)
        most[0] = max(most[0], len(active))
        try:
            await gates[run_id].wait()
        finally:
            active.discard(run_id)

    def close_window(busy: float) -> None:
        """End the current window as if the process was busy ``busy`` of it."""
        loop = asyncio.get_running_loop()
        queue._window = (loop.time() - q.WINDOW_S, cpu[0] - q.WINDOW_S * busy)
        if queue._sampler is not None:
            queue._sampler.cancel()
        queue._sample()

    def row(run_id: str, thread_id: str) -> dict[str, str]:
        return {"run_id": run_id, "thread_id": thread_id, "created_at": "2000-01-01T00:00:00.000000+00:00"}

    async def settle() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    await queue.start(execute)
    try:
        runs = [f"run-{i}" for i in range(12)]
        for run_id in runs:
            gates[run_id] = asyncio.Event()
        for i, run_id in enumerate(runs[:6]):
            await queue.enqueue(row(run_id, f"thread-{i}"))
        await settle()
        assert started == runs[:6]
        queue._mean_run_s = 0.005  # runs that finished lately were short

        for _ in range(5):
            close_window(busy=1.0)
        assert queue.limit == q.FLOOR  # one step per window, not below the floor
        assert len(active) == 6  # active runs are never stopped

        for i, run_id in enumerate(runs[6:], start=6):
            await queue.enqueue(row(run_id, f"thread-{i}"))
        assert not queue.can_start("thread-new")  # runs wait: a new one queues behind them
        gates[runs[0]].set()
        gates[runs[1]].set()
        await settle()
        assert started == runs[:6]  # 4 active, limit 4: nothing starts
        gates[runs[2]].set()
        await settle()
        assert started == runs[:7]  # one ended: the first waiting run starts
        assert len(active) == q.FLOOR

        close_window(busy=0.1)  # time to spare while runs wait: the limit doubles (to 6)
        await settle()
        assert queue.limit == 6
        assert started == runs[:9]
        assert len(active) == 6

        close_window(busy=1.0)
        assert queue.limit == 5
        for gate in gates.values():
            gate.set()
        await settle()
        assert started == runs  # always in the order they became ready
        assert most[0] == 6
        close_window(busy=0.0)  # idle: the next burst starts from the configured limit
        assert queue.limit == 6
    finally:
        for gate in gates.values():
            gate.set()
        await queue.stop()
