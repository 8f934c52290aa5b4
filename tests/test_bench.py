"""The benchmark harness runs end to end (``bench/run.py --quick``) and reports sane numbers.

Only the shape and sanity of the output are checked; speed is never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = "abcde"


def test_quick_run_reports_every_workload(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if k != "GRAPHDOCK_BENCH_OFFICIAL_VENV"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--no-official", "--out", str(out)],
        cwd=str(ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "official server: skipped" in proc.stdout
    assert "graphdock / official and graphdock / in-process" in proc.stdout

    result = json.loads(out.read_text())
    assert result["settings"]["quick"] is True
    runs = result["settings"]["runs"]
    assert runs > 0
    assert set(result["servers"]) == {"graphdock"}
    server = result["servers"]["graphdock"]
    assert server["idle_rss_mb"] > 0 and server["peak_rss_mb"] >= server["idle_rss_mb"] * 0.5
    assert server["startup_s"] > 0 and server["alive_at_end"] is True
    assert result["machine"]["nproc"] >= 1
    assert result["versions"]["graphdock"]["langgraph"]

    rows = {(r["workload"], r["target"]): r for r in result["results"]}
    assert not any(target == "official" for _, target in rows)
    for key in WORKLOADS:
        for target in ("graphdock", "in-process"):
            row = rows[(key, target)]
            assert row["errors"] == 0, row["error_examples"]
            assert row["ok"] == row["runs"] == runs
            assert row["throughput_rps"] > 0
            lat = row["latency_ms"]
            assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]
            assert row["cpu_ms_per_run"] is not None and row["cpu_ms_per_run"] >= 0
        assert rows[(key, "graphdock")]["peak_rss_mb"] > 0
    assert rows[("a", "in-process+sqlite")]["ok"] == runs
    for key in "cd":
        for target in ("graphdock", "in-process"):
            custom = rows[(key, target)]["custom_event_ms"]
            assert custom is not None and custom["p50"] is not None

    ratios = {q["workload"]: q for q in result["ratios"]}
    assert set(ratios) == set(WORKLOADS)
    for q in ratios.values():
        assert q["throughput_vs_inprocess"] > 0
        assert "throughput_vs_official" not in q
