"""Threads: create, get, patch, delete, search, count, copy, prune and status transitions.

Black-box through the session server with the official SDK (async and sync) and raw
HTTP where the wire format matters. Every search is scoped by a unique metadata tag
because the session server is shared with the other test modules.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
from langgraph_sdk.errors import (
    ConflictError,
    NotFoundError,
    UnprocessableEntityError,
)

from conftest import start_hang

SIMPLE_ASSISTANT = str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "simple"))
FRESH_KEYS = {
    "thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "status", "config", "values",
}


def tag() -> str:
    return str(uuid.uuid4())


def is_iso(value: str) -> bool:
    parsed = datetime.fromisoformat(value)
    return parsed.utcoffset() is not None and value.endswith("+00:00")


async def run_simple(client, thread_id: str, **input: Any) -> Any:
    return await client.runs.wait(thread_id, "simple", input={"items": ["x"], **input})


# -- create ---------------------------------------------------------------------


async def test_create_generates_a_uuid_and_returns_the_fresh_thread_shape(client, http):
    thread = await client.threads.create()
    assert uuid.UUID(thread["thread_id"])
    assert thread["status"] == "idle"
    assert thread["values"] is None
    assert thread["config"] == {}
    assert thread["metadata"] == {}
    # wire shape of a thread no run has touched: no error/interrupts keys
    raw = http.get(f"/threads/{thread['thread_id']}").json()
    assert set(raw) == FRESH_KEYS
    for key in ("created_at", "updated_at", "state_updated_at"):
        assert is_iso(raw[key]), raw[key]


async def test_generated_ids_are_distinct(client):
    ids = {(await client.threads.create())["thread_id"] for _ in range(5)}
    assert len(ids) == 5


async def test_create_with_given_id_and_metadata(client):
    thread_id = str(uuid.uuid4())
    thread = await client.threads.create(thread_id=thread_id, metadata={"owner": "ann", "n": {"k": [1, 2]}})
    assert thread["thread_id"] == thread_id
    assert thread["metadata"] == {"owner": "ann", "n": {"k": [1, 2]}}
    got = await client.threads.get(thread_id)
    assert got["metadata"] == {"owner": "ann", "n": {"k": [1, 2]}}
    assert got["created_at"] == thread["created_at"]


def test_create_with_sync_client(sync_client):
    thread_id = str(uuid.uuid4())
    thread = sync_client.threads.create(thread_id=thread_id, metadata={"via": "sync"})
    assert thread["thread_id"] == thread_id
    assert sync_client.threads.get(thread_id)["metadata"] == {"via": "sync"}


async def test_create_uppercase_id_is_canonicalised(client, http):
    thread_id = str(uuid.uuid4())
    r = http.post("/threads", json={"thread_id": thread_id.upper()})
    assert r.status_code == 200
    assert r.json()["thread_id"] == thread_id
    assert http.get(f"/threads/{thread_id.upper()}").json()["thread_id"] == thread_id


async def test_create_existing_id_raises_409_by_default(client, http):
    thread_id = str(uuid.uuid4())
    await client.threads.create(thread_id=thread_id, metadata={"v": 1})
    with pytest.raises(ConflictError) as err:
        await client.threads.create(thread_id=thread_id, metadata={"v": 2})
    assert err.value.status_code == 409
    r = http.post("/threads", json={"thread_id": thread_id, "if_exists": "raise"})
    assert r.status_code == 409
    assert r.json() == {"detail": f"Thread with ID {thread_id} already exists"}
    # the failed create did not touch the existing row
    assert (await client.threads.get(thread_id))["metadata"] == {"v": 1}


async def test_create_existing_id_do_nothing_returns_existing(client, sync_client):
    thread_id = str(uuid.uuid4())
    first = await client.threads.create(thread_id=thread_id, metadata={"v": 1})
    again = await client.threads.create(thread_id=thread_id, metadata={"v": 2}, if_exists="do_nothing")
    assert again["thread_id"] == thread_id
    assert again["metadata"] == {"v": 1}
    assert again["created_at"] == first["created_at"]
    synced = sync_client.threads.create(thread_id=thread_id, metadata={"v": 3}, if_exists="do_nothing")
    assert synced["metadata"] == {"v": 1}


async def test_create_strips_reserved_metadata_keys(client):
    thread = await client.threads.create(
        metadata={"thread_id": "spoof", "run_id": "spoof", "assistant_id": "spoof", "keep": True}
    )
    assert thread["metadata"] == {"keep": True}


async def test_create_rejects_bad_input(http):
    r = http.post("/threads", json={"thread_id": "not-a-uuid"})
    assert r.status_code == 422
    assert "thread ID" in r.json()["detail"]
    r = http.post("/threads", json={"bogus_field": 1})
    assert r.status_code == 422
    assert "bogus_field" in r.json()["detail"]
    r = http.post("/threads", json={"if_exists": "overwrite"})
    assert r.status_code == 422
    assert "if_exists" in r.json()["detail"]
    r = http.post("/threads", json={"metadata": "not an object"})
    assert r.status_code == 422
    assert "metadata" in r.json()["detail"]
    r = http.post("/threads", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


async def test_create_with_sdk_graph_id_sets_metadata_and_enables_state(client):
    thread = await client.threads.create(graph_id="simple", metadata={"k": "v"})
    assert thread["metadata"] == {"k": "v", "graph_id": "simple"}
    # no checkpoint yet: the empty state
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"] == {} and state["checkpoint"] is None
    # graph_id in metadata is enough for update_state on a run-less thread
    await client.threads.update_state(thread["thread_id"], {"items": ["seed"]}, as_node="b")
    assert (await client.threads.get(thread["thread_id"]))["values"] == {"items": ["seed"]}


async def test_create_with_supersteps_seeds_state(client):
    thread = await client.threads.create(
        graph_id="simple",
        supersteps=[{"updates": [{"values": {"items": ["s"]}, "as_node": "a"}]}],
    )
    thread_id = thread["thread_id"]
    assert thread["values"] == {"items": ["s"]}
    # as_node "a" leaves b to run: the thread is interrupted
    assert thread["status"] == "interrupted"
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {"items": ["s"]}
    assert state["next"] == ["b"]
    assert state["metadata"]["source"] == "update"
    # the seeded thread continues like any other
    assert await client.runs.wait(thread_id, "simple", input=None) == {"items": ["s", "b"]}
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_create_with_several_supersteps(client):
    thread = await client.threads.create(
        graph_id="simple",
        supersteps=[
            {"updates": [{"values": {"items": ["one"]}, "as_node": "a"}]},
            {"updates": [{"values": {"items": ["two"]}, "as_node": "b"}]},
        ],
    )
    assert thread["values"] == {"items": ["one", "two"]}
    assert thread["status"] == "idle"
    history = await client.threads.get_history(thread["thread_id"], limit=10)
    assert [h["metadata"]["source"] for h in history] == ["update", "update"]
    assert [h["values"] for h in history] == [{"items": ["one", "two"]}, {"items": ["one"]}]


async def test_create_with_superstep_command(http):
    r = http.post(
        "/threads",
        json={
            "metadata": {"graph_id": "simple"},
            "supersteps": [
                {"updates": [{"values": None, "command": {"update": {"items": ["c"]}, "goto": "b"}, "as_node": "a"}]}
            ],
        },
    )
    assert r.status_code == 200
    thread_id = r.json()["thread_id"]
    state = http.get(f"/threads/{thread_id}/state").json()
    assert state["values"] == {"items": ["c"]}
    assert state["next"] == ["b"]


async def test_failing_supersteps_without_graph_id_create_the_thread_with_201(client, http):
    thread_id = str(uuid.uuid4())
    r = http.post(
        "/threads",
        json={"thread_id": thread_id, "supersteps": [{"updates": [{"values": {"items": ["s"]}, "as_node": "a"}]}]},
    )
    assert r.status_code == 201
    detail = r.json()["detail"]
    assert detail.startswith(f"Thread {thread_id} was created, but there were problems updating the state")
    assert "graph_id" in detail
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle" and thread["values"] is None
    assert (await client.threads.get_state(thread_id))["checkpoint"] is None


async def test_failing_supersteps_leave_no_partial_state(client, http):
    r = http.post(
        "/threads",
        json={
            "metadata": {"graph_id": "simple"},
            "supersteps": [
                {"updates": [{"values": {"items": ["ok"]}, "as_node": "a"}]},
                {"updates": [{"values": {"items": ["bad"]}, "as_node": "no_such_node"}]},
            ],
        },
    )
    assert r.status_code == 201
    detail = r.json()["detail"]
    assert "no_such_node" in detail
    thread_id = detail.split()[1]
    thread = await client.threads.get(thread_id)
    assert thread["values"] is None
    assert thread["status"] == "idle"
    # the first superstep's checkpoint was not kept either
    assert await client.threads.get_history(thread_id, limit=10) == []


async def test_supersteps_validation(http):
    r = http.post("/threads", json={"supersteps": [{"updates": [{"values": {}}]}]})
    assert r.status_code == 422
    assert "as_node" in r.json()["detail"]
    r = http.post("/threads", json={"supersteps": [{"updates": [], "extra": 1}]})
    assert r.status_code == 422
    assert "extra" in r.json()["detail"]


# -- get --------------------------------------------------------------------------


async def test_get_missing_thread_is_404(client, http):
    missing = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await client.threads.get(missing)
    r = http.get(f"/threads/{missing}")
    assert r.status_code == 404
    assert r.json() == {"detail": f"Thread with ID {missing} not found"}


def test_get_missing_thread_sync_is_404(sync_client):
    with pytest.raises(NotFoundError):
        sync_client.threads.get(str(uuid.uuid4()))


async def test_get_non_uuid_is_422(http):
    for path in ("/threads/not-a-uuid", "/threads/123"):
        r = http.get(path)
        assert r.status_code == 422
        assert r.json() == {"detail": "Invalid thread ID: must be a UUID"}


async def test_non_uuid_ids_on_other_thread_routes_are_422(http):
    assert http.patch("/threads/nope", json={"metadata": {}}).status_code == 422
    assert http.delete("/threads/nope").status_code == 422
    assert http.post("/threads/nope/copy").status_code == 422
    assert http.get("/threads/nope/state").status_code == 422
    assert http.get("/threads/nope/history").status_code == 422
    assert http.post("/threads/nope/state", json={"values": {}}).status_code == 422


# -- patch ------------------------------------------------------------------------


async def test_patch_merges_metadata_shallowly(client):
    thread = await client.threads.create(metadata={"a": 1, "b": {"x": 1, "y": 2}})
    updated = await client.threads.update(thread["thread_id"], metadata={"b": {"x": 9}, "c": 3})
    assert updated["metadata"] == {"a": 1, "b": {"x": 9}, "c": 3}
    assert updated["updated_at"] >= thread["updated_at"]
    assert updated["created_at"] == thread["created_at"]
    assert (await client.threads.get(thread["thread_id"]))["metadata"] == {"a": 1, "b": {"x": 9}, "c": 3}


def test_patch_with_sync_client(sync_client):
    thread = sync_client.threads.create(metadata={"a": 1})
    updated = sync_client.threads.update(thread["thread_id"], metadata={"b": 2})
    assert updated["metadata"] == {"a": 1, "b": 2}


async def test_patch_strips_reserved_metadata_keys(client):
    thread = await client.threads.create(metadata={"a": 1})
    updated = await client.threads.update(thread["thread_id"], metadata={"thread_id": "x", "run_id": "y", "b": 2})
    assert updated["metadata"] == {"a": 1, "b": 2}


async def test_patch_prefer_return_minimal_is_204(client, http):
    thread = await client.threads.create(metadata={"a": 1})
    thread_id = thread["thread_id"]
    r = http.patch(f"/threads/{thread_id}", json={"metadata": {"b": 2}}, headers={"Prefer": "return=minimal"})
    assert r.status_code == 204
    assert r.content == b""
    result = await client.threads.update(thread_id, metadata={"c": 3}, return_minimal=True)
    assert not result
    assert (await client.threads.get(thread_id))["metadata"] == {"a": 1, "b": 2, "c": 3}


async def test_patch_errors(client, http):
    missing = str(uuid.uuid4())
    r = http.patch(f"/threads/{missing}", json={"metadata": {"a": 1}})
    assert r.status_code == 404
    with pytest.raises(NotFoundError):
        await client.threads.update(missing, metadata={"a": 1})
    thread = await client.threads.create()
    r = http.patch(f"/threads/{thread['thread_id']}", json={"metadata": {}, "status": "busy"})
    assert r.status_code == 422
    assert "status" in r.json()["detail"]


# -- delete -----------------------------------------------------------------------


async def test_delete_removes_thread_runs_and_checkpoints(client, http):
    thread_id = (await client.threads.create())["thread_id"]
    await run_simple(client, thread_id)
    assert len(await client.runs.list(thread_id)) == 1
    assert len(await client.threads.get_history(thread_id, limit=10)) == 4

    await client.threads.delete(thread_id)

    for path in ("", "/state", "/history", "/runs"):
        r = http.get(f"/threads/{thread_id}{path}")
        assert r.status_code == 404, path
    with pytest.raises(NotFoundError):
        await client.threads.get_state(thread_id)
    with pytest.raises(NotFoundError):
        await client.threads.get_history(thread_id)

    # a new thread under the same id starts from nothing: no runs and no checkpoints survived
    await client.threads.create(thread_id=thread_id, graph_id="simple")
    assert await client.runs.list(thread_id) == []
    assert await client.threads.get_history(thread_id, limit=10) == []
    assert (await client.threads.get_state(thread_id))["checkpoint"] is None


def test_delete_with_sync_client(sync_client):
    thread_id = sync_client.threads.create()["thread_id"]
    sync_client.runs.wait(thread_id, "simple", input={"items": ["x"]})
    sync_client.threads.delete(thread_id)
    with pytest.raises(NotFoundError):
        sync_client.threads.get(thread_id)


async def test_delete_missing_thread_is_404(client, http):
    missing = str(uuid.uuid4())
    r = http.delete(f"/threads/{missing}")
    assert r.status_code == 404
    with pytest.raises(NotFoundError):
        await client.threads.delete(missing)


async def test_delete_returns_204_with_empty_body(client, http):
    thread_id = (await client.threads.create())["thread_id"]
    r = http.delete(f"/threads/{thread_id}")
    assert r.status_code == 204
    assert r.content == b""


async def test_delete_busy_thread_stops_its_run(client, http):
    thread_id = (await client.threads.create())["thread_id"]
    run_id = await start_hang(client, thread_id)
    assert (await client.threads.get(thread_id))["status"] == "busy"
    await client.threads.delete(thread_id)
    assert http.get(f"/threads/{thread_id}").status_code == 404
    assert http.get(f"/threads/{thread_id}/runs/{run_id}").status_code == 404
    # nothing of the old run holds the thread: a new thread under the id runs at once
    await client.threads.create(thread_id=thread_id)
    assert (await client.threads.get(thread_id))["status"] == "idle"
    assert await run_simple(client, thread_id) == {"items": ["x", "a", "b"]}


async def test_prune_busy_thread_stops_its_run(client, http):
    thread_id = (await client.threads.create())["thread_id"]
    run_id = await start_hang(client, thread_id)
    assert await client.threads.prune([thread_id]) == {"pruned_count": 1}
    assert http.get(f"/threads/{thread_id}").status_code == 404
    assert http.get(f"/threads/{thread_id}/runs/{run_id}").status_code == 404
    await client.threads.create(thread_id=thread_id)
    assert await run_simple(client, thread_id) == {"items": ["x", "a", "b"]}


# -- search -----------------------------------------------------------------------


async def _tagged(client, t: str, n: int, **extra: Any) -> list[str]:
    return [
        (await client.threads.create(metadata={"tag": t, "i": i, **extra}))["thread_id"] for i in range(n)
    ]


async def test_search_by_metadata_containment(client):
    t = tag()
    a = (await client.threads.create(metadata={"tag": t, "team": {"name": "red", "size": 3}, "l": [1, 2]}))["thread_id"]
    b = (await client.threads.create(metadata={"tag": t, "team": {"name": "blue"}, "l": [1]}))["thread_id"]

    async def ids(metadata: dict) -> set[str]:
        return {th["thread_id"] for th in await client.threads.search(metadata=metadata, limit=100)}

    assert await ids({"tag": t}) == {a, b}
    assert await ids({"tag": t, "team": {"name": "red"}}) == {a}  # nested subset
    assert await ids({"tag": t, "team": {"name": "red", "size": 3}}) == {a}
    assert await ids({"tag": t, "team": {"size": 4}}) == set()
    assert await ids({"tag": t, "l": [1]}) == {b}  # lists compare by equality
    assert await ids({"tag": t, "missing": None}) == set()  # every key must exist


async def test_search_by_ids(client, http):
    t = tag()
    a, b, c = await _tagged(client, t, 3)
    found = await client.threads.search(ids=[a, c], limit=100)
    assert {th["thread_id"] for th in found} == {a, c}
    r = http.post("/threads/search", json={"ids": []})
    assert r.status_code == 200 and r.json() == []
    r = http.post("/threads/search", json={"ids": ["nope"]})
    assert r.status_code == 422
    assert "thread ID" in r.json()["detail"]


async def test_search_by_values_with_null_valued_threads_present(client, http):
    t = tag()
    fresh = (await client.threads.create(metadata={"tag": t}))["thread_id"]  # values null
    ran = (await client.threads.create(metadata={"tag": t}))["thread_id"]
    await run_simple(client, ran)
    assert (await client.threads.get(fresh))["values"] is None

    found = await client.threads.search(metadata={"tag": t}, values={"items": ["x", "a", "b"]})
    assert [th["thread_id"] for th in found] == [ran]
    assert await client.threads.search(metadata={"tag": t}, values={"items": ["nope"]}) == []
    # a values-only search across every thread (many with null values) answers normally
    r = http.post("/threads/search", json={"values": {"items": ["x", "a", "b"]}, "limit": 1000})
    assert r.status_code == 200
    assert r.json() and all(th["values"]["items"] == ["x", "a", "b"] for th in r.json())
    r = http.post("/threads/search", json={"ids": [fresh, ran], "values": {"items": ["x", "a", "b"]}})
    assert r.status_code == 200
    assert [th["thread_id"] for th in r.json()] == [ran]
    r = http.post("/threads/count", json={"values": {"items": ["x", "a", "b"]}})
    assert r.status_code == 200 and r.json() >= 1


async def test_search_by_status(client):
    t = tag()
    idle = (await client.threads.create(metadata={"tag": t}))["thread_id"]
    interrupted = (await client.threads.create(metadata={"tag": t}))["thread_id"]
    await client.runs.wait(interrupted, "simple", input={"items": [], "ask": True})
    errored = (await client.threads.create(metadata={"tag": t}))["thread_id"]
    await client.runs.wait(errored, "simple", input={"items": [], "fail": True}, raise_error=False)

    async def ids(status: str) -> list[str]:
        return [th["thread_id"] for th in await client.threads.search(metadata={"tag": t}, status=status)]

    assert await ids("idle") == [idle]
    assert await ids("interrupted") == [interrupted]
    assert await ids("error") == [errored]
    assert await ids("busy") == []
    assert await client.threads.count(metadata={"tag": t}, status="interrupted") == 1


async def test_search_status_must_be_known(http):
    r = http.post("/threads/search", json={"status": "sleeping"})
    assert r.status_code == 422
    assert "status" in r.json()["detail"]


async def test_search_limit_offset_and_pagination_headers(client, http):
    t = tag()
    ids = await _tagged(client, t, 5)
    body = {"metadata": {"tag": t}, "sort_by": "created_at", "sort_order": "asc"}

    r = http.post("/threads/search", json={**body, "limit": 2})
    assert [th["thread_id"] for th in r.json()] == ids[:2]
    assert r.headers["x-pagination-next"] == "2"
    assert r.headers["x-pagination-total"] == "3"  # offset + limit + 1, not a real total

    r = http.post("/threads/search", json={**body, "limit": 2, "offset": 2})
    assert [th["thread_id"] for th in r.json()] == ids[2:4]
    assert r.headers["x-pagination-next"] == "4"
    assert r.headers["x-pagination-total"] == "5"

    r = http.post("/threads/search", json={**body, "limit": 2, "offset": 4})
    assert [th["thread_id"] for th in r.json()] == ids[4:]
    assert "x-pagination-next" not in r.headers
    assert r.headers["x-pagination-total"] == "5"

    r = http.post("/threads/search", json={**body, "limit": 10})
    assert len(r.json()) == 5
    assert "x-pagination-next" not in r.headers
    assert r.headers["x-pagination-total"] == "5"

    page = await client.threads.search(metadata={"tag": t}, limit=3, offset=1, sort_by="created_at", sort_order="asc")
    assert [th["thread_id"] for th in page] == ids[1:4]


async def test_search_limit_bounds(http):
    for limit in (0, 1001):
        r = http.post("/threads/search", json={"limit": limit})
        assert r.status_code == 422
        assert "limit" in r.json()["detail"]
    r = http.post("/threads/search", json={"offset": -1})
    assert r.status_code == 422


async def test_search_default_limit_is_10(client, http):
    t = tag()
    await _tagged(client, t, 11)
    r = http.post("/threads/search", json={"metadata": {"tag": t}})
    assert len(r.json()) == 10
    assert r.headers["x-pagination-next"] == "10"


async def test_search_sorting(client, sync_client):
    t = tag()
    ids = await _tagged(client, t, 3)

    async def order(**kw: Any) -> list[str]:
        return [th["thread_id"] for th in await client.threads.search(metadata={"tag": t}, **kw)]

    assert await order(sort_by="created_at", sort_order="asc") == ids
    assert await order(sort_by="created_at", sort_order="desc") == ids[::-1]
    assert await order(sort_by="thread_id", sort_order="asc") == sorted(ids)
    assert await order(sort_by="thread_id", sort_order="desc") == sorted(ids, reverse=True)
    # default: most recently updated first
    await client.threads.update(ids[0], metadata={"touched": True})
    assert (await order())[0] == ids[0]
    assert (await order(sort_by="updated_at", sort_order="asc"))[-1] == ids[0]
    # status: alphabetical
    await client.runs.wait(ids[1], "simple", input={"items": [], "ask": True})
    statuses = [th["status"] for th in sync_client.threads.search(metadata={"tag": t}, sort_by="status", sort_order="asc")]
    assert statuses == ["idle", "idle", "interrupted"]
    # state_updated_at: the thread whose state changed last comes first
    assert (await order(sort_by="state_updated_at", sort_order="desc"))[0] == ids[1]


async def test_search_sort_validation(http):
    r = http.post("/threads/search", json={"sort_by": "metadata"})
    assert r.status_code == 422
    assert "sort_by" in r.json()["detail"]
    r = http.post("/threads/search", json={"sort_order": "up"})
    assert r.status_code == 422
    assert "sort_order" in r.json()["detail"]


async def test_search_select(client, http):
    t = tag()
    ids = await _tagged(client, t, 2)
    r = http.post("/threads/search", json={"metadata": {"tag": t}, "select": ["thread_id", "status"]})
    assert r.status_code == 200
    rows = r.json()
    assert {row["thread_id"] for row in rows} == set(ids)
    assert all(set(row) == {"thread_id", "status"} for row in rows)
    rows = await client.threads.search(metadata={"tag": t}, select=["thread_id", "metadata", "values"])
    assert all(set(row) == {"thread_id", "metadata", "values"} for row in rows)
    r = http.post("/threads/search", json={"select": ["thread_id", "bogus"]})
    assert r.status_code == 422
    assert "select" in r.json()["detail"]


async def test_search_extract(client, http):
    t = tag()
    ran = (await client.threads.create(metadata={"tag": t, "who": {"name": "ann"}}))["thread_id"]
    await run_simple(client, ran)
    fresh = (await client.threads.create(metadata={"tag": t, "who": {"name": "bob"}}))["thread_id"]
    extract = {"first": "values.items[0]", "last": "values.items[2]", "name": "metadata.who.name", "gone": "values.nope"}
    rows = await client.threads.search(metadata={"tag": t}, extract=extract, sort_by="created_at", sort_order="asc")
    assert [row["thread_id"] for row in rows] == [ran, fresh]
    assert rows[0]["extracted"] == {"first": "x", "last": "b", "name": "ann", "gone": None}
    assert rows[1]["extracted"] == {"first": None, "last": None, "name": "bob", "gone": None}
    # with select, extracted is still returned
    r = http.post(
        "/threads/search",
        json={"metadata": {"tag": t}, "select": ["thread_id"], "extract": {"name": "metadata.who.name"}},
    )
    assert r.status_code == 200
    assert all(set(row) == {"thread_id", "extracted"} for row in r.json())
    # paths must start at values, metadata, config or interrupts
    r = http.post("/threads/search", json={"extract": {"x": "status"}})
    assert r.status_code == 422
    assert "extract" in r.json()["detail"]


async def test_search_rejects_unknown_fields(http):
    r = http.post("/threads/search", json={"metadata": {}, "graph_id": "simple"})
    assert r.status_code == 422
    assert "graph_id" in r.json()["detail"]


# -- count ------------------------------------------------------------------------


async def test_count(client, sync_client, http):
    t = tag()
    ids = await _tagged(client, t, 3, color="red")
    await client.threads.update(ids[0], metadata={"color": "blue"})
    assert await client.threads.count(metadata={"tag": t}) == 3
    assert await client.threads.count(metadata={"tag": t, "color": "red"}) == 2
    assert sync_client.threads.count(metadata={"tag": t, "color": "blue"}) == 1
    assert await client.threads.count(metadata={"tag": t}, status="idle") == 3
    assert await client.threads.count(metadata={"tag": t}, status="busy") == 0
    await run_simple(client, ids[1])
    assert await client.threads.count(metadata={"tag": t}, values={"items": ["x", "a", "b"]}) == 1
    r = http.post("/threads/count", json={"metadata": {"tag": t}})
    assert r.status_code == 200 and r.json() == 3  # a bare integer
    r = http.post("/threads/count", json={"limit": 3})
    assert r.status_code == 422
    assert "limit" in r.json()["detail"]


# -- copy -------------------------------------------------------------------------


async def test_copy_copies_metadata_and_checkpoints_but_not_runs(client):
    source = (await client.threads.create(metadata={"owner": "ann", "deep": {"k": [1]}}))["thread_id"]
    await run_simple(client, source)
    copied = await client.threads.copy(source)
    new_id = copied["thread_id"]
    assert new_id != source
    assert uuid.UUID(new_id)
    assert copied["metadata"] == (await client.threads.get(source))["metadata"]
    assert copied["metadata"]["owner"] == "ann"
    assert copied["status"] == "idle"
    assert copied["config"] == {}
    assert copied["values"] == {"items": ["x", "a", "b"]}

    src_state = await client.threads.get_state(source)
    new_state = await client.threads.get_state(new_id)
    assert new_state["values"] == src_state["values"]
    assert new_state["checkpoint_id"] == src_state["checkpoint_id"]
    assert new_state["checkpoint"]["thread_id"] == new_id
    assert new_state["metadata"] == src_state["metadata"]

    src_history = await client.threads.get_history(source, limit=100)
    new_history = await client.threads.get_history(new_id, limit=100)
    assert len(new_history) == len(src_history) == 4
    assert [h["checkpoint_id"] for h in new_history] == [h["checkpoint_id"] for h in src_history]
    assert [h["values"] for h in new_history] == [h["values"] for h in src_history]
    assert [h["next"] for h in new_history] == [h["next"] for h in src_history]
    assert all(h["checkpoint"]["thread_id"] == new_id for h in new_history)

    assert await client.runs.list(new_id) == []
    assert len(await client.runs.list(source)) == 1


async def test_copy_is_independent_of_its_source(client):
    source = (await client.threads.create())["thread_id"]
    await run_simple(client, source)
    new_id = (await client.threads.copy(source))["thread_id"]
    await client.runs.wait(new_id, "simple", input={"items": ["y"]})
    assert (await client.threads.get_state(new_id))["values"] == {"items": ["x", "a", "b", "y", "a", "b"]}
    assert (await client.threads.get_state(source))["values"] == {"items": ["x", "a", "b"]}
    await client.threads.update(new_id, metadata={"copy": True})
    assert "copy" not in (await client.threads.get(source))["metadata"]
    await client.threads.delete(source)
    assert (await client.threads.get_state(new_id))["values"]["items"][:3] == ["x", "a", "b"]


async def test_copy_of_interrupted_thread_can_be_resumed(client):
    source = (await client.threads.create())["thread_id"]
    await client.runs.wait(source, "simple", input={"items": [], "ask": True})
    copied = await client.threads.copy(source)
    new_id = copied["thread_id"]
    assert copied["status"] == "interrupted"
    new_state = await client.threads.get_state(new_id)
    assert new_state["next"] == ["b"]
    assert new_state["interrupts"][0]["value"] == {"question": "approve?"}
    result = await client.runs.wait(new_id, "simple", command={"resume": "yes"})
    assert result["answer"] == "yes"
    assert (await client.threads.get(new_id))["status"] == "idle"
    # the source is still waiting for its answer
    assert (await client.threads.get(source))["status"] == "interrupted"
    assert (await client.threads.get_state(source))["next"] == ["b"]


async def test_copy_keeps_subgraph_checkpoints(client):
    source = (await client.threads.create())["thread_id"]
    await client.runs.wait(source, "subgraph", input={"items": [], "ask": True})
    new_id = (await client.threads.copy(source))["thread_id"]
    state = await client.threads.get_state(new_id, subgraphs=True)
    child = state["tasks"][0]["state"]
    assert child is not None
    assert child["next"] == ["inner"]
    assert child["checkpoint"]["thread_id"] == new_id
    result = await client.runs.wait(new_id, "subgraph", command={"resume": "ok"})
    assert result["answer"] == "ok"


def test_copy_with_sync_client(sync_client):
    source = sync_client.threads.create(metadata={"s": 1})["thread_id"]
    copied = sync_client.threads.copy(source)
    assert copied["thread_id"] != source
    assert copied["metadata"] == {"s": 1}
    assert copied["values"] is None


async def test_copy_missing_thread_is_409(client, http):
    missing = str(uuid.uuid4())
    r = http.post(f"/threads/{missing}/copy")
    assert r.status_code == 409
    assert r.json() == {"detail": "Conflict"}
    with pytest.raises(ConflictError):
        await client.threads.copy(missing)


# -- prune ------------------------------------------------------------------------


async def test_prune_delete_strategy(client, http):
    a = (await client.threads.create())["thread_id"]
    b = (await client.threads.create())["thread_id"]
    keep = (await client.threads.create())["thread_id"]
    await run_simple(client, a)
    result = await client.threads.prune([a, b, str(uuid.uuid4())])
    assert result == {"pruned_count": 2}
    assert http.get(f"/threads/{a}").status_code == 404
    assert http.get(f"/threads/{b}").status_code == 404
    assert http.get(f"/threads/{keep}").status_code == 200
    # its checkpoints went too
    await client.threads.create(thread_id=a, graph_id="simple")
    assert await client.threads.get_history(a, limit=10) == []


async def test_prune_keep_latest_leaves_only_the_latest_checkpoint(client, http):
    thread_id = (await client.threads.create(metadata={"m": 1}))["thread_id"]
    await run_simple(client, thread_id)
    before = await client.threads.get_state(thread_id)
    assert len(await client.threads.get_history(thread_id, limit=100)) == 4

    r = http.post("/threads/prune", json={"thread_ids": [thread_id, str(uuid.uuid4())], "strategy": "keep_latest"})
    assert r.status_code == 200
    assert r.json() == {"pruned_count": 1}

    history = await client.threads.get_history(thread_id, limit=100)
    assert len(history) == 1
    assert history[0]["checkpoint_id"] == before["checkpoint_id"]
    assert history[0]["values"] == {"items": ["x", "a", "b"]}
    after = await client.threads.get_state(thread_id)
    assert after["values"] == before["values"]
    assert after["parent_checkpoint"] is None
    thread = await client.threads.get(thread_id)
    assert thread["metadata"]["m"] == 1
    # the thread keeps working
    await client.runs.wait(thread_id, "simple", input={"items": ["y"]})
    assert (await client.threads.get_state(thread_id))["values"]["items"] == ["x", "a", "b", "y", "a", "b"]


async def test_prune_keep_latest_on_interrupted_thread_keeps_it_resumable(client):
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "simple", input={"items": [], "ask": True})
    result = await client.threads.prune([thread_id], strategy="keep_latest")
    assert result == {"pruned_count": 1}
    assert len(await client.threads.get_history(thread_id, limit=100)) == 1
    assert (await client.threads.get_state(thread_id))["interrupts"][0]["value"] == {"question": "approve?"}
    assert (await client.runs.wait(thread_id, "simple", command={"resume": "yes"}))["answer"] == "yes"


def test_prune_sync_and_edge_cases(sync_client, http):
    assert sync_client.threads.prune([]) == {"pruned_count": 0}
    thread_id = sync_client.threads.create()["thread_id"]
    # duplicated ids count once
    assert sync_client.threads.prune([thread_id, thread_id]) == {"pruned_count": 1}
    assert sync_client.threads.prune([thread_id]) == {"pruned_count": 0}
    r = http.post("/threads/prune", json={"thread_ids": ["nope"]})
    assert r.status_code == 422
    assert "thread ID" in r.json()["detail"]
    r = http.post("/threads/prune", json={"thread_ids": [], "strategy": "shred"})
    assert r.status_code == 422
    assert "strategy" in r.json()["detail"]
    r = http.post("/threads/prune", json={})
    assert r.status_code == 422
    assert "thread_ids" in r.json()["detail"]


async def test_prune_validates_every_id_before_deleting_any(client, http):
    thread_id = (await client.threads.create())["thread_id"]
    r = http.post("/threads/prune", json={"thread_ids": [thread_id, "nope"]})
    assert r.status_code == 422
    assert http.get(f"/threads/{thread_id}").status_code == 200


# -- status transitions and cached state --------------------------------------------


async def test_run_caches_values_and_adds_graph_metadata(client, http):
    thread_id = (await client.threads.create(metadata={"mine": 1}))["thread_id"]
    await run_simple(client, thread_id)
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["values"] == {"items": ["x", "a", "b"]}
    assert thread["values"] == (await client.threads.get_state(thread_id))["values"]
    assert thread["metadata"] == {"mine": 1, "graph_id": "simple", "assistant_id": SIMPLE_ASSISTANT}
    raw = http.get(f"/threads/{thread_id}").json()
    assert raw["interrupts"] == {}
    assert raw["error"] is None
    assert raw["state_updated_at"] >= raw["created_at"]


async def test_status_busy_while_a_run_is_pending_then_idle_when_cancelled(client):
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "simple", input={"items": ["x"]}, after_seconds=600)
    assert (await client.threads.get(thread_id))["status"] == "busy"
    assert await client.threads.count(metadata={"graph_id": "simple"}, status="busy") >= 1
    await client.runs.cancel(thread_id, run["run_id"])
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_status_busy_while_running_then_interrupted_with_error_when_cancelled(client):
    thread_id = (await client.threads.create())["thread_id"]
    run_id = await start_hang(client, thread_id)
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "busy"
    assert thread_id in {th["thread_id"] for th in await client.threads.search(status="busy", limit=1000)}
    await client.runs.cancel(thread_id, run_id, wait=True)
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"  # the hang node is still pending
    assert thread["error"] == {
        "error": "UserInterrupt",
        "message": f"interrupt requested via POST /threads/{thread_id}/runs/{run_id}/cancel",
    }


async def test_status_error_after_failed_run_then_idle_after_success(client, sync_client):
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "simple", input={"items": [], "fail": True}, raise_error=False)
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "error"
    assert thread["error"] == {"error": "ValueError", "message": "boom from node_a"}
    sync_client.runs.wait(thread_id, "simple", input={"items": ["ok"], "fail": False})
    thread = sync_client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["error"] is None
    assert thread["values"]["items"][-3:] == ["ok", "a", "b"]


async def test_status_interrupted_caches_interrupts_then_idle_after_resume(client):
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "simple", input={"items": [], "ask": True})
    thread = await client.threads.get(thread_id)
    state = await client.threads.get_state(thread_id)
    assert thread["status"] == "interrupted"
    assert thread["values"] == {"items": ["a"], "ask": True}
    task = state["tasks"][0]
    assert thread["interrupts"] == {
        task["id"]: [{"id": state["interrupts"][0]["id"], "value": {"question": "approve?"}}]
    }
    await client.runs.wait(thread_id, "simple", command={"resume": "yes"})
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["interrupts"] == {}
    assert thread["values"] == {"items": ["a", "b"], "ask": True, "answer": "yes"}


async def test_status_interrupted_for_two_pending_interrupts(client):
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "multi_interrupt", input={"items": []})
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    values = sorted(i["value"]["node"] for items in thread["interrupts"].values() for i in items)
    assert values == ["x", "y"]
    assert len(thread["interrupts"]) == 2


async def test_status_interrupted_at_static_breakpoint(client):
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "breakpoints", input={"items": ["x"]})
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    assert thread["interrupts"] == {}  # static breakpoints carry no interrupt payload
    assert thread["values"] == {"items": ["x", "a"]}
    await client.runs.wait(thread_id, "breakpoints", input=None)
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["values"] == {"items": ["x", "a", "b", "c"]}


async def test_update_state_recomputes_status(client):
    thread_id = (await client.threads.create())["thread_id"]
    await run_simple(client, thread_id)
    await client.threads.update_state(thread_id, {"items": ["u"]}, as_node="a")
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    assert thread["values"] == {"items": ["x", "a", "b", "u"]}
    await client.threads.update_state(thread_id, {"items": ["v"]}, as_node="b")
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["values"] == {"items": ["x", "a", "b", "u", "v"]}


async def test_thread_config_keeps_only_the_assistant_configurable(client):
    assistant = await client.assistants.create("simple", config={"configurable": {"k": "assistant"}})
    thread_id = (await client.threads.create())["thread_id"]
    assert (await client.threads.get(thread_id))["config"] == {}
    await client.runs.wait(
        thread_id, assistant["assistant_id"], input={"items": ["x"]}, config={"configurable": {"r": "run"}}
    )
    thread = await client.threads.get(thread_id)
    assert thread["config"]["configurable"] == {"k": "assistant"}
    assert thread["metadata"]["assistant_id"] == assistant["assistant_id"]
    assert thread["metadata"]["graph_id"] == "simple"


async def test_prune_keep_latest_refuses_a_busy_thread(client, http):
    busy = (await client.threads.create())["thread_id"]
    idle = (await client.threads.create())["thread_id"]
    await client.runs.wait(idle, "simple", input={"items": ["x"]})
    run_id = await start_hang(client, busy)
    r = http.post("/threads/prune", json={"thread_ids": [idle, busy], "strategy": "keep_latest"})
    assert r.status_code == 409 and busy in r.json()["detail"]
    assert len(await client.threads.get_history(idle, limit=10)) > 1  # nothing was pruned
    await client.runs.cancel(busy, run_id, wait=True)
    r = http.post("/threads/prune", json={"thread_ids": [idle, busy], "strategy": "keep_latest"})
    assert r.json() == {"pruned_count": 2}
    assert len(await client.threads.get_history(idle, limit=10)) == 1
