"""Black-box test fixtures: a real graphdock process on a free port, driven over HTTP.

The session server serves ``tests/graphs/langgraph.json`` from a temporary data
directory. ``ServerProcess`` starts additional servers (e.g. for restart tests).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = ROOT / "tests" / "graphs"
CONFIG = GRAPHS / "langgraph.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A ``graphdock serve`` subprocess; ``start()`` waits until ``/ok`` answers."""

    def __init__(
        self,
        data_dir: Path,
        *,
        config: Path = CONFIG,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        command: str = "serve",
    ) -> None:
        self.data_dir = data_dir
        self.config = config
        self.env = env or {}
        self.args = args or []
        policy = os.environ.get("GRAPHDOCK_TEST_RUN_PROCESS_POLICY")
        if policy and not any(a.startswith("--run-process") for a in self.args):
            # the whole suite again with every run executed in a run process
            self.args = [*self.args, "--run-process-policy", policy]
        self.command = command
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"server-{self.port}.log"

    def start(self, timeout: float = 60.0) -> "ServerProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "graphdock.cli", self.command,
                "--config", str(self.config),
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--data-dir", str(self.data_dir),
                "--log-level", "warning",
                *self.args,
            ],
            cwd=str(ROOT),
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/ok", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


# The backends a test's own servers run on (see make_server).
BACKENDS = ["embedded", "scaled-out"]


def make_server(
    kind: str,
    data_dir: Path,
    *,
    config: Path = CONFIG,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> Any:
    """A server on ``kind``: a ``ServerProcess`` (embedded SQLite), or a scaled-out
    ``Deployment`` (two API processes and two workers on PostgreSQL + Redis, whose
    database is the data directory's: a new deployment on the same directory is a
    restart). ``--n-jobs-per-worker`` goes to the workers of a deployment."""
    if kind == "embedded":
        return ServerProcess(data_dir, config=config, env=env, args=args)
    from deployment import Deployment
    from services import require_services

    require_services()
    args, worker_args = list(args or []), []
    if "--n-jobs-per-worker" in args:
        at = args.index("--n-jobs-per-worker")
        worker_args, args[at : at + 2] = args[at : at + 2], []
    return Deployment(data_dir, config=config, env=env, args=args, worker_args=worker_args)


@pytest.fixture(scope="session", autouse=True)
def _remove_deployments() -> Iterator[None]:
    """Drop the databases and Redis keys of every deployment the session made."""
    yield
    from deployment import remove_all

    remove_all()


@pytest.fixture(scope="session")
def factory_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file the test graph factories append their calls to (JSON lines)."""
    return tmp_path_factory.mktemp("factory") / "calls.jsonl"


# Where the session server executes runs: every test that uses it runs once against each.
# "scaled-out": two API processes (--n-jobs-per-worker 0) and two workers on PostgreSQL +
# Redis, behind a round-robin proxy (tests/deployment.py).
PLACEMENTS = {
    "runs-in-server": ["--run-processes", "0"],
    "runs-in-run-process": ["--run-process-policy", "always"],
    "scaled-out": [],
}


@pytest.fixture(scope="session", params=list(PLACEMENTS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, factory_log: Path
) -> Iterator[Any]:
    env = {"GRAPHDOCK_FACTORY_LOG": str(factory_log)}
    if request.param == "scaled-out":
        from deployment import Deployment
        from services import require_services

        require_services()
        deployment = Deployment(tmp_path_factory.mktemp("scaled"), env=env)
        try:
            yield deployment.start()
        finally:
            deployment.destroy()
        return
    proc = ServerProcess(
        tmp_path_factory.mktemp("data"),
        env=env,
        args=PLACEMENTS[request.param],
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def url(server: ServerProcess) -> str:
    return server.url


@pytest.fixture
def client(url: str):
    """The official async SDK client."""
    return get_client(url=url)


@pytest.fixture
def sync_client(url: str):
    """The official sync SDK client."""
    return get_sync_client(url=url)


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    """Raw HTTP, for wire-format checks."""
    with httpx.Client(base_url=url, timeout=30) as c:
        yield c


async def start_hang(client, thread_id: str) -> str:
    """Start a `hang` run and return its id once its node is running (it never finishes)."""
    run_id = None
    async for part in client.runs.stream(
        thread_id, "hang", input={"items": []}, stream_mode="custom", on_disconnect="continue"
    ):
        if part.event == "metadata":
            run_id = part.data["run_id"]
        if part.event == "custom":
            break
    assert run_id is not None
    return run_id
