"""Thread TTLs through the official SDK, on every backend: ``ttl`` on create and patch,
``checkpointer.ttl`` defaults, both strategies, busy threads never swept, and bad
``checkpointer.ttl`` / ``webhooks`` keys stopping start-up with one line naming them.

tests/crons/langgraph.json sweeps every 0.6 s; TTLs here are 0.02 minutes (1.2 s).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import APIStatusError

from conftest import BACKENDS, ServerProcess, make_server

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "crons" / "langgraph.json"
ENV = {"GD_TEST_HOOK_TOKEN": "t", "GD_TEST_HOOK_SECRET": "s"}
SHORT = {"ttl": 0.02, "strategy": "delete"}


@pytest.fixture(scope="module", params=BACKENDS)
def ttl_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    srv = make_server(request.param, tmp_path_factory.mktemp("ttl"), config=CONFIG, env=ENV).start()
    yield srv
    (getattr(srv, "destroy", None) or srv.stop)()


@pytest.fixture
def client(ttl_server: Any) -> Any:
    return get_client(url=ttl_server.url)


async def gone(client: Any, thread_id: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await client.threads.get(thread_id)
        except APIStatusError as exc:
            if exc.status_code == 404:
                return True
            raise
        await asyncio.sleep(0.2)
    return False


async def test_a_thread_with_a_ttl_is_swept_with_its_checkpoints(client):
    doomed = await client.threads.create(ttl=SHORT)
    await client.runs.wait(doomed["thread_id"], "recorder", input={"tag": "ttl"})
    kept = await client.threads.create()
    assert await gone(client, doomed["thread_id"])
    assert (await client.threads.get(kept["thread_id"]))["thread_id"] == kept["thread_id"]
    # its checkpoints went too: a new thread of the same id starts empty
    again = await client.threads.create(thread_id=doomed["thread_id"])
    state = await client.threads.get_state(again["thread_id"])
    assert state["values"] == {} and state["checkpoint"] is None


async def test_patch_gives_a_thread_a_ttl(client):
    thread = await client.threads.create()
    await asyncio.sleep(2)
    assert (await client.threads.get(thread["thread_id"]))
    await client.threads.update(thread["thread_id"], metadata={"a": 1}, ttl=SHORT)
    assert await gone(client, thread["thread_id"])


async def test_keep_latest_prunes_old_checkpoints_and_keeps_the_thread(client):
    thread = await client.threads.create(ttl={"ttl": 0.02, "strategy": "keep_latest"})
    for _ in range(2):
        await client.runs.wait(thread["thread_id"], "recorder", input={"tag": "keep"})
    assert len(await client.threads.get_history(thread["thread_id"], limit=100)) > 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(await client.threads.get_history(thread["thread_id"], limit=100)) > 1:
        await asyncio.sleep(0.2)
    history = await client.threads.get_history(thread["thread_id"], limit=100)
    assert len(history) == 1 and history[0]["values"]["count"] == 2
    assert (await client.threads.get_state(thread["thread_id"]))["values"]["count"] == 2


async def test_a_busy_thread_is_never_swept_mid_run(client):
    thread = await client.threads.create(ttl=SHORT)
    run = await client.runs.create(thread["thread_id"], "hang", input={})
    await asyncio.sleep(4)
    got = await client.threads.get(thread["thread_id"])
    assert got["status"] == "busy"
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] in ("pending", "running")
    await client.runs.cancel(thread["thread_id"], run["run_id"], wait=True)
    assert await gone(client, thread["thread_id"])


async def test_invalid_ttl_requests_are_refused(client):
    for ttl in ({"ttl": -1}, {"ttl": 1, "strategy": "archive"}, {"minutes": 1}):
        with pytest.raises(APIStatusError) as err:
            await client.threads.create(ttl=ttl)
        assert err.value.status_code == 422


def _config(tmp_path: Path, **extra: Any) -> Path:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"recorder": str(HERE / "crons" / "recorder.py") + ":graph"}, **extra}))
    return path


async def test_default_ttl_from_the_configuration(tmp_path):
    config = _config(tmp_path, checkpointer={"ttl": {"default_ttl": 0.02, "sweep_interval_minutes": 0.01}})
    srv = ServerProcess(tmp_path / "data", config=config).start()
    try:
        client = get_client(url=srv.url)
        thread = await client.threads.create()
        assert await gone(client, thread["thread_id"])
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "extra, named",
    [
        ({"checkpointer": {"ttl": {"strategy": "archive"}}}, "checkpointer.ttl.strategy"),
        ({"checkpointer": {"ttl": {"default_ttl": "soon"}}}, "checkpointer.ttl.default_ttl"),
        ({"checkpointer": {"ttl": {"sweep_every": 1}}}, "checkpointer.ttl.sweep_every"),
        ({"webhooks": {"url": {"allowed_ports": ["x"]}}}, "webhooks.url.allowed_ports"),
        ({"webhooks": {"headers": {"A": "${{ env.SECRET_TOKEN }}"}}}, "webhooks.headers.A"),
        ({"webhooks": {"headers": {"A": "${{ env.LG_WEBHOOK_MISSING_X }}"}}}, "LG_WEBHOOK_MISSING_X"),
        ({"webhooks": {"retry": 3}}, "webhooks.retry"),
    ],
)
def test_bad_keys_stop_start_up_naming_them(tmp_path, extra, named):
    srv = ServerProcess(tmp_path / "data", config=_config(tmp_path, **extra))
    with pytest.raises(RuntimeError) as err:
        srv.start(timeout=30)
    assert named in str(err.value)
