"""Runs: creation, request validation, what the graph receives, and run/thread statuses.

Black-box against the session server, through the official SDK (async and sync) and raw
HTTP where headers or exact bodies matter. Control (join, cancel, multitask, concurrency)
is in test_run_control.py.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import pytest
from langgraph_sdk.schema import RunCreateMetadata

SYSTEM_NS = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")

RUN_KEYS = {
    "run_id",
    "thread_id",
    "assistant_id",
    "created_at",
    "updated_at",
    "status",
    "metadata",
    "kwargs",
    "multitask_strategy",
    "langsmith_session_name",
}
KWARGS_KEYS = {
    "input",
    "command",
    "config",
    "context",
    "stream_mode",
    "interrupt_before",
    "interrupt_after",
    "webhook",
    "feedback_keys",
    "temporary",
    "subgraphs",
    "resumable",
    "checkpoint_during",
    "durability",
}


def system_id(graph_id: str) -> str:
    return str(uuid.uuid5(SYSTEM_NS, graph_id))


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def new_thread(client, **kwargs) -> str:
    return (await client.threads.create(**kwargs))["thread_id"]


# -- creation: shapes and headers ----------------------------------------------------


async def test_create_thread_run_returns_pending_run_with_kwargs(client):
    tid = await new_thread(client)
    run = await client.runs.create(
        tid, "simple", input={"items": ["x"]}, metadata={"purpose": "shape"}
    )
    assert set(run) == RUN_KEYS
    assert run["thread_id"] == tid
    assert run["assistant_id"] == system_id("simple")
    assert run["status"] == "pending"
    assert run["metadata"] == {"purpose": "shape"}
    assert run["multitask_strategy"] == "enqueue"
    assert run["langsmith_session_name"] is None
    assert run["created_at"] == run["updated_at"]
    kwargs = run["kwargs"]
    assert set(kwargs) == KWARGS_KEYS
    assert kwargs["input"] == {"items": ["x"]}
    assert kwargs["command"] is None
    assert kwargs["stream_mode"] == ["values"]
    assert kwargs["temporary"] is False
    assert kwargs["durability"] == "async" and kwargs["checkpoint_during"] is True
    assert kwargs["webhook"] is None and kwargs["feedback_keys"] is None
    configurable = kwargs["config"]["configurable"]
    assert configurable["run_id"] == run["run_id"]
    assert configurable["thread_id"] == tid
    assert configurable["graph_id"] == "simple"
    assert configurable["assistant_id"] == system_id("simple")
    assert await client.runs.join(tid, run["run_id"]) == {"items": ["x", "a", "b"]}
    done = await client.runs.get(tid, run["run_id"])
    assert done["status"] == "success"
    assert set(done) == RUN_KEYS


def test_create_thread_run_sync(sync_client):
    tid = sync_client.threads.create()["thread_id"]
    run = sync_client.runs.create(tid, "simple", input={"items": ["s"]})
    assert run["status"] == "pending" and run["thread_id"] == tid
    assert sync_client.runs.join(tid, run["run_id"]) == {"items": ["s", "a", "b"]}
    assert sync_client.runs.get(tid, run["run_id"])["status"] == "success"
    thread = sync_client.threads.get(tid)
    assert thread["status"] == "idle"
    assert thread["values"] == {"items": ["s", "a", "b"]}


def test_create_thread_run_content_location(http):
    tid = http.post("/threads", json={}).json()["thread_id"]
    r = http.post(f"/threads/{tid}/runs", json={"assistant_id": "simple", "input": {"items": []}})
    assert r.status_code == 200
    run = r.json()
    assert r.headers["content-location"] == f"/threads/{tid}/runs/{run['run_id']}"
    joined = http.get(f"/threads/{tid}/runs/{run['run_id']}/join")
    assert joined.status_code == 200 and joined.json() == {"items": ["a", "b"]}


async def test_on_run_created_receives_ids_from_content_location(client):
    tid = await new_thread(client)
    seen: list[RunCreateMetadata] = []
    run = await client.runs.create(tid, "simple", input={"items": []}, on_run_created=seen.append)
    assert seen == [{"run_id": run["run_id"], "thread_id": tid}]
    await client.runs.join(tid, run["run_id"])


def test_stateless_create_content_location_and_thread_deleted_after(http):
    r = http.post("/runs", json={"assistant_id": "simple", "input": {"items": []}})
    assert r.status_code == 200
    run = r.json()
    assert r.headers["content-location"] == f"/runs/{run['run_id']}"
    assert run["kwargs"]["temporary"] is True
    assert uuid.UUID(run["thread_id"])
    # the ephemeral thread goes away when the run ends; joining it gives the output or,
    # once it has gone, the run-not-found body -- both are 200
    joined = http.get(f"/threads/{run['thread_id']}/runs/{run['run_id']}/join")
    assert joined.status_code == 200
    assert http.get(f"/threads/{run['thread_id']}").status_code == 404


async def test_stateless_wait_returns_output_and_deletes_thread(client, http):
    seen: list[RunCreateMetadata] = []
    out = await client.runs.wait(None, "simple", input={"items": ["s"]}, on_run_created=seen.append)
    assert out == {"items": ["s", "a", "b"]}
    assert seen and seen[0]["thread_id"] is None  # Content-Location is /runs/{run_id}
    r = http.post("/runs/wait", json={"assistant_id": "simple", "input": {"items": []}})
    assert r.status_code == 200
    assert r.json() == {"items": ["a", "b"]}
    run_id = r.headers["content-location"].rsplit("/", 1)[1]
    assert r.headers["content-location"] == f"/runs/{run_id}"
    location = r.headers["location"]
    assert location.startswith("/threads/") and location.endswith(f"/runs/{run_id}/join")
    thread_id = location.split("/")[2]
    assert http.get(f"/threads/{thread_id}").status_code == 404


def test_stateless_wait_sync(sync_client):
    assert sync_client.runs.wait(None, "simple", input={"items": ["y"]}) == {"items": ["y", "a", "b"]}


async def test_stateless_keep_thread_persists(client):
    seen: list[RunCreateMetadata] = []
    out = await client.runs.wait(
        None, "simple", input={"items": ["k"]}, on_completion="keep", on_run_created=seen.append
    )
    assert out == {"items": ["k", "a", "b"]}
    run = await client.runs.create(None, "simple", input={"items": ["k2"]}, on_completion="keep")
    assert run["kwargs"]["temporary"] is False
    assert await client.runs.join(run["thread_id"], run["run_id"]) == {"items": ["k2", "a", "b"]}
    thread = await client.threads.get(run["thread_id"])
    assert thread["status"] == "idle"
    assert thread["values"] == {"items": ["k2", "a", "b"]}
    assert thread["metadata"]["graph_id"] == "simple"
    assert thread["metadata"]["assistant_id"] == system_id("simple")
    # a kept thread keeps its checkpoints: the run can be continued statefully
    out = await client.runs.wait(run["thread_id"], "simple", input={"items": ["more"]})
    assert out == {"items": ["k2", "a", "b", "more", "a", "b"]}


def test_stateless_interrupt_and_error_are_reported_and_thread_is_gone(http):
    for body, check in (
        ({"items": [], "ask": True}, lambda out: [i["value"] for i in out["__interrupt__"]] == [{"question": "approve?"}]),
        ({"items": [], "fail": True}, lambda out: out == {"__error__": {"error": "ValueError", "message": "boom from node_a"}}),
    ):
        r = http.post("/runs/wait", json={"assistant_id": "simple", "input": body})
        assert r.status_code == 200
        assert check(r.json()), r.json()
        thread_id = r.headers["location"].split("/")[2]
        assert http.get(f"/threads/{thread_id}").status_code == 404


async def test_batch_creates_stateless_runs(client):
    marker = str(uuid.uuid4())
    runs = await client.runs.create_batch(
        [
            {"assistant_id": "simple", "input": {"items": ["one"]}, "on_completion": "keep",
             "metadata": {"batch": marker}},
            {"assistant_id": system_id("simple"), "input": {"items": ["two"]}, "on_completion": "keep",
             "metadata": {"batch": marker}},
        ]
    )
    assert len(runs) == 2
    assert all(set(r) == RUN_KEYS for r in runs)
    assert len({r["thread_id"] for r in runs}) == 2
    assert all(r["assistant_id"] == system_id("simple") for r in runs)
    outputs = [await client.runs.join(r["thread_id"], r["run_id"]) for r in runs]
    assert outputs == [{"items": ["one", "a", "b"]}, {"items": ["two", "a", "b"]}]
    threads = await client.threads.search(metadata={"batch": marker})
    assert {t["thread_id"] for t in threads} == {r["thread_id"] for r in runs}


async def test_batch_is_all_or_nothing(client, http):
    marker = str(uuid.uuid4())
    body = [
        {"assistant_id": "simple", "input": {"items": []}, "on_completion": "keep", "metadata": {"batch": marker}},
        {"assistant_id": str(uuid.uuid4()), "input": {"items": []}, "on_completion": "keep",
         "metadata": {"batch": marker}},
    ]
    r = http.post("/runs/batch", json=body)
    assert r.status_code == 404
    assert r.json() == {"detail": "Thread or assistant not found."}
    r = http.post("/runs/batch", json=[body[0], {**body[0], "command": {"resume": "x"}}])
    assert r.status_code == 400
    r = http.post("/runs/batch", json=[body[0], {**body[0], "bogus": 1}])
    assert r.status_code == 422
    assert await client.threads.search(metadata={"batch": marker}) == []


# -- creation: ids, threads and assistants --------------------------------------------


async def test_if_not_exists_create_makes_the_thread(client):
    tid = str(uuid.uuid4())
    out = await client.runs.wait(tid, "simple", input={"items": ["n"]}, if_not_exists="create")
    assert out == {"items": ["n", "a", "b"]}
    thread = await client.threads.get(tid)
    assert thread["thread_id"] == tid and thread["status"] == "idle"
    assert thread["metadata"]["graph_id"] == "simple"


def test_missing_thread_is_rejected_by_default(http):
    tid = str(uuid.uuid4())
    for body in (
        {"assistant_id": "simple", "input": {}},
        {"assistant_id": "simple", "input": {}, "if_not_exists": "reject"},
    ):
        for path in ("runs", "runs/wait", "runs/stream"):
            r = http.post(f"/threads/{tid}/{path}", json=body)
            assert r.status_code == 404, path
            assert r.json() == {"detail": "Thread or assistant not found."}
    assert http.get(f"/threads/{tid}").status_code == 404


async def test_unknown_assistant_is_404_and_inserts_nothing(client, http):
    tid = await new_thread(client)
    r = http.post(f"/threads/{tid}/runs", json={"assistant_id": str(uuid.uuid4()), "input": {}})
    assert r.status_code == 404
    assert r.json() == {"detail": "Thread or assistant not found."}
    r = http.post("/runs", json={"assistant_id": str(uuid.uuid4()), "input": {}})
    assert r.status_code == 404
    assert await client.runs.list(tid) == []
    assert (await client.threads.get(tid))["status"] == "idle"


def test_assistant_id_that_is_neither_uuid_nor_graph_is_422(http):
    tid = http.post("/threads", json={}).json()["thread_id"]
    r = http.post(f"/threads/{tid}/runs", json={"assistant_id": "no-such-graph", "input": {}})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "Invalid assistant: 'no-such-graph'" in detail
    assert "simple" in detail  # lists the registered graphs


async def test_graph_id_and_user_assistant_both_work(client):
    assistant = await client.assistants.create("simple", name="mine")
    tid = await new_thread(client)
    run = await client.runs.create(tid, assistant["assistant_id"], input={"items": ["u"]})
    assert run["assistant_id"] == assistant["assistant_id"]
    assert await client.runs.join(tid, run["run_id"]) == {"items": ["u", "a", "b"]}
    thread = await client.threads.get(tid)
    assert thread["metadata"]["assistant_id"] == assistant["assistant_id"]
    assert thread["metadata"]["graph_id"] == "simple"


# -- creation: validation -----------------------------------------------------------------


def test_resume_on_stateless_run_is_400(http):
    for path in ("/runs", "/runs/wait", "/runs/stream"):
        for extra in ({}, {"on_completion": "keep"}):
            r = http.post(path, json={"assistant_id": "simple", "command": {"resume": "yes"}, **extra})
            assert r.status_code == 400, (path, extra)
            assert r.json() == {"detail": "You must provide a thread_id when resuming."}


def test_configurable_and_context_together_is_400(http):
    tid = http.post("/threads", json={}).json()["thread_id"]
    r = http.post(
        f"/threads/{tid}/runs",
        json={"assistant_id": "simple", "input": {}, "config": {"configurable": {"a": 1}}, "context": {"b": 2}},
    )
    assert r.status_code == 400
    assert "context" in r.json()["detail"] and "configurable" in r.json()["detail"]
    assert http.get(f"/threads/{tid}/runs").json() == []


@pytest.mark.parametrize(
    "field, value, needle",
    [
        ("webhook", "http://169.254.169.254/latest/meta-data", "webhook"),
        ("feedback_keys", ["score"], "feedback_keys"),
        ("langsmith_tracer", {"project_name": "p"}, "langsmith_tracer"),
        ("no_such_field", 1, "no_such_field"),
        ("stream_mode", "bogus", "stream_mode"),
        ("multitask_strategy", "sometimes", "multitask_strategy"),
        ("after_seconds", -1, "after_seconds"),
        ("durability", "forever", "durability"),
        ("checkpoint_id", "not-a-uuid", "checkpoint"),
    ],
)
def test_unsupported_or_invalid_fields_are_422(http, field, value, needle):
    tid = http.post("/threads", json={}).json()["thread_id"]
    body = {"assistant_id": "simple", "input": {"items": []}, field: value}
    for path in (f"/threads/{tid}/runs", f"/threads/{tid}/runs/wait", "/runs"):
        r = http.post(path, json=body)
        assert r.status_code == 422, (path, r.text)
        assert needle in r.json()["detail"], r.json()
    assert http.get(f"/threads/{tid}/runs").json() == []


def test_webhook_to_a_metadata_address_through_the_sdk_is_rejected(sync_client):
    tid = sync_client.threads.create()["thread_id"]
    with pytest.raises(httpx.HTTPStatusError) as info:
        sync_client.runs.create(tid, "simple", input={"items": []}, webhook="http://169.254.169.254/h")
    assert info.value.response.status_code == 422
    assert "webhook" in info.value.response.json()["detail"]


def test_invalid_json_and_missing_assistant_are_422(http):
    r = http.post("/runs", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = http.post("/runs", json={"input": {}})
    assert r.status_code == 422 and "assistant_id" in r.json()["detail"]


# -- creation: input, command, checkpoints, breakpoints ------------------------------


async def test_command_wins_over_input(client):
    tid = await new_thread(client)
    out = await client.runs.wait(tid, "simple", input={"items": [], "ask": True})
    assert "__interrupt__" in out
    out = await client.runs.wait(tid, "simple", input={"items": ["ignored"]}, command={"resume": "yes"})
    assert out == {"items": ["a", "b"], "ask": True, "answer": "yes"}


async def test_command_goto_and_update(client):
    tid = await new_thread(client)
    await client.runs.wait(tid, "simple", input={"items": ["x"]})
    out = await client.runs.wait(tid, "simple", command={"goto": "b", "update": {"items": ["u"]}})
    assert out == {"items": ["x", "a", "b", "u", "b"]}


async def test_command_goto_send_and_update_pairs(client, http):
    tid = await new_thread(client)
    await client.runs.wait(tid, "simple", input={"items": ["x"]})
    out = await client.runs.wait(tid, "simple", command={"goto": {"node": "b", "input": {"items": ["sent"]}}})
    assert out == {"items": ["x", "a", "b", "b"]}
    r = http.post(
        f"/threads/{tid}/runs/wait",
        json={"assistant_id": "simple", "command": {"update": [["items", ["p"]]]}},
    )
    assert r.json() == {"items": ["x", "a", "b", "b", "p"]}
    r = http.post(f"/threads/{tid}/runs", json={"assistant_id": "simple", "command": {"jump": "b"}})
    assert r.status_code == 422 and "jump" in r.json()["detail"]


async def test_checkpoint_id_time_travel(client):
    tid = await new_thread(client)
    await client.runs.wait(tid, "simple", input={"items": ["x"]})
    history = await client.threads.get_history(tid, limit=10)
    before_b = next(s for s in history if s["next"] == ["b"])
    assert before_b["values"] == {"items": ["x", "a"]}
    # replay from the checkpoint before `b`: only b runs again
    run = await client.runs.create(
        tid, "simple", input=None, checkpoint_id=before_b["checkpoint"]["checkpoint_id"]
    )
    assert await client.runs.join(tid, run["run_id"]) == {"items": ["x", "a", "b"]}
    latest = await client.threads.get_state(tid)
    assert latest["metadata"]["run_id"] == run["run_id"]
    assert latest["metadata"]["step"] > before_b["metadata"]["step"]
    # the `checkpoint` object form does the same
    first = next(s for s in history if s["next"] == ["a"])
    out = await client.runs.wait(
        tid, "simple", input={"items": ["y"]},
        checkpoint={"checkpoint_id": first["checkpoint"]["checkpoint_id"], "checkpoint_ns": ""},
    )
    assert out == {"items": ["x", "y", "a", "b"]}


async def test_checkpoint_id_is_recorded_in_configurable(client):
    tid = await new_thread(client)
    await client.runs.wait(tid, "simple", input={"items": ["x"]})
    state = await client.threads.get_state(tid)
    cid = state["checkpoint"]["checkpoint_id"]
    run = await client.runs.create(tid, "simple", input={"items": []}, checkpoint_id=cid)
    assert run["kwargs"]["config"]["configurable"]["checkpoint_id"] == cid
    await client.runs.join(tid, run["run_id"])


async def test_interrupt_before_per_run(client):
    tid = await new_thread(client)
    run = await client.runs.create(tid, "simple", input={"items": ["x"]}, interrupt_before=["b"])
    assert run["kwargs"]["interrupt_before"] == ["b"]
    assert await client.runs.join(tid, run["run_id"]) == {"items": ["x", "a"]}
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    state = await client.threads.get_state(tid)
    assert state["next"] == ["b"]
    assert await client.runs.wait(tid, "simple", input=None) == {"items": ["x", "a", "b"]}
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_interrupt_after_per_run_and_star(client):
    tid = await new_thread(client)
    out = await client.runs.wait(tid, "simple", input={"items": ["x"]}, interrupt_after=["a"])
    assert out == {"items": ["x", "a"]}
    assert (await client.threads.get_state(tid))["next"] == ["b"]
    out = await client.runs.wait(tid, "simple", input=None)
    assert out == {"items": ["x", "a", "b"]}
    tid = await new_thread(client)
    out = await client.runs.wait(tid, "simple", input={"items": []}, interrupt_before="*")
    assert out == {"items": []}
    assert (await client.threads.get_state(tid))["next"] == ["a"]


# -- creation: config, context, metadata ---------------------------------------------


async def test_what_the_graph_sees_in_configurable(client, http):
    assistant = await client.assistants.create(
        "echo_config",
        config={"configurable": {"from_assistant": "A", "shared": "assistant"}, "tags": ["asst"]},
        metadata={"owner": "team"},
    )
    tid = await new_thread(client)
    r = http.post(
        f"/threads/{tid}/runs",
        headers={"x-request-id": "req-123"},
        json={
            "assistant_id": assistant["assistant_id"],
            "input": {"marker": "m"},
            "config": {
                "configurable": {
                    "shared": "run",
                    "mine": 1,
                    "user_id": "u-1",
                    "langgraph_auth_user_id": "spoofed",
                },
                "tags": ["run-tag"],
                "recursion_limit": 42,
                "metadata": {"from_config": True},
            },
            "metadata": {"from_run": "yes", "thread_id": "spoofed"},
        },
    )
    assert r.status_code == 200, r.text
    run = r.json()
    out = await client.runs.join(tid, run["run_id"])
    seen = out["seen_configurable"]
    assert seen["run_id"] == run["run_id"]
    assert seen["thread_id"] == tid
    assert seen["graph_id"] == "echo_config"
    assert seen["assistant_id"] == assistant["assistant_id"]
    assert seen["user_id"] == "u-1"
    assert seen["from_assistant"] == "A"
    assert seen["shared"] == "run"  # run configurable wins over the assistant's
    assert seen["mine"] == 1
    assert seen["langgraph_auth_user_id"] == ""  # reserved keys cannot be spoofed
    assert seen["langgraph_request_id"] == "req-123"
    assert out["tags"] == ["run-tag"]  # config is a shallow merge: the run's tags win
    assert out["recursion_limit"] == 42
    meta = out["seen_metadata"]
    assert meta["owner"] == "team" and meta["from_config"] is True and meta["from_run"] == "yes"
    assert meta["assistant_id"] == assistant["assistant_id"]
    assert meta["run_attempt"] == 1
    # the stored run: its own metadata, with reserved keys stripped
    assert run["metadata"] == {"from_run": "yes"}
    assert run["kwargs"]["config"]["metadata"]["owner"] == "team"
    # the thread keeps only the assistant's configurable, and gains graph/assistant ids
    thread = await client.threads.get(tid)
    assert thread["config"]["configurable"] == {"from_assistant": "A", "shared": "assistant"}
    assert thread["metadata"]["graph_id"] == "echo_config"
    assert thread["metadata"]["assistant_id"] == assistant["assistant_id"]
    assert "from_run" not in thread["metadata"]  # an existing thread's metadata is not touched


async def test_user_id_defaults_and_falls_back(client):
    tid = await new_thread(client)
    out = await client.runs.wait(tid, "echo_config", input={"marker": "1"})
    assert out["seen_configurable"]["user_id"] == ""
    assistant = await client.assistants.create("echo_config", config={"configurable": {"user_id": "asst-user"}})
    out = await client.runs.wait(tid, assistant["assistant_id"], input={"marker": "2"})
    assert out["seen_configurable"]["user_id"] == "asst-user"


async def test_context_is_mirrored_into_configurable(client):
    tid = await new_thread(client)
    run = await client.runs.create(tid, "echo_config", input={"marker": "c"}, context={"my_key": "v"})
    assert run["kwargs"]["context"] == {"my_key": "v"}
    out = await client.runs.join(tid, run["run_id"])
    assert out["seen_configurable"]["my_key"] == "v"
    # and configurable alone becomes the run context
    run = await client.runs.create(tid, "echo_config", input={"marker": "d"}, config={"configurable": {"k": 1}})
    assert run["kwargs"]["context"] == {"k": 1}
    await client.runs.join(tid, run["run_id"])


async def test_context_merges_over_assistant_and_drops_unknown_keys(client):
    assistant = await client.assistants.create(
        "context", context={"model": "asst-model", "temperature": 0.1}
    )
    tid = await new_thread(client)
    run = await client.runs.create(
        tid, assistant["assistant_id"], input={}, context={"temperature": 0.9, "not_in_schema": "x"}
    )
    assert run["kwargs"]["context"] == {"model": "asst-model", "temperature": 0.9, "not_in_schema": "x"}
    out = await client.runs.join(tid, run["run_id"])
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
    assert out["seen"] == {"type": "Ctx", "model": "asst-model", "temperature": 0.9}
    # without a run context the assistant's applies as is
    out = await client.runs.wait(tid, assistant["assistant_id"], input={})
    assert out["seen"] == {"type": "Ctx", "model": "asst-model", "temperature": 0.1}


def test_context_sync(sync_client):
    tid = sync_client.threads.create()["thread_id"]
    out = sync_client.runs.wait(tid, "context", input={}, context={"model": "m1"})
    assert out["seen"] == {"type": "Ctx", "model": "m1", "temperature": 0.5}


async def test_metadata_of_a_run_created_thread(client):
    tid = str(uuid.uuid4())
    await client.runs.wait(
        tid, "simple", input={"items": []}, if_not_exists="create",
        metadata={"origin": "run"}, config={"metadata": {"via": "config"}},
    )
    thread = await client.threads.get(tid)
    assert thread["metadata"]["origin"] == "run"
    assert thread["metadata"]["via"] == "config"
    assert thread["metadata"]["graph_id"] == "simple"


# -- creation: scheduling and durability ---------------------------------------------


async def test_after_seconds_delays_the_run(client):
    tid = await new_thread(client)
    before = datetime.now().astimezone()
    run = await client.runs.create(tid, "slow", input={"sleep": 0}, after_seconds=2)
    created = ts(run["created_at"])
    assert (created - before).total_seconds() >= 2
    assert run["kwargs"]["config"]["configurable"]["__after_seconds__"] == 2
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "pending"
    assert (await client.threads.get(tid))["status"] == "busy"
    out = await client.runs.join(tid, run["run_id"])
    # the graph itself recorded that it did not start before the run's created_at
    assert out["starts"][0] >= created.timestamp()
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
    assert (await client.threads.get(tid))["status"] == "idle"


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
async def test_durability_values_are_accepted(client, durability):
    tid = await new_thread(client)
    run = await client.runs.create(tid, "simple", input={"items": ["d"]}, durability=durability)
    assert run["kwargs"]["durability"] == durability
    assert run["kwargs"]["checkpoint_during"] is (durability != "exit")
    assert await client.runs.join(tid, run["run_id"]) == {"items": ["d", "a", "b"]}
    history = await client.threads.get_history(tid, limit=100)
    if durability == "exit":
        assert len(history) == 1  # only the final checkpoint is written
    else:
        assert len(history) == 4  # input, start, a, b
    assert history[0]["values"] == {"items": ["d", "a", "b"]}


def test_checkpoint_during_false_means_exit(http):
    tid = http.post("/threads", json={}).json()["thread_id"]
    r = http.post(f"/threads/{tid}/runs", json={"assistant_id": "simple", "input": {}, "checkpoint_during": False})
    assert r.json()["kwargs"]["durability"] == "exit"
    http.get(f"/threads/{tid}/runs/{r.json()['run_id']}/join")


# -- /wait bodies ---------------------------------------------------------------------


async def test_wait_body_on_error(client, http):
    tid = await new_thread(client)
    out = await client.runs.wait(tid, "simple", input={"items": [], "fail": True}, raise_error=False)
    assert out == {"__error__": {"error": "ValueError", "message": "boom from node_a"}}
    with pytest.raises(Exception, match="ValueError: boom from node_a"):
        await client.runs.wait(tid, "simple", input={"items": [], "fail": True})
    r = http.post("/runs/wait", json={"assistant_id": "simple", "input": {"items": [], "fail": True}})
    assert r.status_code == 200
    assert r.json() == {"__error__": {"error": "ValueError", "message": "boom from node_a"}}


def test_wait_body_on_interrupt_raw(http):
    tid = http.post("/threads", json={}).json()["thread_id"]
    r = http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "simple", "input": {"items": [], "ask": True}})
    assert r.status_code == 200
    run_id = r.headers["content-location"].rsplit("/", 1)[1]
    assert r.headers["location"] == f"/threads/{tid}/runs/{run_id}/join"
    body = r.json()
    assert body["items"] == ["a"] and body["ask"] is True
    (interrupt,) = body["__interrupt__"]
    assert interrupt["value"] == {"question": "approve?"}
    assert isinstance(interrupt["id"], str) and interrupt["id"]


async def test_wait_body_with_several_interrupts_lists_them_all(client):
    tid = await new_thread(client)
    out = await client.runs.wait(tid, "multi_interrupt", input={"items": []})
    assert sorted(i["value"]["node"] for i in out["__interrupt__"]) == ["x", "y"]
    out = await client.runs.wait(None, "multi_interrupt", input={"items": []})
    assert sorted(i["value"]["node"] for i in out["__interrupt__"]) == ["x", "y"]


def test_wait_without_values_mode_falls_back_to_thread_values(http):
    tid = http.post("/threads", json={}).json()["thread_id"]
    r = http.post(
        f"/threads/{tid}/runs/wait",
        json={"assistant_id": "simple", "input": {"items": ["u"]}, "stream_mode": ["updates"]},
    )
    assert r.status_code == 200
    assert r.json() == {"items": ["u", "a", "b"]}


# -- statuses ---------------------------------------------------------------------------


async def test_error_run_sets_thread_error(client):
    tid = await new_thread(client)
    run = await client.runs.create(tid, "simple", input={"items": [], "fail": True})
    out = await client.runs.join(tid, run["run_id"])
    assert out == {"__error__": {"error": "ValueError", "message": "boom from node_a"}}
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "error"
    thread = await client.threads.get(tid)
    assert thread["status"] == "error"
    assert thread["error"] == {"error": "ValueError", "message": "boom from node_a"}
    # a later successful run clears the error
    out = await client.runs.wait(tid, "simple", input={"items": ["ok"], "fail": False})
    assert out["items"][-3:] == ["ok", "a", "b"]
    thread = await client.threads.get(tid)
    assert thread["status"] == "idle" and thread.get("error") is None


async def test_interrupt_run_is_success_thread_interrupted_then_resumed(client):
    tid = await new_thread(client)
    run = await client.runs.create(tid, "simple", input={"items": [], "ask": True})
    await client.runs.join(tid, run["run_id"])
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    ((task_id, interrupts),) = thread["interrupts"].items()
    assert [i["value"] for i in interrupts] == [{"question": "approve?"}]
    state = await client.threads.get_state(tid)
    assert state["next"] == ["b"] and state["tasks"][0]["id"] == task_id
    out = await client.runs.wait(tid, "simple", command={"resume": "yes!"})
    assert out == {"items": ["a", "b"], "ask": True, "answer": "yes!"}
    thread = await client.threads.get(tid)
    assert thread["status"] == "idle" and thread["interrupts"] == {}


def test_interrupt_and_resume_sync(sync_client):
    tid = sync_client.threads.create()["thread_id"]
    out = sync_client.runs.wait(tid, "simple", input={"items": [], "ask": True})
    assert out["__interrupt__"][0]["value"] == {"question": "approve?"}
    assert sync_client.threads.get(tid)["status"] == "interrupted"
    out = sync_client.runs.wait(tid, "simple", command={"resume": "ok"})
    assert out["answer"] == "ok"
    assert sync_client.threads.get(tid)["status"] == "idle"


async def test_multiple_pending_interrupts_resumed_with_a_map(client):
    tid = await new_thread(client)
    await client.runs.wait(tid, "multi_interrupt", input={"items": []})
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    pending = {i["value"]["node"]: i["id"] for group in thread["interrupts"].values() for i in group}
    assert set(pending) == {"x", "y"}
    out = await client.runs.wait(tid, "multi_interrupt", command={"resume": {pending["x"]: "1", pending["y"]: "2"}})
    assert out == {"items": ["join"], "answers": ["x=1", "y=2"]}
    thread = await client.threads.get(tid)
    assert thread["status"] == "idle" and thread["interrupts"] == {}


async def test_static_breakpoint_resumed_with_none(client):
    tid = await new_thread(client)
    run = await client.runs.create(tid, "breakpoints", input={"items": ["x"]})
    assert await client.runs.join(tid, run["run_id"]) == {"items": ["x", "a"]}
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    assert thread["interrupts"] == {}  # static breakpoints carry no interrupt payload
    assert (await client.threads.get_state(tid))["next"] == ["b"]
    out = await client.runs.wait(tid, "breakpoints", input=None)
    assert out == {"items": ["x", "a", "b", "c"]}
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_no_input_on_a_fresh_thread_is_an_error_run(client):
    tid = await new_thread(client)
    run = await client.runs.create(tid, "simple", input=None)
    out = await client.runs.join(tid, run["run_id"])
    assert out["__error__"]["error"] == "EmptyInputError"
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "error"
    assert (await client.threads.get(tid))["status"] == "error"


async def test_thread_is_busy_while_a_run_is_in_flight(client):
    tid = await new_thread(client)
    run = await client.runs.create(tid, "slow", input={"sleep": 0.3})
    assert (await client.threads.get(tid))["status"] == "busy"
    await client.runs.join(tid, run["run_id"])
    assert (await client.threads.get(tid))["status"] == "idle"


def test_fields_that_cannot_apply_to_an_endpoint_are_rejected(http):
    tid = http.post("/threads", json={}).json()["thread_id"]
    base = {"assistant_id": "simple", "input": {"items": []}}
    cases = [
        (f"/threads/{tid}/runs", {**base, "on_disconnect": "cancel"}, "on_disconnect"),
        ("/runs", {**base, "on_disconnect": "continue"}, "on_disconnect"),
        ("/runs/batch", [{**base, "on_disconnect": "cancel"}], "on_disconnect"),
        (f"/threads/{tid}/runs", {**base, "on_completion": "keep"}, "on_completion"),
        (f"/threads/{tid}/runs/wait", {**base, "on_completion": "delete"}, "on_completion"),
        ("/runs/wait", {**base, "if_not_exists": "reject"}, "if_not_exists"),
    ]
    for path, body, field in cases:
        r = http.post(path, json=body)
        assert r.status_code == 422, (path, r.text)
        assert field in r.json()["detail"]
    assert http.get(f"/threads/{tid}/runs").json() == []
    # the same fields where they do apply
    assert http.post(f"/threads/{tid}/runs/wait", json={**base, "on_disconnect": "continue"}).status_code == 200
    assert http.post("/runs/wait", json={**base, "on_completion": "keep", "if_not_exists": "create"}).status_code == 200
