"""Thread state APIs: get_state, update_state and history, and the ThreadState wire shape."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
from langgraph_sdk.errors import BadRequestError, ConflictError, NotFoundError

from conftest import start_hang

SIMPLE_ASSISTANT = str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "simple"))

EMPTY_STATE = {
    "values": {},
    "next": [],
    "tasks": [],
    "metadata": None,
    "created_at": None,
    "checkpoint": None,
    "parent_checkpoint": None,
    "interrupts": [],
    "checkpoint_id": None,
    "parent_checkpoint_id": None,
}
STATE_KEYS = set(EMPTY_STATE)
TASK_KEYS = {"id", "name", "path", "error", "interrupts", "checkpoint", "state", "result"}
CHECKPOINT_KEYS = {"thread_id", "checkpoint_ns", "checkpoint_id"}


async def new_thread(client, **kw: Any) -> str:
    return (await client.threads.create(**kw))["thread_id"]


async def ran_simple(client) -> str:
    """A thread after one `simple` run: checkpoints input(-1), loop 0, 1, 2."""
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "simple", input={"items": ["x"]})
    return thread_id


async def asking(client) -> str:
    """A thread interrupted inside node b of `simple`."""
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "simple", input={"items": [], "ask": True})
    return thread_id


def assert_checkpoint(ref: Any, thread_id: str, ns: str = "") -> None:
    assert isinstance(ref, dict)
    assert CHECKPOINT_KEYS <= set(ref) <= CHECKPOINT_KEYS | {"checkpoint_map"}
    assert ref["thread_id"] == thread_id
    assert ref["checkpoint_ns"] == ns
    assert isinstance(ref["checkpoint_id"], str) and ref["checkpoint_id"]


# -- get_state ----------------------------------------------------------------------


async def test_state_of_fresh_thread_is_the_empty_state(client, sync_client, http):
    thread_id = await new_thread(client)
    assert await client.threads.get_state(thread_id) == EMPTY_STATE
    assert sync_client.threads.get_state(thread_id) == EMPTY_STATE
    r = http.get(f"/threads/{thread_id}/state")
    assert r.status_code == 200
    assert r.json() == EMPTY_STATE
    assert await client.threads.get_history(thread_id) == []
    assert http.get(f"/threads/{thread_id}/history").json() == []


async def test_state_of_thread_with_graph_but_no_checkpoint_is_empty(client):
    thread_id = await new_thread(client, graph_id="simple")
    assert await client.threads.get_state(thread_id) == EMPTY_STATE
    assert await client.threads.get_history(thread_id, limit=5) == []


async def test_state_of_missing_or_malformed_thread(client, http):
    missing = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await client.threads.get_state(missing)
    r = http.get(f"/threads/{missing}/state")
    assert r.status_code == 404
    assert r.json() == {"detail": f"Thread with ID {missing} not found"}
    assert http.post(f"/threads/{missing}/history", json={}).status_code == 404
    assert http.get(f"/threads/{missing}/state/{uuid.uuid4()}").status_code == 404
    r = http.get("/threads/xyz/state")
    assert r.status_code == 422
    assert r.json() == {"detail": "Invalid thread ID: must be a UUID"}


async def test_state_after_a_run_has_the_exact_thread_state_shape(client, http):
    thread_id = await ran_simple(client)
    state = http.get(f"/threads/{thread_id}/state").json()
    assert set(state) == STATE_KEYS
    assert state["values"] == {"items": ["x", "a", "b"]}
    assert state["next"] == []
    assert state["tasks"] == []
    assert state["interrupts"] == []
    assert_checkpoint(state["checkpoint"], thread_id)
    assert_checkpoint(state["parent_checkpoint"], thread_id)
    assert state["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]
    assert state["parent_checkpoint_id"] == state["parent_checkpoint"]["checkpoint_id"]
    assert state["checkpoint_id"] != state["parent_checkpoint_id"]
    created = datetime.fromisoformat(state["created_at"])
    assert created.utcoffset() is not None

    meta = state["metadata"]
    assert meta["source"] == "loop"
    assert meta["step"] == 2
    assert "parents" in meta
    assert "checkpoint_ns" not in meta  # the root's empty namespace is not shown
    assert meta["graph_id"] == "simple"
    assert meta["assistant_id"] == SIMPLE_ASSISTANT
    run = (await client.runs.list(thread_id))[0]
    assert meta["run_id"] == run["run_id"]

    # the SDK and the sync SDK see the same document
    assert await client.threads.get_state(thread_id) == state


def test_state_with_sync_client(sync_client):
    thread_id = sync_client.threads.create()["thread_id"]
    sync_client.runs.wait(thread_id, "simple", input={"items": ["s"]})
    state = sync_client.threads.get_state(thread_id)
    assert state["values"] == {"items": ["s", "a", "b"]}
    assert state["checkpoint"]["thread_id"] == thread_id
    history = sync_client.threads.get_history(thread_id, limit=10)
    assert [h["metadata"]["step"] for h in history] == [2, 1, 0, -1]


async def test_interrupted_state_shows_tasks_and_interrupts(client, http):
    thread_id = await asking(client)
    state = http.get(f"/threads/{thread_id}/state").json()
    assert state["next"] == ["b"]
    assert state["values"] == {"items": ["a"], "ask": True}
    assert len(state["tasks"]) == 1
    task = state["tasks"][0]
    assert set(task) == TASK_KEYS
    assert task["name"] == "b"
    assert task["path"] == ["__pregel_pull", "b"]
    assert task["error"] is None
    assert task["state"] is None
    assert task["checkpoint"] is None
    assert len(task["interrupts"]) == 1
    interrupt = task["interrupts"][0]
    # response_schema appears only when the interrupt sets one
    assert set(interrupt) == {"id", "value"}
    assert interrupt["value"] == {"question": "approve?"}
    assert state["interrupts"] == [interrupt]
    thread = await client.threads.get(thread_id)
    assert thread["interrupts"] == {task["id"]: [interrupt]}


async def test_state_of_two_parallel_interrupts(client):
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "multi_interrupt", input={"items": []})
    state = await client.threads.get_state(thread_id)
    assert sorted(state["next"]) == ["x", "y"]
    assert sorted(t["name"] for t in state["tasks"]) == ["x", "y"]
    assert sorted(i["value"]["node"] for i in state["interrupts"]) == ["x", "y"]
    by_name = {t["name"]: t for t in state["tasks"]}
    assert by_name["x"]["interrupts"][0]["value"] == {"node": "x"}
    resume = {i["id"]: ("1" if i["value"]["node"] == "x" else "2") for i in state["interrupts"]}
    await client.runs.wait(thread_id, "multi_interrupt", command={"resume": resume})
    state = await client.threads.get_state(thread_id)
    assert state["next"] == [] and state["interrupts"] == []
    assert sorted(state["values"]["answers"]) == ["x=1", "y=2"]


async def test_state_with_subgraphs_shows_the_child_task_state(client, http):
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "subgraph", input={"items": [], "ask": True})

    flat = await client.threads.get_state(thread_id)
    assert flat["next"] == ["child"]
    task = flat["tasks"][0]
    assert task["name"] == "child"
    assert task["state"] is None
    # without subgraphs the task points at the child's namespace
    assert task["checkpoint"]["thread_id"] == thread_id
    assert task["checkpoint"]["checkpoint_ns"] == f"child:{task['id']}"
    assert task["interrupts"][0]["value"] == {"question": "inner?"}

    nested = await client.threads.get_state(thread_id, subgraphs=True)
    child = nested["tasks"][0]["state"]
    assert child is not None
    assert set(child) == STATE_KEYS
    assert child["next"] == ["inner"]
    assert child["values"] == {"items": [], "ask": True}
    assert_checkpoint(child["checkpoint"], thread_id, ns=f"child:{task['id']}")
    assert child["tasks"][0]["name"] == "inner"
    assert child["tasks"][0]["interrupts"][0]["value"] == {"question": "inner?"}
    assert child["interrupts"][0]["value"] == {"question": "inner?"}
    assert nested["tasks"][0]["checkpoint"] is None

    for flag in ("true", "True"):
        raw = http.get(f"/threads/{thread_id}/state", params={"subgraphs": flag}).json()
        assert raw["tasks"][0]["state"]["next"] == ["inner"], flag
    assert http.get(f"/threads/{thread_id}/state", params={"subgraphs": "false"}).json()["tasks"][0]["state"] is None


async def test_state_of_a_subgraph_namespace(client, http):
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "subgraph", input={"items": [], "ask": True})
    ns = (await client.threads.get_state(thread_id))["tasks"][0]["checkpoint"]["checkpoint_ns"]
    r = http.post(f"/threads/{thread_id}/state/checkpoint", json={"checkpoint": {"checkpoint_ns": ns}})
    assert r.status_code == 200
    child = r.json()
    assert child["next"] == ["inner"]
    assert child["checkpoint"]["checkpoint_ns"] == ns
    # the same via the SDK's checkpoint argument
    via_sdk = await client.threads.get_state(thread_id, checkpoint={"checkpoint_ns": ns})
    assert via_sdk["checkpoint_id"] == child["checkpoint_id"]


async def test_state_at_a_checkpoint(client, sync_client, http):
    thread_id = await ran_simple(client)
    history = await client.threads.get_history(thread_id, limit=10)
    step0 = next(h for h in history if h["metadata"]["step"] == 0)
    cid = step0["checkpoint_id"]

    via_get = http.get(f"/threads/{thread_id}/state/{cid}")
    assert via_get.status_code == 200
    state = via_get.json()
    assert state["checkpoint_id"] == cid
    assert state["values"] == {"items": ["x"]}
    assert state["next"] == ["a"]
    assert state == step0

    via_post = http.post(f"/threads/{thread_id}/state/checkpoint", json={"checkpoint": {"checkpoint_id": cid}})
    assert via_post.status_code == 200
    assert via_post.json() == state

    assert await client.threads.get_state(thread_id, checkpoint_id=cid) == state
    assert await client.threads.get_state(thread_id, checkpoint={"checkpoint_id": cid}) == state
    assert sync_client.threads.get_state(thread_id, checkpoint_id=cid) == state


async def test_state_at_unknown_checkpoint_is_404(client, http):
    thread_id = await ran_simple(client)
    for cid in (str(uuid.uuid4()), "garbage"):
        r = http.get(f"/threads/{thread_id}/state/{cid}")
        assert r.status_code == 404
        assert cid in r.json()["detail"]
        r = http.post(f"/threads/{thread_id}/state/checkpoint", json={"checkpoint": {"checkpoint_id": cid}})
        assert r.status_code == 404
    with pytest.raises(NotFoundError):
        await client.threads.get_state(thread_id, checkpoint_id=str(uuid.uuid4()))


async def test_state_checkpoint_body_validation(client, http):
    thread_id = await ran_simple(client)
    r = http.post(f"/threads/{thread_id}/state/checkpoint", json={})
    assert r.status_code == 422
    assert "checkpoint" in r.json()["detail"]
    r = http.post(f"/threads/{thread_id}/state/checkpoint", json={"checkpoint": {"checkpoint_id": "x", "bogus": 1}})
    assert r.status_code == 422
    assert "bogus" in r.json()["detail"]


async def test_functional_graph_state(client):
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "functional", input=5)
    await client.runs.wait(thread_id, "functional", input={"value": 3})
    state = await client.threads.get_state(thread_id)
    assert state["values"] == 8
    assert state["next"] == []
    assert (await client.threads.get(thread_id))["values"] == 8


# -- update_state ---------------------------------------------------------------------


async def test_update_state_applies_reducers_and_returns_the_new_checkpoint(client, http):
    thread_id = await ran_simple(client)
    before = await client.threads.get_state(thread_id)
    r = http.post(f"/threads/{thread_id}/state", json={"values": {"items": ["u"]}})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"checkpoint", "configurable", "checkpoint_id"}
    assert_checkpoint(body["checkpoint"], thread_id)
    assert body["configurable"] == body["checkpoint"]
    assert body["checkpoint_id"] == body["checkpoint"]["checkpoint_id"]

    state = await client.threads.get_state(thread_id)
    assert state["checkpoint_id"] == body["checkpoint_id"]
    assert state["parent_checkpoint_id"] == before["checkpoint_id"]
    assert state["values"] == {"items": ["x", "a", "b", "u"]}  # operator.add ran, no node ran
    assert state["metadata"]["source"] == "update"
    assert state["next"] == []
    thread = await client.threads.get(thread_id)
    assert thread["values"] == state["values"]
    assert thread["status"] == "idle"


async def test_update_state_with_sdk_clients(client, sync_client):
    thread_id = await ran_simple(client)
    result = await client.threads.update_state(thread_id, {"items": ["async"]})
    assert result["checkpoint"]["thread_id"] == thread_id
    result = sync_client.threads.update_state(thread_id, {"items": ["sync"]})
    assert result["checkpoint_id"] == sync_client.threads.get_state(thread_id)["checkpoint_id"]
    assert sync_client.threads.get(thread_id)["values"]["items"][-2:] == ["async", "sync"]


async def test_update_state_as_node_makes_the_thread_interrupted(client):
    thread_id = await ran_simple(client)
    await client.threads.update_state(thread_id, {"items": ["n"]}, as_node="a")
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["b"]
    assert state["metadata"]["source"] == "update"
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    # continuing runs the pending node only
    result = await client.runs.wait(thread_id, "simple", input=None)
    assert result == {"items": ["x", "a", "b", "n", "b"]}
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_update_state_resolves_an_interrupt_by_acting_as_the_node(client):
    thread_id = await asking(client)
    await client.threads.update_state(thread_id, {"items": ["manual"], "answer": "manual"}, as_node="b")
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["interrupts"] == {}
    assert thread["values"] == {"items": ["a", "manual"], "ask": True, "answer": "manual"}


async def test_update_state_at_a_checkpoint_forks(client, http):
    thread_id = await ran_simple(client)
    history = await client.threads.get_history(thread_id, limit=10)
    step0 = next(h for h in history if h["metadata"]["step"] == 0)

    result = await client.threads.update_state(thread_id, {"items": ["fork"]}, checkpoint_id=step0["checkpoint_id"])
    state = await client.threads.get_state(thread_id)
    assert state["checkpoint_id"] == result["checkpoint_id"]
    assert state["parent_checkpoint_id"] == step0["checkpoint_id"]
    assert state["values"] == {"items": ["x", "fork"]}
    assert (await client.threads.get(thread_id))["values"] == {"items": ["x", "fork"]}

    # the same with a checkpoint object
    r = http.post(
        f"/threads/{thread_id}/state",
        json={"values": {"items": ["fork2"]}, "checkpoint": {"checkpoint_id": step0["checkpoint_id"]}},
    )
    assert r.status_code == 200
    state = await client.threads.get_state(thread_id)
    assert state["parent_checkpoint_id"] == step0["checkpoint_id"]
    assert state["values"] == {"items": ["x", "fork2"]}
    # the original branch is still there
    original = await client.threads.get_state(thread_id, checkpoint_id=history[0]["checkpoint_id"])
    assert original["values"] == {"items": ["x", "a", "b"]}


async def test_update_state_conflicts_with_a_pending_run(client, http):
    thread_id = await ran_simple(client)
    run = await client.runs.create(thread_id, "simple", input={"items": ["later"]}, after_seconds=600)
    history_before = await client.threads.get_history(thread_id, limit=100)
    with pytest.raises(ConflictError):
        await client.threads.update_state(thread_id, {"items": ["u"]})
    r = http.post(f"/threads/{thread_id}/state", json={"values": {"items": ["u"]}})
    assert r.status_code == 409
    assert "run" in r.json()["detail"]
    assert await client.threads.get_history(thread_id, limit=100) == history_before
    await client.runs.cancel(thread_id, run["run_id"])
    await client.threads.update_state(thread_id, {"items": ["u"]})
    assert (await client.threads.get(thread_id))["values"]["items"][-1] == "u"


async def test_update_state_conflicts_with_a_running_run(client, http):
    thread_id = await new_thread(client)
    run_id = await start_hang(client, thread_id)
    r = http.post(f"/threads/{thread_id}/state", json={"values": {"items": ["u"]}})
    assert r.status_code == 409
    await client.runs.cancel(thread_id, run_id, wait=True)
    r = http.post(f"/threads/{thread_id}/state", json={"values": {"items": ["u"]}, "as_node": "hang"})
    assert r.status_code == 200
    thread = await client.threads.get(thread_id)
    assert thread["values"] == {"items": ["u"]}
    assert thread["status"] == "idle"


async def test_update_state_without_graph_is_400(client, http):
    thread_id = await new_thread(client)
    r = http.post(f"/threads/{thread_id}/state", json={"values": {"items": ["u"]}})
    assert r.status_code == 400
    assert "graph" in r.json()["detail"].lower()
    with pytest.raises(BadRequestError):
        await client.threads.update_state(thread_id, {"items": ["u"]})
    assert (await client.threads.get(thread_id))["values"] is None


async def test_update_state_errors_are_4xx_and_leave_state_untouched(client, http):
    thread_id = await ran_simple(client)
    history_before = await client.threads.get_history(thread_id, limit=100)
    thread_before = await client.threads.get(thread_id)
    cases = [
        ({"values": {"items": ["n"]}, "as_node": "no_such_node"}, 400, "no_such_node"),
        ({"values": {"items": "not a list"}}, 400, "Invalid state update"),
        ({"values": [1, 2]}, 400, "Invalid state update"),
        ({"values": {"items": ["n"]}, "checkpoint_id": str(uuid.uuid4())}, 404, "not found"),
        ({"values": {"items": ["n"]}, "checkpoint_id": "garbage"}, 404, "garbage"),
        ({"values": {"items": ["n"]}, "checkpoint": {"checkpoint_ns": "nope:1"}}, 400, "nope"),
        ({"values": {"items": ["n"]}, "bogus": 1}, 422, "bogus"),
        ({"values": {"items": ["n"]}, "checkpoint": {"checkpoint_id": "x", "extra": 1}}, 422, "extra"),
    ]
    for body, status, needle in cases:
        r = http.post(f"/threads/{thread_id}/state", json=body)
        assert r.status_code == status, (body, r.text)
        assert needle in r.json()["detail"], (body, r.text)
    assert await client.threads.get_history(thread_id, limit=100) == history_before
    thread_after = await client.threads.get(thread_id)
    assert thread_after["values"] == thread_before["values"]
    assert thread_after["status"] == thread_before["status"]


async def test_update_state_of_missing_thread_is_404(client):
    with pytest.raises(NotFoundError):
        await client.threads.update_state(str(uuid.uuid4()), {"items": ["u"]})


# -- history --------------------------------------------------------------------------


async def test_history_is_newest_first_with_limits(client, http):
    thread_id = await ran_simple(client)
    history = await client.threads.get_history(thread_id, limit=10)
    assert [h["metadata"]["step"] for h in history] == [2, 1, 0, -1]
    assert [h["metadata"]["source"] for h in history] == ["loop", "loop", "loop", "input"]
    assert [h["next"] for h in history] == [[], ["b"], ["a"], ["__start__"]]
    assert [h["values"] for h in history] == [
        {"items": ["x", "a", "b"]},
        {"items": ["x", "a"]},
        {"items": ["x"]},
        {"items": []},  # the input checkpoint, before the input is applied
    ]
    for h in history:
        assert set(h) == STATE_KEYS
        assert "checkpoint_ns" not in h["metadata"]
    # each entry's parent is the next (older) entry
    for newer, older in zip(history, history[1:]):
        assert newer["parent_checkpoint_id"] == older["checkpoint_id"]
        assert newer["parent_checkpoint"] == older["checkpoint"]
    assert history[-1]["parent_checkpoint"] is None and history[-1]["parent_checkpoint_id"] is None
    assert history[0] == await client.threads.get_state(thread_id)

    # GET defaults to one entry, POST too (the SDK always sends a limit)
    assert http.get(f"/threads/{thread_id}/history").json() == history[:1]
    assert http.post(f"/threads/{thread_id}/history", json={}).json() == history[:1]
    assert http.get(f"/threads/{thread_id}/history", params={"limit": 2}).json() == history[:2]
    assert await client.threads.get_history(thread_id, limit=3) == history[:3]
    assert await client.threads.get_history(thread_id) == history  # SDK default 10


async def test_history_before(client, sync_client, http):
    thread_id = await ran_simple(client)
    history = await client.threads.get_history(thread_id, limit=10)
    pivot = history[1]["checkpoint_id"]
    expected = history[2:]

    assert http.get(f"/threads/{thread_id}/history", params={"limit": 10, "before": pivot}).json() == expected
    for before in (pivot, {"checkpoint_id": pivot}, {"configurable": {"checkpoint_id": pivot}}):
        r = http.post(f"/threads/{thread_id}/history", json={"limit": 10, "before": before})
        assert r.status_code == 200, before
        assert r.json() == expected, before
    assert await client.threads.get_history(thread_id, before={"configurable": {"checkpoint_id": pivot}}) == expected
    assert sync_client.threads.get_history(thread_id, before=pivot) == expected
    assert http.post(f"/threads/{thread_id}/history", json={"limit": 1, "before": pivot}).json() == expected[:1]

    r = http.post(f"/threads/{thread_id}/history", json={"before": {"thread_id": thread_id}})
    assert r.status_code == 400
    assert "before" in r.json()["detail"]
    r = http.post(f"/threads/{thread_id}/history", json={"before": 5})
    assert r.status_code == 422
    assert "before" in r.json()["detail"]


async def test_history_metadata_filter(client, http):
    thread_id = await ran_simple(client)
    await client.threads.update_state(thread_id, {"items": ["u"]})
    inputs = await client.threads.get_history(thread_id, metadata={"source": "input"})
    assert [h["metadata"]["step"] for h in inputs] == [-1]
    loops = await client.threads.get_history(thread_id, metadata={"source": "loop"})
    assert [h["metadata"]["step"] for h in loops] == [2, 1, 0]
    updates = http.post(f"/threads/{thread_id}/history", json={"limit": 10, "metadata": {"source": "update"}}).json()
    assert [h["values"]["items"][-1] for h in updates] == ["u"]
    step1 = await client.threads.get_history(thread_id, metadata={"step": 1})
    assert [h["next"] for h in step1] == [["b"]]
    by_graph = await client.threads.get_history(thread_id, metadata={"graph_id": "simple", "source": "loop"})
    assert len(by_graph) == 3
    assert await client.threads.get_history(thread_id, metadata={"source": "fork"}) == []


async def test_history_of_a_subgraph_namespace(client, http):
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "subgraph", input={"items": [], "ask": True})
    ns = (await client.threads.get_state(thread_id))["tasks"][0]["checkpoint"]["checkpoint_ns"]
    child_history = await client.threads.get_history(thread_id, checkpoint={"checkpoint_ns": ns})
    assert child_history
    assert all(h["checkpoint"]["checkpoint_ns"] == ns for h in child_history)
    assert child_history[0]["next"] == ["inner"]
    root_history = await client.threads.get_history(thread_id)
    assert all(h["checkpoint"]["checkpoint_ns"] == "" for h in root_history)
    r = http.post(f"/threads/{thread_id}/history", json={"limit": 10, "checkpoint": {"checkpoint_ns": ns}})
    assert r.json() == child_history


async def test_history_validation(client, http):
    thread_id = await ran_simple(client)
    for limit in (0, 1001):
        r = http.post(f"/threads/{thread_id}/history", json={"limit": limit})
        assert r.status_code == 422
        assert "limit" in r.json()["detail"]
        assert http.get(f"/threads/{thread_id}/history", params={"limit": limit}).status_code == 422
    r = http.post(f"/threads/{thread_id}/history", json={"limit": 2, "order": "asc"})
    assert r.status_code == 422
    assert "order" in r.json()["detail"]


async def test_history_after_interrupt_and_resume(client):
    thread_id = await asking(client)
    interrupted = (await client.threads.get_history(thread_id, limit=1))[0]
    assert interrupted["next"] == ["b"]
    assert interrupted["tasks"][0]["interrupts"][0]["value"] == {"question": "approve?"}
    await client.runs.wait(thread_id, "simple", command={"resume": "yes"})
    history = await client.threads.get_history(thread_id, limit=20)
    assert history[0]["values"]["answer"] == "yes"
    assert history[0]["interrupts"] == []
    # the interrupted checkpoint is still in the history
    assert interrupted["checkpoint_id"] in [h["checkpoint_id"] for h in history]


def test_state_select_is_rejected_not_ignored(http):
    tid = http.post("/threads", json={}).json()["thread_id"]
    http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "simple", "input": {"items": ["x"]}})
    r = http.post(f"/threads/{tid}/history", json={"select": ["values"]})
    assert r.status_code == 422 and "select" in r.json()["detail"]
    cp = http.get(f"/threads/{tid}/state").json()["checkpoint"]
    r = http.post(f"/threads/{tid}/state/checkpoint", json={"checkpoint": cp, "select": ["values"]})
    assert r.status_code == 422 and "select" in r.json()["detail"]
    assert http.post(f"/threads/{tid}/history", json={"select": []}).status_code == 200


def test_get_state_select_query_is_rejected(http):
    tid = http.post("/threads", json={}).json()["thread_id"]
    r = http.get(f"/threads/{tid}/state", params={"select": "values"})
    assert r.status_code == 422 and "select" in r.json()["detail"]
