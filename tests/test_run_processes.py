"""Run processes: runs executed in processes next to the server process.

The black-box suite runs against a server in both modes (see the ``server`` fixture in
conftest.py); the tests here are about the processes themselves: where runs execute,
what happens when a run process dies or the server stops, and the placement policy.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Iterator

import pytest
from langgraph_sdk import get_client, get_sync_client

from conftest import ServerProcess
from graphdock.runs import processes
from graphdock.runs.processes import RunProcesses

ALWAYS = ["--run-process-policy", "always"]


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as fh:
            out |= {int(x) for x in fh.read().split()}
    return out


@pytest.fixture(scope="module")
def always(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("always"), args=ALWAYS).start()
    yield proc
    proc.stop()


def test_runs_execute_in_a_child_process_of_the_server(always):
    c = get_sync_client(url=always.url)
    assert always.proc is not None
    thread = c.threads.create()
    out = c.runs.wait(thread["thread_id"], "pid", input={})
    assert out["pid"] != always.proc.pid
    assert out["pid"] in _children(always.proc.pid)
    # stateless runs too, and the state a run wrote is read by the server process
    assert c.runs.wait(None, "pid", input={})["pid"] == out["pid"]
    assert c.threads.get_state(thread["thread_id"])["values"] == {"pid": out["pid"]}


def test_a_server_without_run_processes_executes_runs_itself(tmp_path):
    proc = ServerProcess(tmp_path, args=["--run-processes", "0"]).start()
    try:
        c = get_sync_client(url=proc.url)
        assert proc.proc is not None
        assert c.runs.wait(None, "pid", input={})["pid"] == proc.proc.pid
        assert _children(proc.proc.pid) == set()
    finally:
        proc.stop()


async def test_a_saturated_server_starts_a_run_process_and_shares_runs_with_it(tmp_path):
    proc = ServerProcess(tmp_path, args=["--run-processes", "1"]).start()
    try:
        assert proc.proc is not None
        client = get_client(url=proc.url, timeout=60)
        pids: set[int] = set()
        deadline = time.monotonic() + 60
        # computing runs, ten at a time, keep the server's loop busy until it starts one
        while len(pids) < 2:
            assert time.monotonic() < deadline, f"runs only ever executed in {pids}"
            outs = await asyncio.gather(*(client.runs.wait(None, "spin", input={"ms": 20}) for _ in range(20)))
            pids |= {out["pid"] for out in outs}
        children = _children(proc.proc.pid)
        assert pids == {proc.proc.pid} | children and len(children) == 1
    finally:
        proc.stop()


def test_a_run_whose_process_dies_fails_and_the_next_run_gets_a_new_process(always):
    c = get_sync_client(url=always.url)
    before = c.runs.wait(None, "pid", input={})["pid"]
    thread = c.threads.create()
    run = c.runs.create(thread["thread_id"], "exit_process", input={})
    out = c.runs.join(thread["thread_id"], run["run_id"])
    assert out["__error__"] == {
        "error": "RunProcessLost",
        "message": "the run's process exited before the run ended",
    }
    assert c.runs.get(thread["thread_id"], run["run_id"])["status"] == "error"
    failed = c.threads.get(thread["thread_id"])
    assert failed["status"] == "error"
    assert "run process 0 exited with 1 run(s) in flight" in always.log()
    # the server answers on, and starts another run process for the next run
    after = c.runs.wait(None, "pid", input={})["pid"]
    assert after != before
    assert after in _children(always.proc.pid)  # type: ignore[union-attr]
    # a stateless run lost with its process leaves no thread behind
    stateless = c.runs.create(None, "exit_process", input={})
    deadline = time.monotonic() + 30
    while c.threads.search(ids=[stateless["thread_id"]]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert c.threads.search(ids=[stateless["thread_id"]]) == []


def test_runs_left_running_by_a_stop_run_again_after_a_restart(tmp_path):
    data_dir = tmp_path / "data"
    first = ServerProcess(data_dir, args=ALWAYS).start()
    try:
        c = get_sync_client(url=first.url)
        thread = c.threads.create()["thread_id"]
        run = c.runs.create(thread, "hang", input={"items": []})
        deadline = time.monotonic() + 30
        while c.runs.get(thread, run["run_id"])["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert first.proc is not None
        children = _children(first.proc.pid)
        assert children
    finally:
        first.stop()
    for pid in children:  # the run processes ended with the server
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    second = ServerProcess(data_dir, args=ALWAYS).start()
    try:
        c = get_sync_client(url=second.url)
        assert c.runs.get(thread, run["run_id"])["status"] in ("pending", "running")
        c.runs.cancel(thread, run["run_id"], wait=True)
        assert c.runs.get(thread, run["run_id"])["status"] == "interrupted"
        assert c.runs.wait(thread, "simple", input={"items": ["x"]}) == {"items": ["x", "a", "b"]}
    finally:
        second.stop()


# -- placement (pure logic) --------------------------------------------------------


class _FakeProcess:
    def __init__(self, inflight: int = 0) -> None:
        self.ready = True
        self.stopping = False
        self.inflight = inflight
        self.last_used = time.monotonic()
        self.index = 0
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True
        self.stopping = True


class _Guard:
    listener = None

    def references(self) -> list:
        return []


def _pool(busy: float, *, policy: str = "saturated") -> tuple[RunProcesses, list[int]]:
    pool = RunProcesses("{}", None, _Guard(), size=1, per_process=10, policy=policy, busy=lambda: busy)  # type: ignore[arg-type]
    spawned: list[int] = []

    async def spawn(size: int) -> None:
        spawned.append(size)
        pool._starting = None

    pool._spawn = spawn  # type: ignore[method-assign]
    return pool, spawned


async def test_run_processes_start_only_when_the_server_loop_is_saturated():
    pool, spawned = _pool(busy=0.5)
    assert pool.pick(0) is None
    await asyncio.sleep(0)
    assert spawned == []
    pool, spawned = _pool(busy=0.95)
    assert pool.pick(0) is None  # the run stays here while the process starts
    await asyncio.sleep(0)
    assert spawned == [1]


async def test_runs_go_to_the_run_process_until_it_is_well_ahead_or_full():
    pool, _ = _pool(busy=0.95)
    proc = _FakeProcess()
    pool._procs = [proc]  # type: ignore[list-item]
    assert pool.pick(0) is proc
    proc.inflight = 1
    assert pool.pick(0) is proc
    proc.inflight = 2
    assert pool.pick(0) is None  # 2 > 2 * 0 + 1
    assert pool.pick(1) is proc
    proc.inflight = 10
    assert pool.pick(20) is None  # full: --n-jobs-per-worker runs at once


async def test_policy_always_sends_every_run_to_a_run_process():
    pool, spawned = _pool(busy=0.0, policy="always")
    proc = _FakeProcess(inflight=9)
    pool._procs = [proc]  # type: ignore[list-item]
    assert pool.pick(0) is proc
    proc.ready = False  # it exited: the run stays here and another one is started
    assert pool.pick(0) is None
    await asyncio.sleep(0)
    assert spawned == [1]


async def test_idle_run_processes_are_stopped(monkeypatch):
    pool, _ = _pool(busy=0.0)
    busy, idle = _FakeProcess(inflight=1), _FakeProcess()
    idle.last_used -= 100
    busy.last_used -= 100
    pool._procs = [busy, idle]  # type: ignore[list-item]
    monkeypatch.setattr(processes, "IDLE_STOP_S", 30.0)
    pool._reap()
    assert pool.pick(0) is busy  # the idle one is passed over at once, before it has stopped
    await asyncio.sleep(0)
    assert idle.stopped and not busy.stopped
    assert pool._procs == [busy]
    await pool.stop()
