"""A scaled-out deployment, black-box: API processes and workers as real processes on
PostgreSQL + Redis. Writes through one API process are read through the other, runs
streamed through one are joined and cancelled through the other, a worker killed with
SIGKILL in the middle of a run loses nothing (another worker finishes it, once), SIGTERM
hands runs back, and everything acknowledged survives a restart of every process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from conftest import CONFIG, ROOT, free_port
from deployment import REDIS_URI, Deployment
from services import create_database, delete_redis_prefix, drop_database, redis_prefix, require_services

LEASE = "2"  # seconds: a dead worker's run is taken over after about this long


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    require_services()
    dep = Deployment(
        tmp_path_factory.mktemp("scale"),
        apis=2,
        workers=2,
        args=["--run-lease-seconds", LEASE],
        worker_args=["--shutdown-timeout", "1"],
    )
    try:
        yield dep.start()
    finally:
        dep.destroy()


def _worker_with_pid(dep: Deployment, pid: int) -> Any:
    for proc in dep.workers:
        if proc.proc is not None and proc.proc.pid == pid:
            return proc
    raise AssertionError(f"no worker has pid {pid}: {[p.proc.pid for p in dep.workers if p.proc]}")


def _replace_dead_workers(dep: Deployment) -> None:
    """Start a new worker in place of each one that exited. It is not waited for: it may
    claim a run that ends its process before its health endpoint ever answers."""
    for i, proc in enumerate(dep.workers):
        if proc.proc is None or proc.proc.poll() is not None:
            dep.workers[i] = dep.new_worker(i + 100 + int(time.time()) % 1000)
            dep.workers[i].start()


def test_writes_through_one_api_process_are_read_through_the_other(deployment: Deployment) -> None:
    one, other = get_sync_client(url=deployment.api_url(0)), get_sync_client(url=deployment.api_url(1))
    assistant = one.assistants.create("simple", metadata={"probe": "scale-read"}, name="scaled")
    assert other.assistants.get(assistant["assistant_id"])["name"] == "scaled"
    thread = one.threads.create(metadata={"probe": "scale-read"})
    assert other.threads.get(thread["thread_id"])["metadata"]["probe"] == "scale-read"
    result = other.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"messages": []})
    assert result is not None
    state = one.threads.get_state(thread["thread_id"])
    assert state["values"] == result
    runs = one.runs.list(thread["thread_id"])
    assert [r["status"] for r in runs] == ["success"]
    one.store.put_item(["scale"], "k", {"v": 1})
    assert other.store.get_item(["scale"], "k")["value"] == {"v": 1}
    found = other.assistants.search(metadata={"probe": "scale-read"})
    assert [a["assistant_id"] for a in found] == [assistant["assistant_id"]]


async def test_a_run_streamed_through_one_process_is_joined_and_cancelled_through_the_other(
    deployment: Deployment,
) -> None:
    one, other = get_client(url=deployment.api_url(0)), get_client(url=deployment.api_url(1))
    thread = await one.threads.create()
    tid = thread["thread_id"]
    events: list[Any] = []

    async def stream() -> None:
        async for part in one.runs.stream(tid, "hang", input={"items": []}, stream_mode="custom"):
            events.append(part)

    task = asyncio.create_task(stream())
    async with asyncio.timeout(30):
        while not any(p.event == "custom" for p in events):
            await asyncio.sleep(0.05)
    run_id = next(p.data["run_id"] for p in events if p.event == "metadata")
    assert (await other.runs.get(tid, run_id))["status"] == "running"
    joined: list[Any] = []

    async def join() -> None:
        async for part in other.runs.join_stream(tid, run_id):
            joined.append(part)

    joiner = asyncio.create_task(join())
    await asyncio.sleep(0.3)
    await other.runs.cancel(tid, run_id, wait=True)
    async with asyncio.timeout(30):
        await task
        await joiner
    assert (await one.runs.get(tid, run_id))["status"] == "interrupted"
    assert (await other.threads.get(tid))["status"] != "busy"


async def test_multitask_reject_and_enqueue_across_processes(deployment: Deployment) -> None:
    one, other = get_client(url=deployment.api_url(0)), get_client(url=deployment.api_url(1))
    tid = (await one.threads.create())["thread_id"]
    first = await one.runs.create(tid, "slow", input={"sleep": 1.0})
    with pytest.raises(Exception) as refused:
        await other.runs.create(tid, "slow", input={"sleep": 0.1}, multitask_strategy="reject")
    assert "already running" in str(refused.value)
    second = await other.runs.create(tid, "slow", input={"sleep": 0.1}, multitask_strategy="enqueue")
    await one.runs.join(tid, second["run_id"])
    runs = {r["run_id"]: r for r in await other.runs.list(tid)}
    assert runs[first["run_id"]]["status"] == "success"
    assert runs[second["run_id"]]["status"] == "success"
    values = (await one.threads.get_state(tid))["values"]
    # one run per thread at a time, across the whole deployment: the second started after the first
    assert values["starts"][1] >= values["ends"][0]


async def test_a_worker_killed_mid_run_loses_nothing(deployment: Deployment) -> None:
    """SIGKILL the worker executing a run: after the lease expires another worker goes on
    from the run's last checkpoint; the run ends success with attempt 2, its output once."""
    _replace_dead_workers(deployment)
    one, other = get_client(url=deployment.api_url(0)), get_client(url=deployment.api_url(1))
    tid = (await one.threads.create())["thread_id"]
    run = await one.runs.create(tid, "takeover", input={"items": []}, stream_mode=["custom", "values"],
                                stream_resumable=True)
    parts: list[Any] = []

    async def follow() -> None:
        async for part in other.runs.join_stream(tid, run["run_id"], last_event_id="0"):
            parts.append(part)

    follower = asyncio.create_task(follow())
    async with asyncio.timeout(30):
        while not any(p.event == "custom" for p in parts):
            await asyncio.sleep(0.05)
    pid = next(p.data["waiting"] for p in parts if p.event == "custom")
    _worker_with_pid(deployment, pid).kill()
    async with asyncio.timeout(60):
        final = await one.runs.join(tid, run["run_id"])
        await follower
    row = await other.runs.get(tid, run["run_id"])
    assert row["status"] == "success"
    assert final == {"items": ["first", "wait", "last"]}
    attempts = [p.data["attempt"] for p in parts if p.event == "metadata"]
    assert attempts == [1, 2]
    assert (await other.threads.get_state(tid))["values"] == {"items": ["first", "wait", "last"]}
    history = await one.threads.get_history(tid, limit=20)
    writes = [h for h in history if (h["metadata"] or {}).get("run_id") == run["run_id"]]
    assert writes, "the run's checkpoints are on the thread"
    _replace_dead_workers(deployment)


def test_sigterm_hands_a_worker_s_runs_back(deployment: Deployment) -> None:
    """SIGTERM: the worker stops claiming, its run gets --shutdown-timeout (1 s) to end,
    then it is handed back and another worker executes it."""
    _replace_dead_workers(deployment)
    client = get_sync_client(url=deployment.url)
    tid = client.threads.create()["thread_id"]
    run = client.runs.create(tid, "takeover", input={"items": []}, stream_mode="custom")
    pid = None
    for part in client.runs.join_stream(tid, run["run_id"]):
        if part.event == "custom":
            pid = part.data["waiting"]
            break
    assert pid is not None
    worker = _worker_with_pid(deployment, pid)
    began = time.monotonic()
    worker.stop(signal.SIGTERM)
    assert time.monotonic() - began < 15
    final = client.runs.join(tid, run["run_id"])
    assert final == {"items": ["first", "wait", "last"]}
    assert client.runs.get(tid, run["run_id"])["status"] == "success"
    _replace_dead_workers(deployment)


def test_an_api_process_that_dies_loses_no_run(deployment: Deployment) -> None:
    client = get_sync_client(url=deployment.api_url(0))
    tid = client.threads.create()["thread_id"]
    run = client.runs.create(tid, "slow", input={"sleep": 1.0})
    deployment.apis[0].kill()
    try:
        other = get_sync_client(url=deployment.api_url(1))
        other.runs.join(tid, run["run_id"])
        assert other.runs.get(tid, run["run_id"])["status"] == "success"
    finally:
        deployment.apis[0].start()
        deployment.apis[0].wait_ready(time.monotonic() + 60)


def test_a_run_that_keeps_killing_its_worker_is_not_retried_forever(deployment: Deployment) -> None:
    client = get_sync_client(url=deployment.api_url(1))
    tid = client.threads.create()["thread_id"]
    run = client.runs.create(tid, "crash_worker", input={"items": []})
    deadline = time.monotonic() + 90
    while client.runs.get(tid, run["run_id"])["status"] in ("pending", "running"):
        assert time.monotonic() < deadline, deployment.log()[-4000:]
        _replace_dead_workers(deployment)
        time.sleep(0.2)
    assert client.runs.get(tid, run["run_id"])["status"] == "error"
    thread = client.threads.get(tid)
    assert thread["status"] == "error"
    assert "attempts" in thread["error"]["message"]
    _replace_dead_workers(deployment)


def test_everything_acknowledged_survives_a_restart_of_every_process(tmp_path: Path) -> None:
    require_services()
    dep = Deployment(tmp_path / "restart", apis=1, workers=1)
    try:
        dep.start()
        client = get_sync_client(url=dep.url)
        assistant = client.assistants.create("simple", name="kept")
        tid = client.threads.create(metadata={"kept": True})["thread_id"]
        output = client.runs.wait(tid, assistant["assistant_id"], input={"messages": []})
        client.store.put_item(["kept"], "item", {"n": 1})
        dep.stop()
        dep.start()
        client = get_sync_client(url=dep.url)
        assert client.assistants.get(assistant["assistant_id"])["name"] == "kept"
        assert client.threads.get(tid)["metadata"]["kept"] is True
        assert client.threads.get_state(tid)["values"] == output
        assert [r["status"] for r in client.runs.list(tid)] == ["success"]
        assert client.store.get_item(["kept"], "item")["value"] == {"n": 1}
    finally:
        dep.destroy()


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphdock.cli", "serve", "--config", str(CONFIG), "--port", "0", *args],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DATABASE_URI": "", "REDIS_URI": ""},
    )


def test_an_unreachable_database_stops_start_up_with_one_line() -> None:
    done = _serve("--database-uri", "postgresql://postgres:secret@127.0.0.1:1/nowhere", "--redis-uri", REDIS_URI)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "PostgreSQL" in lines[0] and "127.0.0.1:1" in lines[0]
    assert "secret" not in done.stderr


def test_an_unreachable_redis_stops_start_up_with_one_line(tmp_path: Path) -> None:
    require_services()
    name, uri = create_database("gdtest")
    try:
        done = _serve("--database-uri", uri, "--redis-uri", "redis://127.0.0.1:1/0")
    finally:
        drop_database(name)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "Redis" in lines[0] and "127.0.0.1:1" in lines[0]


def test_a_database_without_redis_is_refused_with_one_line() -> None:
    done = _serve("--database-uri", "postgresql://postgres@127.0.0.1:5432/postgres")
    assert done.returncode != 0
    assert "--redis-uri" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_processes_starting_at_once_on_a_fresh_database_share_one_schema(tmp_path: Path) -> None:
    require_services()
    name, uri = create_database("gdtest")
    prefix = redis_prefix()
    procs = []
    ports = [free_port() for _ in range(3)]
    try:
        for i in range(3):
            command = "worker" if i == 2 else "serve"
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "graphdock.cli", command, "--config", str(CONFIG), "--host", "127.0.0.1",
                     "--port", str(ports[i]), "--database-uri", uri, "--redis-uri", REDIS_URI,
                     "--redis-prefix", prefix, "--log-level", "warning"],
                    cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                )
            )
        deadline = time.monotonic() + 60
        for i, proc in enumerate(procs):
            port = ports[i]
            while True:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/ok", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        drop_database(name)
        delete_redis_prefix(prefix)


async def test_redis_flushed_mid_run_loses_nothing_acknowledged(deployment: Deployment) -> None:
    """Redis holds nothing that cannot be lost: with every key of the deployment deleted in
    the middle of a run, the run still ends success with its result in PostgreSQL, and the
    stream that was open ends (with an error event naming the loss) instead of hanging."""
    _replace_dead_workers(deployment)
    client = get_client(url=deployment.api_url(0))
    tid = (await client.threads.create())["thread_id"]
    parts: list[Any] = []

    async def stream() -> None:
        async for part in client.runs.stream(tid, "slow", input={"sleep": 2.0}, stream_mode=["custom", "values"]):
            parts.append(part)

    task = asyncio.create_task(stream())
    async with asyncio.timeout(30):
        while not any(p.event == "custom" for p in parts):
            await asyncio.sleep(0.05)
    run_id = next(p.data["run_id"] for p in parts if p.event == "metadata")
    assert delete_redis_prefix(deployment.prefix) > 0
    async with asyncio.timeout(60):
        await task  # ends: normally, or with the loss reported
        while (await client.runs.get(tid, run_id))["status"] in ("pending", "running"):
            await asyncio.sleep(0.1)
    assert (await client.runs.get(tid, run_id))["status"] == "success"
    values = (await client.threads.get_state(tid))["values"]
    assert len(values["ends"]) == 1
    errors = [p.data for p in parts if p.event == "error"]
    assert all(e.get("error") == "StreamLost" for e in errors), errors
    # the deployment goes on working
    assert await client.runs.wait(tid, "slow", input={"sleep": 0.0}) is not None
