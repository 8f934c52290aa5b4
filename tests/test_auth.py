"""Custom auth (tests/auth/): authentication, handlers, filters in storage, and isolation.

The isolation test enumerates the server's own route table (its OpenAPI document): every
route must either be one of the open meta routes or be covered by a probe proving that
user B can neither read, list, modify, run on, stream from nor delete user A's resources.
A route added later without authorization — or without a probe here — fails it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from langgraph_sdk import get_client

from conftest import BACKENDS, ROOT, ServerProcess, make_server

OPEN_ROUTES = {("GET", "/ok"), ("GET", "/info"), ("GET", "/metrics"), ("GET", "/docs"), ("GET", "/openapi.json")}
ALICE = {"Authorization": "Bearer alice"}
BOB = {"Authorization": "Bearer bob"}


@pytest.fixture(scope="module", params=BACKENDS)
def auth_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, Path]]:
    log = tmp_path_factory.mktemp("authlog") / "factory.jsonl"
    proc = make_server(
        request.param,
        tmp_path_factory.mktemp("authdata"),
        config=ROOT / "tests" / "auth" / "langgraph.json",
        env={"GRAPHDOCK_FACTORY_LOG": str(log)},
    ).start()
    yield proc, log
    proc.stop()


@pytest.fixture(scope="module")
def base(auth_server) -> str:
    return auth_server[0].url


def _client(base: str, headers: dict[str, str]):
    return get_client(url=base, headers=headers)


# -- authentication -------------------------------------------------------------------


def test_open_routes_need_no_token(base):
    with httpx.Client(base_url=base) as http:
        for method, path in OPEN_ROUTES:
            assert http.request(method, path).status_code == 200, path


def test_authenticate_statuses(base):
    with httpx.Client(base_url=base) as http:
        r = http.post("/threads/search", json={})
        assert r.status_code == 401 and r.json() == {"detail": "missing token"}
        r = http.post("/threads/search", json={}, headers={"Authorization": "Bearer bad"})
        assert r.status_code == 403 and r.json() == {"detail": "bad token"}
        r = http.post("/threads/search", json={}, headers={"Authorization": "Bearer crash"})
        assert r.status_code == 500
        assert "secret internals" not in r.text
        assert http.post("/threads/search", json={}, headers=ALICE).status_code == 200


def test_every_api_route_requires_authentication(base):
    with httpx.Client(base_url=base) as http:
        spec = http.get("/openapi.json").json()
        for path, ops in spec["paths"].items():
            for method in ops:
                if (method.upper(), path) in OPEN_ROUTES:
                    continue
                concrete = path.replace("{thread_id}", "00000000-0000-0000-0000-000000000001")
                concrete = concrete.replace("{run_id}", "00000000-0000-0000-0000-000000000002")
                concrete = concrete.replace("{assistant_id}", "00000000-0000-0000-0000-000000000003")
                concrete = concrete.replace("{checkpoint_id}", "x").replace("{namespace}", "x")
                r = http.request(method.upper(), concrete, json={})
                assert r.status_code == 401, f"{method.upper()} {path} answered {r.status_code} without a token"


# -- the user reaches the graph ---------------------------------------------------------


async def test_user_reaches_nodes_and_factories(auth_server, base):
    log = auth_server[1]
    alice = _client(base, ALICE)
    thread = await alice.threads.create()
    out = await alice.runs.wait(thread["thread_id"], "whoami", input={"marker": "m"})
    assert out["auth_user"] == {"identity": "alice", "team": "red"}
    assert out["auth_user_id"] == "alice"
    assert out["permissions"] == ["read", "write"]
    assert out["user_id"] == "alice"
    assert out["server_user"] == {"identity": "alice", "team": "red"}

    offset = log.stat().st_size if log.exists() else 0
    await alice.runs.wait(thread["thread_id"], "whoami_factory", input={"marker": "f"})
    await alice.threads.get_state(thread["thread_id"])
    await alice.threads.update_state(thread["thread_id"], {"marker": "u"}, as_node="record")
    await alice.assistants.get_schemas((await alice.assistants.create("whoami_factory"))["assistant_id"])
    with log.open() as f:
        f.seek(offset)
        records = [json.loads(line) for line in f if line.strip()]
    assert {r["access_context"] for r in records} == {
        "threads.create_run", "threads.read", "threads.update", "assistants.read"
    }
    assert all(r["user"] == "alice" and r["ensure_user"] == "alice" for r in records), records


async def test_owner_is_stamped_on_created_resources(base):
    alice = _client(base, ALICE)
    thread = await alice.threads.create(metadata={"topic": "t"})
    assert thread["metadata"] == {"topic": "t", "owner": "alice"}
    assistant = await alice.assistants.create("simple", metadata={})
    assert assistant["metadata"]["owner"] == "alice"
    # a stateless run's temporary thread is owned too, so alice can stream and wait on it
    assert await alice.runs.wait(None, "simple", input={"items": []}) == {"items": ["a", "b"]}
    run = await alice.runs.create(None, "simple", input={"items": []}, on_completion="keep")
    kept = await alice.threads.get(run["thread_id"])
    assert kept["metadata"]["owner"] == "alice"


async def test_store_namespaces_are_rewritten_per_user(base):
    alice = _client(base, ALICE)
    bob = _client(base, BOB)
    await alice.store.put_item(["notes"], "n1", {"text": "alice's"})
    assert (await alice.store.get_item(["notes"], "n1"))["namespace"] == ["alice", "notes"]
    assert await bob.store.get_item(["notes"], "n1") is None
    await bob.store.put_item(["notes"], "n1", {"text": "bob's"})
    assert (await alice.store.get_item(["notes"], "n1"))["value"] == {"text": "alice's"}
    found = await bob.store.search_items([])
    assert all(item["namespace"][0] == "bob" for item in found["items"])
    namespaces = await bob.store.list_namespaces()
    assert all(ns[0] == "bob" for ns in namespaces["namespaces"])


# -- isolation over the whole route table ---------------------------------------------


class World:
    """Alice's resources, created once."""

    def __init__(self, base: str) -> None:
        self.base = base
        with httpx.Client(base_url=base, headers=ALICE, timeout=30) as http:
            self.assistant = http.post("/assistants", json={"graph_id": "simple"}).json()["assistant_id"]
            self.thread = http.post("/threads", json={}).json()["thread_id"]
            http.post(f"/threads/{self.thread}/runs/wait", json={"assistant_id": "simple", "input": {"items": ["x"]}})
            runs = http.get(f"/threads/{self.thread}/runs").json()
            self.run = runs[0]["run_id"]
            state = http.get(f"/threads/{self.thread}/state").json()
            self.checkpoint = state["checkpoint"]["checkpoint_id"]
            self.busy_thread = http.post("/threads", json={}).json()["thread_id"]
            self.busy_run = http.post(
                f"/threads/{self.busy_thread}/runs", json={"assistant_id": "hang", "input": {}}
            ).json()["run_id"]
            http.put("/store/items", json={"namespace": ["secret"], "key": "k", "value": {"v": "alice"}})
            self.cron = http.post("/runs/crons", json={"assistant_id": "simple", "schedule": "0 0 1 1 *"}).json()["cron_id"]

    def alice_still_has_everything(self) -> None:
        with httpx.Client(base_url=self.base, headers=ALICE, timeout=30) as http:
            assert http.get(f"/assistants/{self.assistant}").status_code == 200
            thread = http.get(f"/threads/{self.thread}").json()
            assert thread["metadata"] == {"owner": "alice", "graph_id": "simple",
                                          "assistant_id": thread["metadata"]["assistant_id"]}
            assert http.get(f"/threads/{self.thread}/runs/{self.run}").status_code == 200
            assert http.get(f"/threads/{self.thread}/state").json()["values"] == {"items": ["x", "a", "b"]}
            assert http.get(f"/threads/{self.busy_thread}/runs/{self.busy_run}").json()["status"] in ("pending", "running")
            item = http.get("/store/items", params={"namespace": "secret", "key": "k"}).json()
            assert item["value"] == {"v": "alice"}
            cron = http.get(f"/runs/crons/{self.cron}").json()
            assert cron["schedule"] == "0 0 1 1 *" and cron["enabled"] is True and cron["user_id"] == "alice"


DENIED = {403, 404, 409}


def _denied(r: httpx.Response) -> bool:
    if r.status_code in DENIED:
        return True
    if r.status_code == 200 and r.headers.get("content-type", "").startswith("text/event-stream"):
        return "event: error" in r.text and "event: values" not in r.text
    if r.status_code == 200:
        try:
            body = r.json()
        except ValueError:
            return False
        return isinstance(body, dict) and "__error__" in body
    return False


def probes(w: World) -> dict[tuple[str, str], Callable[[httpx.Client], None]]:
    t, r, a, cp = w.thread, w.run, w.assistant, w.checkpoint

    def denied(method: str, path: str, **kw: Any) -> Callable[[httpx.Client], None]:
        def probe(http: httpx.Client) -> None:
            resp = http.request(method, path, **kw)
            assert _denied(resp), f"{method} {path} → {resp.status_code} {resp.text[:200]}"
        return probe

    def hidden_in_list(method: str, path: str, key: str, secret: str, **kw: Any) -> Callable[[httpx.Client], None]:
        def probe(http: httpx.Client) -> None:
            resp = http.request(method, path, **kw)
            assert resp.status_code == 200, resp.text
            assert secret not in [row.get(key) for row in resp.json()]
        return probe

    def count_excludes(path: str) -> Callable[[httpx.Client], None]:
        def probe(http: httpx.Client) -> None:
            bob_count = http.post(path, json={}).json()
            with httpx.Client(base_url=w.base, headers=ALICE) as alice:
                alice_count = alice.post(path, json={}).json()
            assert alice_count >= 1 and bob_count == 0, (bob_count, alice_count)
        return probe

    def store_probe(method: str, **kw: Any) -> Callable[[httpx.Client], None]:
        def probe(http: httpx.Client) -> None:
            resp = http.request(method, "/store/items", **kw)
            assert resp.status_code in (200, 204)
            if method == "GET":
                assert resp.json() is None
        return probe

    def store_listing(path: str, body: dict[str, Any], field: str) -> Callable[[httpx.Client], None]:
        def probe(http: httpx.Client) -> None:
            resp = http.post(path, json=body)
            assert resp.status_code == 200
            text = json.dumps(resp.json()[field])
            assert "alice" not in text and "secret" not in text
        return probe

    def mcp(method: str) -> Callable[[httpx.Client], None]:
        """MCP: Alice's assistant (named "Untitled") is not among Bob's tools and cannot be
        called by him; GET and DELETE (no server stream, no session) answer nothing of hers."""
        def probe(http: httpx.Client) -> None:
            headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
            if method != "POST":
                resp = http.request(method, "/mcp", headers=headers)
                assert resp.status_code in (400, 404, 405), f"{method} /mcp → {resp.status_code} {resp.text[:200]}"
                return
            listed = http.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert listed.status_code == 200 and a not in listed.text, listed.text[:300]
            assert "Untitled" not in [tool["name"] for tool in listed.json()["result"]["tools"]]
            called = http.post("/mcp", headers=headers, json={
                "jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "Untitled", "arguments": {"items": ["bob"]}},
            })
            assert called.status_code == 200 and called.json()["result"]["isError"] is True, called.text[:300]
        return probe

    def protocol_commands(http: httpx.Client) -> None:
        """Every protocol command on Alice's thread is refused with an error response that
        shows nothing of it, and starts nothing on it."""
        with httpx.Client(base_url=w.base, headers=ALICE) as alice:
            runs_before = len(alice.get(f"/threads/{t}/runs").json())
        commands = {
            "run.start": {"assistant_id": "simple", "input": {"items": ["bob"]}},
            "input.respond": {"interrupt_id": "x", "namespace": [], "response": "bob"},
            "input.inject": {"namespace": [], "message": {"role": "user", "content": "bob"}},
            "state.get": {"namespace": []},
            "state.listCheckpoints": {},
            "state.fork": {"checkpoint_id": cp},
            "agent.getTree": {},
        }
        for method, params in commands.items():
            resp = http.post(f"/threads/{t}/commands", json={"id": 1, "method": method, "params": params})
            assert resp.status_code == 200 and resp.json()["type"] == "error", f"{method}: {resp.text[:200]}"
            assert resp.json()["error"] in ("invalid_argument", "permission_denied", "no_such_run"), resp.text
            assert '"items"' not in resp.text and cp not in resp.text, resp.text
        with httpx.Client(base_url=w.base, headers=ALICE) as alice:
            assert len(alice.get(f"/threads/{t}/runs").json()) == runs_before

    run_body = {"assistant_id": "simple", "input": {"items": []}}
    own_run_body = {"assistant_id": a, "input": {"items": []}}
    return {
        ("POST", "/threads/{thread_id}/commands"): protocol_commands,
        ("POST", "/threads/{thread_id}/stream/events"): denied(
            "POST", f"/threads/{t}/stream/events", json={"channels": ["values", "lifecycle"]}),
        ("POST", "/assistants"): denied("POST", "/assistants", json={"graph_id": "simple", "assistant_id": a}),
        ("POST", "/assistants/search"): hidden_in_list("POST", "/assistants/search", "assistant_id", a, json={}),
        ("POST", "/assistants/count"): count_excludes("/assistants/count"),
        ("GET", "/assistants/{assistant_id}"): denied("GET", f"/assistants/{a}"),
        ("PATCH", "/assistants/{assistant_id}"): denied("PATCH", f"/assistants/{a}", json={"name": "mine"}),
        ("DELETE", "/assistants/{assistant_id}"): denied("DELETE", f"/assistants/{a}"),
        ("POST", "/assistants/{assistant_id}/versions"): denied("POST", f"/assistants/{a}/versions", json={}),
        ("POST", "/assistants/{assistant_id}/latest"): denied("POST", f"/assistants/{a}/latest", json={"version": 1}),
        ("GET", "/assistants/{assistant_id}/graph"): denied("GET", f"/assistants/{a}/graph"),
        ("GET", "/assistants/{assistant_id}/schemas"): denied("GET", f"/assistants/{a}/schemas"),
        ("GET", "/assistants/{assistant_id}/subgraphs"): denied("GET", f"/assistants/{a}/subgraphs"),
        ("GET", "/assistants/{assistant_id}/subgraphs/{namespace}"): denied("GET", f"/assistants/{a}/subgraphs/x"),
        ("POST", "/threads"): denied("POST", "/threads", json={"thread_id": t}),
        ("POST", "/threads/search"): hidden_in_list("POST", "/threads/search", "thread_id", t, json={}),
        ("POST", "/threads/count"): count_excludes("/threads/count"),
        ("POST", "/threads/prune"): denied("POST", "/threads/prune", json={"thread_ids": [t]}),
        ("GET", "/threads/{thread_id}"): denied("GET", f"/threads/{t}"),
        ("PATCH", "/threads/{thread_id}"): denied("PATCH", f"/threads/{t}", json={"metadata": {"owner": "bob"}}),
        ("DELETE", "/threads/{thread_id}"): denied("DELETE", f"/threads/{t}"),
        ("POST", "/threads/{thread_id}/copy"): denied("POST", f"/threads/{t}/copy"),
        ("GET", "/threads/{thread_id}/state"): denied("GET", f"/threads/{t}/state"),
        ("POST", "/threads/{thread_id}/state"): denied("POST", f"/threads/{t}/state",
                                                         json={"values": {"items": ["bob"]}, "as_node": "b"}),
        ("POST", "/threads/{thread_id}/state/checkpoint"): denied(
            "POST", f"/threads/{t}/state/checkpoint", json={"checkpoint": {"checkpoint_id": cp}}),
        ("GET", "/threads/{thread_id}/state/{checkpoint_id}"): denied("GET", f"/threads/{t}/state/{cp}"),
        ("GET", "/threads/{thread_id}/history"): denied("GET", f"/threads/{t}/history"),
        ("POST", "/threads/{thread_id}/history"): denied("POST", f"/threads/{t}/history", json={}),
        ("GET", "/threads/{thread_id}/stream"): denied("GET", f"/threads/{t}/stream"),
        ("POST", "/threads/{thread_id}/runs"): denied("POST", f"/threads/{t}/runs", json=run_body),
        ("POST", "/threads/{thread_id}/runs/stream"): denied("POST", f"/threads/{t}/runs/stream", json=run_body),
        ("POST", "/threads/{thread_id}/runs/wait"): denied("POST", f"/threads/{t}/runs/wait", json=run_body),
        ("GET", "/threads/{thread_id}/runs"): denied("GET", f"/threads/{t}/runs"),
        ("GET", "/threads/{thread_id}/runs/{run_id}"): denied("GET", f"/threads/{t}/runs/{r}"),
        ("DELETE", "/threads/{thread_id}/runs/{run_id}"): denied("DELETE", f"/threads/{t}/runs/{r}"),
        ("GET", "/threads/{thread_id}/runs/{run_id}/join"): denied("GET", f"/threads/{t}/runs/{r}/join"),
        ("GET", "/threads/{thread_id}/runs/{run_id}/stream"): denied("GET", f"/threads/{t}/runs/{r}/stream"),
        ("POST", "/threads/{thread_id}/runs/{run_id}/cancel"): denied(
            "POST", f"/threads/{w.busy_thread}/runs/{w.busy_run}/cancel"),
        ("POST", "/runs/cancel"): denied("POST", "/runs/cancel",
                                         json={"thread_id": w.busy_thread, "run_ids": [w.busy_run]}),
        ("POST", "/runs"): denied("POST", "/runs", json=own_run_body),
        ("POST", "/runs/stream"): denied("POST", "/runs/stream", json=own_run_body),
        ("POST", "/runs/wait"): denied("POST", "/runs/wait", json=own_run_body),
        ("POST", "/runs/batch"): denied("POST", "/runs/batch", json=[own_run_body]),
        ("PUT", "/store/items"): store_probe("PUT", json={"namespace": ["secret"], "key": "k", "value": {"v": "bob"}}),
        ("GET", "/store/items"): store_probe("GET", params={"namespace": "secret", "key": "k"}),
        ("DELETE", "/store/items"): store_probe("DELETE", json={"namespace": ["secret"], "key": "k"}),
        ("POST", "/store/items/search"): store_listing("/store/items/search", {}, "items"),
        ("POST", "/store/namespaces"): store_listing("/store/namespaces", {}, "namespaces"),
        ("POST", "/runs/crons"): denied("POST", "/runs/crons", json={"assistant_id": a, "schedule": "* * * * *"}),
        ("POST", "/threads/{thread_id}/runs/crons"): denied(
            "POST", f"/threads/{t}/runs/crons", json={"assistant_id": "simple", "schedule": "* * * * *"}),
        ("POST", "/runs/crons/search"): hidden_in_list("POST", "/runs/crons/search", "cron_id", w.cron, json={}),
        ("POST", "/runs/crons/count"): count_excludes("/runs/crons/count"),
        ("GET", "/runs/crons/{cron_id}"): denied("GET", f"/runs/crons/{w.cron}"),
        ("PATCH", "/runs/crons/{cron_id}"): denied("PATCH", f"/runs/crons/{w.cron}", json={"enabled": False}),
        ("DELETE", "/runs/crons/{cron_id}"): denied("DELETE", f"/runs/crons/{w.cron}"),
        ("POST", "/mcp"): mcp("POST"),
        ("GET", "/mcp"): mcp("GET"),
        ("DELETE", "/mcp"): mcp("DELETE"),
        # A2A: Alice's assistant is unreadable for Bob, so are its card and her task through it
        # (tests/test_a2a.py covers Bob's own assistant on her context and tasks)
        ("POST", "/a2a/{assistant_id}"): lambda http: [
            denied("POST", f"/a2a/{a}", json={"jsonrpc": "2.0", "id": "1", "method": method, "params": params})(http)
            for method, params in (
                ("message/send", {"message": {"role": "user", "parts": [{"kind": "data", "data": {"items": ["bob"]}}],
                                              "messageId": "m", "contextId": t}}),
                ("tasks/get", {"id": r, "contextId": t}),
                ("tasks/cancel", {"id": w.busy_run, "contextId": w.busy_thread}),
            )
        ],
        ("GET", "/.well-known/agent-card.json"): denied("GET", "/.well-known/agent-card.json", params={"assistant_id": a}),
    }


def test_user_b_cannot_touch_user_a_resources_on_any_route(base):
    world = World(base)
    table = probes(world)
    with httpx.Client(base_url=base) as http:
        spec = http.get("/openapi.json").json()
    routes = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops} - OPEN_ROUTES
    missing = routes - set(table)
    assert not missing, f"routes without an isolation probe (add authorization and a probe): {sorted(missing)}"
    with httpx.Client(base_url=base, headers=BOB, timeout=30) as bob:
        for route in sorted(routes):
            table[route](bob)
    world.alice_still_has_everything()
    with httpx.Client(base_url=base, headers=BOB) as bob:
        assert bob.post("/runs/cancel", json={"status": "all"}).status_code in (204, 404)
    world.alice_still_has_everything()
    with httpx.Client(base_url=base, headers=ALICE) as alice:
        alice.post(f"/threads/{world.busy_thread}/runs/{world.busy_run}/cancel")


def test_protocol_websocket_refuses_another_users_thread(base):
    """The WebSocket event stream authorizes like the SSE one: Bob's connection to Alice's
    thread is closed with 4404, and one without a token with 4401."""
    from websockets.sync.client import connect

    with httpx.Client(base_url=base, headers=ALICE, timeout=30) as alice:
        thread = alice.post("/threads", json={}).json()["thread_id"]
    url = base.replace("http://", "ws://") + f"/threads/{thread}/stream/events"
    from websockets.exceptions import ConnectionClosed

    for headers, code in ((BOB, 4404), ({}, 4401)):
        with pytest.raises(ConnectionClosed):
            with connect(url, additional_headers=headers) as ws:
                ws.recv(timeout=10)
        assert ws.close_code == code
    with connect(url, additional_headers=ALICE) as ws:
        ws.send(json.dumps({"id": 1, "method": "subscription.subscribe", "params": {"channels": ["values"]}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "success"
    # a socket opened before its thread exists gets nothing once another user creates it
    future = str(uuid.uuid4())
    url = base.replace("http://", "ws://") + f"/threads/{future}/stream/events"
    with pytest.raises(ConnectionClosed):
        with connect(url, additional_headers=BOB) as ws:
            ws.send(json.dumps({"id": 1, "method": "subscription.subscribe", "params": {"channels": ["values", "lifecycle"]}}))
            assert json.loads(ws.recv(timeout=10))["type"] == "success"
            with httpx.Client(base_url=base, headers=ALICE, timeout=30) as alice:
                r = alice.post(f"/threads/{future}/commands", json={
                    "id": 1, "method": "run.start", "params": {"assistant_id": "simple", "input": {"items": ["secret"]}}})
                assert r.json()["type"] == "success"
            while True:
                assert "secret" not in ws.recv(timeout=10)
    assert ws.close_code == 4404


async def test_protocol_runs_carry_the_user(base):
    """A thread created lazily by run.start is stamped with its owner; the owner streams it,
    another user cannot even open its stream."""
    alice = _client(base, ALICE)
    async with alice.threads.stream(assistant_id="simple", headers=ALICE) as thread:
        await thread.run.start(input={"items": []})
        assert await asyncio.wait_for(thread.output, 30) == {"items": ["a", "b"]}
    assert (await alice.threads.get(thread.thread_id))["metadata"]["owner"] == "alice"
    bob = _client(base, BOB)
    async with bob.threads.stream(thread.thread_id, assistant_id="simple", headers=BOB) as stolen:
        with pytest.raises(Exception):
            await asyncio.wait_for(stolen.output, 30)


async def test_system_assistants_are_hidden_by_owner_filters_but_runnable(base):
    bob = _client(base, BOB)
    assert [a for a in await bob.assistants.search() if a["metadata"].get("created_by") == "system"] == []
    thread = await bob.threads.create()
    assert await bob.runs.wait(thread["thread_id"], "simple", input={"items": []}) == {"items": ["a", "b"]}


# -- Studio requests ----------------------------------------------------------------------

STUDIO = {"x-auth-scheme": "langsmith"}


def test_studio_requests_in_dev_get_the_studio_user_and_still_pass_handlers(tmp_path):
    proc = ServerProcess(
        tmp_path, config=ROOT / "tests" / "auth" / "langgraph.json", command="dev", args=["--no-reload"]
    ).start()
    try:
        with httpx.Client(base_url=proc.url) as http:
            r = http.post("/threads", json={}, headers=STUDIO)
            assert r.status_code == 200
            # the owner handler ran with the studio user
            assert r.json()["metadata"]["owner"] == "langgraph-studio-user"
            # a studio user sees only what its handlers allow: not alice's threads
            alice = http.post("/threads", json={}, headers=ALICE).json()["thread_id"]
            assert http.get(f"/threads/{alice}", headers=STUDIO).status_code == 404
    finally:
        proc.stop()


def test_studio_header_does_not_bypass_authentication_in_serve(base):
    with httpx.Client(base_url=base) as http:
        assert http.post("/threads", json={}, headers=STUDIO).status_code == 401


def test_disable_studio_auth(tmp_path):
    cfg = json.loads((ROOT / "tests" / "auth" / "langgraph.json").read_text())
    cfg["auth"]["disable_studio_auth"] = True
    cfg["dependencies"] = [str(ROOT / "tests" / "auth")]
    cfg["graphs"] = {k: str((ROOT / "tests" / "auth" / v.split(":")[0]).resolve()) + ":" + v.split(":")[1]
                     for k, v in cfg["graphs"].items()}
    cfg["auth"]["path"] = str(ROOT / "tests" / "auth" / "auth.py") + ":auth"
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps(cfg))
    proc = ServerProcess(tmp_path / "data", config=path, command="dev", args=["--no-reload"]).start()
    try:
        with httpx.Client(base_url=proc.url) as http:
            assert http.post("/threads", json={}, headers=STUDIO).status_code == 401
            assert http.post("/threads", json={}, headers={**STUDIO, **ALICE}).status_code == 200
    finally:
        proc.stop()


@pytest.mark.parametrize(
    "token, identity, permissions, extra",
    [
        ("str-carol", "carol", [], {}),
        ("obj-dave", "dave", ["obj-perm"], {"tier": "gold"}),
        ("tuple-erin", "erin", ["tuple-perm"], {"display_name": "Erin"}),
    ],
)
async def test_authenticate_return_forms(base, token, identity, permissions, extra):
    client = _client(base, {"Authorization": f"Bearer {token}"})
    out = await client.runs.wait(None, "whoami", input={})
    assert out["auth_user_id"] == identity
    assert out["permissions"] == permissions
    full = out["auth_user_full"]
    assert full["identity"] == identity and full["is_authenticated"] is True
    for key, value in extra.items():
        assert full[key] == value


def test_authenticate_parameters_are_injected_by_name(base):
    with httpx.Client(base_url=base) as http:
        r = http.post(
            "/runs/wait?probe=1",
            json={"assistant_id": "whoami", "input": {}},
            headers={"Authorization": "Bearer inspect", "x-probe": "hello"},
        )
        full = r.json()["auth_user_full"]
    assert full["seen_path"] == "/runs/wait" and full["seen_method"] == "POST"
    assert full["seen_query"] == {"probe": "1"} and full["seen_header"] == "hello"
    assert full["has_request"] is True and full["scopes"] == []


def test_handler_exceptions_deny_without_leaking(base, auth_server):
    with httpx.Client(base_url=base) as http:
        mine = http.post("/assistants", json={"graph_id": "simple"}, headers=BOB).json()["assistant_id"]
        r = http.delete(f"/assistants/{mine}", headers=BOB)
        assert r.status_code == 403 and "blew up" not in r.text
        assert http.get(f"/assistants/{mine}", headers=BOB).status_code == 200  # nothing was deleted
        theirs = http.post("/assistants", json={"graph_id": "simple"}, headers=ALICE).json()["assistant_id"]
        assert http.delete(f"/assistants/{theirs}", headers=ALICE).status_code == 204
    assert "handler blew up" in auth_server[0].log()
