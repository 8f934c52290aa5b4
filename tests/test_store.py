"""The store API: items (put/get/delete), search and namespace listing.

Every test works under its own root label, so tests never see each other's items.
The SDK validates namespace labels on the client side, so malformed namespaces are
sent with raw HTTP.
"""

from __future__ import annotations

import asyncio

import uuid
from datetime import datetime

import httpx
import pytest

ITEM_KEYS = {"namespace", "key", "value", "created_at", "updated_at"}


def root() -> str:
    return f"st{uuid.uuid4().hex}"


def put(http: httpx.Client, namespace: list[str], key: str, value: dict, **extra) -> None:
    r = http.put("/store/items", json={"namespace": namespace, "key": key, "value": value, **extra})
    assert r.status_code == 204, r.text


# -- put / get / delete --------------------------------------------------------


async def test_put_get_roundtrip(client):
    ns = [root(), "users"]
    assert await client.store.put_item(ns, "u1", {"name": "Ada", "langs": ["py"], "n": 1}) is None
    item = await client.store.get_item(ns, "u1")
    assert set(item) == ITEM_KEYS
    assert item["namespace"] == ns
    assert item["key"] == "u1"
    assert item["value"] == {"name": "Ada", "langs": ["py"], "n": 1}
    assert datetime.fromisoformat(item["created_at"]).utcoffset().total_seconds() == 0
    assert datetime.fromisoformat(item["updated_at"]) >= datetime.fromisoformat(item["created_at"])


def test_put_get_roundtrip_sync(sync_client):
    ns = [root()]
    sync_client.store.put_item(ns, "k", {"deep": {"list": [1, {"x": None}], "flag": True}})
    item = sync_client.store.get_item(ns, "k")
    assert item["namespace"] == ns
    assert item["value"] == {"deep": {"list": [1, {"x": None}], "flag": True}}


async def test_put_replaces_whole_value(client):
    ns = [root()]
    await client.store.put_item(ns, "k", {"a": 1, "b": 2})
    first = await client.store.get_item(ns, "k")
    await asyncio.sleep(1.05)  # the store's timestamps have whole seconds: the next put is later
    await client.store.put_item(ns, "k", {"c": 3})
    second = await client.store.get_item(ns, "k")
    assert second["value"] == {"c": 3}
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] >= first["updated_at"]


def test_put_response_is_204_without_body(http):
    r = http.put("/store/items", json={"namespace": [root()], "key": "k", "value": {}})
    assert r.status_code == 204
    assert r.content == b""


async def test_get_missing_item_is_200_null(client, http):
    ns = [root()]
    assert await client.store.get_item(ns, "absent") is None
    r = http.get("/store/items", params={"namespace": ns[0], "key": "absent"})
    assert r.status_code == 200
    assert r.content == b"null"


def test_get_uses_dot_joined_namespace(http):
    ns = [root(), "a", "b"]
    put(http, ns, "k", {"v": 1})
    r = http.get("/store/items", params={"namespace": ".".join(ns), "key": "k"})
    assert r.status_code == 200
    assert r.json()["namespace"] == ns
    # a prefix of the namespace is a different namespace
    r = http.get("/store/items", params={"namespace": ".".join(ns[:2]), "key": "k"})
    assert r.json() is None


def test_get_without_key_is_400(http):
    r = http.get("/store/items", params={"namespace": root()})
    assert r.status_code == 400
    assert r.json() == {"error": "Key is required"}


def test_get_without_namespace_is_422(http):
    r = http.get("/store/items", params={"key": "k"})
    assert r.status_code == 422
    assert "namespace" in r.json()["detail"]


async def test_delete(client, sync_client, http):
    ns = [root()]
    await client.store.put_item(ns, "k", {"v": 1})
    await client.store.delete_item(ns, "k")
    assert await client.store.get_item(ns, "k") is None
    # deleting an absent item is not an error
    sync_client.store.delete_item(ns, "k")
    r = http.request("DELETE", "/store/items", json={"namespace": ns, "key": "never"})
    assert r.status_code == 204
    assert r.content == b""


async def test_items_are_keyed_by_namespace_and_key(client):
    base = root()
    await client.store.put_item([base, "x"], "k", {"where": "x"})
    await client.store.put_item([base, "y"], "k", {"where": "y"})
    await client.store.put_item([base, "x"], "k2", {"where": "x2"})
    assert (await client.store.get_item([base, "x"], "k"))["value"] == {"where": "x"}
    assert (await client.store.get_item([base, "y"], "k"))["value"] == {"where": "y"}
    await client.store.delete_item([base, "x"], "k")
    assert await client.store.get_item([base, "x"], "k") is None
    assert (await client.store.get_item([base, "y"], "k"))["value"] == {"where": "y"}
    assert (await client.store.get_item([base, "x"], "k2"))["value"] == {"where": "x2"}


# -- namespace validation ------------------------------------------------------


@pytest.mark.parametrize("labels", [["a.b"], [""], ["ok", "a.b"], ["ok", ""], ["nul\u0000"]])
def test_invalid_namespace_labels_are_422(http, labels):
    ns = [root(), *labels]
    r = http.put("/store/items", json={"namespace": ns, "key": "k", "value": {}})
    assert r.status_code == 422, r.text
    assert "Namespace label" in r.text
    r = http.request("DELETE", "/store/items", json={"namespace": ns, "key": "k"})
    assert r.status_code == 422, r.text
    r = http.post("/store/items/search", json={"namespace_prefix": ns})
    assert r.status_code == 422, r.text


def test_invalid_namespace_in_get_is_422(http):
    for namespace in ("a..b", ".a", "a.", "."):
        r = http.get("/store/items", params={"namespace": namespace, "key": "k"})
        assert r.status_code == 422, namespace
        assert "Namespace label" in r.json()["detail"]


def test_non_string_label_is_422(http):
    r = http.put("/store/items", json={"namespace": ["a", 5], "key": "k", "value": {}})
    assert r.status_code == 422
    assert "namespace" in r.json()["detail"]


def test_empty_namespace_is_400(http):
    r = http.put("/store/items", json={"namespace": [], "key": "k", "value": {}})
    assert r.status_code == 400
    assert r.json() == {"detail": "Namespace cannot be empty."}
    r = http.request("DELETE", "/store/items", json={"namespace": [], "key": "k"})
    assert r.status_code == 400
    assert r.json() == {"detail": "Namespace cannot be empty."}


def test_sdk_refuses_dotted_labels_before_sending(sync_client):
    with pytest.raises(ValueError):
        sync_client.store.put_item(["a.b"], "k", {})


# -- index and ttl -------------------------------------------------------------


def test_index_list_without_configured_index_is_422_and_stores_nothing(http, sync_client):
    ns = [root()]
    r = http.put("/store/items", json={"namespace": ns, "key": "k", "value": {"t": "x"}, "index": ["t"]})
    assert r.status_code == 422
    assert "index" in r.json()["detail"]
    assert sync_client.store.get_item(ns, "k") is None


async def test_index_false_and_null_are_accepted(client, http):
    ns = [root()]
    await client.store.put_item(ns, "off", {"t": "x"}, index=False)
    put(http, ns, "default", {"t": "y"}, index=None)
    assert (await client.store.get_item(ns, "off"))["value"] == {"t": "x"}
    assert (await client.store.get_item(ns, "default"))["value"] == {"t": "y"}
    r = http.put("/store/items", json={"namespace": ns, "key": "k", "value": {}, "index": True})
    assert r.status_code == 422
    assert "index" in r.json()["detail"]


async def test_put_with_ttl_is_accepted_and_item_readable(client, sync_client):
    ns = [root()]
    await client.store.put_item(ns, "ttl", {"v": 1}, ttl=60)
    item = await client.store.get_item(ns, "ttl")
    assert item["value"] == {"v": 1}
    assert (await client.store.get_item(ns, "ttl", refresh_ttl=True))["value"] == {"v": 1}
    assert sync_client.store.get_item(ns, "ttl", refresh_ttl=False)["value"] == {"v": 1}
    found = await client.store.search_items(ns, refresh_ttl=True)
    assert [i["key"] for i in found["items"]] == ["ttl"]
    # ttl null means "never expires"; a fractional number of minutes is fine
    sync_client.store.put_item(ns, "forever", {"v": 2}, ttl=None)
    await client.store.put_item(ns, "frac", {"v": 3}, ttl=0.5)
    assert (await client.store.get_item(ns, "frac"))["value"] == {"v": 3}


def test_invalid_ttl_is_422(http):
    for ttl in (-1, "soon", [1]):
        r = http.put("/store/items", json={"namespace": [root()], "key": "k", "value": {}, "ttl": ttl})
        assert r.status_code == 422, ttl
        assert "ttl" in r.json()["detail"]


def test_value_must_be_an_object(http):
    for value in ([1, 2], "text", 3, None):
        r = http.put("/store/items", json={"namespace": [root()], "key": "k", "value": value})
        assert r.status_code == 422, value
        assert "value" in r.json()["detail"]


def test_unstorable_values_are_422_not_500(http):
    ns = [root()]
    too_big = '{"namespace": ["%s"], "key": "k", "value": {"n": 123456789012345678901234567890}}' % ns[0]
    r = http.put("/store/items", content=too_big, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "value.n" in r.json()["detail"]
    nan = '{"namespace": ["%s"], "key": "k", "value": {"x": [NaN]}}' % ns[0]
    r = http.put("/store/items", content=nan, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "value.x[0]" in r.json()["detail"]
    surrogate = '{"namespace": ["%s"], "key": "\\ud800", "value": {}}' % ns[0]
    r = http.put("/store/items", content=surrogate, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "key" in r.json()["detail"]
    assert http.get("/store/items", params={"namespace": ns[0], "key": "k"}).json() is None


# -- search --------------------------------------------------------------------


def seed(http: httpx.Client, base: str) -> None:
    put(http, [base, "a"], "k1", {"n": 1, "kind": "x", "tags": ["p"]})
    put(http, [base, "a", "b"], "k2", {"n": 2, "kind": "y"})
    put(http, [base, "c"], "k3", {"n": 3, "kind": "x"})


async def test_search_by_namespace_prefix(client, http):
    base = root()
    seed(http, base)
    found = await client.store.search_items([base])
    assert set(found) == {"items"}
    assert {i["key"] for i in found["items"]} == {"k1", "k2", "k3"}
    for item in found["items"]:
        assert set(item) == ITEM_KEYS | {"score"}
        assert item["score"] is None
        assert item["namespace"][0] == base
    under_a = await client.store.search_items([base, "a"])
    assert {i["key"] for i in under_a["items"]} == {"k1", "k2"}
    assert (await client.store.search_items([base, "zzz"]))["items"] == []


def test_search_filters(sync_client, http):
    base = root()
    seed(http, base)

    def keys(filter: dict) -> set[str]:
        return {i["key"] for i in sync_client.store.search_items([base], filter=filter)["items"]}

    assert keys({"kind": "x"}) == {"k1", "k3"}
    assert keys({"kind": "x", "n": 3}) == {"k3"}
    assert keys({"n": {"$eq": 2}}) == {"k2"}
    assert keys({"n": {"$ne": 2}}) == {"k1", "k3"}
    assert keys({"n": {"$gt": 1}}) == {"k2", "k3"}
    assert keys({"n": {"$gte": 2}}) == {"k2", "k3"}
    assert keys({"n": {"$lt": 2}}) == {"k1"}
    assert keys({"n": {"$lte": 2}}) == {"k1", "k2"}
    assert keys({"n": {"$gt": 1, "$lt": 3}}) == {"k2"}
    assert keys({"kind": "z"}) == set()
    assert keys({"missing": 1}) == set()


async def test_search_limit_and_offset(client):
    base = root()
    for i in range(5):
        await client.store.put_item([base], f"k{i}", {"i": i})
    assert len((await client.store.search_items([base]))["items"]) == 5
    assert len((await client.store.search_items([base], limit=2))["items"]) == 2
    pages = [
        (await client.store.search_items([base], limit=2, offset=offset))["items"]
        for offset in (0, 2, 4)
    ]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(i["key"] for p in pages for i in p) == [f"k{i}" for i in range(5)]
    assert (await client.store.search_items([base], offset=5))["items"] == []


def test_search_default_limit_is_10(http):
    base = root()
    for i in range(12):
        put(http, [base], f"k{i}", {"i": i})
    r = http.post("/store/items/search", json={"namespace_prefix": [base]})
    assert r.status_code == 200
    assert len(r.json()["items"]) == 10


async def test_search_query_without_index_is_ignored(client, http):
    base = root()
    seed(http, base)
    plain = await client.store.search_items([base])
    queried = await client.store.search_items([base], query="anything at all")
    assert {i["key"] for i in queried["items"]} == {i["key"] for i in plain["items"]}
    assert all(i["score"] is None for i in queried["items"])


def test_search_bad_parameters_are_4xx(http):
    base = root()
    r = http.post("/store/items/search", json={"namespace_prefix": [base], "filter": {"n": {"$near": 1}}})
    assert r.status_code == 400
    assert "$near" in r.json()["detail"]
    for body, field in (
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"filter": "x"}, "filter"),
        ({"namespace_prefix": "a"}, "namespace_prefix"),
        ({"query": 5}, "query"),
    ):
        r = http.post("/store/items/search", json={"namespace_prefix": [base], **body})
        assert r.status_code == 422, body
        assert field in r.json()["detail"], (body, r.text)


# -- namespaces ----------------------------------------------------------------


async def _namespaces(client, **kwargs) -> list[tuple[str, ...]]:
    found = await client.store.list_namespaces(**kwargs)
    assert set(found) == {"namespaces"}
    return [tuple(ns) for ns in found["namespaces"]]


async def test_list_namespaces_prefix_suffix_depth(client):
    base = root()
    for ns in ([base, "a", "b"], [base, "a", "c"], [base, "d"], [base, "a", "b", "e"]):
        await client.store.put_item(ns, "k", {})
    every = await _namespaces(client, prefix=[base])
    assert set(every) == {(base, "a", "b"), (base, "a", "c"), (base, "d"), (base, "a", "b", "e")}
    assert len(every) == 4
    assert set(await _namespaces(client, prefix=[base, "a"])) == {
        (base, "a", "b"), (base, "a", "c"), (base, "a", "b", "e"),
    }
    assert await _namespaces(client, prefix=[base], suffix=["c"]) == [(base, "a", "c")]
    assert await _namespaces(client, prefix=[base], suffix=["b", "e"]) == [(base, "a", "b", "e")]
    depth2 = await _namespaces(client, prefix=[base], max_depth=2)
    assert sorted(depth2) == [(base, "a"), (base, "d")]
    depth3 = await _namespaces(client, prefix=[base], max_depth=3)
    assert sorted(depth3) == [(base, "a", "b"), (base, "a", "c"), (base, "d")]


async def test_list_namespaces_limit_offset(client, sync_client):
    base = root()
    for label in ("a", "b", "c"):
        await client.store.put_item([base, label], "k", {})
    one = await _namespaces(client, prefix=[base], limit=1)
    assert len(one) == 1
    pages = [
        tuple(tuple(ns) for ns in sync_client.store.list_namespaces(prefix=[base], limit=1, offset=o)["namespaces"])
        for o in range(3)
    ]
    assert sorted(ns for page in pages for ns in page) == [(base, "a"), (base, "b"), (base, "c")]
    assert await _namespaces(client, prefix=[base], offset=3) == []


async def test_list_namespaces_without_filters_includes_ours(client):
    base = root()
    await client.store.put_item([base, "only"], "k", {})
    assert (base, "only") in await _namespaces(client, limit=1000)


def test_list_namespaces_bad_parameters(http):
    for body, field in (
        ({"max_depth": 0}, "max_depth"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"prefix": "a"}, "prefix"),
        ({"suffix": [1]}, "suffix"),
    ):
        r = http.post("/store/namespaces", json=body)
        assert r.status_code == 422, body
        assert field in r.json()["detail"], (body, r.text)


async def test_deleted_items_leave_search_and_namespaces(client):
    base = root()
    await client.store.put_item([base, "gone"], "k", {"v": 1})
    await client.store.delete_item([base, "gone"], "k")
    assert (await client.store.search_items([base]))["items"] == []
    assert await _namespaces(client, prefix=[base]) == []


# -- the graphs see the same store ---------------------------------------------


async def test_graph_nodes_read_the_server_store(client):
    name = f"Ada-{uuid.uuid4().hex[:8]}"
    await client.store.put_item(["users"], "user_123", {"name": name})
    try:
        out = await client.runs.wait(None, "context", input={})
        assert out["name"] == name
    finally:
        await client.store.delete_item(["users"], "user_123")
