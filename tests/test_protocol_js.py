"""The JS SDK's thread streams (``client.threads.stream(...)`` of ``@langchain/langgraph-sdk``,
pinned in tests/js/protocol/package.json: the first release line with the thread streaming
protocol) against graphdock, over SSE and WebSocket.

``tests/js/protocol/protocol.mjs`` runs each step on both transports and prints a JSON
summary. The SDK is installed into tests/js/protocol/node_modules (git-ignored, no
lockfile) on first use; Node 20 needs ``--experimental-websocket`` for the WebSocket
transport (later versions have the global ``WebSocket``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any, Iterator

import pytest

from conftest import BACKENDS, ROOT, make_server

JS = ROOT / "tests" / "js" / "protocol"
SDK = "@langchain/langgraph-sdk"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not on PATH; the JS SDK protocol test needs Node.js and npm")
    return path


def _pinned_version() -> str:
    return json.loads((JS / "package.json").read_text())["dependencies"][SDK]


def _installed_version() -> str | None:
    try:
        return json.loads((JS / "node_modules" / SDK / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def _install_sdk() -> None:
    if _installed_version() == _pinned_version():
        return
    proc = subprocess.run(
        [_tool("npm"), "install", "--no-package-lock", "--no-audit", "--no-fund"],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0 or _installed_version() != _pinned_version():
        pytest.fail(
            f"`npm install` in {JS} could not install {SDK}@{_pinned_version()} (exit {proc.returncode}); "
            f"it needs the npm registry the first time.\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )


@pytest.fixture(scope="module", params=BACKENDS)
def js_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = make_server(request.param, tmp_path_factory.mktemp("js-protocol")).start()
    yield server
    server.stop()


def _node_args(node: str) -> list[str]:
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    major = int(version.lstrip("v").split(".")[0])
    return ["--experimental-websocket"] if major < 22 else []


def test_js_thread_streams_against_graphdock(js_server: Any) -> None:
    node = _tool("node")
    _install_sdk()
    proc = subprocess.run(
        [node, *_node_args(node), str(JS / "protocol.mjs"), js_server.url],
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
    if proc.returncode != 0 or summary is None or not summary.get("ok"):
        failures = json.dumps((summary or {}).get("failures"), indent=2)
        pytest.fail(
            f"protocol.mjs exited {proc.returncode}\n--- failures ---\n{failures}\n"
            f"--- stderr ---\n{proc.stderr[-6000:]}\n--- stdout ---\n{proc.stdout[-2000:] if summary is None else ''}"
        )
    assert summary["sdk_version"] == _pinned_version()
    results = summary["results"]
    for transport in ("sse", "websocket"):
        assert results[f"{transport}: plain graph"]["output"] == {"items": ["js", "a", "b"]}
        chat = results[f"{transport}: chat messages"]
        assert chat == {"texts": ["hello there friend"], "last": "hello there friend"}
        agent = results[f"{transport}: agent tool calls"]
        # the SDK yields a call when it starts and again when it finishes
        assert {(c["name"], c["output"]) for c in agent["calls"]} == {("add", '"3"')}
        assert agent["types"] == ["human", "ai", "tool", "ai"] and agent["last"] == "the answer is 3"
        interrupt = results[f"{transport}: interrupt + respond"]
        assert interrupt["interrupts"] == [{"payload": {"question": "approve?"}, "namespace": []}]
        assert interrupt["values"] == {"items": ["js yes"]}
        nested = results[f"{transport}: subgraphs"]
        assert [ns[0].split(":")[0] for ns in nested["namespaces"]] == ["outer"]
        assert nested["output"] == {"items": ["leaf"]}
        state = results[f"{transport}: state commands"]
        assert state == {"values": {"items": ["s", "a", "b"]}, "steps": [2, 1, 0, -1], "tree": "simple"}
