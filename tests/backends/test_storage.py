"""The :class:`graphdock.backends.base.Storage` contract, against every adapter.

Rows are plain dicts shaped like the API's objects: timestamps ISO-8601 strings in UTC
with microseconds (as :func:`graphdock.serde.iso` writes them), JSON columns Python
values that come back exactly as written (key order included).
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any

import pytest

from graphdock.backends import Backend
from graphdock.errors import Conflict, NotFound

from .conftest import BackendOpener, add_run, assistant_row, at, new_id, run_row, thread_defaults, thread_row

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")

ASSISTANT_KEYS = {
    "assistant_id", "graph_id", "config", "context", "metadata", "name", "description",
    "version", "created_at", "updated_at",
}  # fmt: skip
THREAD_KEYS = {
    "thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "config",
    "status", "values", "interrupts", "error",
}  # fmt: skip
RUN_KEYS = {
    "run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status", "metadata",
    "kwargs", "multitask_strategy", "attempt",
}  # fmt: skip


def assert_timestamps(row: dict[str, Any], *keys: str) -> None:
    for key in keys:
        value = row[key]
        assert isinstance(value, str) and ISO.match(value), f"{key}: {value!r} is not serde.iso's form"
        assert datetime.fromisoformat(value).utcoffset() is not None


def ids(rows: list[dict[str, Any]], key: str) -> list[str]:
    return [row[key] for row in rows]


# -- assistants -----------------------------------------------------------------------


async def test_put_assistant_creates_then_keeps_or_refuses(backend: Backend) -> None:
    storage = backend.storage
    row = assistant_row(metadata={"owner": "alice"}, config={"configurable": {"x": 1}})
    created, was_created = await storage.put_assistant(row, if_exists="raise")
    assert was_created is True
    assert set(created) >= ASSISTANT_KEYS
    assert await storage.get_assistant(row["assistant_id"]) == created
    assert created["version"] == 1 and created["config"] == {"configurable": {"x": 1}}

    other = {**row, "name": "Other", "metadata": {"owner": "alice", "v": 2}}
    kept, was_created = await storage.put_assistant(other, if_exists="do_nothing")
    assert was_created is False
    assert kept == created  # the existing one, not the one offered
    with pytest.raises(Conflict):
        await storage.put_assistant(other, if_exists="raise")
    # an existing assistant hidden by the filter is a conflict even with do_nothing
    with pytest.raises(Conflict):
        await storage.put_assistant(other, if_exists="do_nothing", auth_filter={"owner": "bob"})
    kept, was_created = await storage.put_assistant(other, if_exists="do_nothing", auth_filter={"owner": "alice"})
    assert (kept, was_created) == (created, False)
    versions = await storage.assistant_versions(row["assistant_id"], metadata=None, limit=10, offset=0)
    assert [v["version"] for v in versions] == [1]


async def test_ensure_system_assistant_creates_once_and_updates_name(
    backend: Backend, make_backend: BackendOpener
) -> None:
    storage = backend.storage
    assistant_id, graph_id = new_id(), f"graph-{new_id()}"
    await storage.ensure_system_assistant(assistant_id, graph_id, "first", None)
    row = await storage.get_assistant(assistant_id)
    assert row is not None
    assert (row["graph_id"], row["name"], row["description"], row["version"]) == (graph_id, "first", None, 1)
    assert row["metadata"] == {"created_by": "system"}
    assert row["config"] == {} and row["context"] == {}
    assert_timestamps(row, "created_at", "updated_at")

    await storage.ensure_system_assistant(assistant_id, graph_id, "second", "described")
    again = await storage.get_assistant(assistant_id)
    assert again is not None
    assert (again["name"], again["description"], again["version"]) == ("second", "described", 1)
    assert again["created_at"] == row["created_at"]

    # several processes starting at once
    other_id = new_id()
    async with make_backend() as peer:
        await asyncio.gather(
            *(
                s.ensure_system_assistant(other_id, graph_id, "same", None)
                for s in (storage, peer.storage, storage, peer.storage)
            )
        )
    assert (await storage.get_assistant(other_id) or {}).get("name") == "same"
    versions = await storage.assistant_versions(other_id, metadata=None, limit=10, offset=0)
    assert [v["version"] for v in versions] == [1]


async def test_get_assistant_honours_auth_filter(backend: Backend) -> None:
    storage = backend.storage
    row, _ = await storage.put_assistant(assistant_row(metadata={"owner": "alice"}), if_exists="raise")
    assert await storage.get_assistant(row["assistant_id"], auth_filter={"owner": "alice"}) == row
    assert await storage.get_assistant(row["assistant_id"], auth_filter={"owner": "bob"}) is None
    assert await storage.get_assistant(new_id()) is None


async def test_patch_assistant_makes_versions(backend: Backend) -> None:
    storage = backend.storage
    row, _ = await storage.put_assistant(
        assistant_row(metadata={"owner": "alice", "stage": "one"}, config={"a": 1}), if_exists="raise"
    )
    aid = row["assistant_id"]
    patched = await storage.patch_assistant(aid, {"config": {"a": 2}, "metadata": {"owner": "alice", "stage": "two"}})
    assert patched is not None
    assert patched["version"] == 2 and patched["config"] == {"a": 2}
    assert patched["name"] == row["name"] and patched["created_at"] == row["created_at"]
    assert patched["updated_at"] >= row["updated_at"]
    assert_timestamps(patched, "created_at", "updated_at")
    assert await storage.get_assistant(aid) == patched

    versions = await storage.assistant_versions(aid, metadata=None, limit=10, offset=0)
    assert [v["version"] for v in versions] == [2, 1]
    assert [v["config"] for v in versions] == [{"a": 2}, {"a": 1}]
    assert versions[0]["assistant_id"] == aid and versions[0]["graph_id"] == row["graph_id"]
    assert_timestamps(versions[0], "created_at")
    only_one = await storage.assistant_versions(aid, metadata={"stage": "one"}, limit=10, offset=0)
    assert [v["version"] for v in only_one] == [1]
    paged = await storage.assistant_versions(aid, metadata=None, limit=1, offset=1)
    assert [v["version"] for v in paged] == [1]

    assert await storage.patch_assistant(aid, {"name": "x"}, auth_filter={"owner": "bob"}) is None
    assert await storage.patch_assistant(new_id(), {"name": "x"}) is None
    assert (await storage.get_assistant(aid) or {}).get("version") == 2


async def test_set_assistant_version(backend: Backend) -> None:
    storage = backend.storage
    row, _ = await storage.put_assistant(
        assistant_row(metadata={"owner": "alice"}, name="v1", config={"v": 1}), if_exists="raise"
    )
    aid = row["assistant_id"]
    await storage.patch_assistant(aid, {"name": "v2", "config": {"v": 2}})
    current = await storage.set_assistant_version(aid, 1)
    assert current is not None
    assert (current["version"], current["name"], current["config"]) == (1, "v1", {"v": 1})
    assert await storage.get_assistant(aid) == current
    # the next patch is the max version + 1, not current + 1
    patched = await storage.patch_assistant(aid, {"name": "v3"})
    assert patched is not None and patched["version"] == 3

    assert await storage.set_assistant_version(aid, 99) is None
    with pytest.raises(NotFound):
        await storage.set_assistant_version(new_id(), 1)
    with pytest.raises(NotFound):
        await storage.set_assistant_version(aid, 1, auth_filter={"owner": "bob"})
    assert (await storage.get_assistant(aid) or {}).get("version") == 3


async def test_delete_assistant(backend: Backend) -> None:
    storage = backend.storage
    row, _ = await storage.put_assistant(assistant_row(metadata={"owner": "alice"}), if_exists="raise")
    aid = row["assistant_id"]
    await storage.patch_assistant(aid, {"name": "changed"})
    assert await storage.delete_assistant(aid, auth_filter={"owner": "bob"}) is False
    assert await storage.get_assistant(aid) is not None
    assert await storage.delete_assistant(aid, auth_filter={"owner": "alice"}) is True
    assert await storage.get_assistant(aid) is None
    assert await storage.assistant_versions(aid, metadata=None, limit=10, offset=0) == []
    assert await storage.delete_assistant(aid) is False
    # the id is free again
    _, created = await storage.put_assistant(assistant_row(assistant_id=aid), if_exists="raise")
    assert created is True


async def _four_assistants(backend: Backend, tag: str) -> tuple[dict[str, str], list[str]]:
    """A, B, C, D created in that order; returns (letter -> id, [graph ids alpha, beta, delta])."""
    g_alpha, g_beta, g_delta = f"ga-{tag}", f"gb-{tag}", f"gd-{tag}"
    specs = {
        "A": (g_alpha, "Alpha One", {"owner": "alice", "tags": ["red", "blue"], "nested": {"k": 1, "j": 2}}),
        "B": (g_beta, "Beta alpha", {"owner": "bob", "tags": ["blue"], "nested": {"k": 2}}),
        "C": (g_alpha, "Gamma", {"owner": "carol", "tags": []}),
        "D": (g_delta, "Delta", {"owner": "alice", "tags": ["green"]}),
    }
    out: dict[str, str] = {}
    for i, (letter, (graph_id, name, metadata)) in enumerate(specs.items()):
        ts = at(i * 10 - 1000)
        row = assistant_row(
            graph_id=graph_id, name=name, metadata={"suite": tag, **metadata}, created_at=ts, updated_at=ts
        )
        await backend.storage.put_assistant(row, if_exists="raise")
        out[letter] = row["assistant_id"]
    return out, [g_alpha, g_beta, g_delta]


async def test_search_and_count_assistants(backend: Backend, tag: str) -> None:
    storage = backend.storage
    letters, (g_alpha, g_beta, g_delta) = await _four_assistants(backend, tag)
    name_of = {v: k for k, v in letters.items()}
    mine = {"suite": tag}

    async def search(**kw: Any) -> list[str]:
        args: dict[str, Any] = dict(
            graph_id=None, name=None, metadata=mine, limit=10, offset=0, sort_by="created_at", sort_order="asc"
        )
        args.update(kw)
        page = await storage.search_assistants(**args)
        return [name_of[r["assistant_id"]] for r in page.rows]

    async def count(**kw: Any) -> int:
        args: dict[str, Any] = dict(graph_id=None, name=None, metadata=mine)
        args.update(kw)
        return await storage.count_assistants(**args)

    assert await search() == ["A", "B", "C", "D"]
    assert await search(graph_id=g_alpha) == ["A", "C"]
    assert await search(graph_id=g_alpha, metadata=None) == ["A", "C"]
    assert await search(name="ALPHA") == ["A", "B"]  # case-insensitive substring
    assert await search(name="mm") == ["C"]
    assert await search(metadata={"suite": tag, "nested": {"k": 1}}) == ["A"]
    assert await search(metadata={"suite": tag, "owner": "alice"}) == ["A", "D"]
    assert await search(metadata={"suite": tag, "owner": "nobody"}) == []
    assert await search(graph_ids=[g_alpha, g_delta]) == ["A", "C", "D"]
    assert await search(graph_ids=[]) == []
    assert await search(graph_ids=[g_beta], graph_id=g_alpha) == []

    assert await search(auth_filter={"owner": "alice"}) == ["A", "D"]
    assert await search(auth_filter={"owner": {"$eq": "bob"}}) == ["B"]
    assert await search(auth_filter={"tags": {"$contains": "blue"}}) == ["A", "B"]
    assert await search(auth_filter={"tags": {"$contains": ["red", "blue"]}}) == ["A"]
    assert await search(auth_filter={"$or": [{"owner": "bob"}, {"owner": "carol"}]}) == ["B", "C"]
    assert await search(auth_filter={"$and": [{"owner": "alice"}, {"tags": {"$contains": "green"}}]}) == ["D"]
    assert await search(auth_filter={"owner": "alice"}, graph_id=g_alpha) == ["A"]
    assert await search(auth_filter={"missing": "x"}) == []

    assert await search(sort_by="name") == ["A", "B", "D", "C"]
    assert await search(sort_by="name", sort_order="desc") == ["C", "D", "B", "A"]
    assert await search(sort_order="desc") == ["D", "C", "B", "A"]
    assert await search(sort_by="no-such-column") == ["A", "B", "C", "D"]  # created_at
    alpha_pair = sorted([letters["A"], letters["C"]])
    by_graph = await search(sort_by="graph_id")
    assert by_graph == [name_of[alpha_pair[0]], name_of[alpha_pair[1]], "B", "D"]  # then assistant_id

    first = await storage.search_assistants(
        graph_id=None, name=None, metadata=mine, limit=2, offset=0, sort_by="created_at", sort_order="asc"
    )
    assert [name_of[r["assistant_id"]] for r in first.rows] == ["A", "B"] and first.has_more is True
    rest = await storage.search_assistants(
        graph_id=None, name=None, metadata=mine, limit=2, offset=2, sort_by="created_at", sort_order="asc"
    )
    assert [name_of[r["assistant_id"]] for r in rest.rows] == ["C", "D"] and rest.has_more is False
    tail = await storage.search_assistants(
        graph_id=None, name=None, metadata=mine, limit=4, offset=3, sort_by="created_at", sort_order="asc"
    )
    assert [name_of[r["assistant_id"]] for r in tail.rows] == ["D"] and tail.has_more is False
    exact = await storage.search_assistants(
        graph_id=None, name=None, metadata=mine, limit=4, offset=0, sort_by="created_at", sort_order="asc"
    )
    assert len(exact.rows) == 4 and exact.has_more is False
    assert exact.rows[0] == await storage.get_assistant(letters["A"])

    assert await count() == 4
    assert await count(graph_id=g_alpha) == 2
    assert await count(name="alpha") == 2
    assert await count(graph_ids=[g_alpha, g_delta]) == 3
    assert await count(auth_filter={"$or": [{"owner": "bob"}, {"owner": "carol"}]}) == 2
    assert await count(metadata={"suite": tag, "nested": {"k": 2}}) == 1


# -- threads --------------------------------------------------------------------------


async def test_create_thread_and_get(backend: Backend) -> None:
    storage = backend.storage
    row = thread_row(metadata={"owner": "alice", "n": 1})
    created, was_created = await storage.create_thread(row, if_exists="raise")
    assert was_created is True
    assert set(created) >= THREAD_KEYS
    assert (created["values"], created["interrupts"], created["error"]) == (None, None, None)
    assert created["status"] == "idle" and created["metadata"] == {"owner": "alice", "n": 1}
    assert await storage.get_thread(row["thread_id"]) == created
    assert_timestamps(created, "created_at", "updated_at", "state_updated_at")

    again, was_created = await storage.create_thread({**row, "metadata": {"n": 2}}, if_exists="do_nothing")
    assert (again, was_created) == (created, False)
    with pytest.raises(Conflict):
        await storage.create_thread(row, if_exists="raise")
    with pytest.raises(Conflict):
        await storage.create_thread(row, if_exists="do_nothing", auth_filter={"owner": "bob"})

    assert await storage.get_thread(row["thread_id"], auth_filter={"owner": "alice"}) == created
    assert await storage.get_thread(row["thread_id"], auth_filter={"owner": "bob"}) is None
    assert await storage.get_thread(new_id()) is None


async def test_patch_thread_merges_metadata(backend: Backend) -> None:
    storage = backend.storage
    row, _ = await storage.create_thread(
        thread_row(metadata={"owner": "alice", "b": {"x": 1}}), if_exists="raise"
    )
    tid = row["thread_id"]
    patched = await storage.patch_thread(tid, metadata={"b": {"y": 2}, "c": 3})
    assert patched is not None
    assert patched["metadata"] == {"owner": "alice", "b": {"y": 2}, "c": 3}  # top-level merge
    assert patched["updated_at"] >= row["updated_at"]
    assert await storage.get_thread(tid) == patched
    assert await storage.patch_thread(tid, metadata={"c": 4}, auth_filter={"owner": "bob"}) is None
    assert await storage.patch_thread(new_id(), metadata={"c": 4}) is None
    assert (await storage.get_thread(tid) or {})["metadata"]["c"] == 3


async def test_delete_thread_removes_its_runs(backend: Backend) -> None:
    storage = backend.storage
    row, _ = await storage.create_thread(thread_row(metadata={"owner": "alice"}), if_exists="raise")
    tid = row["thread_id"]
    runs = [await add_run(backend, tid), await add_run(backend, tid)]
    other = await add_run(backend, new_id())  # on another thread
    assert await storage.delete_thread(tid, auth_filter={"owner": "bob"}) is False
    assert await storage.get_thread(tid) is not None
    assert await storage.delete_thread(tid) is True
    assert await storage.get_thread(tid) is None
    for run in runs:
        assert await storage.get_run(run["run_id"]) is None
    assert await storage.list_runs(tid, limit=10, offset=0, status=None) == []
    assert await storage.inflight_runs(tid) == []
    assert await storage.get_run(other["run_id"]) is not None
    assert await storage.delete_thread(tid) is False


async def test_search_and_count_threads(backend: Backend, tag: str) -> None:
    storage = backend.storage
    names: dict[str, str] = {}
    for i, (letter, metadata) in enumerate(
        [("A", {"owner": "alice"}), ("B", {"owner": "bob"}), ("C", {"owner": "alice", "deep": {"x": 1}}), ("D", {})]
    ):
        ts = at(i * 10 - 1000)
        row = thread_row(metadata={"suite": tag, **metadata}, created_at=ts, updated_at=ts, state_updated_at=ts)
        await storage.create_thread(row, if_exists="raise")
        names[row["thread_id"]] = letter
    tid = {v: k for k, v in names.items()}
    # state: B and C get values (C's updated last), D becomes an error
    await storage.update_thread_state(tid["B"], values={"count": 1, "nested": {"a": 1}}, status="idle", state_updated=True)
    await storage.update_thread_state(tid["C"], values={"count": 2, "nested": {"a": 1, "b": 2}}, status="interrupted", state_updated=True)
    await storage.update_thread_state(tid["D"], error={"error": "ValueError"}, status="error")
    mine = {"suite": tag}

    async def search(**kw: Any) -> list[str]:
        args: dict[str, Any] = dict(
            ids=None, metadata=mine, values=None, status=None, limit=10, offset=0, sort_by="created_at", sort_order="asc"
        )
        args.update(kw)
        page = await storage.search_threads(**args)
        return [names[r["thread_id"]] for r in page.rows]

    async def count(**kw: Any) -> int:
        args: dict[str, Any] = dict(metadata=mine, values=None, status=None)
        args.update(kw)
        return await storage.count_threads(**args)

    assert await search() == ["A", "B", "C", "D"]
    assert await search(ids=[tid["C"], tid["A"]]) == ["A", "C"]
    assert await search(ids=[tid["C"], tid["A"]], metadata=None) == ["A", "C"]
    assert await search(ids=[]) == []
    assert await search(metadata={"suite": tag, "owner": "alice"}) == ["A", "C"]
    assert await search(metadata={"suite": tag, "deep": {"x": 1}}) == ["C"]
    assert await search(values={"nested": {"a": 1}}) == ["B", "C"]
    assert await search(values={"count": 2}) == ["C"]
    assert await search(status="interrupted") == ["C"]
    assert await search(status="idle") == ["A", "B"]
    assert await search(status="error") == ["D"]
    assert await search(auth_filter={"owner": "alice"}) == ["A", "C"]
    assert await search(auth_filter={"$or": [{"owner": "bob"}, {"deep": {"$eq": {"x": 1}}}]}) == ["B", "C"]

    assert await search(sort_order="desc") == ["D", "C", "B", "A"]
    assert await search(sort_by="updated_at") == ["A", "B", "C", "D"]  # in the order updated
    assert await search(sort_by="no-such-column") == ["A", "B", "C", "D"]  # updated_at
    assert await search(sort_by="no-such-column", sort_order="desc") == ["D", "C", "B", "A"]
    assert await search(sort_by="thread_id") == [names[t] for t in sorted(names)]
    assert await search(sort_by="state_updated_at", ids=[tid["B"], tid["C"]]) == ["B", "C"]

    page = await storage.search_threads(
        ids=None, metadata=mine, values=None, status=None, limit=3, offset=0, sort_by="created_at", sort_order="asc"
    )
    assert [names[r["thread_id"]] for r in page.rows] == ["A", "B", "C"] and page.has_more is True
    assert page.rows[1] == await storage.get_thread(tid["B"])
    page = await storage.search_threads(
        ids=None, metadata=mine, values=None, status=None, limit=3, offset=3, sort_by="created_at", sort_order="asc"
    )
    assert [names[r["thread_id"]] for r in page.rows] == ["D"] and page.has_more is False

    assert await count() == 4
    assert await count(status="idle") == 2
    assert await count(values={"nested": {"a": 1}}) == 2
    assert await count(metadata={"suite": tag, "owner": "alice"}, status="interrupted") == 1
    assert await count(auth_filter={"owner": "bob"}) == 1


async def test_update_thread_state(backend: Backend) -> None:
    storage = backend.storage
    row, _ = await storage.create_thread(thread_row(metadata={"a": 1}), if_exists="raise")
    tid = row["thread_id"]
    values = {"messages": [{"type": "ai", "content": "hi"}], "n": 1}
    updated = await storage.update_thread_state(
        tid, values=values, interrupts={}, status="idle", metadata={"b": 2}, state_updated=True
    )
    assert updated is not None
    assert updated["values"] == values and updated["interrupts"] == {} and updated["error"] is None
    assert updated["metadata"] == {"a": 1, "b": 2}
    assert updated["state_updated_at"] >= row["state_updated_at"]
    assert_timestamps(updated, "updated_at", "state_updated_at")
    assert await storage.get_thread(tid) == updated

    # `...` leaves a field alone; None clears it; no status keeps the status
    again = await storage.update_thread_state(tid, error={"error": "ValueError", "message": "x"})
    assert again is not None
    assert again["values"] == values and again["error"] == {"error": "ValueError", "message": "x"}
    assert again["status"] == "idle" and again["state_updated_at"] == updated["state_updated_at"]
    cleared = await storage.update_thread_state(tid, values=None, error=None, status="interrupted")
    assert cleared is not None
    assert (cleared["values"], cleared["error"], cleared["status"]) == (None, None, "interrupted")
    assert await storage.get_thread(tid) == cleared

    # busy while a run is in flight, whatever status is asked for
    run = await add_run(backend, tid)
    assert (await storage.get_thread(tid) or {})["status"] == "busy"
    busy = await storage.update_thread_state(tid, status="idle")
    assert busy is not None and busy["status"] == "busy"
    claimed = await storage.claim_run(run["run_id"])
    assert claimed is not None
    assert (await storage.update_thread_state(tid, status="error") or {})["status"] == "busy"
    await storage.set_run_status(run["run_id"], "success")
    assert (await storage.update_thread_state(tid, status="idle") or {})["status"] == "idle"

    assert await storage.update_thread_state(new_id(), values={"x": 1}, status="idle") is None


# -- runs -------------------------------------------------------------------------------


async def test_create_run_creates_its_thread_or_not(backend: Backend) -> None:
    storage = backend.storage
    tid = new_id()
    run = run_row(tid, metadata={"m": 1})
    with pytest.raises(NotFound):
        await storage.create_run(
            run, thread=thread_defaults(), if_not_exists="reject", multitask_strategy="enqueue"
        )
    assert await storage.get_run(run["run_id"]) is None
    assert await storage.get_thread(tid) is None

    created, inflight = await storage.create_run(
        run,
        thread=thread_defaults({"graph_id": "agent", "x": 1}, {"tags": ["t"]}),
        if_not_exists="create",
        multitask_strategy="enqueue",
    )
    assert inflight == []
    assert set(created) >= RUN_KEYS
    assert (created["status"], created["attempt"], created["metadata"]) == ("pending", 0, {"m": 1})
    assert await storage.get_run(run["run_id"]) == created
    assert_timestamps(created, "created_at", "updated_at")
    thread = await storage.get_thread(tid)
    assert thread is not None
    assert thread["status"] == "busy"
    assert thread["metadata"] == {"graph_id": "agent", "x": 1} and thread["config"] == {"tags": ["t"]}
    assert_timestamps(thread, "created_at", "updated_at", "state_updated_at")


async def test_create_run_merges_thread_metadata_and_reports_inflight(backend: Backend) -> None:
    storage = backend.storage
    row, _ = await storage.create_thread(thread_row(metadata={"a": 1, "b": 1}), if_exists="raise")
    tid = row["thread_id"]
    r1, inflight = await storage.create_run(
        run_row(tid, created_at=at(-30)),
        thread=thread_defaults({"b": 2, "c": 3}),
        if_not_exists="reject",
        multitask_strategy="enqueue",
    )
    assert inflight == []
    thread = await storage.get_thread(tid)
    assert thread is not None
    assert thread["metadata"] == {"a": 1, "b": 2, "c": 3} and thread["status"] == "busy"
    assert list(thread["metadata"]) == ["a", "b", "c"]  # merged as {**old, **new}

    r2, inflight = await storage.create_run(
        run_row(tid, created_at=at(-20)), thread=thread_defaults(), if_not_exists="reject", multitask_strategy="enqueue"
    )
    assert inflight == [r1["run_id"]]
    _, inflight = await storage.create_run(
        run_row(tid, created_at=at(-10), multitask_strategy="interrupt"),
        thread=thread_defaults(),
        if_not_exists="reject",
        multitask_strategy="interrupt",
    )
    assert inflight == [r1["run_id"], r2["run_id"]]  # oldest first

    rejected = run_row(tid, multitask_strategy="reject")
    with pytest.raises(Conflict):
        await storage.create_run(rejected, thread=thread_defaults({"d": 4}), if_not_exists="reject", multitask_strategy="reject")
    assert await storage.get_run(rejected["run_id"]) is None
    assert "d" not in (await storage.get_thread(tid) or {})["metadata"]
    assert len(await storage.inflight_runs(tid)) == 3

    # once nothing is in flight, reject lets the run in
    for run in await storage.inflight_runs(tid):
        await storage.set_run_status(run["run_id"], "success")
    accepted, inflight = await storage.create_run(
        rejected, thread=thread_defaults(), if_not_exists="reject", multitask_strategy="reject"
    )
    assert inflight == [] and accepted["status"] == "pending"


async def test_create_run_started(backend: Backend) -> None:
    storage = backend.storage
    tid = new_id()
    first = await add_run(backend, tid, start=True)
    assert (first["status"], first["attempt"]) == ("running", 1)
    assert await storage.get_run(first["run_id"]) == first
    # a run in flight: written pending
    second = await add_run(backend, tid, start=True)
    assert (second["status"], second["attempt"]) == ("pending", 0)
    assert (await storage.get_run(second["run_id"]) or {}).get("status") == "pending"


async def test_get_and_list_runs(backend: Backend) -> None:
    storage = backend.storage
    tid = new_id()
    runs = [await add_run(backend, tid, created_at=at(i * 10 - 100)) for i in range(5)]
    first = runs[0]
    assert await storage.get_run(first["run_id"]) == first
    assert await storage.get_run(first["run_id"], tid) == first
    assert await storage.get_run(first["run_id"], new_id()) is None
    assert await storage.get_run(new_id()) is None

    newest_first = [r["run_id"] for r in reversed(runs)]
    listed = await storage.list_runs(tid, limit=10, offset=0, status=None)
    assert ids(listed, "run_id") == newest_first
    assert listed[-1] == first
    assert ids(await storage.list_runs(tid, limit=2, offset=1, status=None), "run_id") == newest_first[1:3]
    await storage.set_run_status(runs[1]["run_id"], "success")
    await storage.set_run_status(runs[3]["run_id"], "success")
    assert ids(await storage.list_runs(tid, limit=10, offset=0, status="success"), "run_id") == [
        runs[3]["run_id"], runs[1]["run_id"]
    ]  # fmt: skip
    assert ids(await storage.list_runs(tid, limit=1, offset=1, status="pending"), "run_id") == [runs[2]["run_id"]]
    assert await storage.list_runs(new_id(), limit=10, offset=0, status=None) == []


async def test_delete_run(backend: Backend) -> None:
    storage = backend.storage
    tid = new_id()
    run = await add_run(backend, tid)
    assert await storage.delete_run(run["run_id"], new_id()) is False
    assert await storage.delete_run(run["run_id"], tid) is True
    assert await storage.get_run(run["run_id"]) is None
    assert await storage.delete_run(run["run_id"], tid) is False
    assert await storage.get_thread(tid) is not None


async def test_claim_run_once_only(backend: Backend, make_backend: BackendOpener) -> None:
    storage = backend.storage
    run = await add_run(backend, new_id())
    claimed = await storage.claim_run(run["run_id"])
    assert claimed is not None
    assert (claimed["status"], claimed["attempt"]) == ("running", 1)
    assert claimed["updated_at"] >= run["updated_at"]
    assert await storage.get_run(run["run_id"]) == claimed
    assert await storage.claim_run(run["run_id"]) is None
    assert await storage.claim_run(new_id()) is None

    # two processes racing for one run
    async with make_backend() as peer:
        for _ in range(3):
            race = await add_run(backend, new_id())
            results = await asyncio.gather(
                storage.claim_run(race["run_id"]), peer.storage.claim_run(race["run_id"]),
                storage.claim_run(race["run_id"]), peer.storage.claim_run(race["run_id"]),
            )  # fmt: skip
            assert len([r for r in results if r is not None]) == 1, results


async def test_claim_refused_while_another_run_of_the_thread_runs(backend: Backend) -> None:
    storage = backend.storage
    tid = new_id()
    first = await add_run(backend, tid, created_at=at(-20))
    second = await add_run(backend, tid, created_at=at(-10))
    assert await storage.claim_run(first["run_id"]) is not None
    assert await storage.claim_run(second["run_id"]) is None
    assert (await storage.get_run(second["run_id"]) or {}).get("status") == "pending"
    await storage.finish_run(first["run_id"], "success", thread_status="idle")
    claimed = await storage.claim_run(second["run_id"])
    assert claimed is not None and claimed["attempt"] == 1


async def test_release_run_makes_a_running_run_pending_again(backend: Backend) -> None:
    storage = backend.storage
    tid = new_id()
    run = await add_run(backend, tid)
    assert await storage.claim_run(run["run_id"]) is not None
    await storage.release_run(run["run_id"])
    row = await storage.get_run(run["run_id"])
    assert row is not None and row["status"] == "pending"
    assert ids(await storage.inflight_runs(tid), "run_id") == [run["run_id"]]
    assert (await storage.get_thread(tid) or {}).get("status") == "busy"
    again = await storage.claim_run(run["run_id"])
    assert again is not None and again["attempt"] == 2  # the next claim counts the next attempt
    # only a running run is handed back
    await storage.finish_run(run["run_id"], "success", thread_status="idle")
    await storage.release_run(run["run_id"])
    assert (await storage.get_run(run["run_id"]) or {}).get("status") == "success"
    await storage.release_run(new_id())


async def test_cancel_pending_run(backend: Backend) -> None:
    storage = backend.storage
    tid = new_id()
    run = await add_run(backend, tid)
    assert await storage.cancel_pending_run(run["run_id"], tid, delete=False) is True
    assert (await storage.get_run(run["run_id"]) or {}).get("status") == "interrupted"
    assert (await storage.get_thread(tid) or {}).get("status") == "idle"
    assert await storage.cancel_pending_run(run["run_id"], tid, delete=False) is False

    deleted = await add_run(backend, tid)
    assert await storage.cancel_pending_run(deleted["run_id"], tid, delete=True) is True
    assert await storage.get_run(deleted["run_id"]) is None
    assert (await storage.get_thread(tid) or {}).get("status") == "idle"

    # claimed meanwhile: nothing changes
    claimed = await add_run(backend, tid)
    assert await storage.claim_run(claimed["run_id"]) is not None
    assert await storage.cancel_pending_run(claimed["run_id"], tid, delete=False) is False
    assert await storage.cancel_pending_run(claimed["run_id"], tid, delete=True) is False
    assert (await storage.get_run(claimed["run_id"]) or {}).get("status") == "running"
    assert (await storage.get_thread(tid) or {}).get("status") == "busy"
    assert await storage.cancel_pending_run(new_id(), tid, delete=False) is False


async def test_cancel_pending_run_restores_the_thread_status(backend: Backend) -> None:
    storage = backend.storage
    tid = new_id()
    first = await add_run(backend, tid, created_at=at(-20))
    second = await add_run(backend, tid, created_at=at(-10))
    await storage.update_thread_state(tid, interrupts={"task": [{"value": "ask", "id": "i1"}]})
    # another run still in flight: busy
    assert await storage.cancel_pending_run(first["run_id"], tid, delete=False) is True
    assert (await storage.get_thread(tid) or {}).get("status") == "busy"
    # the last one: the recorded interrupts make it interrupted
    assert await storage.cancel_pending_run(second["run_id"], tid, delete=True) is True
    assert (await storage.get_thread(tid) or {}).get("status") == "interrupted"


async def test_finish_run_records_the_thread_state(backend: Backend) -> None:
    storage = backend.storage
    tid = new_id()
    run = await add_run(backend, tid, created_at=at(-20))
    before = await storage.get_thread(tid)
    assert before is not None
    claimed = await storage.claim_run(run["run_id"])
    assert claimed is not None
    values = {"messages": ["done"]}
    await storage.finish_run(run["run_id"], "success", thread_status="idle", values=values, interrupts={})
    finished = await storage.get_run(run["run_id"])
    assert finished is not None and finished["status"] == "success" and finished["attempt"] == 1
    thread = await storage.get_thread(tid)
    assert thread is not None
    assert (thread["status"], thread["values"], thread["interrupts"]) == ("idle", values, {})
    assert thread["state_updated_at"] >= before["state_updated_at"]

    # interrupted, with another run pending: the thread stays busy until that one ends
    second = await add_run(backend, tid, created_at=at(-10))
    third = await add_run(backend, tid, created_at=at(-5))
    await storage.claim_run(second["run_id"])
    interrupts = {"task": [{"value": "ask", "id": "i1"}]}
    await storage.finish_run(second["run_id"], "interrupted", thread_status="interrupted", interrupts=interrupts)
    thread = await storage.get_thread(tid)
    assert thread is not None
    assert thread["status"] == "busy" and thread["values"] == values and thread["interrupts"] == interrupts
    await storage.claim_run(third["run_id"])
    error = {"error": "ValueError", "message": "boom"}
    await storage.finish_run(third["run_id"], "error", thread_status="error", error=error)
    thread = await storage.get_thread(tid)
    assert thread is not None
    assert (thread["status"], thread["error"], thread["values"]) == ("error", error, values)
    assert (await storage.get_run(third["run_id"]) or {}).get("status") == "error"


async def test_finish_run_deleting_the_thread(backend: Backend) -> None:
    storage = backend.storage
    tid, other = new_id(), new_id()
    run = await add_run(backend, tid, start=True)
    kept = await add_run(backend, other)
    await storage.finish_run(run["run_id"], "success", thread_status="idle", values={"x": 1}, delete_thread=True)
    assert await storage.get_thread(tid) is None
    assert await storage.get_run(run["run_id"]) is None
    assert await storage.get_run(kept["run_id"]) is not None
    # a run that is gone: nothing to do, no error
    await storage.finish_run(new_id(), "success", thread_status="idle")


async def test_set_run_status_inflight_and_runs_with_status(backend: Backend) -> None:
    storage = backend.storage
    tid = new_id()
    runs = [await add_run(backend, tid, created_at=at(i * 10 - 100)) for i in range(4)]
    run_ids = [r["run_id"] for r in runs]
    changed = await storage.set_run_status(run_ids[0], "success")
    assert changed is not None and changed["status"] == "success" and changed["run_id"] == run_ids[0]
    assert await storage.get_run(run_ids[0]) == changed
    assert_timestamps(changed, "updated_at")
    assert await storage.set_run_status(new_id(), "success") is None
    await storage.claim_run(run_ids[2])

    assert ids(await storage.inflight_runs(tid), "run_id") == run_ids[1:]  # oldest first
    assert await storage.inflight_runs(new_id()) == []

    mine = set(run_ids)
    pending = [r for r in await storage.runs_with_status(["pending"]) if r["run_id"] in mine]
    assert ids(pending, "run_id") == [run_ids[1], run_ids[3]]
    both = [r for r in await storage.runs_with_status(["pending", "running"]) if r["run_id"] in mine]
    assert ids(both, "run_id") == run_ids[1:]
    assert both[1] == await storage.get_run(run_ids[2])
    done = [r for r in await storage.runs_with_status(["success"]) if r["run_id"] in mine]
    assert ids(done, "run_id") == [run_ids[0]]


# -- values -------------------------------------------------------------------------------

ODD = {
    "zeta": 1,
    "alpha": {"nested": [1, 2.5, None, True, False, {"deep": "x"}], "empty": {}, "list": []},
    "mid": "héllo wörld — 你好 🌍 \"quoted\" \\ back\nline",
    "": "empty key",
    "big": 2**53 + 1,
    "neg": -0.125,
}


async def test_json_round_trip_keeps_values_and_key_order(backend: Backend) -> None:
    storage = backend.storage
    assistant, _ = await storage.put_assistant(
        assistant_row(config={"configurable": ODD}, context=ODD, metadata=ODD, description="déscription ✓"),
        if_exists="raise",
    )
    got = await storage.get_assistant(assistant["assistant_id"])
    assert got is not None
    assert got["config"] == {"configurable": ODD} and got["context"] == ODD and got["metadata"] == ODD
    assert list(got["metadata"]) == list(ODD) and list(got["config"]["configurable"]) == list(ODD)
    assert got["description"] == "déscription ✓"

    thread, _ = await storage.create_thread(thread_row(metadata=ODD, config={"configurable": ODD}), if_exists="raise")
    tid = thread["thread_id"]
    assert thread["metadata"] == ODD and list(thread["metadata"]) == list(ODD)
    await storage.update_thread_state(tid, values=ODD, interrupts={"b": [ODD], "a": []}, error=ODD)
    got = await storage.get_thread(tid)
    assert got is not None
    assert got["metadata"] == ODD and got["config"] == {"configurable": ODD}
    assert got["values"] == ODD and list(got["values"]) == list(ODD)
    assert got["interrupts"] == {"b": [ODD], "a": []} and list(got["interrupts"]) == ["b", "a"]
    assert got["error"] == ODD

    kwargs = {"input": ODD, "config": {"configurable": ODD}, "stream_mode": ["values", "updates"], "resumable": True}
    run = await add_run(backend, tid, metadata=ODD, kwargs=kwargs)
    got = await storage.get_run(run["run_id"])
    assert got is not None
    assert got["kwargs"] == kwargs and list(got["kwargs"]) == list(kwargs)
    assert list(got["kwargs"]["input"]) == list(ODD)
    assert got["metadata"] == ODD and list(got["metadata"]) == list(ODD)
    # lists stay lists and scalars keep their types
    assert got["kwargs"]["input"]["big"] == 2**53 + 1 and isinstance(got["kwargs"]["input"]["zeta"], int)


async def test_rows_keep_the_timestamps_written(backend: Backend) -> None:
    storage = backend.storage
    ts = at(-12345.678)
    assistant, _ = await storage.put_assistant(assistant_row(created_at=ts, updated_at=ts), if_exists="raise")
    assert (await storage.get_assistant(assistant["assistant_id"]) or {}).get("created_at") == ts
    thread, _ = await storage.create_thread(
        thread_row(created_at=ts, updated_at=ts, state_updated_at=ts), if_exists="raise"
    )
    got = await storage.get_thread(thread["thread_id"])
    assert got is not None and (got["created_at"], got["state_updated_at"]) == (ts, ts)
    run = await add_run(backend, thread["thread_id"], created_at=ts)
    assert (await storage.get_run(run["run_id"]) or {}).get("created_at") == ts
    future = at(60_000)  # created_at in the future: a run with after_seconds
    delayed = await add_run(backend, new_id(), created_at=future)
    assert (await storage.get_run(delayed["run_id"]) or {}).get("created_at") == future


# -- several processes ----------------------------------------------------------------------


@pytest.mark.parametrize("thread_exists", [True, False], ids=["existing-thread", "new-thread"])
async def test_concurrent_reject_lets_exactly_one_run_in(
    backend: Backend, make_backend: BackendOpener, thread_exists: bool
) -> None:
    tid = new_id()
    if thread_exists:
        await backend.storage.create_thread(thread_row(thread_id=tid), if_exists="raise")
    async with make_backend() as peer:
        storages = [backend.storage, peer.storage] * 4
        results = await asyncio.gather(
            *(
                storage.create_run(
                    run_row(tid, multitask_strategy="reject"),
                    thread=thread_defaults(),
                    if_not_exists="create",
                    multitask_strategy="reject",
                )
                for storage in storages
            ),
            return_exceptions=True,
        )
    accepted = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(accepted) == 1, results
    assert all(isinstance(r, Conflict) for r in refused), refused
    inflight = await backend.storage.inflight_runs(tid)
    assert ids(inflight, "run_id") == [accepted[0][0]["run_id"]]


# -- queue statistics -----------------------------------------------------------------

DAY_MS = 86_400_000.0


async def test_queue_stats_counts_and_waits(backend: Backend) -> None:
    storage = backend.storage
    await storage.ping()
    before = await storage.queue_stats()
    assert set(before) == {
        "n_pending", "n_running", "pending_runs_wait_time_max_secs",
        "pending_runs_wait_time_med_secs", "pending_unblocked_runs_wait_time_max_secs",
    }  # fmt: skip
    blocked, free = new_id(), new_id()
    # older than anything else in the database: these set the maximum waits
    running = await add_run(backend, blocked, created_at=at(-3000 * DAY_MS))
    assert await storage.claim_run(running["run_id"]) is not None
    waiting = await add_run(backend, blocked, created_at=at(-2000 * DAY_MS))  # behind the running run
    unblocked = await add_run(backend, free, created_at=at(-1000 * DAY_MS))
    try:
        stats = await storage.queue_stats()
        assert stats["n_pending"] == before["n_pending"] + 2
        assert stats["n_running"] == before["n_running"] + 1
        assert abs(stats["pending_runs_wait_time_max_secs"] - 2000 * 86400) < 60
        assert abs(stats["pending_unblocked_runs_wait_time_max_secs"] - 1000 * 86400) < 60
        assert 0 <= stats["pending_runs_wait_time_med_secs"] <= stats["pending_runs_wait_time_max_secs"]
    finally:
        await storage.finish_run(running["run_id"], "success", thread_status="idle")
        for row in (waiting, unblocked):
            await storage.cancel_pending_run(row["run_id"], row["thread_id"], delete=True)
    after = await storage.queue_stats()
    assert (after["n_pending"], after["n_running"]) == (before["n_pending"], before["n_running"])
