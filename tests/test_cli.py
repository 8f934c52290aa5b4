"""The graphdock command: config check, start-up failures, the banner, dev mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from conftest import CONFIG, GRAPHS, ROOT, ServerProcess


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphdock.cli", *args],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_config_check_ok():
    result = _cli("config", "check", "--config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: ")
    assert "simple" in result.stdout


def test_config_check_names_file_attribute_and_exports():
    result = _cli("config", "check", "--config", str(GRAPHS / "broken" / "langgraph.json"))
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    line = lines[0]
    assert "'broken'" in line and "g.py" in line and "'missing'" in line
    assert "graph" in line and "other_graph" in line  # the graph-like exports are suggested


def test_bad_factory_signature_is_named_at_start_up():
    result = _cli("config", "check", "--config", str(GRAPHS / "bad_signature" / "langgraph.json"))
    assert result.returncode == 1
    assert "three_param_factory" in result.stdout and "'bad_signature'" in result.stdout


def test_serve_refuses_to_start_on_a_broken_graph(tmp_path: Path):
    result = _cli(
        "serve", "--config", str(GRAPHS / "broken" / "langgraph.json"),
        "--port", "0", "--data-dir", str(tmp_path),
    )
    assert result.returncode == 1
    assert "has no attribute 'missing'" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_file(tmp_path: Path):
    result = _cli("serve", "--config", str(tmp_path / "nope.json"), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "does not exist" in result.stderr


def test_invalid_config_json(tmp_path: Path):
    bad = tmp_path / "langgraph.json"
    bad.write_text('{"graphs": ')
    result = _cli("config", "check", "--config", str(bad))
    assert result.returncode == 1
    assert "invalid JSON" in result.stderr


def test_a_store_index_whose_embedder_cannot_be_loaded_is_refused(tmp_path: Path):
    cfg = tmp_path / "langgraph.json"
    cfg.write_text(
        '{"graphs": {"simple": "%s:graph"}, "store": {"index": {"dims": 3, "embed": "x:y"}}}'
        % (GRAPHS / "simple.py")
    )
    result = _cli("config", "check", "--config", str(cfg))
    assert result.returncode == 1
    assert "store.index" in result.stderr


def test_dev_prints_where_api_docs_and_data_are(tmp_path: Path):
    proc = ServerProcess(tmp_path, command="dev", args=["--no-reload"]).start()
    try:
        banner = proc.log()
        assert f"API:    {proc.url}" in banner
        assert f"Docs:   {proc.url}/docs" in banner
        assert f"Data:   {tmp_path / 'graphdock.sqlite'}" in banner
        assert httpx.get(f"{proc.url}/ok").json()["ok"] is True
    finally:
        proc.stop()
