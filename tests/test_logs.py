"""Structured logs: with ``LOG_JSON=true`` (or ``--log-format json``) every line a graphdock
process writes is one JSON object, request ids travel from ``X-Request-ID`` to the
response and the logs, and run log lines name their run.

Each server is driven, then stopped, and its whole output (stdout and stderr) is read:
the start-up banner, uvicorn's lines, the access log, a failing graph's traceback, a
graph's own log line, the shutdown lines. Embedded (with every run in a run process, so
that a run process's lines are checked too) and scaled out (API processes and workers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from conftest import ROOT, ServerProcess
from test_metrics import write_graphs

REQUIRED = {"timestamp", "level", "logger", "message"}


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text``, parsed; fails naming the first line that is not a JSON object."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(entry, dict) and REQUIRED <= set(entry), line
        entries.append(entry)
    return entries


class Served:
    def __init__(self, kind: str, proc: Any) -> None:
        self.kind, self.proc = kind, proc

    @property
    def url(self) -> str:
        return self.proc.api_url(0) if self.kind == "scaled-out" else self.proc.url

    def output(self) -> str:
        if self.kind == "scaled-out":
            return "\n".join(path.read_text() for path in sorted(self.proc.data_dir.glob("*.log")))
        return self.proc.log()


@pytest.fixture(scope="module", params=["embedded", "scaled-out"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    config = write_graphs(tmp_path_factory.mktemp("loggraphs"))
    document = json.loads(config.read_text())
    document.setdefault("http", {})["logging_headers"] = {"includes": ["x-trace-*", "authorization"], "excludes": ["x-trace-secret"]}
    config.write_text(json.dumps(document))
    data = tmp_path_factory.mktemp("logdata")
    env = {"LOG_JSON": "true"}
    if request.param == "scaled-out":
        from deployment import Deployment
        from services import require_services

        require_services()
        deployment = Deployment(data, config=config, env=env, args=["--log-level", "info"]).start()
        try:
            yield Served("scaled-out", deployment)
        finally:
            deployment.destroy()
        return
    proc = ServerProcess(
        data, config=config, env=env, args=["--log-level", "info", "--run-process-policy", "always"]
    ).start()
    try:
        yield Served("embedded", proc)
    finally:
        proc.stop()


def test_every_line_is_json_with_request_and_run_ids(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=60) as http:
        tid = http.post("/threads", json={}).json()["thread_id"]
        r = http.post(
            f"/threads/{tid}/runs/wait",
            json={"assistant_id": "sleepy", "input": {"sleep": 0.01}},
            headers={
                "X-Request-ID": "req-from-the-client-1",
                "X-Trace-Me": "yes",
                "X-Trace-Secret": "s3cr3t-value-9",
                "Authorization": "Bearer never-logged",
            },
        )
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-from-the-client-1"
        run_id = r.headers["content-location"].rsplit("/", 1)[-1]
        generated = http.get("/ok").headers["x-request-id"]
        assert len(generated) == 36  # a new UUID
        bad = http.get("/ok", headers={"X-Request-ID": "has spaces in it"}).headers["x-request-id"]
        assert bad != "has spaces in it" and len(bad) == 36
        failed = http.post("/runs/wait", json={"assistant_id": "failing", "input": {}})
        assert "boom from the graph" in failed.text
        assert http.get("/no/such/route").status_code == 404
    served.proc.stop()  # everything it writes, shutdown included
    entries = json_lines(served.output())

    assert any(e["logger"] == "graphdock" and "banner" in e for e in entries), "the start-up banner"
    assert any(e["logger"].startswith("uvicorn") for e in entries), "uvicorn's own lines"
    access = [e for e in entries if e["logger"] == "graphdock.access"]
    ours = [e for e in access if e.get("request_id") == "req-from-the-client-1"]
    assert ours and ours[0]["route"] == "/threads/{thread_id}/runs/wait" and ours[0]["status"] == 200
    # http.logging_headers: the headers it selects, never credentials
    assert ours[0]["headers"] == {"x-trace-me": "yes"}
    assert "never-logged" not in served.output() and "s3cr3t-value-9" not in served.output()
    assert any(e.get("request_id") == generated and e["path"] == "/ok" for e in access)
    assert any(e["route"] == "unmatched" and e["status"] == 404 for e in access)

    graph_lines = [e for e in entries if e["logger"] == "tests.graph"]
    mine = [e for e in graph_lines if e.get("run_id") == run_id]
    assert mine, graph_lines
    assert mine[0]["thread_id"] == tid and mine[0]["level"] == "warning" and mine[0].get("assistant_id")

    tracebacks = [e for e in entries if "boom from the graph" in e.get("exception", "")]
    assert tracebacks, "the failing graph's traceback"
    assert "Traceback" in tracebacks[0]["exception"] and tracebacks[0].get("run_id")


def _startup_error(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"missing": "./nowhere.py:graph"}}))
    return subprocess.run(
        [sys.executable, "-m", "graphdock.cli", "serve", "--config", str(config),
         "--data-dir", str(tmp_path / "data"), "--port", "0", *args],
        cwd=str(ROOT), env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("how", ["LOG_JSON", "--log-format"])
def test_start_up_error_is_one_json_line(tmp_path: Path, how: str) -> None:
    env, args = ({"LOG_JSON": "true"}, ()) if how == "LOG_JSON" else ({"LOG_JSON": ""}, ("--log-format", "json"))
    done = _startup_error(tmp_path, env, *args)
    assert done.returncode == 1
    entries = json_lines(done.stdout + done.stderr)
    errors = [e for e in entries if e["level"] == "error"]
    assert len(errors) == 1 and "nowhere.py" in errors[0]["message"], entries


def test_plain_lines_by_default(tmp_path: Path) -> None:
    done = _startup_error(tmp_path, {"LOG_JSON": ""})
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("error: ") for line in lines), lines
    flag = _startup_error(tmp_path, {"LOG_JSON": "true"}, "--log-format", "plain")
    assert [line for line in flag.stderr.splitlines() if line.strip()][0].startswith("error: ")
