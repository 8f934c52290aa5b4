"""Server processes under test: start, wait until ready, measure, stop.

Memory and CPU are read from ``/proc`` (Linux only) for the server process and
all of its descendants: ``VmRSS``/``VmHWM`` from ``/proc/<pid>/status`` and
``utime + stime`` from ``/proc/<pid>/stat``. A background thread samples the
tree's summed RSS so that a peak can be taken over any time window.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = Path(__file__).resolve().parent / "graphs"
CONFIG = GRAPHS / "langgraph.json"
OFFICIAL_VENV_ENV = "GRAPHDOCK_BENCH_OFFICIAL_VENV"

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- /proc ---------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (empty when ``pid`` is gone)."""
    if not os.path.exists(f"/proc/{pid}"):
        return []
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
            except OSError:
                pass
    return out


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pause(pids: list[int]) -> list[int]:
    """SIGSTOP each process tree of ``pids``; the processes actually paused."""
    paused = []
    for root in pids:
        for pid in process_tree(root):
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                continue
            paused.append(pid)
    return paused


def resume(pids: list[int]) -> None:
    """SIGCONT what :func:`pause` paused."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def tree_rss_kb(pid: int) -> int:
    """Current resident set of the process tree, summed (kB)."""
    return sum(_status_kb(p, "VmRSS") for p in process_tree(pid))


def tree_hwm_kb(pid: int) -> int:
    """Sum over the tree of each process's own peak resident set (kB)."""
    return sum(_status_kb(p, "VmHWM") for p in process_tree(pid))


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time consumed so far by the live process tree."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            # fields[0] is state (field 3); utime/stime are fields 14/15
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / _CLK_TCK


class RssSampler:
    """Samples the summed RSS of a process tree every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"rss-{pid}", daemon=True)

    def start(self) -> "RssSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), tree_rss_kb(self.pid)))
            self._stop.wait(self.interval)

    def peak_kb(self, windows: list[tuple[float, float]]) -> int:
        """The largest sample taken inside any of ``windows`` (monotonic start, end).

        A window shorter than the sampling interval may contain no sample; it is then
        represented by the first sample taken after it ends.
        """
        samples = list(self.samples)
        best = 0
        for start, end in windows:
            inside = [kb for t, kb in samples if start <= t <= end]
            if not inside:
                inside = [kb for t, kb in samples if t > end][:1]
            best = max([best, *inside])
        return best


# -- servers -------------------------------------------------------------------


@dataclass
class Server:
    """One HTTP server under test, started as a subprocess in its own session."""

    name: str
    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    startup_s: float = 0.0
    idle_rss_kb: int = 0
    proc: subprocess.Popen[bytes] | None = None
    sampler: RssSampler | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, *, timeout: float = 120.0, settle: float = 1.0) -> "Server":
        assert self.log_path is not None
        log = open(self.log_path, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=str(self.cwd),
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/ok", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not answer /ok in {timeout:g}s:\n{self.log_tail()}")
            time.sleep(0.05)
        self.startup_s = time.monotonic() - t0
        time.sleep(settle)
        self.idle_rss_kb = tree_rss_kb(self.pid)
        self.sampler = RssSampler(self.pid).start()
        return self

    def stop(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        try:  # anything the server left behind in the session it was started in
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def log_tail(self, n: int = 40) -> str:
        try:
            assert self.log_path is not None
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except (OSError, AssertionError):
            return ""


def graphdock_server(workdir: Path, *, n_jobs: int, extra: Sequence[str] = ()) -> Server:
    """``graphdock serve`` on the bench graphs, embedded SQLite in a fresh data dir
    (``extra``: more arguments)."""
    data_dir = workdir / "graphdock-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    return Server(
        name="graphdock",
        argv=[
            sys.executable, "-m", "graphdock.cli", "serve",
            "--config", str(CONFIG),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--data-dir", str(data_dir),
            "--n-jobs-per-worker", str(n_jobs),
            "--log-level", "warning",
            *extra,
        ],
        cwd=ROOT,
        port=port,
        log_path=workdir / "graphdock.log",
    )


def find_official_venv(explicit: str | None) -> Path | None:
    """The virtualenv holding the official ``langgraph`` CLI, or None when there is none."""
    candidate = explicit or os.environ.get(OFFICIAL_VENV_ENV)
    if not candidate:
        return None
    venv = Path(candidate).expanduser()
    return venv if (venv / "bin" / "langgraph").exists() else None


def official_server(workdir: Path, venv: Path, *, n_jobs: int | None = None) -> Server:
    """``langgraph dev`` (in-memory runtime) on a copy of the bench graphs.

    ``langgraph dev`` resolves graph paths against its working directory and
    writes its in-memory state there, so it runs in a scratch copy of
    ``bench/graphs``. ``n_jobs=None`` leaves ``--n-jobs-per-worker`` at the
    official server's own default, as its users run it.
    """
    copy = workdir / "official-graphs"
    shutil.copytree(GRAPHS, copy, ignore=shutil.ignore_patterns("__pycache__", ".langgraph_api"))
    port = free_port()
    return Server(
        name="official",
        argv=[
            str(venv / "bin" / "langgraph"), "dev",
            "--config", "langgraph.json",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--no-browser",
            "--no-reload",
            *(["--n-jobs-per-worker", str(n_jobs)] if n_jobs is not None else []),
            "--server-log-level", "WARNING",
        ],
        cwd=copy,
        env={"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false"},
        port=port,
        log_path=workdir / "official.log",
    )


def venv_versions(python: Path | str, packages: list[str]) -> dict[str, str | None]:
    """Installed versions of ``packages`` in the environment of ``python``."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: out[p] = None\n"
        "print(json.dumps(out))\n"
    )
    import json

    try:
        raw = subprocess.run(
            [str(python), "-c", code, *packages], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        return json.loads(raw)
    except (subprocess.SubprocessError, OSError, ValueError):
        return {p: None for p in packages}


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="graphdock-bench-"))
