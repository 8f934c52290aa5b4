"""Meta routes: health, info, OpenAPI and docs."""

from __future__ import annotations


def test_ok(http):
    r = http.get("/ok")
    assert r.status_code == 200
    assert r.json() == {"ok": True, "services": {}}


def test_info_flags(http):
    body = http.get("/info").json()
    assert body["flags"]["assistants"] is True
    assert "version" in body and "langgraph_py_version" in body


def test_openapi_is_generated_from_graphdock_models(http):
    spec = http.get("/openapi.json").json()
    assert spec["info"]["title"] == "graphdock"
    for path in ("/assistants", "/threads", "/threads/{thread_id}/runs/stream", "/store/items"):
        assert path in spec["paths"], path
    # request models forbid unknown fields, and the document says so
    create = spec["components"]["schemas"]["AssistantCreate"]
    assert create.get("additionalProperties") is False


def test_docs_page(http):
    r = http.get("/docs")
    assert r.status_code == 200
    assert "text/html" in r.headers["content-type"]
