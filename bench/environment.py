"""The machine and the code measured: recorded with every benchmark result."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import time
from typing import Any

from bench import procs


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"nproc": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    info["mem_total_mb"] = int(line.split()[1]) // 1024
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def loadavg() -> list[float] | None:
    try:
        with open("/proc/loadavg") as fh:
            return [float(x) for x in fh.read().split()[:3]]
    except OSError:
        return None


def cpu_speed_ms() -> float:
    """Milliseconds this machine takes for a fixed piece of pure-Python work (best of 5).

    The VM's speed drifts by a tenth or more within minutes. Recorded before and after a
    run, this is a rough indication of how fast the machine was; it measures the
    interpreter's arithmetic only, not memory or system calls, and has been seen steady
    while the server's CPU per run moved by a tenth.
    """
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += i * i % 7
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000.0, 2)


def git_revision() -> dict[str, Any]:
    def git(*argv: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *argv], cwd=procs.ROOT, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (subprocess.SubprocessError, OSError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(status) if status is not None else None,
        "worktree_sha1": worktree_digest(git),
    }


def worktree_digest(git: Any) -> str | None:
    """sha1 over ``git diff HEAD`` and the untracked files of ``graphdock/`` and ``bench/``:
    what the working tree adds to the commit (the same digest means the same code
    measured), None when git cannot be asked."""
    diff = git("diff", "HEAD")
    untracked = git("ls-files", "--others", "--exclude-standard", "--", "graphdock", "bench")
    if diff is None or untracked is None:
        return None
    digest = hashlib.sha1(diff.encode())
    for name in sorted(n for n in untracked.splitlines() if n):
        digest.update(name.encode())
        try:
            digest.update((procs.ROOT / name).read_bytes())
        except OSError:
            pass
    return digest.hexdigest()
