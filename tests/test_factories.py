"""The seeds' contract: graph factories get a ServerRuntime in exactly the right access context.

A dedicated server writes every factory call to a JSON-lines log; each test takes the
records its requests produced and asserts the exact sequence.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from langgraph_sdk import get_client

from conftest import BACKENDS, ServerProcess, make_server

CM_FACTORIES = ["cm_factory", "sync_cm_factory"]
RUNTIME_FACTORIES = ["runtime_factory", "async_factory", "two_param_factory", "string_annotated_factory",
                     "string_two_param_factory", "partial_factory", "callable_factory"]
CONFIG_FACTORIES = ["plain_factory", "unannotated_runtime_factory"]
ALL_FACTORIES = [*CM_FACTORIES, *RUNTIME_FACTORIES, *CONFIG_FACTORIES, "zero_param_factory", "builder_factory"]


class FactoryLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.mark()

    def mark(self) -> None:
        self._offset = self.path.stat().st_size if self.path.exists() else 0

    def new(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open() as f:
            f.seek(self._offset)
            return [json.loads(line) for line in f if line.strip()]

    def contexts(self) -> list[tuple[str, str | None]]:
        return [(r["event"], r["access_context"]) for r in self.new()]


@pytest.fixture(scope="module", params=BACKENDS)
def fserver(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, Path]]:
    log = tmp_path_factory.mktemp("flog") / "calls.jsonl"
    proc = make_server(
        request.param, tmp_path_factory.mktemp("fdata"), env={"GRAPHDOCK_FACTORY_LOG": str(log)}
    ).start()
    yield proc, log
    proc.stop()


@pytest.fixture
def flog(fserver) -> FactoryLog:
    return FactoryLog(fserver[1])


@pytest.fixture
def fclient(fserver):
    return get_client(url=fserver[0].url)


async def _thread_with_run(fclient, graph_id: str) -> str:
    thread = await fclient.threads.create()
    out = await fclient.runs.wait(thread["thread_id"], graph_id, input={"items": ["x"]})
    assert out == {"items": ["x", "a", "b"]}
    return thread["thread_id"]


@pytest.mark.parametrize("graph_id", ALL_FACTORIES)
async def test_run_opens_factory_once_in_create_run(fclient, flog, graph_id):
    flog.mark()
    await _thread_with_run(fclient, graph_id)
    records = flog.new()
    if graph_id in CM_FACTORIES:
        assert [(r["event"], r["access_context"]) for r in records] == [
            ("enter", "threads.create_run"),
            ("exit", "threads.create_run"),
        ]
    else:
        assert len(records) == 1 and records[0]["event"] == "call"
    for r in records:
        if graph_id in CM_FACTORIES or graph_id in RUNTIME_FACTORIES:
            assert r["runtime_type"] == "_ExecutionRuntime"
            assert r["user"] is None
        if graph_id in CONFIG_FACTORIES:
            assert r["config_type"] == "dict"
            assert r["runtime_type"] is None
            assert {"thread_id", "run_id", "assistant_id", "graph_id"} <= set(r["config_keys"])
        if graph_id == "zero_param_factory":
            assert r["config_type"] is None and r["runtime_type"] is None


@pytest.mark.parametrize("graph_id", [*CM_FACTORIES, *RUNTIME_FACTORIES])
async def test_each_endpoint_uses_its_access_context(fclient, flog, graph_id):
    thread_id = await _thread_with_run(fclient, graph_id)
    assistant_id = (await fclient.assistants.search(graph_id=graph_id))[0]["assistant_id"]

    def calls() -> list[tuple[str, str | None]]:
        return [(r["event"], r["access_context"]) for r in flog.new()]

    cm = graph_id in CM_FACTORIES

    def one(ctx: str) -> list[tuple[str, str]]:
        return [("enter", ctx), ("exit", ctx)] if cm else [("call", ctx)]

    for request, ctx in [
        (lambda: fclient.threads.get_state(thread_id), "threads.read"),
        (lambda: fclient.threads.get_history(thread_id), "threads.read"),
        (lambda: fclient.assistants.get_graph(assistant_id), "assistants.read"),
        (lambda: fclient.assistants.get_schemas(assistant_id), "assistants.read"),
        (lambda: fclient.assistants.get_subgraphs(assistant_id), "assistants.read"),
    ]:
        flog.mark()
        await request()
        assert calls() == one(ctx)

    # update_state: threads.update, then a nested threads.read inside it
    flog.mark()
    await fclient.threads.update_state(thread_id, {"items": ["u"]}, as_node="b")
    expected = (
        [("enter", "threads.update"), ("enter", "threads.read"), ("exit", "threads.read"), ("exit", "threads.update")]
        if cm
        else [("call", "threads.update"), ("call", "threads.read")]
    )
    assert calls() == expected

    # CRUD, search and store never open the graph
    flog.mark()
    await fclient.threads.get(thread_id)
    await fclient.threads.search(metadata={"graph_id": graph_id})
    await fclient.assistants.get(assistant_id)
    await fclient.assistants.search(graph_id=graph_id)
    await fclient.runs.list(thread_id)
    await fclient.store.put_item(["ns"], "k", {"v": 1})
    assert calls() == []


async def test_read_runtimes_have_no_context(fclient, flog):
    thread_id = await _thread_with_run(fclient, "async_factory")
    flog.mark()
    await fclient.threads.get_state(thread_id)
    (record,) = flog.new()
    assert record["runtime_type"] == "_ReadRuntime"
    assert record["context"] is None and record["context_type"] is None


async def test_execution_context_is_typed_by_the_annotated_schema(fclient, flog):
    thread = await fclient.threads.create()
    flog.mark()
    await fclient.runs.wait(
        thread["thread_id"], "async_factory", input={"items": []}, context={"model": "m1", "bogus": 1}
    )
    (record,) = flog.new()
    assert record["context_type"] == "Ctx"
    assert record["context"] == {"model": "m1", "temperature": 0.5}


async def test_assistant_context_merges_under_run_context(fclient, flog):
    assistant = await fclient.assistants.create("async_factory", context={"model": "a-model", "temperature": 0.1})
    thread = await fclient.threads.create()
    flog.mark()
    await fclient.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"items": []},
                            context={"temperature": 0.9})
    (record,) = flog.new()
    assert record["context"] == {"model": "a-model", "temperature": 0.9}


async def test_seed_example_typed_context_and_ensure_user(fclient, flog):
    thread = await fclient.threads.create()
    flog.mark()
    out = await fclient.runs.wait(
        thread["thread_id"], "seed_factory", input={"items": ["x"]}, context={"mcp_endpoint": "http://tools"}
    )
    assert out == {"items": ["x", "a", "b"]}
    records = flog.new()
    assert [(r["event"], r["context_type"]) for r in records] == [("enter", "SeedCtx"), ("exit", "SeedCtx")]
    assert records[0]["context"] == {"mcp_endpoint": "http://tools"}

    # without custom auth there is no user: ensure_user() raises PermissionError in the factory
    flog.mark()
    run = await fclient.runs.create(
        thread["thread_id"], "seed_factory", input={"items": []}, context={"mcp_endpoint": "needs-user"}
    )
    result = await fclient.runs.join(thread["thread_id"], run["run_id"])
    assert result["__error__"]["error"] == "PermissionError"
    assert "No authenticated user" in result["__error__"]["message"]
    assert (await fclient.runs.get(thread["thread_id"], run["run_id"]))["status"] == "error"
    assert [r["event"] for r in flog.new()] == ["enter", "exit"]


async def test_invalid_context_is_rejected_when_the_run_is_created(fserver, fclient):
    thread = await fclient.threads.create()
    url = fserver[0].url
    async with httpx.AsyncClient(base_url=url) as http:
        r = await http.post(
            f"/threads/{thread['thread_id']}/runs", json={"assistant_id": "seed_factory", "input": {}, "context": {}}
        )
        assert r.status_code == 422
        assert "mcp_endpoint" in r.json()["detail"]
        r = await http.post(
            f"/threads/{thread['thread_id']}/runs",
            json={"assistant_id": "context", "input": {}, "context": {"temperature": "very hot"}},
        )
        assert r.status_code == 422
        assert "temperature" in r.json()["detail"]
    assert await fclient.runs.list(thread["thread_id"]) == []


async def test_cm_factory_exits_when_the_run_errors(fclient, flog):
    thread = await fclient.threads.create()
    flog.mark()
    run = await fclient.runs.create(thread["thread_id"], "cm_factory", input={"items": [], "fail": True})
    result = await fclient.runs.join(thread["thread_id"], run["run_id"])
    assert result["__error__"]["message"] == "boom from node_a"
    assert flog.contexts() == [("enter", "threads.create_run"), ("exit", "threads.create_run")]


async def _until_entered(flog: FactoryLog) -> None:
    for _ in range(400):
        if flog.contexts():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the factory was never entered")


async def test_cm_factory_exits_when_the_run_is_cancelled(fclient, flog):
    thread = await fclient.threads.create()
    flog.mark()
    run = await fclient.runs.create(thread["thread_id"], "cm_factory", input={"items": [], "sleep": 30})
    await _until_entered(flog)
    await fclient.runs.cancel(thread["thread_id"], run["run_id"], wait=True)
    assert flog.contexts() == [("enter", "threads.create_run"), ("exit", "threads.create_run")]
    assert (await fclient.runs.get(thread["thread_id"], run["run_id"]))["status"] == "interrupted"


async def test_cm_factory_exits_on_rollback(fclient, flog):
    thread = await fclient.threads.create()
    flog.mark()
    run = await fclient.runs.create(thread["thread_id"], "cm_factory", input={"items": [], "sleep": 30})
    await _until_entered(flog)
    await fclient.runs.cancel(thread["thread_id"], run["run_id"], wait=True, action="rollback")
    assert flog.contexts() == [("enter", "threads.create_run"), ("exit", "threads.create_run")]


async def test_factory_errors_map_to_statuses(fserver, fclient):
    url = fserver[0].url
    thread = await fclient.threads.create(metadata={"graph_id": "raising_factory"})
    async with httpx.AsyncClient(base_url=url) as http:
        bad = (await fclient.assistants.search(graph_id="bad_return_factory"))[0]["assistant_id"]
        r = await http.get(f"/assistants/{bad}/schemas")
        assert r.status_code == 424
        assert "bad_return_factory" in r.json()["detail"]

        raising = (await fclient.assistants.search(graph_id="raising_factory"))[0]["assistant_id"]
        r = await http.get(f"/assistants/{raising}/schemas")
        assert r.status_code == 400
        assert r.json()["detail"] == "factory refused"
        r = await http.get(f"/threads/{thread['thread_id']}/state")
        assert r.status_code == 400

        crashing = (await fclient.assistants.search(graph_id="crashing_factory"))[0]["assistant_id"]
        r = await http.get(f"/assistants/{crashing}/graph")
        assert r.status_code == 500
        assert "factory crashed" not in r.text  # the traceback goes to the log, not the client
    assert "factory crashed" in fserver[0].log()


async def test_factory_failure_during_a_run_streams_only_an_error(fclient):
    thread = await fclient.threads.create()
    events = [
        (e.event, e.data)
        async for e in fclient.runs.stream(thread["thread_id"], "bad_return_factory", input={"items": []})
    ]
    assert [name for name, _ in events] == ["error"]
    out = await fclient.runs.wait(thread["thread_id"], "raising_factory", input={"items": []}, raise_error=False)
    assert out["__error__"] == {"error": "ValueError", "message": "factory refused"}
    assert (await fclient.threads.get(thread["thread_id"]))["status"] == "error"


async def test_topology_guard_warns_by_default(tmp_path):
    # the embedded server's processes share what their guards saw; the processes of a
    # scaled-out deployment do not yet (README, "Not supported yet")
    proc = ServerProcess(tmp_path).start()
    try:
        client = get_client(url=proc.url)
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "shifting_factory", input={"items": []})
        await client.threads.get_state(thread["thread_id"])
        log = proc.log()
    finally:
        proc.stop()
    assert "shifting_factory" in log and "different topology" in log
    assert "extra node 'extra'" in log or "node 'extra' missing" in log


def test_topology_guard_error_mode(tmp_path):
    proc = ServerProcess(tmp_path, args=["--topology-check", "error"]).start()
    try:
        with httpx.Client(base_url=proc.url) as http:
            tid = http.post("/threads", json={}).json()["thread_id"]
            assert http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "shifting_factory",
                                                                  "input": {"items": []}}).status_code == 200
            r = http.get(f"/threads/{tid}/state")
            assert r.status_code == 424
            assert "different topology" in r.json()["detail"]
            # a factory that keeps its topology is not affected
            http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "async_factory", "input": {"items": []}})
    finally:
        proc.stop()


async def test_graph_with_its_own_persistence_is_announced_and_uses_the_servers(fserver, fclient):
    log = fserver[0].log()
    assert "graph 'own_persistence'" in log and "its own checkpointer and store" in log
    thread = await fclient.threads.create()
    assert await fclient.runs.wait(thread["thread_id"], "own_persistence", input={"items": ["x"]}) == {
        "items": ["x", "kept"]
    }
    # the state lives in the server's checkpointer: readable through the API
    assert (await fclient.threads.get_state(thread["thread_id"]))["values"] == {"items": ["x", "kept"]}


def test_run_timeout_ends_the_run_and_exits_the_factory(tmp_path):
    log = tmp_path / "calls.jsonl"
    proc = ServerProcess(
        tmp_path / "data", env={"GRAPHDOCK_FACTORY_LOG": str(log)}, args=["--run-timeout", "1"]
    ).start()
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as http:
            tid = http.post("/threads", json={}).json()["thread_id"]
            body = http.post(
                f"/threads/{tid}/runs/wait", json={"assistant_id": "cm_factory", "input": {"items": [], "sleep": 30}}
            ).json()
            assert body["__error__"]["error"] == "TimeoutError"
            run = http.get(f"/threads/{tid}/runs").json()[0]
            assert run["status"] == "timeout"
            thread = http.get(f"/threads/{tid}").json()
            assert thread["status"] == "error" and thread["error"]["error"] == "TimeoutError"
        events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
        assert events == ["enter", "exit"]
    finally:
        proc.stop()
