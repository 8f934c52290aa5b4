"""Run control: join, cancel, delete, list; multitask strategies; concurrency; robustness.

Concurrency is proven from the start/end timestamps the `slow` graph records inside the
run, never from wall-clock limits. A run is known to be executing when its graph has
emitted a custom event (`hang` emits {"status": "hanging"}, `progress` {"holding": ...},
`slow` {"started": ...}); tests read that event from the run's own stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from conftest import BACKENDS, ServerProcess, make_server

NO_RUNS_TO_CANCEL = (
    "No matching runs to cancel. Please verify the thread ID and run IDs are correct, and the"
    " runs haven't been deleted or completed."
)
RUN_NOT_FOUND = {"__error__": {"error": "HTTPException", "message": "404: Run not found"}}


# -- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def hang_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hang") / "hang.log"


@pytest.fixture(scope="module", params=BACKENDS)
def workers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, hang_log: Path
) -> Iterator[ServerProcess]:
    """A server with 4 worker slots whose `hang` graph logs its start and cancellation."""
    proc = make_server(
        request.param,
        tmp_path_factory.mktemp("workers"),
        env={"GRAPHDOCK_HANG_LOG": str(hang_log)},
        args=["--n-jobs-per-worker", "4"],
    ).start()
    yield proc
    proc.stop()


# Bounded timeouts: a run that is never settled fails its test instead of hanging it.
TIMEOUT = httpx.Timeout(60.0, connect=5.0)


@pytest.fixture
def wclient(workers: ServerProcess):
    return get_client(url=workers.url, timeout=TIMEOUT)


@pytest.fixture
def whttp(workers: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=workers.url, timeout=60) as c:
        yield c


async def new_thread(client) -> str:
    return (await client.threads.create())["thread_id"]


async def start_holding(client, thread_id: str | None, graph: str = "hang", input: Any = None, **kwargs) -> str:
    """Create a run through /stream, return its id once the graph has emitted a custom event.

    The stream is then closed; with the default on_disconnect ("continue") the run goes on.
    """
    if input is None:
        input = {"items": []}
    run_id = None
    async with contextlib.aclosing(
        client.runs.stream(thread_id, graph, input=input, stream_mode="custom", **kwargs)
    ) as parts:
        async for part in parts:
            if part.event == "metadata":
                run_id = part.data["run_id"]
            elif part.event == "custom":
                assert run_id is not None
                return run_id
    raise AssertionError("the run ended before its graph emitted a custom event")


def hang_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def intervals(values: dict[str, Any]) -> list[tuple[float, float]]:
    return list(zip(values["starts"], values["ends"]))


def overlap_all(spans: list[tuple[float, float]]) -> bool:
    """True when one instant lies inside every span."""
    return max(s for s, _ in spans) < min(e for _, e in spans)


def disjoint_in_order(spans: list[tuple[float, float]]) -> bool:
    return all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))


async def history_run_ids(client, thread_id: str) -> set[str | None]:
    states = await client.threads.get_history(thread_id, limit=1000)
    return {s["metadata"].get("run_id") for s in states}


# -- join -------------------------------------------------------------------------------


async def test_join_returns_final_values(client):
    tid = await new_thread(client)
    run = await client.runs.create(tid, "slow", input={"sleep": 0.2})
    out = await client.runs.join(tid, run["run_id"])
    assert out["thread_ids"] == [tid]
    assert len(out["starts"]) == 1 and out["ends"][0] >= out["starts"][0]
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"


def test_join_sync(sync_client):
    tid = sync_client.threads.create()["thread_id"]
    run = sync_client.runs.create(tid, "simple", input={"items": ["j"]})
    assert sync_client.runs.join(tid, run["run_id"]) == {"items": ["j", "a", "b"]}


async def test_join_finished_run_returns_thread_fallback(client):
    tid = await new_thread(client)
    run = await client.runs.create(tid, "simple", input={"items": ["f"]})
    await client.runs.join(tid, run["run_id"])
    # joined again long after it ended: the thread's values
    assert await client.runs.join(tid, run["run_id"]) == {"items": ["f", "a", "b"]}
    # a failed run: the thread's error
    failed = await client.runs.create(tid, "simple", input={"items": [], "fail": True})
    await client.runs.join(tid, failed["run_id"])
    assert await client.runs.join(tid, failed["run_id"]) == {
        "__error__": {"error": "ValueError", "message": "boom from node_a"}
    }
    # a run that stopped at interrupt(): the pending interrupts
    tid = await new_thread(client)
    asked = await client.runs.create(tid, "simple", input={"items": [], "ask": True})
    await client.runs.join(tid, asked["run_id"])
    out = await client.runs.join(tid, asked["run_id"])
    assert [i["value"] for i in out["__interrupt__"]] == [{"question": "approve?"}]


async def test_join_missing_run_is_200_with_error(client, http):
    tid = await new_thread(client)
    missing = str(uuid.uuid4())
    r = http.get(f"/threads/{tid}/runs/{missing}/join")
    assert r.status_code == 200
    assert r.json() == RUN_NOT_FOUND
    assert await client.runs.join(tid, missing) == RUN_NOT_FOUND


async def test_join_while_pending_behind_another_run(wclient):
    tid = await new_thread(wclient)
    first = await start_holding(wclient, tid, "progress", {"items": ["first"]})
    second = await wclient.runs.create(tid, "progress", input={"items": ["second"], "hold": False})
    joiner = asyncio.ensure_future(wclient.runs.join(tid, second["run_id"]))
    assert (await wclient.runs.get(tid, second["run_id"]))["status"] == "pending"
    await wclient.runs.cancel(tid, first)
    assert await joiner == {"items": ["first", "a", "second", "a", "done"], "hold": False}


# -- cancel -------------------------------------------------------------------------------


async def test_cancel_running_run_interrupts_it(wclient, whttp, hang_log):
    tid = await new_thread(wclient)
    run_id = await start_holding(wclient, tid)
    assert f"started {tid}" in hang_lines(hang_log)
    assert (await wclient.runs.get(tid, run_id))["status"] == "running"
    assert (await wclient.threads.get(tid))["status"] == "busy"
    r = whttp.post(f"/threads/{tid}/runs/{run_id}/cancel")
    assert r.status_code == 202 and r.content == b""
    await wclient.runs.join(tid, run_id)
    assert (await wclient.runs.get(tid, run_id))["status"] == "interrupted"
    thread = await wclient.threads.get(tid)
    assert thread["status"] == "interrupted"  # `hang` is still pending
    assert thread["error"]["error"] == "UserInterrupt"
    assert thread["error"]["message"].startswith("interrupt requested via POST /threads/")
    # the node's task really was cancelled
    assert f"cancelled {tid}" in hang_lines(hang_log)
    # cancelling again: nothing to cancel
    r = whttp.post(f"/threads/{tid}/runs/{run_id}/cancel")
    assert r.status_code == 404
    assert r.json() == {"detail": NO_RUNS_TO_CANCEL}


async def test_cancel_with_an_unknown_action_interrupts(wclient, whttp):
    tid = await new_thread(wclient)
    run_id = await start_holding(wclient, tid, "progress", {"items": []})
    r = whttp.post(f"/threads/{tid}/runs/{run_id}/cancel", params={"action": "explode", "wait": "yes"})
    assert r.status_code == 200
    assert r.headers["location"] == f"/threads/{tid}/runs/{run_id}/join"
    assert r.json() == {"items": ["a"]}
    assert (await wclient.runs.get(tid, run_id))["status"] == "interrupted"
    assert run_id in await history_run_ids(wclient, tid)  # interrupt keeps what the run wrote


async def test_cancel_keeps_partial_progress_and_thread_can_continue(wclient):
    tid = await new_thread(wclient)
    run_id = await start_holding(wclient, tid, "progress", {"items": ["first"]})
    out = await wclient.runs.cancel(tid, run_id, wait=True)
    assert out == {"items": ["first", "a"]}
    assert (await wclient.runs.get(tid, run_id))["status"] == "interrupted"
    state = await wclient.threads.get_state(tid)
    assert state["values"] == {"items": ["first", "a"]} and state["next"] == ["hold"]
    # the thread goes on from where the cancelled run stopped
    out = await wclient.runs.wait(tid, "progress", input={"items": ["next"], "hold": False})
    assert out == {"items": ["first", "a", "next", "a", "done"], "hold": False}
    thread = await wclient.threads.get(tid)
    assert thread["status"] == "idle" and thread.get("error") is None


def test_cancel_with_wait_sync(workers):
    client = get_sync_client(url=workers.url, timeout=TIMEOUT)
    tid = client.threads.create()["thread_id"]
    run_id = None
    with contextlib.closing(
        client.runs.stream(tid, "progress", input={"items": ["s"]}, stream_mode="custom")
    ) as parts:
        for part in parts:
            if part.event == "metadata":
                run_id = part.data["run_id"]
            elif part.event == "custom":
                break
    assert run_id is not None
    assert client.runs.cancel(tid, run_id, wait=True) == {"items": ["s", "a"]}
    assert client.runs.get(tid, run_id)["status"] == "interrupted"
    assert client.threads.get(tid)["status"] == "interrupted"


async def test_cancel_rollback_deletes_run_and_its_checkpoints(wclient, whttp):
    tid = await new_thread(wclient)
    first = await wclient.runs.create(tid, "progress", input={"items": ["first"], "hold": False})
    before = await wclient.runs.join(tid, first["run_id"])
    assert before == {"items": ["first", "a", "done"], "hold": False}
    second = await start_holding(wclient, tid, "progress", {"items": ["second"], "hold": True})
    assert second in await history_run_ids(wclient, tid)  # it has written checkpoints
    r = whttp.post(f"/threads/{tid}/runs/{second}/cancel", params={"wait": "true", "action": "rollback"})
    assert r.status_code == 200
    r = whttp.get(f"/threads/{tid}/runs/{second}")
    assert r.status_code == 404
    assert [run["run_id"] for run in await wclient.runs.list(tid)] == [first["run_id"]]
    assert await history_run_ids(wclient, tid) == {first["run_id"]}
    thread = await wclient.threads.get(tid)
    assert thread["status"] == "idle"
    assert thread["values"] == before
    assert (await wclient.threads.get_state(tid))["values"] == before


async def test_rollback_of_a_resume_restores_the_waiting_interrupt(wclient):
    tid = await new_thread(wclient)
    out = await wclient.runs.wait(tid, "progress", input={"items": [], "ask": True})
    assert [i["value"] for i in out["__interrupt__"]] == ["continue?"]
    waiting = (await wclient.threads.get(tid))["interrupts"]
    run_id = await start_holding(wclient, tid, "progress", command={"resume": "go"})
    await wclient.runs.cancel(tid, run_id, wait=True, action="rollback")
    thread = await wclient.threads.get(tid)
    assert thread["status"] == "interrupted"
    assert thread["interrupts"] == waiting
    assert (await wclient.threads.get_state(tid))["next"] == ["a"]
    out = await wclient.runs.wait(tid, "progress", command={"resume": "again", "update": {"hold": False}})
    assert out == {"items": ["a", "done"], "ask": True, "answer": "again", "hold": False}


async def test_cancel_pending_run(wclient):
    tid = await new_thread(wclient)
    first = await start_holding(wclient, tid, "progress", {"items": ["first"]})
    second = await wclient.runs.create(tid, "progress", input={"items": ["second"], "hold": False})
    third = await wclient.runs.create(tid, "progress", input={"items": ["third"], "hold": False})
    assert (await wclient.runs.get(tid, second["run_id"]))["status"] == "pending"
    await wclient.runs.cancel(tid, second["run_id"])  # interrupt: stays as an interrupted row
    assert (await wclient.runs.get(tid, second["run_id"]))["status"] == "interrupted"
    await wclient.runs.cancel(tid, third["run_id"], action="rollback")  # rollback: row deleted
    with pytest.raises(httpx.HTTPStatusError) as info:
        await wclient.runs.get(tid, third["run_id"])
    assert info.value.response.status_code == 404
    assert (await wclient.runs.get(tid, first))["status"] == "running"
    assert (await wclient.threads.get(tid))["status"] == "busy"  # first is still running
    await wclient.runs.cancel(tid, first, wait=True)
    # neither cancelled run ever executed
    state = await wclient.threads.get_state(tid)
    assert state["values"] == {"items": ["first", "a"]}
    statuses = {r["run_id"]: r["status"] for r in await wclient.runs.list(tid)}
    assert statuses == {first: "interrupted", second["run_id"]: "interrupted"}
    assert (await wclient.threads.get(tid))["status"] != "busy"


async def test_cancel_delayed_run(client):
    tid = await new_thread(client)
    run = await client.runs.create(tid, "simple", input={"items": []}, after_seconds=3600)
    assert (await client.threads.get(tid))["status"] == "busy"
    await client.runs.cancel(tid, run["run_id"])
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    assert (await client.threads.get(tid))["status"] == "idle"
    assert await client.runs.join(tid, run["run_id"]) == {}  # never ran: the thread has no values
    # the thread takes new runs at once
    assert await client.runs.wait(tid, "simple", input={"items": ["n"]}) == {"items": ["n", "a", "b"]}


@pytest.mark.parametrize("action", ["interrupt", "rollback"])
async def test_cancel_pending_run_keeps_a_waiting_interrupt(client, action):
    tid = await new_thread(client)
    await client.runs.wait(tid, "simple", input={"items": [], "ask": True})
    waiting = (await client.threads.get(tid))["interrupts"]
    run = await client.runs.create(tid, "simple", command={"resume": "later"}, after_seconds=3600)
    assert (await client.threads.get(tid))["status"] == "busy"
    await client.runs.cancel(tid, run["run_id"], action=action)
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    assert thread["interrupts"] == waiting
    out = await client.runs.wait(tid, "simple", command={"resume": "now"})
    assert out["answer"] == "now"


async def test_cancel_finished_or_unknown_run_is_404(client, http):
    tid = await new_thread(client)
    run = await client.runs.create(tid, "simple", input={"items": []})
    await client.runs.join(tid, run["run_id"])
    for run_id in (run["run_id"], str(uuid.uuid4())):
        for params in ({}, {"wait": "1"}, {"action": "rollback"}):
            r = http.post(f"/threads/{tid}/runs/{run_id}/cancel", params=params)
            assert r.status_code == 404, params
            assert r.json() == {"detail": NO_RUNS_TO_CANCEL}
    r = http.post(f"/threads/{tid}/runs/not-a-uuid/cancel")
    assert r.status_code == 422
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"


async def test_bulk_cancel_by_thread_and_run_ids(wclient, whttp):
    tid = await new_thread(wclient)
    first = await start_holding(wclient, tid, "progress", {"items": ["first"]})
    second = await wclient.runs.create(tid, "progress", input={"items": ["second"]})
    r = whttp.post("/runs/cancel", json={"thread_id": tid, "run_ids": [first, second["run_id"]]})
    assert r.status_code == 204 and r.content == b""
    await wclient.runs.join(tid, first)
    assert (await wclient.runs.get(tid, first))["status"] == "interrupted"
    assert (await wclient.runs.get(tid, second["run_id"]))["status"] == "interrupted"
    # the same again: nothing left to cancel
    r = whttp.post("/runs/cancel", json={"thread_id": tid, "run_ids": [first]})
    assert r.status_code == 404
    # through the SDK, with rollback
    third = await start_holding(wclient, tid, "progress", {"items": ["third"], "hold": True})
    await wclient.runs.cancel_many(thread_id=tid, run_ids=[third], action="rollback")
    await wclient.runs.join(tid, third)
    assert third not in {r["run_id"] for r in await wclient.runs.list(tid)}
    assert third not in await history_run_ids(wclient, tid)


@pytest.mark.parametrize(
    "body",
    [
        {"status": "pending", "thread_id": "00000000-0000-0000-0000-000000000000"},
        {"status": "all", "run_ids": ["00000000-0000-0000-0000-000000000000"]},
        {},
        {"status": "success"},
        {"thread_id": "not-a-uuid", "run_ids": []},
    ],
)
def test_bulk_cancel_invalid_bodies_are_422(http, body):
    r = http.post("/runs/cancel", json=body)
    assert r.status_code == 422, r.text


async def test_bulk_cancel_by_status(tmp_path):
    proc = ServerProcess(tmp_path, args=["--n-jobs-per-worker", "4"]).start()
    try:
        client = get_client(url=proc.url, timeout=TIMEOUT)
        running_tid = await new_thread(client)
        running = await start_holding(client, running_tid, "progress", {"items": []})
        delayed = []
        for _ in range(2):
            tid = await new_thread(client)
            run = await client.runs.create(tid, "simple", input={"items": []}, after_seconds=3600)
            delayed.append((tid, run["run_id"]))
        await client.runs.cancel_many(status="pending")
        for tid, run_id in delayed:
            assert (await client.runs.get(tid, run_id))["status"] == "interrupted"
            assert (await client.threads.get(tid))["status"] == "idle"
        assert (await client.runs.get(running_tid, running))["status"] == "running"
        with httpx.Client(base_url=proc.url) as http:
            r = http.post("/runs/cancel", json={"status": "pending"})
            assert r.status_code == 404
            r = http.post("/runs/cancel", json={"status": "running"})
            assert r.status_code == 204
        await client.runs.join(running_tid, running)
        assert (await client.runs.get(running_tid, running))["status"] == "interrupted"
        # "all" covers pending and running alike
        tid = await new_thread(client)
        held = await start_holding(client, tid, "progress", {"items": []})
        queued = await client.runs.create(tid, "progress", input={"items": []})
        await client.runs.cancel_many(status="all")
        await client.runs.join(tid, held)
        assert (await client.runs.get(tid, held))["status"] == "interrupted"
        assert (await client.runs.get(tid, queued["run_id"]))["status"] == "interrupted"
    finally:
        proc.stop()


# -- delete, list, get -----------------------------------------------------------------------


async def test_delete_run_and_its_checkpoints(client, http):
    tid = await new_thread(client)
    first = await client.runs.create(tid, "simple", input={"items": ["1"]})
    await client.runs.join(tid, first["run_id"])
    second = await client.runs.create(tid, "simple", input={"items": ["2"]})
    await client.runs.join(tid, second["run_id"])
    assert await history_run_ids(client, tid) == {first["run_id"], second["run_id"]}
    r = http.delete(f"/threads/{tid}/runs/{second['run_id']}")
    assert r.status_code == 204 and r.content == b""
    assert http.get(f"/threads/{tid}/runs/{second['run_id']}").status_code == 404
    assert await history_run_ids(client, tid) == {first["run_id"]}
    assert (await client.threads.get_state(tid))["values"] == {"items": ["1", "a", "b"]}
    r = http.delete(f"/threads/{tid}/runs/{second['run_id']}")
    assert r.status_code == 404
    assert r.json() == {"detail": "Run not found"}
    await client.runs.delete(tid, first["run_id"])
    assert await client.runs.list(tid) == []


async def test_delete_running_run(wclient):
    tid = await new_thread(wclient)
    run_id = await start_holding(wclient, tid, "progress", {"items": ["x"]})
    await wclient.runs.delete(tid, run_id)
    assert await wclient.runs.list(tid) == []
    assert run_id not in await history_run_ids(wclient, tid)
    assert (await wclient.threads.get(tid))["status"] != "busy"


async def test_list_runs_newest_first_with_filters(client, http):
    tid = await new_thread(client)
    ids = []
    for i in range(3):
        run = await client.runs.create(tid, "simple", input={"items": [str(i)], "fail": i == 1})
        await client.runs.join(tid, run["run_id"])
        ids.append(run["run_id"])
    runs = await client.runs.list(tid)
    assert [r["run_id"] for r in runs] == ids[::-1]
    assert [r["status"] for r in runs] == ["success", "error", "success"]
    assert [r["run_id"] for r in await client.runs.list(tid, limit=1)] == [ids[2]]
    assert [r["run_id"] for r in await client.runs.list(tid, limit=1, offset=1)] == [ids[1]]
    assert [r["run_id"] for r in await client.runs.list(tid, offset=2)] == [ids[0]]
    assert await client.runs.list(tid, offset=3) == []
    assert [r["run_id"] for r in await client.runs.list(tid, status="error")] == [ids[1]]
    assert await client.runs.list(tid, status="pending") == []
    selected = await client.runs.list(tid, select=["run_id", "status"])
    assert selected == [{"run_id": ids[2], "status": "success"}, {"run_id": ids[1], "status": "error"},
                        {"run_id": ids[0], "status": "success"}]
    assert http.get(f"/threads/{tid}/runs", params={"status": "bogus"}).status_code == 422
    assert http.get(f"/threads/{tid}/runs", params={"select": "bogus"}).status_code == 422
    assert http.get(f"/threads/{tid}/runs", params={"limit": 0}).status_code == 422
    r = http.get(f"/threads/{uuid.uuid4()}/runs")
    assert r.status_code == 404


def test_list_and_get_sync(sync_client):
    tid = sync_client.threads.create()["thread_id"]
    run = sync_client.runs.create(tid, "simple", input={"items": []})
    sync_client.runs.join(tid, run["run_id"])
    assert [r["run_id"] for r in sync_client.runs.list(tid)] == [run["run_id"]]
    got = sync_client.runs.get(tid, run["run_id"])
    assert got["status"] == "success" and got["kwargs"]["input"] == {"items": []}


def test_get_run_errors(http):
    tid = http.post("/threads", json={}).json()["thread_id"]
    r = http.get(f"/threads/{tid}/runs/{uuid.uuid4()}")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    missing = str(uuid.uuid4())
    r = http.get(f"/threads/{missing}/runs/{uuid.uuid4()}")
    assert r.status_code == 404 and r.json() == {"detail": f"Thread with ID {missing} not found"}
    r = http.get(f"/threads/{tid}/runs/not-a-uuid")
    assert r.status_code == 422 and r.json() == {"detail": "Invalid run ID: must be a UUID"}
    # a run is only found through its own thread
    run = http.post(f"/threads/{tid}/runs", json={"assistant_id": "simple", "input": {"items": []}}).json()
    other = http.post("/threads", json={}).json()["thread_id"]
    assert http.get(f"/threads/{other}/runs/{run['run_id']}").status_code == 404
    http.get(f"/threads/{tid}/runs/{run['run_id']}/join")


# -- multitask strategies ---------------------------------------------------------------------


async def test_multitask_reject_is_409_and_inserts_nothing(wclient, whttp):
    tid = await new_thread(wclient)
    first = await start_holding(wclient, tid, "progress", {"items": []})
    for path in ("runs", "runs/wait", "runs/stream"):
        r = whttp.post(
            f"/threads/{tid}/{path}",
            json={"assistant_id": "progress", "input": {"items": []}, "multitask_strategy": "reject"},
        )
        assert r.status_code == 409, path
        assert r.json() == {
            "detail": "Thread is already running a task. Wait for it to finish or choose a different"
            " multitask strategy."
        }
    assert [r["run_id"] for r in await wclient.runs.list(tid)] == [first]
    await wclient.runs.cancel(tid, first, wait=True)
    # with nothing in flight, reject just runs
    out = await wclient.runs.wait(tid, "progress", input={"items": ["ok"], "hold": False}, multitask_strategy="reject")
    assert out["items"][-3:] == ["ok", "a", "done"]


async def test_multitask_reject_also_when_only_pending(client):
    tid = await new_thread(client)
    delayed = await client.runs.create(tid, "simple", input={"items": []}, after_seconds=3600)
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.runs.create(tid, "simple", input={"items": []}, multitask_strategy="reject")
    assert info.value.response.status_code == 409
    await client.runs.cancel(tid, delayed["run_id"])


async def test_multitask_enqueue_serialises_and_chains_state(client):
    tid = await new_thread(client)
    first = await client.runs.create(tid, "slow", input={"sleep": 0.3})
    second = await client.runs.create(tid, "slow", input={"sleep": 0.05}, multitask_strategy="enqueue")
    assert second["multitask_strategy"] == "enqueue"
    out = await client.runs.join(tid, second["run_id"])
    assert (await client.runs.get(tid, first["run_id"]))["status"] == "success"
    # the second run saw the first run's state, and started after it ended
    assert len(out["starts"]) == 2
    assert disjoint_in_order(intervals(out))
    tid = await new_thread(client)
    one = await client.runs.create(tid, "simple", input={"items": ["1"]})
    two = await client.runs.create(tid, "simple", input={"items": ["2"]})
    assert await client.runs.join(tid, two["run_id"]) == {"items": ["1", "a", "b", "2", "a", "b"]}
    assert (await client.runs.get(tid, one["run_id"]))["status"] == "success"


async def test_multitask_interrupt_keeps_partial_progress(wclient):
    tid = await new_thread(wclient)
    old = await start_holding(wclient, tid, "progress", {"items": ["first"]})
    new = await wclient.runs.create(
        tid, "progress", input={"items": ["second"], "hold": False}, multitask_strategy="interrupt"
    )
    out = await wclient.runs.join(tid, new["run_id"])
    assert out == {"items": ["first", "a", "second", "a", "done"], "hold": False}
    assert (await wclient.runs.get(tid, old))["status"] == "interrupted"
    assert (await wclient.runs.get(tid, new["run_id"]))["status"] == "success"
    assert await history_run_ids(wclient, tid) >= {old, new["run_id"]}
    thread = await wclient.threads.get(tid)
    assert thread["status"] == "idle"


async def test_multitask_rollback_discards_old_run(wclient, whttp):
    tid = await new_thread(wclient)
    old = await start_holding(wclient, tid, "progress", {"items": ["first"]})
    new = await wclient.runs.create(
        tid, "progress", input={"items": ["second"], "hold": False}, multitask_strategy="rollback"
    )
    out = await wclient.runs.join(tid, new["run_id"])
    assert out == {"items": ["second", "a", "done"], "hold": False}
    assert whttp.get(f"/threads/{tid}/runs/{old}").status_code == 404
    assert [r["run_id"] for r in await wclient.runs.list(tid)] == [new["run_id"]]
    assert await history_run_ids(wclient, tid) == {new["run_id"]}


async def test_multitask_interrupt_cancels_pending_runs_too(wclient):
    tid = await new_thread(wclient)
    held = await start_holding(wclient, tid, "progress", {"items": ["first"]})
    queued = await wclient.runs.create(tid, "progress", input={"items": ["queued"], "hold": False})
    new = await wclient.runs.create(
        tid, "progress", input={"items": ["new"], "hold": False}, multitask_strategy="interrupt"
    )
    out = await wclient.runs.join(tid, new["run_id"])
    assert "queued" not in out["items"]
    assert (await wclient.runs.get(tid, held))["status"] == "interrupted"
    assert (await wclient.runs.get(tid, queued["run_id"]))["status"] == "interrupted"


# -- concurrency ---------------------------------------------------------------------------------


async def test_runs_on_different_threads_overlap(wclient):
    tids = [await new_thread(wclient) for _ in range(4)]
    runs = await asyncio.gather(*(wclient.runs.create(t, "slow", input={"sleep": 1.0}) for t in tids))
    outs = await asyncio.gather(*(wclient.runs.join(t, r["run_id"]) for t, r in zip(tids, runs)))
    spans = [intervals(o)[0] for o in outs]
    assert [o["thread_ids"] for o in outs] == [[t] for t in tids]
    assert overlap_all(spans)


async def test_default_concurrency_is_more_than_one(client):
    tids = [await new_thread(client) for _ in range(2)]
    runs = await asyncio.gather(*(client.runs.create(t, "slow", input={"sleep": 1.0}) for t in tids))
    outs = await asyncio.gather(*(client.runs.join(t, r["run_id"]) for t, r in zip(tids, runs)))
    assert overlap_all([intervals(o)[0] for o in outs])


async def test_one_worker_runs_one_run_at_a_time(tmp_path):
    proc = ServerProcess(tmp_path, args=["--n-jobs-per-worker", "1"]).start()
    try:
        client = get_client(url=proc.url, timeout=TIMEOUT)
        tids = [await new_thread(client) for _ in range(3)]
        runs = await asyncio.gather(*(client.runs.create(t, "slow", input={"sleep": 0.2}) for t in tids))
        outs = await asyncio.gather(*(client.runs.join(t, r["run_id"]) for t, r in zip(tids, runs)))
        spans = sorted(intervals(o)[0] for o in outs)
        assert disjoint_in_order(spans)
    finally:
        proc.stop()


async def test_runs_on_one_thread_never_overlap(wclient):
    tid = await new_thread(wclient)
    runs = [await wclient.runs.create(tid, "slow", input={"sleep": 0.1}) for _ in range(4)]
    out = await wclient.runs.join(tid, runs[-1]["run_id"])
    assert len(out["starts"]) == 4
    assert disjoint_in_order(intervals(out))
    for run in runs:
        assert (await wclient.runs.get(tid, run["run_id"]))["status"] == "success"


async def test_hundred_runs_at_once_on_one_thread(wclient, workers):
    tid = await new_thread(wclient)
    runs = await asyncio.gather(
        *(wclient.runs.create(tid, "simple", input={"items": [f"r{i}"]}) for i in range(100))
    )
    await asyncio.gather(*(wclient.runs.join(tid, r["run_id"]) for r in runs))
    listed = await wclient.runs.list(tid, limit=1000)
    assert len(listed) == 100
    assert {r["status"] for r in listed} == {"success"}
    items = (await wclient.threads.get_state(tid))["values"]["items"]
    assert len(items) == 300
    # every run's output is present once, whole and uninterleaved
    markers = items[0::3]
    assert sorted(markers) == sorted(f"r{i}" for i in range(100))
    for i in range(0, 300, 3):
        assert items[i + 1 : i + 3] == ["a", "b"]
    # ...and, on one server, the runs executed in the order they were created (a
    # scaled-out deployment executes a thread's runs in the order their inserts reached
    # the database; created_at is each API process's clock before that)
    if isinstance(workers, ServerProcess):
        created = {r["kwargs"]["input"]["items"][0]: r["created_at"] for r in listed}
        order = [created[m] for m in markers]
        assert order == sorted(order)
    thread = await wclient.threads.get(tid)
    assert thread["status"] == "idle"
    assert thread["values"]["items"] == items


# -- robustness --------------------------------------------------------------------------------


async def test_graph_error_ends_run_and_worker_goes_on(wclient):
    tid = await new_thread(wclient)
    failed = await wclient.runs.create(tid, "simple", input={"items": [], "fail": True})
    after = await wclient.runs.create(tid, "simple", input={"items": ["after"], "fail": False})
    assert (await wclient.runs.join(tid, after["run_id"]))["items"][-3:] == ["after", "a", "b"]
    assert (await wclient.runs.get(tid, failed["run_id"]))["status"] == "error"


@pytest.mark.parametrize(
    "graph, error",
    [
        ("self_cancel", "NodeCancelledError"),  # langgraph wraps a node's own CancelledError
        ("unprintable", "Unprintable"),
        ("unserializable", None),
        ("raising_factory", "ValueError"),
        ("bad_return_factory", None),
        ("cancelling_factory", "CancelledError"),
    ],
)
async def test_misbehaving_graphs_end_in_error_not_running(wclient, graph, error):
    tid = await new_thread(wclient)
    run = await wclient.runs.create(tid, graph, input={"items": []})
    out = await wclient.runs.join(tid, run["run_id"])
    assert "__error__" in out, out
    if error is not None:
        assert out["__error__"]["error"] == error
    assert (await wclient.runs.get(tid, run["run_id"]))["status"] == "error"
    thread = await wclient.threads.get(tid)
    assert thread["status"] == "error" and thread["error"]["error"] == out["__error__"]["error"]
    # the worker slot is free again and the thread takes new runs
    out = await wclient.runs.wait(tid, "simple", input={"items": ["ok"]})
    assert out["items"][-3:] == ["ok", "a", "b"]


async def test_disconnect_with_on_disconnect_cancel_interrupts_the_run(workers, wclient, hang_log):
    tid = await new_thread(wclient)
    body = {"assistant_id": "hang", "input": {"items": []}, "stream_mode": ["custom"], "on_disconnect": "cancel"}
    run_id = None
    async with httpx.AsyncClient(base_url=workers.url, timeout=60) as http:
        async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as response:
            assert response.status_code == 200
            run_id = response.headers["content-location"].rsplit("/", 1)[1]
            async for line in response.aiter_lines():
                if line.startswith("data:") and "hanging" in line:
                    break
        # the response is closed: the server sees the client go away
    await wclient.runs.join(tid, run_id)
    assert (await wclient.runs.get(tid, run_id))["status"] == "interrupted"
    assert f"cancelled {tid}" in hang_lines(hang_log)


async def test_disconnect_with_on_disconnect_continue_lets_the_run_finish(workers, wclient):
    tid = await new_thread(wclient)
    body = {"assistant_id": "slow", "input": {"sleep": 0.5}, "stream_mode": ["custom"], "on_disconnect": "continue"}
    async with httpx.AsyncClient(base_url=workers.url, timeout=60) as http:
        async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as response:
            run_id = response.headers["content-location"].rsplit("/", 1)[1]
            async for line in response.aiter_lines():
                if line.startswith("data:") and "started" in line:
                    break
    out = await wclient.runs.join(tid, run_id)
    assert out["thread_ids"] == [tid]
    assert (await wclient.runs.get(tid, run_id))["status"] == "success"


async def test_disconnect_from_wait_with_on_disconnect_cancel(workers, wclient):
    tid = await new_thread(wclient)
    body = {"assistant_id": "hang", "input": {"items": []}, "on_disconnect": "cancel"}
    async with httpx.AsyncClient(base_url=workers.url, timeout=60) as http:
        async with http.stream("POST", f"/threads/{tid}/runs/wait", json=body) as response:
            assert response.status_code == 200
            run_id = response.headers["content-location"].rsplit("/", 1)[1]
    await wclient.runs.join(tid, run_id)
    assert (await wclient.runs.get(tid, run_id))["status"] == "interrupted"


@pytest.mark.parametrize("path", ["join", "stream"])
async def test_joiner_disconnect_with_cancel_on_disconnect(workers, wclient, path):
    tid = await new_thread(wclient)
    run_id = await start_holding(wclient, tid)
    async with httpx.AsyncClient(base_url=workers.url, timeout=60) as http:
        async with http.stream(
            "GET", f"/threads/{tid}/runs/{run_id}/{path}", params={"cancel_on_disconnect": "true"}
        ) as response:
            assert response.status_code == 200
    await wclient.runs.join(tid, run_id)
    assert (await wclient.runs.get(tid, run_id))["status"] == "interrupted"


async def test_joiner_disconnect_without_cancel_leaves_run_alone(workers, wclient):
    tid = await new_thread(wclient)
    run_id = await start_holding(wclient, tid, "progress", {"items": []})
    async with httpx.AsyncClient(base_url=workers.url, timeout=60) as http:
        async with http.stream("GET", f"/threads/{tid}/runs/{run_id}/join") as response:
            assert response.status_code == 200
    # still running: only an explicit cancel ends it
    assert (await wclient.runs.get(tid, run_id))["status"] == "running"
    await wclient.runs.cancel(tid, run_id, wait=True)
    assert (await wclient.runs.get(tid, run_id))["status"] == "interrupted"


async def test_run_interrupted_by_shutdown_is_retried_after_restart(tmp_path):
    proc = ServerProcess(tmp_path).start()
    try:
        client = get_client(url=proc.url, timeout=TIMEOUT)
        tid = await new_thread(client)
        run_id = await start_holding(client, tid, "slow", {"sleep": 3})
        assert (await client.runs.get(tid, run_id))["status"] == "running"
    finally:
        proc.stop()
    proc = ServerProcess(tmp_path).start()
    try:
        client = get_client(url=proc.url, timeout=TIMEOUT)
        out = await client.runs.join(tid, run_id)
        assert out["thread_ids"] == [tid]
        run = await client.runs.get(tid, run_id)
        assert run["status"] == "success"
        assert (await client.threads.get(tid))["status"] == "idle"
    finally:
        proc.stop()


async def test_no_run_left_running(wclient, workers):
    """After everything above, nothing on the worker server is still marked running."""
    found = []
    for thread in await wclient.threads.search(limit=1000):
        for run in await wclient.runs.list(thread["thread_id"], limit=1000):
            if run["status"] == "running":
                found.append(run["run_id"])
    assert found == []
