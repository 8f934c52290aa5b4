"""Schemathesis over graphdock's own OpenAPI document: no request it generates gets a 5xx.

The coverage phase (boundary values and invalid data for every operation) and the fuzzing
phase (random valid and invalid requests) run against the ``/openapi.json`` of a server of
the test's own (the test graphs' ``langgraph.json``), on the embedded default and on a
scaled-out deployment (PostgreSQL + Redis): the hundreds of assistants, threads, crons
and store items the fuzzer makes stay out of the session server the other tests share. The only check is ``not_a_server_error``:
every answer, whatever was sent, is below 500. The run is bounded (examples per
operation) so that each backend takes a few minutes at most.

The document is served as the server made it, but for one thing: the graphs a generated
run may name. The test graphs include some that exit or crash their process on purpose
(tests/test_crash.py); fuzzing runs only the harmless ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conftest import BACKENDS, make_server

# graphs a generated run may execute: quick, and they never take their process down
SAFE_GRAPHS = ["simple", "echo_config"]
# examples per operation and phase; the coverage phase adds its own boundary cases
MAX_EXAMPLES = int(os.environ.get("GRAPHDOCK_FUZZ_EXAMPLES", "25"))
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def _restrict(node: object) -> None:
    """Every graph-id enum of the document narrowed to :data:`SAFE_GRAPHS`, and runs
    delayed by a second at most (a run delayed for years keeps ``/wait`` waiting)."""
    if isinstance(node, dict):
        enum = node.get("enum")
        if isinstance(enum, list) and set(SAFE_GRAPHS) <= set(enum) and len(enum) > len(SAFE_GRAPHS):
            node["enum"] = list(SAFE_GRAPHS)
        delay = node.get("properties", {}).get("after_seconds")
        if isinstance(delay, dict):
            node["properties"]["after_seconds"] = {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "null"}]}
        for value in node.values():
            _restrict(value)
    elif isinstance(node, list):
        for value in node:
            _restrict(value)


@pytest.fixture(params=BACKENDS)
def fuzzed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a server of this test's own on each backend."""
    server = make_server(request.param, tmp_path / "server", args=["--run-processes", "0"]
                         if request.param == "embedded" else None)  # fmt: skip
    server.start()
    try:
        yield server.url
    finally:
        if hasattr(server, "destroy"):
            server.destroy()
        else:
            server.stop()


@pytest.mark.timeout(900)  # a few minutes on a loaded 2-core machine; the run is bounded by examples
def test_no_server_error(fuzzed: str, tmp_path: Path) -> None:
    url = fuzzed
    document = httpx.get(f"{url}/openapi.json", timeout=30).json()
    _restrict(document)
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(document))
    command = [
        str(SCHEMATHESIS), "run", str(spec), "--url", url,
        "--phases", "coverage,fuzzing",
        # streams that last as long as their thread: they never answer in full (their
        # errors are in tests/test_hostile.py)
        "--exclude-path", "/threads/{thread_id}/stream",
        "--exclude-path", "/threads/{thread_id}/stream/events",
        "--checks", "not_a_server_error",
        "--max-examples", str(MAX_EXAMPLES),
        # one worker: with more, hypothesis parses lambda sources on several threads at once,
        # which CPython 3.11's parser does not survive (SystemError: AST constructor recursion)
        "--workers", "1",
        # SSE routes stream until the client leaves: a timeout ends them, not a failure
        "--request-timeout", "10",
        "--generation-database", "none",
        "--continue-on-failure",
        "--seed", os.environ.get("GRAPHDOCK_FUZZ_SEED", "20261207"),
        "--no-color",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"schemathesis found server errors:\n{output[-20000:]}"
    assert " passed" in output, output[-5000:]
