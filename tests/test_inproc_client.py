"""The SDK's in-process client: ``get_client()`` / ``get_sync_client()`` without url in a
graph reach the server the graph runs in, as the calling run's user (tests/inproc: custom
auth stamps and filters ``metadata.owner``).

Placements: runs in the server process (embedded, no run process), every run in a run
process (embedded, ``--run-process-policy always``: relayed to the server process), and a
PostgreSQL + Redis deployment (an API process executing no runs and a worker, whose own API
app serves the client).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from langgraph_sdk import get_client

from conftest import ServerProcess

CONFIG = Path(__file__).resolve().parent / "inproc" / "langgraph.json"
PLACEMENTS = ["server-process", "run-process", "scaled-out"]


@pytest.fixture(scope="module", params=PLACEMENTS)
def placement(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    data = tmp_path_factory.mktemp("inproc")
    if request.param == "scaled-out":
        from deployment import Deployment
        from services import require_services

        require_services()
        srv: Any = Deployment(data, apis=1, workers=1, config=CONFIG).start()
    else:
        args = ["--run-processes", "0"] if request.param == "server-process" else [
            "--run-processes", "1", "--run-process-policy", "always"
        ]
        srv = ServerProcess(data, config=CONFIG, args=args).start()
    yield request.param, srv
    (getattr(srv, "destroy", None) or srv.stop)()


def _client(srv: Any, user: str) -> Any:
    return get_client(url=srv.url, headers={"Authorization": f"Bearer {user}"})


async def _supervise(srv: Any, user: str, graph: str) -> dict[str, Any]:
    client = _client(srv, user)
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], graph, input={"x": 3}, raise_error=False)
    assert "report" in result, result
    return result["report"]


def _check_pid(placement: str, srv: Any, pid: int) -> None:
    if placement == "server-process":
        assert pid == srv.proc.pid  # executed in the server process itself
    elif placement == "run-process":
        assert pid != srv.proc.pid  # executed in a run process, relayed to the server
    else:
        assert pid == srv.workers[0].proc.pid


@pytest.mark.parametrize("graph", ["supervisor", "sync_supervisor"])
async def test_node_calls_its_own_server_as_the_runs_user(placement: tuple[str, Any], graph: str) -> None:
    kind, srv = placement
    report = await _supervise(srv, "alice", graph)
    # the node read its own thread (the owner filter let alice through) ...
    assert report["own_owner"] == "alice"
    # ... created a thread and ran another assistant on it (runs.wait), all as alice
    assert report["child_owner"] == "alice"
    assert report["child_y"] == 6
    # runs.stream through the in-process client (a run on a thread that has state)
    assert report["streamed"] == [{"x": 5, "y": 6}, {"x": 5, "y": 10}]
    if graph == "supervisor":
        assert report["child_run_owner"] == "alice"
    _check_pid(kind, srv, report["pid"])
    alice, bob = _client(srv, "alice"), _client(srv, "bob")
    child = await alice.threads.get(report["child_thread"])
    assert child["metadata"]["made_by"] == graph
    assert child["values"] == {"x": 5, "y": 10}
    with pytest.raises(httpx.HTTPStatusError) as err:
        await bob.threads.get(report["child_thread"])  # owned by alice
    assert err.value.response.status_code == 404
    # bob's run acts as bob
    report = await _supervise(srv, "bob", graph)
    assert report["own_owner"] == report["child_owner"] == "bob"
    with pytest.raises(httpx.HTTPStatusError):
        await alice.threads.get(report["child_thread"])


async def test_sync_client_on_the_event_loop_fails_clearly(placement: tuple[str, Any]) -> None:
    _, srv = placement
    client = _client(srv, "alice")
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "sync_on_loop", input={"x": 1}, raise_error=False)
    assert result["__error__"]["error"] == "RuntimeError"
    assert "event loop" in result["__error__"]["message"]
    assert "get_client()" in result["__error__"]["message"]


async def test_a_stream_left_early_tells_the_server(placement: tuple[str, Any]) -> None:
    """The in-process client streams: a node that stops reading a run's stream after its
    first event disconnects, and the run (``on_disconnect="cancel"``) is cancelled."""
    _, srv = placement
    client = _client(srv, "alice")
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "early_leaver", input={"x": 1}, raise_error=False)
    report = result["report"]
    for _ in range(300):
        run = await client.runs.get(report["child_thread"], report["child_run"])
        if run["status"] not in ("pending", "running"):
            break
        await asyncio.sleep(0.1)
    assert run["status"] == "interrupted"


def test_external_requests_cannot_pose_as_loopback(placement: tuple[str, Any]) -> None:
    _, srv = placement
    forged = {
        "x-graphdock-loopback": "guessed-secret",
        "x-graphdock-loopback-user": json.dumps({"user": {"identity": "alice"}, "permissions": []}),
    }
    with httpx.Client(base_url=srv.url, timeout=10) as http:
        assert http.post("/threads/search", json={}, headers=forged).status_code == 401
        assert http.post("/threads", json={}, headers=forged).status_code == 401
        # the SDK's /noauth root path is nothing special over HTTP
        assert http.post("/noauth/threads/search", json={}).status_code in (401, 404)
        # an authenticated request with the forged headers is still its own user
        response = http.post("/threads", json={}, headers={**forged, "Authorization": "Bearer bob"})
        assert response.status_code == 200
        assert response.json()["metadata"]["owner"] == "bob"


@pytest.mark.parametrize("args", [["--run-processes", "0"], ["--run-processes", "1", "--run-process-policy", "always"]])
async def test_without_auth_under_a_mount_prefix(tmp_path: Path, args: list[str]) -> None:
    """No custom auth: the in-process client is the anonymous user; ``http.mount_prefix``:
    it reaches the API under the prefix (in the server process and relayed from a run process)."""
    srv = ServerProcess(tmp_path, config=CONFIG.with_name("langgraph.noauth.json"), args=args).start()
    try:
        client = get_client(url=srv.url + "/api")
        thread = await client.threads.create()
        result = await client.runs.wait(thread["thread_id"], "supervisor", input={"x": 2}, raise_error=False)
        report = result["report"]
        assert report["own_owner"] is None and report["child_owner"] is None
        assert report["child_y"] == 4 and report["streamed"] == [{"x": 5, "y": 4}, {"x": 5, "y": 10}]
        assert (await client.threads.get(report["child_thread"]))["metadata"]["made_by"] == "supervisor"
    finally:
        srv.stop()
