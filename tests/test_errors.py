"""Fail-closed request handling across the assistants, threads and store routes.

Raw HTTP throughout: bad input must get a 4xx JSON error that says what is wrong
(never a 500), unknown fields are rejected by name, and a rejected request leaves
nothing half-written behind.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

SYSTEM_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
SIMPLE = str(uuid.uuid5(SYSTEM_NAMESPACE, "simple"))
UNKNOWN = "00000000-0000-4000-8000-00000000dead"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def thread_id(url: str) -> str:
    r = httpx.post(f"{url}/threads", json={"metadata": {"purpose": "test_errors"}})
    assert r.status_code == 200, r.text
    return r.json()["thread_id"]


@pytest.fixture(scope="module")
def assistant_id(url: str) -> str:
    r = httpx.post(f"{url}/assistants", json={"graph_id": "simple", "name": "errors"})
    assert r.status_code == 200, r.text
    return r.json()["assistant_id"]


def detail(r: httpx.Response) -> str:
    assert r.headers["content-type"].startswith("application/json"), (r.status_code, r.text)
    body = r.json()
    assert isinstance(body.get("detail"), str), body
    return body["detail"]


# (method, path, a valid body) for every JSON-body route; {a}/{t} are filled in.
BODY_ROUTES = [
    ("POST", "/assistants", {"graph_id": "simple"}),
    ("POST", "/assistants/search", {}),
    ("POST", "/assistants/count", {}),
    ("PATCH", "/assistants/{a}", {}),
    ("POST", "/assistants/{a}/versions", {}),
    ("POST", "/assistants/{a}/latest", {"version": 1}),
    ("POST", "/threads", {}),
    ("POST", "/threads/search", {}),
    ("POST", "/threads/count", {}),
    ("PATCH", "/threads/{t}", {}),
    ("POST", "/threads/{t}/history", {}),
    ("POST", "/threads/prune", {"thread_ids": []}),
    ("PUT", "/store/items", {"namespace": ["errors"], "key": "k", "value": {}}),
    ("DELETE", "/store/items", {"namespace": ["errors"], "key": "k"}),
    ("POST", "/store/items/search", {}),
    ("POST", "/store/namespaces", {}),
]
BODY_IDS = [f"{m} {p}" for m, p, _ in BODY_ROUTES]


def fill(path: str, assistant_id: str, thread_id: str) -> str:
    return path.replace("{a}", assistant_id).replace("{t}", thread_id)


# -- unknown fields ------------------------------------------------------------


@pytest.mark.parametrize("method,path,body", BODY_ROUTES, ids=BODY_IDS)
def test_unknown_body_field_is_422_naming_it(http, assistant_id, thread_id, method, path, body):
    r = http.request(method, fill(path, assistant_id, thread_id), json={**body, "surprise_field": 1})
    assert r.status_code == 422, r.text
    assert "surprise_field" in detail(r)


def test_unknown_fields_are_all_named(http):
    r = http.post("/assistants", json={"graph_id": "simple", "first_extra": 1, "second_extra": 2})
    assert r.status_code == 422
    text = detail(r)
    assert "first_extra" in text and "second_extra" in text


def test_unknown_nested_field_is_named_with_its_path(http, thread_id):
    r = http.post(f"/threads/{thread_id}/history", json={"checkpoint": {"checkpoint_id": None, "oops": 1}})
    assert r.status_code == 422
    assert "checkpoint.oops" in detail(r)


# -- wrong types ---------------------------------------------------------------


WRONG_TYPES = [
    ("POST", "/assistants", {"graph_id": 5}, "graph_id"),
    ("POST", "/assistants", {"graph_id": "simple", "metadata": ["x"]}, "metadata"),
    ("POST", "/assistants", {"graph_id": "simple", "config": "x"}, "config"),
    ("POST", "/assistants", {"graph_id": "simple", "context": [1]}, "context"),
    ("POST", "/assistants", {"graph_id": "simple", "if_exists": "maybe"}, "if_exists"),
    ("POST", "/assistants", {"graph_id": "simple", "name": {"x": 1}}, "name"),
    ("POST", "/assistants", {}, "graph_id"),
    ("POST", "/assistants/search", {"limit": "ten"}, "limit"),
    ("POST", "/assistants/search", {"offset": -1}, "offset"),
    ("POST", "/assistants/search", {"sort_by": "colour"}, "sort_by"),
    ("POST", "/assistants/search", {"select": ["nope"]}, "select"),
    ("POST", "/assistants/count", {"metadata": 1}, "metadata"),
    ("PATCH", "/assistants/{a}", {"metadata": "x"}, "metadata"),
    ("PATCH", "/assistants/{a}", {"config": {"tags": "x"}}, "config.tags"),
    ("POST", "/assistants/{a}/versions", {"limit": 0}, "limit"),
    ("POST", "/assistants/{a}/latest", {"version": "one"}, "version"),
    ("POST", "/assistants/{a}/latest", {}, "version"),
    ("POST", "/threads", {"metadata": []}, "metadata"),
    ("POST", "/threads", {"if_exists": "sometimes"}, "if_exists"),
    ("POST", "/threads/search", {"status": "sleepy"}, "status"),
    ("POST", "/threads/search", {"limit": 1001}, "limit"),
    ("POST", "/threads/count", {"metadata": "x"}, "metadata"),
    ("PATCH", "/threads/{t}", {"metadata": 3}, "metadata"),
    ("POST", "/threads/{t}/history", {"limit": "x"}, "limit"),
    ("PUT", "/store/items", {"namespace": "a", "key": "k", "value": {}}, "namespace"),
    ("PUT", "/store/items", {"namespace": ["a"], "key": 5, "value": {}}, "key"),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": "v"}, "value"),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k"}, "value"),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "ttl": "x"}, "ttl"),
    ("DELETE", "/store/items", {"namespace": ["a"]}, "key"),
    ("POST", "/store/items/search", {"limit": -3}, "limit"),
    ("POST", "/store/namespaces", {"max_depth": "deep"}, "max_depth"),
]


@pytest.mark.parametrize(
    "method,path,body,field", WRONG_TYPES, ids=[f"{m} {p} {f}" for m, p, _, f in WRONG_TYPES]
)
def test_wrong_types_are_422_naming_the_field(http, assistant_id, thread_id, method, path, body, field):
    r = http.request(method, fill(path, assistant_id, thread_id), json=body)
    assert r.status_code == 422, r.text
    assert field in detail(r)


def test_bad_query_parameters_are_422(http):
    r = http.get(f"/assistants/{SIMPLE}/graph", params={"xray": "very"})
    assert r.status_code == 422
    assert "xray" in detail(r)


# -- malformed bodies ----------------------------------------------------------


MALFORMED = [
    ("{not json", "Invalid JSON"),
    ('{"graph_id": "simple",}', "Invalid JSON"),
    ("", None),
    ("[1, 2]", None),
    ("null", None),
    ('"text"', None),
]


@pytest.mark.parametrize("method,path,body", BODY_ROUTES, ids=BODY_IDS)
def test_malformed_bodies_are_4xx_json(http, assistant_id, thread_id, method, path, body):
    target = fill(path, assistant_id, thread_id)
    for content, expected in MALFORMED:
        r = http.request(method, target, content=content, headers=JSON)
        assert r.status_code in (400, 422), (content, r.status_code, r.text)
        text = detail(r)
        if expected:
            assert expected in text, (content, text)


def test_non_json_content_type_is_rejected(http):
    r = http.post("/assistants", content="graph_id=simple", headers={"content-type": "text/plain"})
    assert r.status_code in (400, 415, 422)
    detail(r)


# -- path ids ------------------------------------------------------------------


NON_UUID_ASSISTANT = [
    ("GET", "/assistants/{x}", None),
    ("PATCH", "/assistants/{x}", {}),
    ("DELETE", "/assistants/{x}", None),
    ("POST", "/assistants/{x}/versions", {}),
    ("POST", "/assistants/{x}/latest", {"version": 1}),
    ("GET", "/assistants/{x}/schemas", None),
    ("GET", "/assistants/{x}/subgraphs", None),
    ("GET", "/assistants/{x}/subgraphs/child", None),
]
NON_UUID_THREAD = [
    ("GET", "/threads/{x}", None),
    ("PATCH", "/threads/{x}", {}),
    ("DELETE", "/threads/{x}", None),
    ("GET", "/threads/{x}/state", None),
    ("POST", "/threads/{x}/history", {}),
    ("POST", "/threads/{x}/copy", None),
]


@pytest.mark.parametrize("bad", ["not-a-uuid", "simple", "123"])
@pytest.mark.parametrize(
    "method,path,body", NON_UUID_ASSISTANT, ids=[f"{m} {p}" for m, p, _ in NON_UUID_ASSISTANT]
)
def test_non_uuid_assistant_path_is_422(http, method, path, body, bad):
    r = http.request(method, path.replace("{x}", bad), json=body)
    assert r.status_code == 422, r.text
    assert detail(r) == "Invalid assistant ID: must be a UUID"


@pytest.mark.parametrize(
    "method,path,body", NON_UUID_THREAD, ids=[f"{m} {p}" for m, p, _ in NON_UUID_THREAD]
)
def test_non_uuid_thread_path_is_422(http, method, path, body):
    r = http.request(method, path.replace("{x}", "not-a-uuid"), json=body)
    assert r.status_code == 422, r.text
    assert detail(r) == "Invalid thread ID: must be a UUID"


def test_non_uuid_ids_in_bodies_are_422(http):
    r = http.post("/assistants", json={"graph_id": "simple", "assistant_id": "nope"})
    assert r.status_code == 422
    assert "assistant" in detail(r).lower()
    r = http.post("/threads", json={"thread_id": "nope"})
    assert r.status_code == 422
    assert "thread" in detail(r).lower()


# -- unknown ids ---------------------------------------------------------------


NOT_FOUND = [
    ("GET", f"/assistants/{UNKNOWN}", None),
    ("PATCH", f"/assistants/{UNKNOWN}", {"name": "x"}),
    ("DELETE", f"/assistants/{UNKNOWN}", None),
    ("POST", f"/assistants/{UNKNOWN}/versions", {}),
    ("POST", f"/assistants/{UNKNOWN}/latest", {"version": 1}),
    ("GET", f"/assistants/{UNKNOWN}/graph", None),
    ("GET", f"/assistants/{UNKNOWN}/schemas", None),
    ("GET", f"/assistants/{UNKNOWN}/subgraphs", None),
    ("GET", f"/threads/{UNKNOWN}", None),
    ("PATCH", f"/threads/{UNKNOWN}", {"metadata": {}}),
    ("DELETE", f"/threads/{UNKNOWN}", None),
    ("GET", f"/threads/{UNKNOWN}/state", None),
    ("POST", f"/threads/{UNKNOWN}/history", {}),
]


@pytest.mark.parametrize("method,path,body", NOT_FOUND, ids=[f"{m} {p}" for m, p, _ in NOT_FOUND])
def test_unknown_ids_are_404(http, method, path, body):
    r = http.request(method, path, json=body)
    assert r.status_code == 404, r.text
    detail(r)


def test_copy_of_unknown_thread_is_409(http):
    r = http.post(f"/threads/{UNKNOWN}/copy")
    assert r.status_code == 409
    detail(r)


def test_unknown_graph_ids_are_404(http):
    for method, path, body in (
        ("POST", "/assistants", {"graph_id": "ghost"}),
        ("POST", "/assistants/search", {"graph_id": "ghost"}),
        ("POST", "/assistants/count", {"graph_id": "ghost"}),
    ):
        r = http.request(method, path, json=body)
        assert r.status_code == 404, (path, r.text)
        assert "ghost" in detail(r)


def test_unknown_route_and_method_are_json_4xx(http):
    r = http.get("/no/such/route")
    assert r.status_code == 404
    detail(r)
    r = http.put("/assistants/search", json={})
    assert r.status_code == 405
    detail(r)


# -- nothing half-written ------------------------------------------------------


def _assistant_exists(http: httpx.Client, assistant_id: str) -> bool:
    r = http.get(f"/assistants/{assistant_id}")
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


FAILING_CREATES = [
    ({"graph_id": "ghost"}, 404),
    ({"graph_id": "context", "config": {"configurable": {"a": 1}}, "context": {"b": 2}}, 400),
    ({"graph_id": "simple", "extra": True}, 422),
    ({"graph_id": "simple", "config": {"recursion_limit": "x"}}, 422),
    ({"graph_id": "simple", "config": {"configurable": {"bad\u0000key": 1}}}, 422),
    ({"graph_id": "simple", "context": {"bad\u0000key": 1}}, 422),
]


@pytest.mark.parametrize("body,status", FAILING_CREATES)
def test_failed_assistant_create_leaves_no_row(http, body, status):
    assistant_id = str(uuid.uuid4())
    tag = {"suite": uuid.uuid4().hex}
    r = http.post("/assistants", json={**body, "assistant_id": assistant_id, "metadata": tag})
    assert r.status_code == status, r.text
    detail(r)
    assert not _assistant_exists(http, assistant_id)
    assert http.post("/assistants/count", json={"metadata": tag}).json() == 0
    assert http.post("/assistants/search", json={"metadata": tag}).json() == []
    r = http.post(f"/assistants/{assistant_id}/versions", json={})
    assert r.status_code == 404


UNSTORABLE = [
    '{"graph_id": "simple", "assistant_id": "%s", "metadata": {"n": 123456789012345678901234567890}}',
    '{"graph_id": "simple", "assistant_id": "%s", "metadata": {"n": NaN}}',
    '{"graph_id": "simple", "assistant_id": "%s", "context": {"t": Infinity}}',
    '{"graph_id": "simple", "assistant_id": "%s", "name": "\\ud800"}',
]


@pytest.mark.parametrize("template", UNSTORABLE)
def test_unstorable_assistant_values_are_422_and_leave_no_row(http, template):
    assistant_id = str(uuid.uuid4())
    r = http.post("/assistants", content=template % assistant_id, headers=JSON)
    assert r.status_code == 422, r.text
    detail(r)
    assert not _assistant_exists(http, assistant_id)


def test_failed_assistant_patch_leaves_no_version(http):
    created = http.post(
        "/assistants", json={"graph_id": "context", "context": {"model": "m"}, "metadata": {"k": 1}}
    ).json()
    assistant_id = created["assistant_id"]
    for body, status in (
        ({"config": {"configurable": {"model": "x"}}, "context": {"model": "y"}}, 400),
        ({"graph_id": "ghost", "name": "renamed"}, 404),
        ({"name": "renamed", "unexpected": 1}, 422),
        ({"metadata": {"k": 2}, "config": {"recursion_limit": "x"}}, 422),
    ):
        r = http.patch(f"/assistants/{assistant_id}", json=body)
        assert r.status_code == status, (body, r.text)
    r = http.patch(
        f"/assistants/{assistant_id}",
        content='{"metadata": {"k": 123456789012345678901234567890}}',
        headers=JSON,
    )
    assert r.status_code == 422
    assert http.get(f"/assistants/{assistant_id}").json() == created
    versions = http.post(f"/assistants/{assistant_id}/versions", json={}).json()
    assert [v["version"] for v in versions] == [1]


def test_failed_set_latest_changes_nothing(http):
    created = http.post("/assistants", json={"graph_id": "simple", "name": "keep"}).json()
    assistant_id = created["assistant_id"]
    assert http.post(f"/assistants/{assistant_id}/latest", json={"version": 2}).status_code == 404
    assert http.post(f"/assistants/{assistant_id}/latest", json={"version": -1}).status_code in (404, 422)
    assert http.get(f"/assistants/{assistant_id}").json() == created


def test_failed_thread_create_leaves_no_row(http):
    for body in ({"bogus": 1}, {"metadata": "x"}, {"if_exists": "x"}):
        thread_id = str(uuid.uuid4())
        r = http.post("/threads", json={**body, "thread_id": thread_id})
        assert r.status_code == 422, r.text
        assert http.get(f"/threads/{thread_id}").status_code == 404


def test_failed_thread_patch_changes_nothing(http, thread_id):
    before = http.get(f"/threads/{thread_id}").json()
    r = http.patch(f"/threads/{thread_id}", json={"metadata": {"x": 1}, "extra": 1})
    assert r.status_code == 422
    assert http.get(f"/threads/{thread_id}").json()["metadata"] == before["metadata"]


def test_failed_store_put_stores_nothing(http):
    ns = f"err{uuid.uuid4().hex}"
    for body in (
        {"namespace": [ns], "key": "k", "value": {"v": 1}, "index": ["v"]},
        {"namespace": [ns], "key": "k", "value": {"v": 1}, "ttl": -5},
        {"namespace": [ns], "key": "k", "value": {"v": 1}, "extra": 1},
        {"namespace": [ns, "a.b"], "key": "k", "value": {"v": 1}},
    ):
        r = http.put("/store/items", json=body)
        assert r.status_code == 422, (body, r.text)
        detail(r)
    r = http.put(
        "/store/items",
        content='{"namespace": ["%s"], "key": "k", "value": {"n": 123456789012345678901234567890}}' % ns,
        headers=JSON,
    )
    assert r.status_code == 422
    assert http.get("/store/items", params={"namespace": ns, "key": "k"}).json() is None
    found = http.post("/store/items/search", json={"namespace_prefix": [ns]}).json()
    assert found == {"items": []}
    assert http.post("/store/namespaces", json={"prefix": [ns]}).json() == {"namespaces": []}


def test_failed_store_delete_deletes_nothing(http):
    ns = f"err{uuid.uuid4().hex}"
    http.put("/store/items", json={"namespace": [ns], "key": "k", "value": {"v": 1}})
    r = http.request("DELETE", "/store/items", json={"namespace": [ns], "key": "k", "extra": 1})
    assert r.status_code == 422
    assert http.get("/store/items", params={"namespace": ns, "key": "k"}).json()["value"] == {"v": 1}
