"""Assistants: CRUD, versions, search/count, introspection and system assistants.

Black-box through a real server: the official SDK (async and sync clients) and raw
HTTP where headers or exact error bodies matter. Each test tags the assistants it
creates with a unique metadata marker so searches only see its own rows.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import httpx
import pytest

from conftest import CONFIG, GRAPHS, ServerProcess

SYSTEM_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
ASSISTANT_KEYS = {
    "assistant_id", "graph_id", "config", "context", "metadata", "name",
    "created_at", "updated_at", "version", "description",
}
VERSION_KEYS = {
    "assistant_id", "version", "graph_id", "config", "context", "metadata",
    "created_at", "name", "description",
}
SCHEMA_KEYS = {"input_schema", "output_schema", "state_schema", "config_schema", "context_schema"}


def system_id(graph_id: str) -> str:
    return str(uuid.uuid5(SYSTEM_NAMESPACE, graph_id))


def marker() -> dict[str, str]:
    """Metadata that only the calling test's assistants carry."""
    return {"suite": uuid.uuid4().hex}


def registered_graphs() -> list[str]:
    return sorted(json.loads(CONFIG.read_text())["graphs"])


def status_of(exc_info: pytest.ExceptionInfo[httpx.HTTPStatusError]) -> int:
    return exc_info.value.response.status_code


def node_ids(drawn: dict) -> set[str]:
    return {n["id"] for n in drawn["nodes"]}


def edge_pairs(drawn: dict) -> set[tuple[str, str]]:
    return {(e["source"], e["target"]) for e in drawn["edges"]}


# -- create --------------------------------------------------------------------


async def test_create_defaults(client):
    a = await client.assistants.create("simple")
    assert set(a) == ASSISTANT_KEYS
    assert uuid.UUID(a["assistant_id"])
    assert a["graph_id"] == "simple"
    assert a["name"] == "Untitled"
    assert a["version"] == 1
    assert a["config"] == {}
    assert a["context"] == {}
    assert a["metadata"] == {}
    assert a["description"] is None
    created = datetime.fromisoformat(a["created_at"])
    assert created.utcoffset().total_seconds() == 0
    assert a["created_at"] == a["updated_at"]
    assert await client.assistants.get(a["assistant_id"]) == a


def test_create_with_id_name_description_sync(sync_client):
    assistant_id = str(uuid.uuid4())
    a = sync_client.assistants.create(
        "named",
        assistant_id=assistant_id,
        name="My Bot",
        description="answers questions",
        metadata={"owner": "ada", "nested": {"x": 1}},
        config={"tags": ["t1"], "recursion_limit": 7},
    )
    assert a["assistant_id"] == assistant_id
    assert a["graph_id"] == "named"
    assert a["name"] == "My Bot"
    assert a["description"] == "answers questions"
    assert a["metadata"] == {"owner": "ada", "nested": {"x": 1}}
    assert a["config"] == {"tags": ["t1"], "recursion_limit": 7}
    assert a["context"] == {}
    assert sync_client.assistants.get(assistant_id) == a


def test_create_accepts_uppercase_uuid_and_canonicalises(http):
    assistant_id = uuid.uuid4()
    r = http.post("/assistants", json={"graph_id": "simple", "assistant_id": str(assistant_id).upper()})
    assert r.status_code == 200, r.text
    assert r.json()["assistant_id"] == str(assistant_id)
    assert http.get(f"/assistants/{assistant_id}").status_code == 200


async def test_create_existing_id_raises_409(client):
    a = await client.assistants.create("simple", name="original", metadata=marker())
    with pytest.raises(httpx.HTTPStatusError) as e:
        await client.assistants.create("named", assistant_id=a["assistant_id"], name="other")
    assert status_of(e) == 409
    assert a["assistant_id"] in e.value.response.json()["detail"]
    assert await client.assistants.get(a["assistant_id"]) == a
    assert [v["version"] for v in await client.assistants.get_versions(a["assistant_id"])] == [1]


def test_create_existing_id_if_exists_raise_explicit(http):
    assistant_id = str(uuid.uuid4())
    body = {"graph_id": "simple", "assistant_id": assistant_id, "if_exists": "raise"}
    assert http.post("/assistants", json=body).status_code == 200
    r = http.post("/assistants", json=body)
    assert r.status_code == 409
    assert r.json() == {"detail": f"Assistant {assistant_id} already exists"}


async def test_create_existing_id_do_nothing_returns_existing(client, sync_client):
    a = await client.assistants.create("simple", name="first", context={"k": "v"})
    again = await client.assistants.create(
        "named", assistant_id=a["assistant_id"], name="second", if_exists="do_nothing"
    )
    assert again == a
    again_sync = sync_client.assistants.create(
        "simple", assistant_id=a["assistant_id"], if_exists="do_nothing", metadata={"m": 1}
    )
    assert again_sync == a
    assert len(await client.assistants.get_versions(a["assistant_id"])) == 1


async def test_create_unknown_graph_404(client):
    with pytest.raises(httpx.HTTPStatusError) as e:
        await client.assistants.create("no-such-graph")
    assert status_of(e) == 404
    detail = e.value.response.json()["detail"]
    assert "Graph 'no-such-graph' not found" in detail
    assert "'simple'" in detail


async def test_create_config_and_context_both_non_empty_400(client):
    assistant_id = str(uuid.uuid4())
    with pytest.raises(httpx.HTTPStatusError) as e:
        await client.assistants.create(
            "context",
            assistant_id=assistant_id,
            config={"configurable": {"model": "a"}},
            context={"model": "b"},
        )
    assert status_of(e) == 400
    assert "both configurable and context" in e.value.response.json()["detail"]
    with pytest.raises(httpx.HTTPStatusError) as e:
        await client.assistants.get(assistant_id)
    assert status_of(e) == 404


async def test_create_empty_configurable_with_context_is_fine(client):
    a = await client.assistants.create(
        "context", config={"configurable": {}, "tags": ["x"]}, context={"model": "m"}
    )
    assert a["context"] == {"model": "m"}
    assert a["config"] == {"configurable": {"model": "m"}, "tags": ["x"]}


async def test_create_mirrors_configurable_into_context(client):
    a = await client.assistants.create(
        "context", config={"configurable": {"model": "cfg"}, "recursion_limit": 12}
    )
    assert a["config"] == {"configurable": {"model": "cfg"}, "recursion_limit": 12}
    assert a["context"] == {"model": "cfg"}
    assert await client.assistants.get(a["assistant_id"]) == a


def test_create_mirrors_context_into_configurable_sync(sync_client):
    a = sync_client.assistants.create("context", context={"model": "ctx", "temperature": 0.1})
    assert a["context"] == {"model": "ctx", "temperature": 0.1}
    assert a["config"] == {"configurable": {"model": "ctx", "temperature": 0.1}}
    assert sync_client.assistants.get(a["assistant_id"])["config"] == a["config"]


async def test_create_strips_reserved_keys(client):
    a = await client.assistants.create(
        "context",
        metadata={"thread_id": "t", "assistant_id": "a", "run_id": "r", "cron_id": "c", "keep": 1},
        context={"langgraph_auth_user_id": "spoof", "__after_seconds__": 3, "model": "m"},
    )
    assert a["metadata"] == {"keep": 1}
    assert a["context"] == {"model": "m"}
    assert a["config"]["configurable"] == {"model": "m"}


def test_create_invalid_config_422(http):
    for config, field in (
        ({"recursion_limit": "lots"}, "config.recursion_limit"),
        ({"tags": "not-a-list"}, "config.tags"),
        ({"configurable": [1, 2]}, "config.configurable"),
        ("not-an-object", "config"),
    ):
        r = http.post("/assistants", json={"graph_id": "simple", "config": config})
        assert r.status_code == 422, (config, r.text)
        assert field in r.json()["detail"], (config, r.text)


# -- get -----------------------------------------------------------------------


async def test_get_unknown_404(client, sync_client):
    missing = str(uuid.uuid4())
    with pytest.raises(httpx.HTTPStatusError) as e:
        await client.assistants.get(missing)
    assert status_of(e) == 404
    with pytest.raises(httpx.HTTPStatusError) as e:
        sync_client.assistants.get(missing)
    assert status_of(e) == 404


def test_get_non_uuid_422_even_for_graph_ids(http):
    for bad in ("not-a-uuid", "simple", "12345"):
        r = http.get(f"/assistants/{bad}")
        assert r.status_code == 422, bad
        assert r.json() == {"detail": "Invalid assistant ID: must be a UUID"}


# -- patch ---------------------------------------------------------------------


async def test_patch_creates_version_and_merges_metadata_shallowly(client):
    a = await client.assistants.create(
        "simple", name="v1", metadata={"a": 1, "nested": {"x": 1, "y": 2}}
    )
    b = await client.assistants.update(
        a["assistant_id"], metadata={"b": 2, "nested": {"z": 3}, "thread_id": "reserved"}
    )
    assert b["version"] == 2
    assert b["metadata"] == {"a": 1, "b": 2, "nested": {"z": 3}}
    assert b["name"] == "v1"
    assert b["graph_id"] == "simple"
    assert b["created_at"] == a["created_at"]
    assert b["updated_at"] >= a["updated_at"]
    assert await client.assistants.get(a["assistant_id"]) == b
    versions = await client.assistants.get_versions(a["assistant_id"])
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["metadata"] == {"a": 1, "nested": {"x": 1, "y": 2}}


def test_patch_name_description_and_graph_sync(sync_client, http):
    a = sync_client.assistants.create("simple", name="before", description="d1")
    b = sync_client.assistants.update(a["assistant_id"], name="after", graph_id="named")
    assert (b["name"], b["description"], b["graph_id"], b["version"]) == ("after", "d1", "named", 2)
    c = sync_client.assistants.update(a["assistant_id"], description="d2")
    assert (c["name"], c["description"], c["version"]) == ("after", "d2", 3)
    # an explicit null clears the description; an absent field keeps it
    r = http.patch(f"/assistants/{a['assistant_id']}", json={"description": None})
    assert r.status_code == 200
    assert r.json()["description"] is None
    assert r.json()["name"] == "after"


async def test_patch_empty_body_still_creates_version(client):
    a = await client.assistants.create("simple", config={"tags": ["keep"]}, metadata={"m": 1})
    b = await client.assistants.update(a["assistant_id"])
    assert b["version"] == 2
    assert (b["config"], b["context"], b["metadata"]) == (a["config"], a["context"], a["metadata"])


async def test_patch_config_replaces_and_keeps_context(client):
    a = await client.assistants.create(
        "context", config={"tags": ["old"], "configurable": {"model": "m1"}}
    )
    b = await client.assistants.update(a["assistant_id"], config={"recursion_limit": 5})
    # the config is replaced; the context was not sent, so it stays and is mirrored
    assert b["config"] == {"recursion_limit": 5, "configurable": {"model": "m1"}}
    assert b["context"] == {"model": "m1"}
    # an empty config is "not given"
    c = await client.assistants.update(a["assistant_id"], config={})
    assert c["config"] == b["config"]
    assert c["version"] == 3


async def test_patch_configurable_becomes_context(client):
    a = await client.assistants.create("context", context={"model": "m1"})
    b = await client.assistants.update(
        a["assistant_id"], config={"configurable": {"model": "m2", "temperature": 1.5}}
    )
    assert b["context"] == {"model": "m2", "temperature": 1.5}
    assert b["config"] == {"configurable": {"model": "m2", "temperature": 1.5}}


async def test_patch_context_replaces_and_mirrors(client):
    a = await client.assistants.create(
        "context", config={"tags": ["t"], "configurable": {"model": "m1", "temperature": 0.2}}
    )
    b = await client.assistants.update(a["assistant_id"], context={"model": "m2"})
    assert b["context"] == {"model": "m2"}
    assert b["config"] == {"tags": ["t"], "configurable": {"model": "m2"}}
    c = await client.assistants.update(a["assistant_id"], config={"tags": ["u"]}, context={"model": "m3"})
    assert c["context"] == {"model": "m3"}
    assert c["config"] == {"tags": ["u"], "configurable": {"model": "m3"}}
    # an empty context clears both spellings
    d = await client.assistants.update(a["assistant_id"], context={})
    assert d["context"] == {}
    assert d["config"] == {"tags": ["u"]}


async def test_patch_both_configurable_and_context_400_no_new_version(client):
    a = await client.assistants.create("context", context={"model": "m1"})
    with pytest.raises(httpx.HTTPStatusError) as e:
        await client.assistants.update(
            a["assistant_id"], config={"configurable": {"model": "x"}}, context={"model": "y"}
        )
    assert status_of(e) == 400
    assert await client.assistants.get(a["assistant_id"]) == a
    assert len(await client.assistants.get_versions(a["assistant_id"])) == 1


async def test_patch_unknown_assistant_or_graph_404(client):
    with pytest.raises(httpx.HTTPStatusError) as e:
        await client.assistants.update(str(uuid.uuid4()), name="x")
    assert status_of(e) == 404
    a = await client.assistants.create("simple")
    with pytest.raises(httpx.HTTPStatusError) as e:
        await client.assistants.update(a["assistant_id"], graph_id="no-such-graph")
    assert status_of(e) == 404
    assert "no-such-graph" in e.value.response.json()["detail"]
    assert await client.assistants.get(a["assistant_id"]) == a


# -- delete --------------------------------------------------------------------


async def test_delete_then_gone_everywhere(client, http):
    a = await client.assistants.create("simple", metadata=marker())
    assistant_id = a["assistant_id"]
    r = http.delete(f"/assistants/{assistant_id}")
    assert r.status_code == 204
    assert r.content == b""
    for method, path, body in (
        ("GET", f"/assistants/{assistant_id}", None),
        ("PATCH", f"/assistants/{assistant_id}", {"name": "x"}),
        ("DELETE", f"/assistants/{assistant_id}", None),
        ("POST", f"/assistants/{assistant_id}/versions", {}),
        ("POST", f"/assistants/{assistant_id}/latest", {"version": 1}),
        ("GET", f"/assistants/{assistant_id}/graph", None),
        ("GET", f"/assistants/{assistant_id}/schemas", None),
        ("GET", f"/assistants/{assistant_id}/subgraphs", None),
    ):
        r = http.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
    assert await client.assistants.search(metadata=a["metadata"]) == []


def test_delete_sync(sync_client):
    a = sync_client.assistants.create("simple")
    assert sync_client.assistants.delete(a["assistant_id"]) is None
    with pytest.raises(httpx.HTTPStatusError) as e:
        sync_client.assistants.delete(a["assistant_id"])
    assert status_of(e) == 404


async def test_delete_with_delete_threads(client):
    a = await client.assistants.create("simple")
    used = await client.threads.create()
    await client.runs.wait(used["thread_id"], a["assistant_id"], input={"items": []})
    other = await client.threads.create()
    await client.runs.wait(other["thread_id"], "simple", input={"items": []})
    await client.assistants.delete(a["assistant_id"], delete_threads=True)
    with pytest.raises(httpx.HTTPStatusError) as e:
        await client.threads.get(used["thread_id"])
    assert status_of(e) == 404
    assert (await client.threads.get(other["thread_id"]))["thread_id"] == other["thread_id"]


async def test_delete_without_delete_threads_keeps_threads(client):
    a = await client.assistants.create("simple")
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], a["assistant_id"], input={"items": []})
    await client.assistants.delete(a["assistant_id"])
    kept = await client.threads.get(thread["thread_id"])
    assert kept["metadata"]["assistant_id"] == a["assistant_id"]


async def test_delete_interrupts_in_flight_runs(client):
    a = await client.assistants.create("hang")
    thread = await client.threads.create()
    run_id = None
    deleted = False
    async for part in client.runs.stream(
        thread["thread_id"], a["assistant_id"], input={}, stream_mode="custom"
    ):
        if part.event == "metadata":
            run_id = part.data["run_id"]
        elif part.event == "custom" and part.data == {"status": "hanging"} and not deleted:
            # the run is now in its node, which only ends by cancellation
            await client.assistants.delete(a["assistant_id"])
            deleted = True
    assert deleted and run_id is not None
    await client.runs.join(thread["thread_id"], run_id)
    finished = await client.runs.get(thread["thread_id"], run_id)
    assert finished["status"] == "interrupted"


# -- search and count ----------------------------------------------------------


async def test_search_by_graph_id(client):
    tag = marker()
    mine = await client.assistants.create("named", metadata=tag)
    await client.assistants.create("simple", metadata=tag)
    found = await client.assistants.search(graph_id="named", metadata=tag)
    assert [a["assistant_id"] for a in found] == [mine["assistant_id"]]
    every_named = await client.assistants.search(graph_id="named", limit=1000)
    assert {a["graph_id"] for a in every_named} == {"named"}
    assert system_id("named") in {a["assistant_id"] for a in every_named}


def test_search_unknown_graph_404(http):
    r = http.post("/assistants/search", json={"graph_id": "no-such-graph"})
    assert r.status_code == 404
    assert "no-such-graph" in r.json()["detail"]


async def test_search_name_is_case_insensitive_substring(client):
    tag = marker()
    for name in ("Alpha Bot", "the alphabet", "Beta"):
        await client.assistants.create("simple", name=name, metadata=tag)
    names = {a["name"] for a in await client.assistants.search(name="ALPHA", metadata=tag)}
    assert names == {"Alpha Bot", "the alphabet"}
    found = await client.assistants.search(name="bet", metadata=tag)
    assert {a["name"] for a in found} == {"Beta", "the alphabet"}
    assert await client.assistants.search(name="gamma", metadata=tag) == []


async def test_search_metadata_containment_including_nested(client):
    tag = marker()
    a = await client.assistants.create(
        "simple", metadata={**tag, "team": {"name": "x", "size": 3}, "tags": ["p", "q"], "n": 1}
    )
    b = await client.assistants.create("simple", metadata={**tag, "team": {"name": "y"}, "n": 1})

    async def ids(metadata: dict) -> set[str]:
        return {r["assistant_id"] for r in await client.assistants.search(metadata={**tag, **metadata})}

    assert await ids({}) == {a["assistant_id"], b["assistant_id"]}
    assert await ids({"n": 1}) == {a["assistant_id"], b["assistant_id"]}
    assert await ids({"team": {"name": "x"}}) == {a["assistant_id"]}
    assert await ids({"team": {"name": "x", "size": 3}}) == {a["assistant_id"]}
    assert await ids({"team": {"name": "x", "size": 4}}) == set()
    assert await ids({"team": {}}) == {a["assistant_id"], b["assistant_id"]}
    assert await ids({"tags": ["p", "q"]}) == {a["assistant_id"]}
    assert await ids({"missing": 1}) == set()
    assert await ids({"n": "1"}) == set()


def test_search_pagination_headers(http):
    tag = marker()
    created = [
        http.post("/assistants", json={"graph_id": "simple", "metadata": tag, "name": f"p{i}"}).json()
        for i in range(5)
    ]

    def page(offset: int, limit: int) -> httpx.Response:
        r = http.post("/assistants/search", json={"metadata": tag, "limit": limit, "offset": offset})
        assert r.status_code == 200
        return r

    r = page(0, 2)
    assert len(r.json()) == 2
    assert r.headers["X-Pagination-Next"] == "2"
    assert r.headers["X-Pagination-Total"] == "3"
    r = page(2, 2)
    assert len(r.json()) == 2
    assert r.headers["X-Pagination-Next"] == "4"
    assert r.headers["X-Pagination-Total"] == "5"
    r = page(4, 2)
    assert len(r.json()) == 1
    assert "X-Pagination-Next" not in r.headers
    assert r.headers["X-Pagination-Total"] == "5"
    r = page(0, 5)
    assert len(r.json()) == 5
    assert "X-Pagination-Next" not in r.headers
    assert r.headers["X-Pagination-Total"] == "5"
    r = page(7, 3)
    assert r.json() == []
    assert "X-Pagination-Next" not in r.headers
    assert r.headers["X-Pagination-Total"] == "7"
    seen = [a["assistant_id"] for o in (0, 2, 4) for a in page(o, 2).json()]
    assert sorted(seen) == sorted(a["assistant_id"] for a in created)


async def test_search_object_format_reports_next(client):
    tag = marker()
    for _ in range(3):
        await client.assistants.create("simple", metadata=tag)
    first = await client.assistants.search(metadata=tag, limit=2, response_format="object")
    assert len(first["assistants"]) == 2
    assert first["next"] == "2"
    rest = await client.assistants.search(metadata=tag, limit=2, offset=2, response_format="object")
    assert len(rest["assistants"]) == 1
    assert rest["next"] is None


async def test_search_default_order_is_created_at_desc(client):
    tag = marker()
    ids = [(await client.assistants.create("simple", metadata=tag))["assistant_id"] for _ in range(3)]
    found = await client.assistants.search(metadata=tag)
    assert [a["assistant_id"] for a in found] == ids[::-1]
    asc = await client.assistants.search(metadata=tag, sort_by="created_at", sort_order="asc")
    assert [a["assistant_id"] for a in asc] == ids


async def test_search_sort_by_name_and_updated_at(client):
    tag = marker()
    made = {}
    for name in ("bravo", "alpha", "charlie"):
        made[name] = await client.assistants.create("simple", name=name, metadata=tag)
    asc = await client.assistants.search(metadata=tag, sort_by="name", sort_order="asc")
    assert [a["name"] for a in asc] == ["alpha", "bravo", "charlie"]
    desc = await client.assistants.search(metadata=tag, sort_by="name", sort_order="desc")
    assert [a["name"] for a in desc] == ["charlie", "bravo", "alpha"]
    # sort_order defaults to desc
    default = await client.assistants.search(metadata=tag, sort_by="name")
    assert [a["name"] for a in default] == ["charlie", "bravo", "alpha"]
    await client.assistants.update(made["alpha"]["assistant_id"], name="alpha")
    by_update = await client.assistants.search(metadata=tag, sort_by="updated_at", sort_order="desc")
    assert by_update[0]["assistant_id"] == made["alpha"]["assistant_id"]
    by_id = await client.assistants.search(metadata=tag, sort_by="assistant_id", sort_order="asc")
    assert [a["assistant_id"] for a in by_id] == sorted(a["assistant_id"] for a in made.values())
    by_graph = await client.assistants.search(metadata=tag, sort_by="graph_id")
    assert len(by_graph) == 3


def test_search_select(sync_client, http):
    tag = marker()
    a = sync_client.assistants.create("simple", name="sel", metadata=tag)
    rows = sync_client.assistants.search(metadata=tag, select=["assistant_id", "name"])
    assert rows == [{"assistant_id": a["assistant_id"], "name": "sel"}]
    r = http.post("/assistants/search", json={"metadata": tag, "select": ["assistant_id", "bogus"]})
    assert r.status_code == 422
    assert "select" in r.json()["detail"]


def test_search_rejects_bad_parameters(http):
    for body, field in (
        ({"sort_by": "color"}, "sort_by"),
        ({"sort_order": "sideways"}, "sort_order"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"metadata": "x"}, "metadata"),
        ({"name": 5}, "name"),
    ):
        r = http.post("/assistants/search", json=body)
        assert r.status_code == 422, body
        assert field in r.json()["detail"], (body, r.text)


async def test_search_includes_system_assistants(client):
    found = await client.assistants.search(metadata={"created_by": "system"}, limit=1000)
    by_graph = {a["graph_id"]: a["assistant_id"] for a in found}
    for graph_id in registered_graphs():
        assert by_graph.get(graph_id) == system_id(graph_id), graph_id


async def test_count(client, sync_client, http):
    tag = marker()
    await client.assistants.create("simple", name="count me", metadata=tag)
    await client.assistants.create("simple", name="COUNT too", metadata={**tag, "x": 1})
    await client.assistants.create("named", name="other", metadata=tag)
    assert await client.assistants.count(metadata=tag) == 3
    assert sync_client.assistants.count(metadata={**tag, "x": 1}) == 1
    assert await client.assistants.count(metadata=tag, name="count") == 2
    assert await client.assistants.count(metadata=tag, graph_id="named") == 1
    assert await client.assistants.count(metadata={**tag, "x": 2}) == 0
    r = http.post("/assistants/count", json={"metadata": tag})
    assert r.status_code == 200
    assert r.content == b"3"
    every = await client.assistants.count()
    assert every >= len(registered_graphs()) + 3
    r = http.post("/assistants/count", json={"graph_id": "no-such-graph"})
    assert r.status_code == 404


# -- versions and latest -------------------------------------------------------


async def test_versions_listing(client, sync_client):
    a = await client.assistants.create("simple", name="v1", metadata={"stage": "one"})
    await client.assistants.update(a["assistant_id"], name="v2", metadata={"stage": "two"})
    await client.assistants.update(a["assistant_id"], name="v3", metadata={"stage": "three"})
    versions = await client.assistants.get_versions(a["assistant_id"])
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert [v["name"] for v in versions] == ["v3", "v2", "v1"]
    for v in versions:
        assert set(v) == VERSION_KEYS
        assert v["assistant_id"] == a["assistant_id"]
    assert [v["version"] for v in sync_client.assistants.get_versions(a["assistant_id"], limit=1, offset=1)] == [2]
    assert [v["version"] for v in await client.assistants.get_versions(a["assistant_id"], offset=3)] == []
    two = await client.assistants.get_versions(a["assistant_id"], metadata={"stage": "two"})
    assert [v["version"] for v in two] == [2]


async def test_versions_unknown_assistant_404(client):
    with pytest.raises(httpx.HTTPStatusError) as e:
        await client.assistants.get_versions(str(uuid.uuid4()))
    assert status_of(e) == 404


async def test_set_latest_switches_version_including_context(client):
    a = await client.assistants.create(
        "context", name="first", context={"model": "m1"}, metadata={"s": 1}, description="d1"
    )
    await client.assistants.update(
        a["assistant_id"], name="second", context={"model": "m2"}, metadata={"s": 2}, description="d2"
    )
    back = await client.assistants.set_latest(a["assistant_id"], 1)
    assert back["version"] == 1
    assert back["name"] == "first"
    assert back["description"] == "d1"
    assert back["context"] == {"model": "m1"}
    assert back["config"] == {"configurable": {"model": "m1"}}
    assert back["metadata"] == {"s": 1}
    assert await client.assistants.get(a["assistant_id"]) == back
    # switching does not create a version
    assert [v["version"] for v in await client.assistants.get_versions(a["assistant_id"])] == [2, 1]
    # and runs use the restored context
    out = await client.runs.wait(None, a["assistant_id"], input={})
    assert out["seen"]["model"] == "m1"
    forward = await client.assistants.set_latest(a["assistant_id"], 2)
    assert (forward["version"], forward["context"], forward["name"]) == (2, {"model": "m2"}, "second")
    # the next patch continues after the highest version
    patched = await client.assistants.update(a["assistant_id"], name="third")
    assert patched["version"] == 3


async def test_set_latest_after_going_back_then_patch_numbers_from_max(client):
    a = await client.assistants.create("simple", name="one")
    await client.assistants.update(a["assistant_id"], name="two")
    await client.assistants.set_latest(a["assistant_id"], 1)
    patched = await client.assistants.update(a["assistant_id"], metadata={"k": 1})
    assert patched["version"] == 3
    assert patched["name"] == "one"


async def test_set_latest_unknown_version_or_assistant_404(client, http):
    a = await client.assistants.create("simple")
    with pytest.raises(httpx.HTTPStatusError) as e:
        await client.assistants.set_latest(a["assistant_id"], 9)
    assert status_of(e) == 404
    assert e.value.response.json() == {
        "detail": f"Version 9 not found for assistant {a['assistant_id']}"
    }
    assert await client.assistants.get(a["assistant_id"]) == a
    with pytest.raises(httpx.HTTPStatusError) as e:
        await client.assistants.set_latest(str(uuid.uuid4()), 1)
    assert status_of(e) == 404
    r = http.post(f"/assistants/{a['assistant_id']}/latest", json={"version": "latest"})
    assert r.status_code == 422
    assert "version" in r.json()["detail"]
    r = http.post(f"/assistants/{a['assistant_id']}/latest", json={})
    assert r.status_code == 422
    assert "version" in r.json()["detail"]


# -- graph ---------------------------------------------------------------------


async def test_graph_by_assistant_id_and_by_graph_id(client, http):
    by_id = await client.assistants.get_graph(system_id("simple"))
    by_graph = await client.assistants.get_graph("simple")
    assert by_id == by_graph
    assert node_ids(by_id) == {"__start__", "a", "b", "__end__"}
    assert edge_pairs(by_id) == {("__start__", "a"), ("a", "b"), ("b", "__end__")}
    for node in by_id["nodes"]:
        assert "id" not in (node.get("data") or {})
    a_node = next(n for n in by_id["nodes"] if n["id"] == "a")
    assert a_node["type"] == "runnable"
    assert a_node["data"]["name"] == "a"
    mine = await client.assistants.create("simple")
    assert await client.assistants.get_graph(mine["assistant_id"]) == by_id


def test_graph_of_uncompiled_builder_sync(sync_client):
    drawn = sync_client.assistants.get_graph("builder")
    assert node_ids(drawn) == {"__start__", "one", "two", "__end__"}
    assert edge_pairs(drawn) == {("__start__", "one"), ("one", "two"), ("two", "__end__")}


async def test_graph_xray_shows_subgraph_nodes(client, http):
    plain = await client.assistants.get_graph("subgraph")
    assert "child" in node_ids(plain)
    assert "child:inner" not in node_ids(plain)
    xrayed = await client.assistants.get_graph("subgraph", xray=True)
    assert "child:inner" in node_ids(xrayed)
    assert "child" not in node_ids(xrayed)
    assert await client.assistants.get_graph("subgraph", xray=1) == xrayed
    for value, expect_inner in (("True", True), ("true", True), ("2", True), ("False", False), ("false", False)):
        r = http.get(f"/assistants/{system_id('subgraph')}/graph", params={"xray": value})
        assert r.status_code == 200, value
        assert ("child:inner" in node_ids(r.json())) is expect_inner, value


def test_graph_invalid_xray_422(http):
    for value in ("abc", "0", "-1", "1.5", "yes", ""):
        r = http.get("/assistants/simple/graph", params={"xray": value})
        assert r.status_code == 422, value
        assert r.json() == {"detail": "Invalid xray value"}


def test_graph_bad_ids(http):
    r = http.get("/assistants/no-such-graph/graph")
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "Invalid assistant: 'no-such-graph'" in detail
    assert "simple" in detail
    r = http.get(f"/assistants/{uuid.uuid4()}/graph")
    assert r.status_code == 404


def test_graph_factory_errors_are_client_errors(http):
    r = http.get("/assistants/raising_factory/graph")
    assert r.status_code == 400
    assert r.json() == {"detail": "factory refused"}
    r = http.get("/assistants/bad_return_factory/graph")
    assert r.status_code == 424


# -- schemas and subgraphs -----------------------------------------------------


async def test_schemas_of_simple(client):
    schemas = await client.assistants.get_schemas(system_id("simple"))
    assert set(schemas) == {"graph_id", *SCHEMA_KEYS}
    assert schemas["graph_id"] == "simple"
    assert {"items", "ask", "answer", "fail"} <= set(schemas["input_schema"]["properties"])
    assert "items" in schemas["output_schema"]["properties"]
    assert schemas["state_schema"]["title"] == "simple_state"
    assert {"items", "ask", "answer", "fail"} <= set(schemas["state_schema"]["properties"])
    assert schemas["context_schema"] is None


def test_schemas_context_schema_sync(sync_client):
    a = sync_client.assistants.create("context", context={"model": "x"})
    schemas = sync_client.assistants.get_schemas(a["assistant_id"])
    assert schemas["graph_id"] == "context"
    ctx = schemas["context_schema"]
    assert ctx["title"] == "Ctx"
    assert ctx["properties"]["model"]["default"] == "default-model"
    assert ctx["properties"]["temperature"]["default"] == 0.5
    config = schemas["config_schema"]
    assert set(config["properties"]) == {"model", "temperature"}
    for hidden in ("thread_id", "checkpoint_id", "checkpoint_ns"):
        assert hidden not in config["properties"]


def test_schemas_need_uuid_and_existing_assistant(http):
    r = http.get("/assistants/simple/schemas")
    assert r.status_code == 422
    r = http.get(f"/assistants/{uuid.uuid4()}/schemas")
    assert r.status_code == 404


async def test_subgraphs(client, sync_client):
    sub = system_id("subgraph")
    found = await client.assistants.get_subgraphs(sub)
    assert list(found) == ["child"]
    assert set(found["child"]) == SCHEMA_KEYS
    assert found["child"]["input_schema"]["title"] == "ChildState"
    assert "items" in found["child"]["input_schema"]["properties"]
    assert await client.assistants.get_subgraphs(sub, namespace="child") == found
    assert sync_client.assistants.get_subgraphs(sub, namespace="child", recurse=True) == found
    assert await client.assistants.get_subgraphs(sub, recurse=True) == found
    assert await client.assistants.get_subgraphs(sub, namespace="nope") == {}
    assert await client.assistants.get_subgraphs(system_id("simple")) == {}


def test_subgraphs_namespace_query_form(http):
    r = http.get(f"/assistants/{system_id('subgraph')}/subgraphs", params={"namespace": "child"})
    assert r.status_code == 200
    assert list(r.json()) == ["child"]
    r = http.get("/assistants/subgraph/subgraphs")
    assert r.status_code == 422


# -- system assistants ---------------------------------------------------------


def test_system_assistant_ids_are_uuid5_of_graph_id(http):
    # documented fixed points of uuid5(6ba7b821-9dad-11d1-80b4-00c04fd430c8, graph_id)
    assert system_id("chat") == "eb6db400-e3c8-5d06-a834-015cb89efe69"
    assert system_id("simple") == "5e0f6b46-d00f-5af4-87dc-ea2105ff526d"
    for graph_id in registered_graphs():
        r = http.get(f"/assistants/{system_id(graph_id)}")
        assert r.status_code == 200, graph_id
        body = r.json()
        assert body["graph_id"] == graph_id
        assert body["metadata"].get("created_by") == "system"


def test_system_assistant_names(sync_client):
    expected = {
        "named": "my-named-graph",  # the compiled graph's own name
        "simple": "simple",  # default "LangGraph" name -> graph id
        "builder": "builder",  # uncompiled StateGraph
        "plain_factory": "plain_factory",  # factories -> graph id
    }
    for graph_id, name in expected.items():
        a = sync_client.assistants.get(system_id(graph_id))
        assert a["name"] == name, graph_id
        assert a["description"] is None


async def test_system_assistant_graph_draws_with_its_name(client):
    drawn = await client.assistants.get_graph("named")
    assert node_ids(drawn) == {"__start__", "hello", "__end__"}


# -- factories are only called for introspection -------------------------------


def _factory_records(log_path, probe: str) -> list[dict]:
    if not log_path.exists():
        return []
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    return [r for r in records if probe in (r.get("config_keys") or [])]


async def test_crud_never_calls_factories_introspection_does(client, factory_log):
    probe = f"probe_{uuid.uuid4().hex}"
    a = await client.assistants.create("two_param_factory", context={probe: 1}, metadata={probe: 1})
    assistant_id = a["assistant_id"]
    await client.assistants.get(assistant_id)
    await client.assistants.update(assistant_id, name="renamed")
    await client.assistants.search(metadata={probe: 1})
    await client.assistants.count(metadata={probe: 1})
    await client.assistants.get_versions(assistant_id)
    await client.assistants.set_latest(assistant_id, 1)
    assert _factory_records(factory_log, probe) == []
    await client.assistants.get_graph(assistant_id)
    await client.assistants.get_schemas(assistant_id)
    await client.assistants.get_subgraphs(assistant_id)
    records = _factory_records(factory_log, probe)
    assert len(records) == 3
    assert {r["access_context"] for r in records} == {"assistants.read"}
    assert {r["factory"] for r in records} == {"two_param_factory"}
    await client.assistants.delete(assistant_id)
    assert len(_factory_records(factory_log, probe)) == 3


# -- assistants of graphs this server does not serve ---------------------------


def test_assistants_of_unregistered_graphs_are_hidden(tmp_path):
    data = tmp_path / "data"
    full = ServerProcess(data).start()
    try:
        with httpx.Client(base_url=full.url, timeout=30) as http:
            tag = marker()
            gone = http.post("/assistants", json={"graph_id": "simple", "metadata": tag}).json()
            kept = http.post("/assistants", json={"graph_id": "named", "metadata": tag}).json()
    finally:
        full.stop()
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"named": f"{GRAPHS / 'named.py'}:graph"}}))
    reduced = ServerProcess(data, config=config).start()
    try:
        with httpx.Client(base_url=reduced.url, timeout=30) as http:
            assert http.get(f"/assistants/{kept['assistant_id']}").json() == kept
            for method, path, body in (
                ("GET", f"/assistants/{gone['assistant_id']}", None),
                ("GET", f"/assistants/{system_id('simple')}", None),
                ("PATCH", f"/assistants/{gone['assistant_id']}", {"name": "x"}),
                ("POST", f"/assistants/{gone['assistant_id']}/versions", {}),
                ("POST", f"/assistants/{gone['assistant_id']}/latest", {"version": 1}),
                ("GET", f"/assistants/{gone['assistant_id']}/schemas", None),
            ):
                r = http.request(method, path, json=body)
                assert r.status_code == 404, (method, path, r.text)
            found = http.post("/assistants/search", json={"metadata": tag}).json()
            assert [a["assistant_id"] for a in found] == [kept["assistant_id"]]
            every = http.post("/assistants/search", json={"limit": 1000}).json()
            assert {a["graph_id"] for a in every} == {"named"}
    finally:
        reduced.stop()
