"""Durability: everything a client created survives a stop/start on the same data directory.

Each test starts its own server on a fresh data directory, creates data, stops the
server (SIGTERM), starts a new process on the same directory and checks the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import pytest
from langgraph_sdk import get_sync_client

from conftest import BACKENDS, ServerProcess, make_server


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


class Servers(list):  # type: ignore[type-arg]
    """Every server a test starts, on one backend."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind


@pytest.fixture(params=BACKENDS)
def servers(request: pytest.FixtureRequest) -> Iterator[Servers]:
    """Every server a test starts; all are stopped at the end, whatever happened."""
    started = Servers(request.param)
    yield started
    for proc in started:
        proc.stop()


def start(servers: Servers, data_dir: Path) -> ServerProcess:
    proc = make_server(servers.kind, data_dir)
    servers.append(proc)
    return proc.start()


def test_assistants_threads_checkpoints_store_and_runs_survive_a_restart(servers, data_dir):
    first = start(servers, data_dir)
    c = get_sync_client(url=first.url)

    # assistants, with a second version
    assistant = c.assistants.create(
        "simple", config={"tags": ["t1"]}, metadata={"team": "red"}, name="durable", description="d"
    )
    aid = assistant["assistant_id"]
    c.assistants.update(aid, metadata={"rev": 2}, name="durable-v2")
    assistant_before = c.assistants.get(aid)
    versions_before = c.assistants.get_versions(aid)
    assert assistant_before["version"] == 2 and len(versions_before) == 2

    # a finished thread, an interrupted one, an errored one and a fresh one
    done = c.threads.create(metadata={"owner": "ann"})["thread_id"]
    c.runs.wait(done, aid, input={"items": ["x"]})
    asking = c.threads.create(metadata={"owner": "bob"})["thread_id"]
    c.runs.wait(asking, "simple", input={"items": [], "ask": True})
    failed = c.threads.create()["thread_id"]
    c.runs.wait(failed, "simple", input={"items": [], "fail": True}, raise_error=False)
    fresh = c.threads.create(metadata={"fresh": True})["thread_id"]
    thread_ids = [done, asking, failed, fresh]
    threads_before = {t: c.threads.get(t) for t in thread_ids}
    states_before = {t: c.threads.get_state(t) for t in thread_ids}
    histories_before = {t: c.threads.get_history(t, limit=100) for t in thread_ids}
    runs_before = {t: c.runs.list(t) for t in thread_ids}
    assert threads_before[asking]["status"] == "interrupted"
    assert threads_before[failed]["status"] == "error"
    assert len(histories_before[done]) == 4

    # store items
    c.store.put_item(["users", "ann"], "prefs", {"theme": "dark", "n": [1, 2]})
    c.store.put_item(["users", "bob"], "prefs", {"theme": "light"})
    item_before = c.store.get_item(["users", "ann"], "prefs")

    first.stop()
    second = start(servers, data_dir)
    c = get_sync_client(url=second.url)

    assert c.assistants.get(aid) == assistant_before
    assert c.assistants.get_versions(aid) == versions_before
    found = c.assistants.search(metadata={"team": "red"})
    assert [a["assistant_id"] for a in found] == [aid]

    for t in thread_ids:
        assert c.threads.get(t) == threads_before[t], t
        assert c.threads.get_state(t) == states_before[t], t
        assert c.threads.get_history(t, limit=100) == histories_before[t], t
        assert c.runs.list(t) == runs_before[t], t
        for run in runs_before[t]:
            assert c.runs.get(t, run["run_id"]) == run
    assert {t["thread_id"] for t in c.threads.search(metadata={"owner": "ann"})} == {done}
    assert c.threads.count(metadata={"fresh": True}) == 1

    item = c.store.get_item(["users", "ann"], "prefs")
    assert item == item_before
    assert item["value"] == {"theme": "dark", "n": [1, 2]}
    assert {i["key"] for i in c.store.search_items(["users"])["items"]} == {"prefs"}
    assert len(c.store.search_items(["users"])["items"]) == 2

    # the interrupted thread resumes from the checkpoint written before the restart
    result = c.runs.wait(asking, "simple", command={"resume": "yes"})
    assert result == {"items": ["a", "b"], "ask": True, "answer": "yes"}
    assert c.threads.get(asking)["status"] == "idle"
    # and the finished one continues its history
    c.runs.wait(done, aid, input={"items": ["y"]})
    assert c.threads.get_state(done)["values"] == {"items": ["x", "a", "b", "y", "a", "b"]}
    assert len(c.threads.get_history(done, limit=100)) == 8


def test_thread_edits_survive_a_restart(servers, data_dir):
    first = start(servers, data_dir)
    c = get_sync_client(url=first.url)
    thread_id = c.threads.create(metadata={"a": 1})["thread_id"]
    c.runs.wait(thread_id, "simple", input={"items": ["x"]})
    c.threads.update(thread_id, metadata={"b": 2})
    c.threads.update_state(thread_id, {"items": ["u"]}, as_node="a")
    copy_id = c.threads.copy(thread_id)["thread_id"]
    deleted = c.threads.create()["thread_id"]
    c.threads.delete(deleted)
    pruned = c.threads.create()["thread_id"]
    c.runs.wait(pruned, "simple", input={"items": ["p"]})
    c.threads.prune([pruned], strategy="keep_latest")
    before = {t: (c.threads.get(t), c.threads.get_history(t, limit=100)) for t in (thread_id, copy_id, pruned)}
    assert before[thread_id][0]["status"] == "interrupted"

    first.stop()
    second = start(servers, data_dir)
    c = get_sync_client(url=second.url)

    for t, (thread, history) in before.items():
        assert c.threads.get(t) == thread, t
        assert c.threads.get_history(t, limit=100) == history, t
    assert c.threads.get(thread_id)["metadata"]["b"] == 2
    assert len(c.threads.get_history(pruned, limit=100)) == 1
    assert httpx.get(f"{second.url}/threads/{deleted}").status_code == 404
    # the update-made interrupt is still pending after the restart
    assert c.runs.wait(thread_id, "simple", input=None)["items"][-2:] == ["u", "b"]


def test_pending_runs_execute_after_a_restart(servers, data_dir):
    first = start(servers, data_dir)
    c = get_sync_client(url=first.url)

    # a delayed run: still pending when the server stops
    delayed_thread = c.threads.create()["thread_id"]
    delayed = c.runs.create(delayed_thread, "simple", input={"items": ["later"]}, after_seconds=5)
    assert c.runs.get(delayed_thread, delayed["run_id"])["status"] == "pending"
    assert c.threads.get(delayed_thread)["status"] == "busy"

    # a run queued behind one that never finishes: pending whatever the timing
    queued_thread = c.threads.create()["thread_id"]
    hanging = c.runs.create(queued_thread, "hang", input={"items": []})
    queued = c.runs.create(queued_thread, "simple", input={"items": ["queued"]})
    assert c.runs.get(queued_thread, queued["run_id"])["status"] == "pending"

    first.stop()
    second = start(servers, data_dir)
    c = get_sync_client(url=second.url)

    # the delayed run runs by itself once its time has come
    assert c.runs.join(delayed_thread, delayed["run_id"]) == {"items": ["later", "a", "b"]}
    run = c.runs.get(delayed_thread, delayed["run_id"])
    assert run["status"] == "success"
    assert run["created_at"] == delayed["created_at"]
    thread = c.threads.get(delayed_thread)
    assert thread["status"] == "idle"
    assert thread["values"] == {"items": ["later", "a", "b"]}

    # the interrupted hang run is picked up again; once it is cancelled the queued run runs
    assert c.runs.get(queued_thread, hanging["run_id"])["status"] in ("pending", "running")
    assert c.runs.get(queued_thread, queued["run_id"])["status"] == "pending"
    assert c.threads.get(queued_thread)["status"] == "busy"
    c.runs.cancel(queued_thread, hanging["run_id"], wait=True)
    assert c.runs.join(queued_thread, queued["run_id"]) == {"items": ["queued", "a", "b"]}
    assert c.runs.get(queued_thread, queued["run_id"])["status"] == "success"
    assert c.runs.get(queued_thread, hanging["run_id"])["status"] == "interrupted"
