"""The ``http.*`` keys: a custom app (``http.app``) served beside the API, its middleware
order and route auth, request headers copied into runs (``http.configurable_headers``),
route groups turned off (``http.disable_*``) and the whole server under a prefix
(``http.mount_prefix``).

The custom app (tests/http_app/app.py) and the header forwarding run on the embedded
server and on the scaled-out deployment (where the API processes execute no run: the
headers reach a worker through the run). The variants of configuration run embedded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from langgraph_sdk import get_client

from conftest import BACKENDS, ROOT, ServerProcess, make_server
from graphdock.api.custom_app import CustomRoutes
from graphdock.api.headers import HeaderPolicy
from graphdock.api.prefix import MountPrefix
from graphdock.app import create_app
from graphdock.config import ConfigError, Settings, load_config

APP_DIR = Path(__file__).resolve().parent / "http_app"
CONFIG = APP_DIR / "langgraph.json"
ALICE = {"Authorization": "Bearer alice"}
SAMPLE_ID = "00000000-0000-4000-8000-000000000000"


def finish(srv: Any) -> None:
    (getattr(srv, "destroy", None) or srv.stop)()


def write_config(tmp_path: Path, http: dict[str, Any], *, auth: bool = True) -> Path:
    """A langgraph.json in ``tmp_path`` serving the test graph (and auth) of tests/http_app."""
    raw: dict[str, Any] = {"graphs": {"headers": str(APP_DIR / "graph.py") + ":graph"}, "http": http}
    if auth:
        raw["auth"] = {"path": str(APP_DIR / "auth.py") + ":auth"}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.fixture(scope="module", params=BACKENDS)
def app_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data = tmp_path_factory.mktemp("http_app")
    exit_file = data / "lifespan-exits.txt"
    srv = make_server(request.param, data, config=CONFIG, env={"HTTP_APP_EXIT_FILE": str(exit_file)}).start()
    srv.exit_file = exit_file
    yield srv
    finish(srv)


@pytest.fixture
def http(app_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_server.url, timeout=30) as c:
        yield c


def sdk(url: str, **headers: str) -> Any:
    return get_client(url=url, headers={**ALICE, **headers})


# -- the custom app ------------------------------------------------------------------------


def test_custom_route_sees_its_lifespan(http: httpx.Client) -> None:
    r = http.get("/custom/hello", headers=ALICE)
    assert r.status_code == 200, r.text
    assert r.json() == {"hello": "world", "state": "hello from the lifespan", "app_state": "lifespan ran"}


def test_custom_route_auth(http: httpx.Client) -> None:
    r = http.get("/custom/me")
    assert r.status_code == 401
    assert r.json() == {"detail": "missing or unknown token"}
    r = http.get("/custom/me", headers={"Authorization": "Bearer mallory"})
    assert r.status_code == 401
    r = http.get("/custom/me", headers=ALICE)
    assert r.status_code == 200, r.text
    assert r.json() == {"identity": "alice", "is_authenticated": True, "team": "red", "scopes": ["custom:read"]}


def test_user_middleware_wraps_api_routes_before_auth(http: httpx.Client) -> None:
    """middleware_first (the default): the user middleware sees every request, before
    graphdock authenticates it; a refused request has passed through it too."""
    r = http.post("/threads", json={}, headers=ALICE)
    assert r.status_code == 200, r.text
    assert r.headers["x-custom-middleware"] == "before-auth"
    assert http.get(f"/threads/{r.json()['thread_id']}", headers=ALICE).headers["x-custom-middleware"] == "before-auth"
    refused = http.post("/threads", json={})
    assert refused.status_code == 401
    assert refused.headers["x-custom-middleware"] == "before-auth"
    assert http.get("/ok").headers["x-custom-middleware"] == "before-auth"


def test_route_precedence(http: httpx.Client) -> None:
    # the user app's /info and /threads/collide win over the API's routes for them
    assert http.get("/info", headers=ALICE).json() == {"custom": "info"}  # (custom routes authenticate)
    assert http.get("/threads/collide", headers=ALICE).json() == {"custom": "collide"}
    # ... the API keeps everything else
    thread = http.post("/threads", json={}, headers=ALICE).json()
    assert http.get(f"/threads/{thread['thread_id']}", headers=ALICE).json()["thread_id"] == thread["thread_id"]
    missing = http.get(f"/threads/{SAMPLE_ID}", headers=ALICE)
    assert missing.status_code == 404
    # /ok, /docs and /openapi.json cannot be shadowed
    assert http.get("/ok").json() == {"ok": True, "services": {}}
    docs = http.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text


def test_openapi_lists_the_custom_routes(http: httpx.Client) -> None:
    doc = http.get("/openapi.json").json()
    assert doc["info"]["title"] == "graphdock"
    paths = doc["paths"]
    for path in ("/custom/hello", "/custom/me", "/custom/store/{key}", "/threads/collide"):
        assert path in paths, path
    assert "put" in paths["/custom/store/{key}"]
    assert paths["/custom/hello"]["get"]["summary"] == "Hello"
    # the API's own routes are still documented, graphdock's /ok is the one listed
    assert "post" in paths["/threads"] and "post" in paths["/runs/wait"]
    assert paths["/ok"]["get"]["summary"] == "Health check"


def test_graphdock_error_handlers_answer_for_custom_routes(http: httpx.Client) -> None:
    r = http.get("/custom/bad", headers=ALICE)
    assert r.status_code == 400
    assert r.json() == {"detail": "the custom route refuses this"}


async def test_custom_route_uses_the_server_store(app_server: Any) -> None:
    key = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=app_server.url, timeout=30) as http:
        r = await http.put(f"/custom/store/{key}", json={"n": 1}, headers=ALICE)
    assert r.status_code == 200, r.text
    assert r.json() == {"value": {"n": 1}}
    item = await sdk(app_server.url).store.get_item(["custom"], key)
    assert item["value"] == {"n": 1}


# -- configurable headers -------------------------------------------------------------------

FORWARDED = {"X-User-Team": "red", "X-User-Secret-Key": "hidden", "X-Other": "not included", "User-Agent": "tests/1"}
EXPECTED = {"x-user-team": "red", "user-agent": "tests/1"}


async def test_configurable_headers_reach_a_stateless_run(app_server: Any) -> None:
    out = await sdk(app_server.url, **FORWARDED).runs.wait(None, "headers", input={})
    assert out["headers"] == EXPECTED  # excluded, not included and the credentials stay out
    assert out["server_keys"]["user_id"] == "alice"


async def test_configurable_headers_reach_a_background_run(app_server: Any) -> None:
    """A background thread run (scaled out: executed by a worker, not the API process);
    a header wins over the request's own configurable key."""
    client = sdk(app_server.url, **FORWARDED)
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "headers", input={}, config={"configurable": {"x-user-team": "from-the-body"}}
    )
    out = await client.runs.join(thread["thread_id"], run["run_id"])
    assert out["headers"] == EXPECTED
    assert out["server_keys"]["run_id"] == run["run_id"]
    stored = await client.runs.get(thread["thread_id"], run["run_id"])
    assert stored["kwargs"]["config"]["configurable"]["x-user-team"] == "red"


async def test_configurable_headers_reach_a_protocol_run(app_server: Any, http: httpx.Client) -> None:
    client = sdk(app_server.url)
    thread = await client.threads.create()
    r = http.post(
        f"/threads/{thread['thread_id']}/commands",
        json={"id": 1, "method": "run.start", "params": {"assistant_id": "headers", "input": {}}},
        headers={**ALICE, "X-User-Team": "blue"},
    )
    assert r.status_code == 200 and r.json()["type"] == "success", r.text
    runs = await client.runs.list(thread["thread_id"])
    assert len(runs) == 1
    await client.runs.join(thread["thread_id"], runs[0]["run_id"])
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["headers"] == {"x-user-team": "blue", "user-agent": http.headers["user-agent"]}


def test_lifespan_exits_on_stop(app_server: Any) -> None:
    """Stopping the server (SIGTERM) exits the user app's lifespan (last in this module:
    it stops the module's server)."""
    assert httpx.get(f"{app_server.url}/custom/hello", headers=ALICE).status_code == 200
    assert not app_server.exit_file.exists()
    app_server.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not app_server.exit_file.exists():
        time.sleep(0.1)
    lines = app_server.exit_file.read_text().splitlines()
    assert len(lines) == getattr(app_server, "n_apis", 1) and all(line.startswith("exited ") for line in lines)


# -- auth_first, a plain Starlette app and a mount prefix -------------------------------------


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("http_prefix")
    config = write_config(
        data,
        {"app": str(APP_DIR / "plain.py") + ":app", "mount_prefix": "/api/", "middleware_order": "auth_first",
         "configurable_headers": {"includes": ["X-User-*"]}},
    )
    srv = ServerProcess(data, config=config).start()
    yield srv
    srv.stop()


async def test_sdk_works_under_the_prefix(prefixed: ServerProcess) -> None:
    client = sdk(f"{prefixed.url}/api", **{"X-User-Team": "green"})
    thread = await client.threads.create()
    assert (await client.threads.get(thread["thread_id"]))["thread_id"] == thread["thread_id"]
    out = await client.runs.wait(thread["thread_id"], "headers", input={})
    assert out["headers"] == {"x-user-team": "green"}
    chunks = [c async for c in client.runs.stream(None, "headers", input={}, stream_mode="values")]
    assert chunks[-1].data["headers"] == {"x-user-team": "green"}


def test_prefix_routes(prefixed: ServerProcess) -> None:
    with httpx.Client(base_url=prefixed.url, timeout=30) as http:
        assert http.get("/ok").status_code == 200  # kept at the root
        assert http.get("/api/ok").status_code == 200
        assert http.get("/api/info").json()["server"] == "graphdock"
        for path in ("/info", "/threads/search", "/openapi.json", "/ping/x"):
            assert http.get(path, headers=ALICE).status_code == 404, path
        assert http.get("/api/ping/x").json() == {"pong": True, "identity": None}
        assert http.get("/api/docs").status_code == 200
        doc = http.get("/api/openapi.json").json()
        assert "/api/threads" in doc["paths"] and "/api/ping/{name}" in doc["paths"]
        assert not [p for p in doc["paths"] if not p.startswith("/api/")]
        assert "servers" not in doc
        # requests are still counted under the template of the route that answered them
        counted = http.get("/api/metrics", params={"format": "json"}).json()["api"]["http_requests_total"]
        assert {"/ping/{name}", "/info"} <= {c["route"] for c in counted}


def test_auth_first_runs_user_middleware_after_auth(prefixed: ServerProcess) -> None:
    with httpx.Client(base_url=f"{prefixed.url}/api", timeout=30) as http:
        ok = http.post("/threads/search", json={}, headers=ALICE)
        assert ok.status_code == 200 and ok.headers["x-custom-middleware"] == "after-auth"
        refused = http.post("/threads/search", json={})
        assert refused.status_code == 401
        assert "x-custom-middleware" not in refused.headers  # refused before the user middleware
        # custom routes without enable_custom_route_auth: not authenticated
        ping = http.get("/ping/x")
        assert ping.status_code == 200 and ping.headers["x-custom-middleware"] == "before-auth"
        assert http.get("/ok").headers["x-custom-middleware"] == "before-auth"


# -- disabled route groups --------------------------------------------------------------------


def test_disabled_groups_are_not_served(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        {"disable_assistants": True, "disable_store": True, "disable_mcp": True, "disable_a2a": True,
         "disable_ui": True, "disable_webhooks": True, "disable_event_streaming": True},
        auth=False,
    )
    srv = ServerProcess(tmp_path, config=config).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            assert http.post("/assistants/search", json={}).status_code == 404
            assert http.get(f"/assistants/{SAMPLE_ID}").status_code == 404
            assert http.put("/store/items", json={"namespace": ["a"], "key": "k", "value": {}}).status_code == 404
            assert http.post("/store/items/search", json={}).status_code == 404
            tid = http.post("/threads", json={}).json()["thread_id"]
            assert http.post(f"/threads/{tid}/commands", json={"id": 1, "method": "state.get"}).status_code == 404
            assert http.post(f"/threads/{tid}/stream/events", json={}).status_code == 404
            # the other groups are there: a run on the graph id still resolves its assistant
            assert http.post("/runs/wait", json={"assistant_id": "headers", "input": {}}).status_code == 200
            paths = http.get("/openapi.json").json()["paths"]
            assert "/threads" in paths and "/runs/wait" in paths and "/info" in paths
            assert not [p for p in paths if p.startswith(("/assistants", "/store"))]
            assert not [p for p in paths if p.endswith(("/commands", "/stream/events"))]
    finally:
        srv.stop()


def test_disable_meta_runs_threads(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, {"disable_meta": True, "disable_runs": True, "disable_threads": True}, auth=False
    )
    srv = ServerProcess(tmp_path, config=config).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            assert http.get("/ok").json()["ok"] is True
            for path in ("/info", "/docs", "/openapi.json", "/metrics"):
                assert http.get(path).status_code == 404, path
            assert http.post("/threads", json={}).status_code == 404
            assert http.post("/runs/wait", json={"assistant_id": "headers", "input": {}}).status_code == 404
            assert http.post("/runs/crons/search", json={}).status_code == 404
            assert http.post(f"/threads/{SAMPLE_ID}/commands", json={"id": 1, "method": "state.get"}).status_code == 404
            assert http.post("/assistants/search", json={}).status_code == 200
    finally:
        srv.stop()


# -- configuration errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "http_section, message",
    [
        ({"app": str(APP_DIR / "missing.py") + ":app"}, "http.app: file "),
        ({"app": str(APP_DIR / "plain.py") + ":nope"}, "the module has no attribute 'nope'"),
        ({"app": str(APP_DIR / "plain.py") + ":not_an_app"}, "is dict, not a Starlette or FastAPI app"),
        ({"app": "graphdock_no_such_module:app"}, "http.app: importing module 'graphdock_no_such_module' failed"),
    ],
)
def test_bad_custom_app_stops_start_up(tmp_path: Path, http_section: dict[str, Any], message: str) -> None:
    config = write_config(tmp_path, http_section, auth=False)
    proc = subprocess.run(
        [sys.executable, "-m", "graphdock.cli", "serve", "--config", str(config), "--port", "1",
         "--data-dir", str(tmp_path)],
        cwd=str(ROOT), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: http.app: ") and message in lines[0], proc.stderr


@pytest.mark.parametrize(
    "http_section, message",
    [
        ({"disable_store": "yes"}, "http.disable_store: expected true or false"),
        ({"enable_custom_route_auth": 1}, "http.enable_custom_route_auth: expected true or false"),
        ({"middleware_order": "last"}, "http.middleware_order: expected 'middleware_first' or 'auth_first'"),
        ({"mount_prefix": "api"}, "http.mount_prefix: expected a path starting with '/'"),
        ({"mount_prefix": "/noauth"}, "cannot be used as a prefix"),
        ({"app": "no-colon"}, 'http.app: expected "./file.py:attr"'),
        ({"configurable_headers": ["x-*"]}, "http.configurable_headers: expected an object"),
        ({"configurable_headers": {"includes": "x-*"}}, "http.configurable_headers.includes: expected a list"),
        ({"configurable_headers": {"include": ["x-*"]}}, "http.configurable_headers: expected an object"),
        ({"logging_headers": {"includes": [""]}}, "http.logging_headers.includes: expected a list"),
        ({"disable_event_streaming": 1}, "http.disable_event_streaming: expected true or false"),
    ],
)
def test_bad_http_values(tmp_path: Path, http_section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^http\.") as exc:
        load_config(write_config(tmp_path, http_section, auth=False))
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_supported_and_unknown_http_keys(tmp_path: Path) -> None:
    config = load_config(
        write_config(
            tmp_path,
            {"app": "./x.py:app", "mount_prefix": "/p", "middleware_order": "auth_first",
             "enable_custom_route_auth": True, "configurable_headers": {}, "disable_meta": False,
             "cors": {"allow_origins": ["*"]}, "logging_headers": {}, "made_up": 1},
            auth=False,
        )
    )
    assert config.unsupported() == ["http.made_up"]
    assert config.http_disabled("meta") is False and config.http_disabled("mcp") is False


def test_no_http_section_adds_no_layer(tmp_path: Path) -> None:
    """Without http.app and mount_prefix the middleware stack is graphdock's own."""
    app = create_app(Settings(config=load_config(write_config(tmp_path, {}, auth=False)), data_dir=tmp_path))
    layers = [m.cls for m in app.user_middleware]
    assert CustomRoutes not in layers and MountPrefix not in layers
    with_app = create_app(Settings(config=load_config(CONFIG), data_dir=tmp_path))
    assert CustomRoutes in [m.cls for m in with_app.user_middleware]


def test_header_policy() -> None:
    policy = HeaderPolicy(["X-User-*", "user-agent", "authorization", "*-id"], ["x-user-secret*"])
    assert policy.copies("x-user-team") and policy.copies("X-USER-TEAM") and policy.copies("User-Agent")
    assert policy.copies("x-request-id")
    assert not policy.copies("x-user-secret-key")  # excludes win
    assert not policy.copies("authorization") and not policy.copies("x-tenant-id")  # never copied
    assert not policy.copies("x-other") and not policy.copies("prefix-x-user-team")
    assert policy.select([("X-User-A", "1"), ("Cookie", "c"), ("X-Other", "o")]) == {"x-user-a": "1"}
    assert HeaderPolicy().select([("x-user-a", "1")]) == {}
