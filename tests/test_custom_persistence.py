"""A custom checkpointer and store (``checkpointer.path``, ``store.path``) in place of
graphdock's own, and ``checkpointer.serde`` (tests/custom_persistence).

The custom ones mark what they save (checkpoint metadata ``saved_by``, item value
``stored_by``), so each check below also shows that the custom one was used. Embedded:
langgraph's ``InMemorySaver`` / ``InMemoryStore`` (runs then execute in the server
process). PostgreSQL + Redis (an API process and a worker): an in-memory saver would be two
savers, one per process, so the custom module yields langgraph's ``AsyncPostgresSaver`` /
``AsyncPostgresStore`` on a database of the test's own, shared by both processes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from langgraph_sdk import get_client

from conftest import ServerProcess

HERE = Path(__file__).resolve().parent / "custom_persistence"
CONFIG = HERE / "langgraph.json"


@pytest.fixture(scope="module", params=["embedded", "scaled-out"])
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data = tmp_path_factory.mktemp("custom_persistence")
    if request.param == "embedded":
        # run processes would each open an in-memory saver of their own: graphdock keeps the
        # runs in the server process (and says so)
        server: Any = ServerProcess(data, config=CONFIG, args=["--run-processes", "1"]).start()
        yield server
        server.stop()
        return
    from deployment import Deployment
    from services import create_database, drop_database, require_services

    require_services()
    name, uri = create_database("gdtest")
    server = Deployment(data, apis=1, workers=1, config=CONFIG, env={"GD_CUSTOM_PERSISTENCE_URI": uri})
    try:
        yield server.start()
    finally:
        server.destroy()
        drop_database(name)


def _log(srv: Any) -> str:
    return srv.log()


async def test_threads_state_history_and_runs(srv: Any) -> None:
    client = get_client(url=srv.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.wait(tid, "agent", input={}, raise_error=False)
    # the state holds an object only pickle can save: checkpointer.serde pickle_fallback
    assert first == {"count": 1, "sleep": 0, "opaque": "Opaque(10)", "recalled": 11}, _log(srv)
    second = await client.runs.wait(tid, "agent", input={})
    assert second["count"] == 2 and second["recalled"] == 22
    state = await client.threads.get_state(tid)
    assert state["values"]["count"] == 2 and state["metadata"]["saved_by"] == "custom"
    history = await client.threads.get_history(tid)
    assert len(history) == 8
    assert {h["metadata"]["saved_by"] for h in history} == {"custom"}
    runs = await client.runs.list(tid)
    assert [r["status"] for r in runs] == ["success", "success"]
    assert (await client.threads.get(tid))["values"]["count"] == 2
    # a stateless run has no checkpointer
    assert (await client.runs.wait(None, "agent", input={}))["count"] == 1
    await client.threads.delete(tid)
    with pytest.raises(httpx.HTTPStatusError):
        await client.threads.get_state(tid)
    if isinstance(srv, ServerProcess):  # started with --run-processes 1: said why none is used
        assert "runs are executed in the server process" in srv.log()


async def test_copy_rollback_prune(srv: Any) -> None:
    """The housekeeping the in-memory saver does not implement itself, through its API."""
    client = get_client(url=srv.url)
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "agent", input={})
    copy = await client.threads.copy(tid)
    assert (await client.threads.get_state(copy["thread_id"]))["values"]["count"] == 1
    assert len(await client.threads.get_history(copy["thread_id"])) == 4
    # a rolled-back run leaves no checkpoint behind
    run = await client.runs.create(tid, "agent", input={"sleep": 30})
    for _ in range(100):
        if len(await client.threads.get_history(tid)) > 4:
            break
        await asyncio.sleep(0.1)
    assert len(await client.threads.get_history(tid)) > 4  # the run has checkpointed
    await client.runs.cancel(tid, run["run_id"], action="rollback", wait=True)
    history = await client.threads.get_history(tid)
    assert len(history) == 4 and history[0]["values"]["count"] == 1
    # keep_latest: one checkpoint left, the same state, and the thread goes on from it
    await client.threads.prune([tid], strategy="keep_latest")
    history = await client.threads.get_history(tid)
    assert len(history) == 1 and history[0]["values"]["count"] == 1
    assert (await client.runs.wait(tid, "agent", input={}))["count"] == 2


async def test_store_routes_nodes_and_factories_use_the_custom_store(srv: Any) -> None:
    client = get_client(url=srv.url)
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "agent", input={})
    # the node's runtime.store
    item = await client.store.get_item(("agent",), "last")
    assert item["value"]["stored_by"] == "custom"
    # the factory's ServerRuntime.store
    await client.runs.wait(None, "factory", input={})
    item = await client.store.get_item(("factory",), "threads.create_run")
    assert item["value"] == {"called": True, "stored_by": "custom"}
    # the /store routes
    await client.store.put_item(("docs", "a"), "k1", {"text": "hello"})
    assert (await client.store.get_item(("docs", "a"), "k1"))["value"] == {"text": "hello", "stored_by": "custom"}
    found = await client.store.search_items(("docs",))
    assert [i["key"] for i in found["items"]] == ["k1"]
    namespaces = await client.store.list_namespaces(prefix=["docs"])
    assert namespaces["namespaces"] == [["docs", "a"]]
    await client.store.delete_item(("docs", "a"), "k1")
    assert await client.store.get_item(("docs", "a"), "k1") is None


async def test_without_pickle_fallback_the_opaque_state_cannot_be_saved(tmp_path: Path) -> None:
    """The same graph without ``checkpointer.serde``: its checkpoint cannot be written."""
    server = ServerProcess(tmp_path, config=HERE / "langgraph.no_serde.json", args=["--run-processes", "0"]).start()
    try:
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        result = await client.runs.wait(tid, "agent", input={}, raise_error=False)
        assert result["__error__"]["error"] == "TypeError", result
        assert "msgpack" in result["__error__"]["message"]
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["embedded", "scaled-out"])
async def test_serde_applies_to_graphdocks_own_checkpointer(tmp_path: Path, kind: str) -> None:
    """``checkpointer.serde`` without a custom checkpointer: graphdock's own SQLite saver (in
    the run processes too) and PostgreSQL saver save the object only pickle knows."""
    config = HERE / "langgraph.own_serde.json"
    if kind == "embedded":
        server: Any = ServerProcess(tmp_path, config=config, args=["--run-process-policy", "always"])
    else:
        from deployment import Deployment
        from services import require_services

        require_services()
        server = Deployment(tmp_path, apis=1, workers=1, config=config)
    server.start()
    try:
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        result = await client.runs.wait(tid, "agent", input={}, raise_error=False)
        assert result == {"count": 1, "sleep": 0, "opaque": "Opaque(10)", "recalled": 11}, server.log()
        assert (await client.runs.wait(tid, "agent", input={}))["recalled"] == 22
        assert (await client.threads.get_state(tid))["values"]["opaque"] == "Opaque(20)"
    finally:
        (getattr(server, "destroy", None) or server.stop)()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"checkpointer": {"path": "./persistence.py:nothing"}}, "checkpointer.path: ./persistence.py has no attribute 'nothing'"),
        ({"checkpointer": {"path": "./persistence.py:MARK"}}, "checkpointer.path: ./persistence.py:MARK gave str, not a langgraph BaseCheckpointSaver"),
        ({"checkpointer": {"path": "no-colon"}}, "checkpointer.path: expected"),
        ({"checkpointer": {"backend": "mongo"}}, "checkpointer.backend: expected 'default' or 'custom'"),
        ({"checkpointer": {"serde": {"pickle": True}}}, "checkpointer.serde.pickle: unknown key"),
        ({"checkpointer": {"serde": ["pickle_fallback"]}}, "checkpointer.serde: expected an object with"),
        ({"checkpointer": {"serde": {"pickle_fallback": "yes"}}}, "checkpointer.serde.pickle_fallback: expected true or false"),
        ({"checkpointer": {"path": "./persistence.py:checkpointer", "backend": "default"}}, "checkpointer.backend: 'custom' goes with"),
        ({"checkpointer": {"serde": {"allowed_json_modules": ["x"]}}}, "checkpointer.serde.allowed_json_modules: expected true or a list"),
        ({"store": {"path": "./persistence.py:MARK"}}, "store.path: ./persistence.py:MARK gave str, not a langgraph BaseStore"),
        ({"store": {"path": "persistence"}}, "store.path: expected"),
    ],
)
def test_misconfiguration_stops_start_up_with_one_line(
    tmp_path: Path, extra: dict[str, Any], message: str
) -> None:
    import json
    import shutil
    import subprocess
    import sys

    for name in ("graph.py", "persistence.py", "cp_opaque.py"):
        shutil.copy(HERE / name, tmp_path / name)
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"dependencies": ["."], "graphs": {"agent": "./graph.py:graph"}, **extra}))
    proc = subprocess.run(
        [sys.executable, "-m", "graphdock.cli", "serve", "--config", str(config), "--port", "1",
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr


async def test_a_saver_that_cannot_delete_threads_still_lets_threads_be_deleted(caplog):
    """Unit: BaseCheckpointSaver.adelete_thread raises NotImplementedError; deleting a thread
    must not fail on it (the thread's row is already gone), and says so once."""
    from langgraph.checkpoint.memory import InMemorySaver

    from graphdock.backends.custom import CustomSaver

    class NoDelete(InMemorySaver):
        async def adelete_thread(self, thread_id: str) -> None:
            raise NotImplementedError

    saver = CustomSaver(NoDelete())
    with caplog.at_level("WARNING", logger="graphdock.backends"):
        await saver.adelete_thread("t1")
        await saver.adelete_thread("t2")
    said = [r for r in caplog.records if "does not implement adelete_thread" in r.getMessage()]
    assert len(said) == 1 and "NoDelete" in said[0].getMessage()
