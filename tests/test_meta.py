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


def test_default_cors_allows_any_origin_and_exposes_pagination(http):
    r = http.options(
        "/threads/search",
        headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] in ("*", "https://ui.example")
    r = http.post("/assistants/search", json={"limit": 1}, headers={"Origin": "https://ui.example"})
    exposed = r.headers["access-control-expose-headers"].lower()
    assert "x-pagination-total" in exposed and "content-location" in exposed


def test_http_cors_from_config(tmp_path):
    import json

    import httpx

    from conftest import GRAPHS, ServerProcess

    cfg = tmp_path / "langgraph.json"
    cfg.write_text(json.dumps({
        "graphs": {"simple": str(GRAPHS / "simple.py") + ":graph"},
        "http": {"cors": {"allow_origins": ["https://app.example"], "allow_methods": ["GET", "POST"],
                          "allow_headers": ["*"]}},
    }))
    proc = ServerProcess(tmp_path / "data", config=cfg).start()
    try:
        with httpx.Client(base_url=proc.url) as c:
            ok = c.options("/threads/search", headers={"Origin": "https://app.example",
                                                       "Access-Control-Request-Method": "POST"})
            assert ok.headers["access-control-allow-origin"] == "https://app.example"
            other = c.options("/threads/search", headers={"Origin": "https://evil.example",
                                                          "Access-Control-Request-Method": "POST"})
            assert "access-control-allow-origin" not in other.headers
    finally:
        proc.stop()
