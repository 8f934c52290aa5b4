"""The official JS SDK (``@langchain/langgraph-sdk``, pinned in tests/js/package.json) works
against graphdock unchanged.

``tests/js/compat.mjs`` drives a dedicated graphdock server with ``new Client({ apiUrl })``:
assistants, threads, state and history, runs the way React's ``useStream`` submits them,
background runs, joins and replays, interrupts, cancellation, stateless and batch runs, the
store and the thread stream. It prints a JSON summary and exits non-zero on any failure.

The SDK is installed into tests/js/node_modules (git-ignored, no lockfile) on first use.
Without node and npm on the PATH the test fails: they are part of every machine it runs on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, ServerProcess

JS = ROOT / "tests" / "js"
SDK = "@langchain/langgraph-sdk"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"`{name}` is not on PATH; the JS SDK compatibility test needs Node.js and npm"
        pytest.fail(message)
    return path


def _pinned_version() -> str:
    return json.loads((JS / "package.json").read_text())["dependencies"][SDK]


def _installed_version() -> str | None:
    manifest = JS / "node_modules" / SDK / "package.json"
    try:
        return json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def _install_sdk() -> None:
    """npm-install tests/js (without writing a lockfile) unless the pinned SDK is there."""
    if _installed_version() == _pinned_version():
        return
    npm = _tool("npm")
    proc = subprocess.run(
        [npm, "install", "--no-package-lock", "--no-audit", "--no-fund"],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0 or _installed_version() != _pinned_version():
        pytest.fail(
            f"`npm install` in {JS} could not install {SDK}@{_pinned_version()} "
            f"(exit {proc.returncode}; installed: {_installed_version()}). It needs access to the npm "
            "registry the first time; install it once with network access, e.g. "
            f"`cd tests/js && npm install --no-package-lock`.\n"
            f"--- npm stdout ---\n{proc.stdout[-4000:]}\n--- npm stderr ---\n{proc.stderr[-4000:]}"
        )


@pytest.fixture(scope="module")
def js_server(tmp_path_factory: pytest.TempPathFactory):
    proc = ServerProcess(tmp_path_factory.mktemp("js-sdk")).start()
    yield proc
    proc.stop()


def _run_compat(url: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    node = _tool("node")
    proc = subprocess.run(
        [node, str(JS / "compat.mjs"), url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        summary = json.loads(proc.stdout)
    except ValueError:
        summary = None
    return proc, summary


def test_js_sdk_against_graphdock(js_server: ServerProcess) -> None:
    _tool("node")
    _install_sdk()
    proc, summary = _run_compat(js_server.url)
    if proc.returncode != 0 or summary is None or not summary.get("ok"):
        failures = json.dumps((summary or {}).get("failures"), indent=2)
        pytest.fail(
            f"compat.mjs exited {proc.returncode}\n--- failures ---\n{failures}\n"
            f"--- stderr ---\n{proc.stderr[-6000:]}\n--- stdout ---\n{proc.stdout[-2000:] if summary is None else ''}\n"
            f"--- server log ---\n{js_server.log()[-6000:]}"
        )

    assert summary["sdk_version"] == _pinned_version()
    assert all(step["ok"] for step in summary["steps"])
    results = summary["results"]

    # every area the brief covers actually ran
    expected_steps = {
        "assistants.search", "assistants.get", "assistants.getGraph", "assistants.getSchemas",
        "threads.create", "threads.get", "threads.search", "threads.getState", "threads.getHistory",
        "threads.updateState", "runs.stream (useStream submit)", "runs.wait", "runs.create + runs.join",
        "runs.joinStream (lastEventId)", "interrupt + resume", "runs.cancel", "stateless runs.wait",
        "store", "threads.joinStream", "runs.createBatch", "null options",
    }
    assert expected_steps <= {step["name"] for step in summary["steps"]}

    chat = results["runs.stream (useStream submit)"]
    assert chat["text"] == "hello there friend"
    assert len(chat["tokens"]) > 1  # streamed token by token, not as one message
    assert {"metadata", "values", "messages", "updates"} <= set(chat["events"])
    assert chat["final_messages"] == 2

    assert results["runs.wait"] == {"items": ["x", "a", "b"]}
    assert results["threads.getState"]["values"] == {"items": ["x", "a", "b"]}
    assert results["runs.create + runs.join"]["output"] == {"items": ["j", "a", "b"]}
    assert results["interrupt + resume"] == {"interrupt": {"question": "approve?"}, "answer": "yes"}
    assert results["stateless runs.wait"] == {"items": ["s", "a", "b"]}
    assert results["runs.stream (custom)"]["custom"] == [{"progress": 1}, {"progress": 2}]
    assert results["runs.joinStream (lastEventId)"]["replayed"] >= 3
    assert results["store"]["item"] == {"v": 1, "text": "hello"}

    # the useStream-shaped submit really carried the fields useStream sends
    stream_body = set(summary["request_shapes"]["POST /threads/{id}/runs/stream"]["body"])
    assert {
        "input", "command", "config", "context", "metadata", "multitask_strategy", "on_disconnect",
        "checkpoint", "stream_mode", "stream_subgraphs", "stream_resumable", "durability",
        "interrupt_before", "interrupt_after", "if_not_exists",
    } <= stream_body
    # and createBatch's camelCase items reached the server as such
    assert "assistantId" in summary["request_shapes"]["POST /runs/batch"]["body"]


def test_js_compat_script_reports_failures(tmp_path: Path) -> None:
    """Against something that is not graphdock, the script fails loudly instead of passing."""
    _tool("node")
    _install_sdk()
    proc, summary = _run_compat("http://127.0.0.1:9")  # nothing listens on the discard port
    assert proc.returncode == 1
    assert summary is not None and summary["ok"] is False and summary["failures"]
    assert "FAILED assistants.search" in proc.stderr


# -- the JS SDK's wire shapes, checked without node ------------------------------------------


def test_json_array_query_values(http):
    """The JS SDK sends a list query parameter as one JSON-encoded value."""
    tid = http.post("/threads", json={}).json()["thread_id"]
    run = http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "simple", "input": {"items": []}})
    run_id = run.headers["content-location"].rsplit("/", 1)[1]
    r = http.get(f"/threads/{tid}/runs", params={"select": '["run_id","status"]'})
    assert r.status_code == 200, r.text
    assert r.json() == [{"run_id": run_id, "status": "success"}]
    r = http.get(f"/threads/{tid}/runs", params={"select": '["run_id","nope"]'})
    assert r.status_code == 422 and "nope" in r.json()["detail"]
    r = http.get(f"/threads/{tid}/runs", params={"select": '["run_id"'})
    assert r.status_code == 422 and "Invalid select" in r.json()["detail"]
    with http.stream("GET", f"/threads/{tid}/stream", params={"stream_mode": '["run_modes","lifecycle"]'}) as r:
        assert r.status_code == 200
    r = http.get(f"/threads/{tid}/stream", params={"stream_mode": '["run_modes","nope"]'})
    assert r.status_code == 422 and "nope" in r.json()["detail"]


def test_last_event_id_minus_one_replays_everything(http):
    """useStream's joinStream sends ``Last-Event-ID: -1`` unless told otherwise."""
    tid = http.post("/threads", json={}).json()["thread_id"]
    with http.stream(
        "POST", f"/threads/{tid}/runs/stream",
        json={"assistant_id": "simple", "input": {"items": []}, "stream_mode": ["values"], "stream_resumable": True},
    ) as r:
        original = r.read()
    run_id = r.headers["content-location"].rsplit("/", 1)[1]
    replay = http.get(f"/threads/{tid}/runs/{run_id}/stream", headers={"Last-Event-ID": "-1"})
    assert replay.status_code == 200
    assert replay.content == original
    r = http.get(f"/threads/{tid}/runs/{run_id}/stream", headers={"Last-Event-ID": "-2"})
    assert r.status_code == 422


async def test_batch_accepts_the_js_sdk_camel_case_items(client, http):
    marker = str(uuid.uuid4())
    items = [
        {"assistantId": "simple", "input": {"items": ["c"]}, "onCompletion": "keep", "streamMode": ["values"],
         "metadata": {"batch": marker}, "assistant_id": "simple"},
    ]
    r = http.post("/runs/batch", json=items)
    assert r.status_code == 200, r.text
    [run] = r.json()
    assert await client.runs.join(run["thread_id"], run["run_id"]) == {"items": ["c", "a", "b"]}
    assert [t["thread_id"] for t in await client.threads.search(metadata={"batch": marker})] == [run["thread_id"]]
    r = http.post("/runs/batch", json=[{**items[0], "assistantId": "chat"}])
    assert r.status_code == 422 and "assistantId" in r.json()["detail"]
    r = http.post("/runs/batch", json=[{**items[0], "onDisconnect": "cancel"}])
    assert r.status_code == 422 and "on_disconnect" in r.json()["detail"]
    r = http.post("/runs/batch", json=[{**items[0], "fooBar": 1}])
    assert r.status_code == 422 and "fooBar" in r.json()["detail"]
    # single-run endpoints stay strict: camelCase is only what createBatch sends
    r = http.post("/runs/wait", json={"assistant_id": "simple", "input": {"items": []}, "streamMode": "values"})
    assert r.status_code == 422 and "streamMode" in r.json()["detail"]


def test_null_means_default_for_defaulted_fields(http):
    r = http.post("/threads", json={"thread_id": None, "if_exists": None, "metadata": None})
    assert r.status_code == 200, r.text
    tid = r.json()["thread_id"]
    r = http.post("/threads/search", json={"ids": [tid], "limit": None, "offset": None, "status": None})
    assert r.status_code == 200 and [t["thread_id"] for t in r.json()] == [tid]
    r = http.post("/threads", json={"if_exists": "sometimes"})
    assert r.status_code == 422
    r = http.post("/assistants/search", json={"limit": 0})
    assert r.status_code == 422


def test_browser_clients_can_read_the_stream_locations(http):
    """useStream in a browser reads Content-Location (run id) and Location (reconnect path)."""
    tid = http.post("/threads", json={}).json()["thread_id"]
    r = http.post(
        f"/threads/{tid}/runs/wait",
        json={"assistant_id": "simple", "input": {"items": []}},
        headers={"Origin": "https://chat.example"},
    )
    exposed = {h.strip() for h in r.headers["access-control-expose-headers"].lower().split(",")}
    assert {"content-location", "location"} <= exposed
