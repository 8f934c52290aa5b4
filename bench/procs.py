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
from typing import Any, Protocol, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = Path(__file__).resolve().parent / "graphs"
CONFIG = GRAPHS / "langgraph.json"
OFFICIAL_VENV_ENV = "GRAPHDOCK_BENCH_OFFICIAL_VENV"

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


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


def _roots(pid: int | Sequence[int]) -> list[int]:
    return [pid] if isinstance(pid, int) else list(pid)


def trees(pid: int | Sequence[int]) -> list[int]:
    """The processes of the trees rooted at ``pid`` (one pid or several), each once."""
    return list(dict.fromkeys(p for root in _roots(pid) for p in process_tree(root)))


def tree_rss_kb(pid: int | Sequence[int]) -> int:
    """Current resident set of the process tree(s), summed (kB)."""
    return sum(_status_kb(p, "VmRSS") for p in trees(pid))


def tree_hwm_kb(pid: int | Sequence[int]) -> int:
    """Sum over the tree(s) of each process's own peak resident set (kB)."""
    return sum(_status_kb(p, "VmHWM") for p in trees(pid))


def process_cpu_ticks(pid: int, *, children: bool = False) -> int:
    """utime + stime of one process in clock ticks (``children``: plus the CPU of its
    children that have exited and been waited for); 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        # fields[0] is state (field 3); utime/stime are fields 14/15, cutime/cstime 16/17
        ticks = int(fields[11]) + int(fields[12])
        if children:
            ticks += int(fields[13]) + int(fields[14])
        return ticks
    except (OSError, IndexError, ValueError):
        return 0


def tree_cpu_seconds(pid: int | Sequence[int]) -> float:
    """User + system CPU time consumed so far by the live process tree(s)."""
    return sum(process_cpu_ticks(p) for p in trees(pid)) / CLK_TCK


class RssSampler:
    """Samples the summed RSS of one or more process trees every ``interval`` seconds,
    while :meth:`active` (from the start; the harness stops sampling a server while it
    is paused, when its RSS cannot change, so that the sampler's own CPU stays out of the
    other targets' measurements)."""

    def __init__(self, pid: int | Sequence[int], interval: float = 0.05) -> None:
        self.pids = _roots(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._active = threading.Event()
        self._active.set()
        self._thread = threading.Thread(target=self._loop, name=f"rss-{self.pids[0]}", daemon=True)

    def active(self, on: bool) -> None:
        """Sample (True) or not (False) until told otherwise."""
        if on:
            self._active.set()
        else:
            self._active.clear()

    def start(self) -> "RssSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._active.set()
        self._thread.join(timeout=2)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._active.is_set():
                self.samples.append((time.monotonic(), tree_rss_kb(self.pids)))
            self._stop.wait(self.interval)

    def peak_kb(self, windows: list[tuple[float, float]]) -> int:
        """The largest sample taken inside any of ``windows`` (monotonic start, end).

        A window shorter than the sampling interval may contain no sample; it is then
        represented by the first sample taken after it ends, or, when sampling stopped
        before another was taken, by the last one taken before it began.
        """
        samples = list(self.samples)
        best = 0
        for start, end in windows:
            inside = [kb for t, kb in samples if start <= t <= end]
            if not inside:
                inside = [kb for t, kb in samples if t > end][:1] or [kb for t, kb in samples if t < start][-1:]
            best = max([best, *inside])
        return best


# -- servers -------------------------------------------------------------------


class Target(Protocol):
    """What the harness drives and measures: one server (:class:`Server`) or a group of
    processes serving as one (``bench.postgres.Deployment``)."""

    name: str
    startup_s: float
    idle_rss_kb: int
    sampler: "RssSampler | None"

    @property
    def url(self) -> str: ...

    @property
    def pid(self) -> int: ...

    @property
    def pids(self) -> list[int]: ...

    def start(self, *, timeout: float = 120.0, settle: float = 1.0) -> Any: ...

    def alive(self) -> bool: ...

    def stop(self) -> None: ...


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
    _spawned_at: float = field(default=0.0, init=False, repr=False)
    log_path: Path | None = None
    health: str = "/ok"  # answers 200 once the server is ready

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        """The roots of the process trees measured (for one server, its own process)."""
        return [self.pid]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, timeout: float = 120.0, settle: float = 1.0) -> "Server":
        """Spawn the server, wait until :attr:`health` answers 200, let it settle for
        ``settle`` seconds, then take its idle RSS and start sampling."""
        self.spawn()
        self.wait_ready(timeout)
        time.sleep(settle)
        self.idle_rss_kb = tree_rss_kb(self.pid)
        self.sampler = RssSampler(self.pid).start()
        return self

    def spawn(self) -> None:
        """Start the process (in a session of its own, output to :attr:`log_path`)."""
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
        self._spawned_at = t0

    def wait_ready(self, timeout: float) -> None:
        """Poll :attr:`health` until it answers 200 (sets :attr:`startup_s`, from the
        spawn); RuntimeError with the log's tail when the process exits or times out."""
        assert self.proc is not None
        deadline = self._spawned_at + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}{self.health}", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not answer {self.health} in {timeout:g}s:\n{self.log_tail()}")
            time.sleep(0.05)
        self.startup_s = time.monotonic() - self._spawned_at

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
