"""Readiness (``/ok?check_db=1``) and shutdown on SIGTERM.

Readiness: embedded, the SQLite query answers; scaled out, a ``graphdock serve`` and a
``graphdock worker`` reach PostgreSQL and Redis through TCP proxies the test controls:
stopping a proxy makes the check answer 503 naming the service, starting it again makes
it healthy again, and the plain ``/ok`` stays 200 throughout.

Shutdown: a real SIGTERM to ``graphdock serve`` while a run executes. With
``--shutdown-timeout`` long enough the run finishes before the process exits; with the
default 0 it is handed back and executed again — embedded at the next start, scaled out
by a worker.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from conftest import ServerProcess
from test_metrics import write_graphs


def _status(url: str, tid: str, run_id: str) -> str:
    return httpx.get(f"{url}/threads/{tid}/runs/{run_id}", timeout=10).json()["status"]


def _wait_status(url: str, tid: str, run_id: str, statuses: set[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = _status(url, tid, run_id)
        if status in statuses:
            return status
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(0.1)


def _start_sleepy_run(url: str, seconds: float) -> tuple[str, str]:
    with httpx.Client(base_url=url, timeout=30) as http:
        tid = http.post("/threads", json={}).json()["thread_id"]
        run = http.post(f"/threads/{tid}/runs", json={"assistant_id": "sleepy", "input": {"sleep": seconds}}).json()
    _wait_status(url, tid, run["run_id"], {"running"})
    return tid, run["run_id"]


def _terminate(proc: Any, timeout: float = 60) -> float:
    """SIGTERM ``proc`` (a Popen); the seconds it took to exit."""
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=timeout)
    return time.monotonic() - began


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_graphs(tmp_path_factory.mktemp("healthgraphs"))


# -- readiness -------------------------------------------------------------------------


def test_check_db_embedded(config: Path, tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path, config=config).start()
    try:
        r = httpx.get(f"{proc.url}/ok", params={"check_db": 1})
        assert r.status_code == 200 and r.json() == {"ok": True, "services": {"sqlite": "healthy"}}
        assert httpx.get(f"{proc.url}/ok").json() == {"ok": True, "services": {}}
        r = httpx.get(f"{proc.url}/ok", params={"check_db": "yes"})
        assert r.status_code == 422 and "check_db" in r.text
    finally:
        proc.stop()


class _Proxies:
    """TCP proxies in front of PostgreSQL and Redis, each stoppable and restartable on its port."""

    def __init__(self) -> None:
        from deployment import RoundRobinProxy

        self._make = RoundRobinProxy
        self.proxies = {"postgres": self._make([5432]).start(), "redis": self._make([6379]).start()}

    def port(self, name: str) -> int:
        return self.proxies[name].port

    def stop(self, name: str) -> None:
        self.proxies[name].stop()

    def restart(self, name: str) -> None:
        proxy = self._make([self.proxies[name].ports[0]])
        proxy.port = self.proxies[name].port
        self.proxies[name] = proxy.start()

    def close(self) -> None:
        for proxy in self.proxies.values():
            try:
                proxy.stop()
            except Exception:
                pass


@pytest.fixture
def scaled(config: Path, tmp_path: Path) -> Iterator[tuple[Any, Any, _Proxies]]:
    """A ``serve`` and a ``worker`` of one deployment whose database and Redis are behind proxies."""
    from deployment import Process
    from services import create_database, delete_redis_prefix, drop_database, redis_prefix, require_services

    require_services()
    name, _ = create_database("gdtest")
    prefix = redis_prefix()
    proxies = _Proxies()
    common = [
        "--config", str(config),
        "--database-uri", f"postgresql://postgres@127.0.0.1:{proxies.port('postgres')}/{name}",
        "--redis-uri", f"redis://127.0.0.1:{proxies.port('redis')}/0",
        "--redis-prefix", prefix, "--shutdown-timeout", "0",
    ]  # fmt: skip
    api = Process("serve", common, {}, tmp_path / "api.log")
    worker = Process("worker", common, {}, tmp_path / "worker.log")
    try:
        api.start()
        api.wait_ready(time.monotonic() + 60)
        worker.start()
        worker.wait_ready(time.monotonic() + 60)
        yield api, worker, proxies
    finally:
        api.stop()
        worker.stop()
        proxies.close()
        drop_database(name)
        delete_redis_prefix(prefix)


def _check(port: int) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/ok", params={"check_db": 1}, timeout=15)


@pytest.mark.parametrize("down", ["redis", "postgres"])
def test_check_db_names_the_service_that_is_down(scaled: tuple[Any, Any, _Proxies], down: str) -> None:
    api, worker, proxies = scaled
    for proc in (api, worker):
        r = _check(proc.port)
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True
    assert _check(api.port).json()["services"] == {"postgres": "healthy", "redis": "healthy"}

    proxies.stop(down)
    for proc in (api, worker):
        r = _check(proc.port)
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["ok"] is False and body["detail"] == f"unreachable: {down}"
        assert body["services"][down].startswith("unhealthy")
        up = ({"postgres", "redis"} - {down}).pop()
        assert body["services"][up] == "healthy"
        assert httpx.get(f"http://127.0.0.1:{proc.port}/ok", timeout=5).status_code == 200  # liveness: cheap, unaffected

    proxies.restart(down)
    deadline = time.monotonic() + 30
    for proc in (api, worker):
        while (r := _check(proc.port)).status_code != 200:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.2)


# -- shutdown ----------------------------------------------------------------------------


def test_sigterm_lets_running_runs_finish_within_the_shutdown_timeout(config: Path, tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path, config=config, args=["--shutdown-timeout", "30", "--run-processes", "0"]).start()
    try:
        tid, run_id = _start_sleepy_run(proc.url, 4)
        assert proc.proc is not None
        began = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        refused = False
        while not refused and time.monotonic() - began < 3:  # it stops taking requests at once
            try:
                httpx.get(f"{proc.url}/ok", timeout=1)
            except httpx.TransportError:
                refused = proc.proc.poll() is None  # ...while the run still executes
            time.sleep(0.05)
        assert refused, "the server still answered while finishing its runs"
        proc.proc.wait(timeout=60)
        took = time.monotonic() - began
        assert 2.0 < took < 30, took  # it waited for the run, not for the whole timeout
    finally:
        proc.stop()
    again = ServerProcess(tmp_path, config=config).start()
    try:
        assert _status(again.url, tid, run_id) == "success"  # finished before the exit: not run again
    finally:
        again.stop()


@pytest.mark.parametrize("placement", ["runs-in-server", "runs-in-run-process"])
def test_sigterm_hands_unfinished_runs_back_embedded(config: Path, tmp_path: Path, placement: str) -> None:
    args = ["--run-processes", "0"] if placement == "runs-in-server" else ["--run-process-policy", "always"]
    proc = ServerProcess(tmp_path, config=config, args=args).start()
    try:
        tid, run_id = _start_sleepy_run(proc.url, 2)
        assert proc.proc is not None
        assert _terminate(proc.proc) < 15  # --shutdown-timeout 0: the run is handed back at once
    finally:
        proc.stop()
    again = ServerProcess(tmp_path, config=config, args=args).start()
    try:  # executed again at start-up, to its end
        assert _wait_status(again.url, tid, run_id, {"success", "error"}) == "success"
        state = httpx.get(f"{again.url}/threads/{tid}/state", timeout=10).json()
        assert state["values"]["done"] is True
    finally:
        again.stop()


def test_sigterm_hands_unfinished_runs_back_scaled_out(config: Path, tmp_path: Path) -> None:
    from deployment import Deployment, Process

    deployment = Deployment(tmp_path / "deployment", config=config, apis=1, workers=0).start()
    try:
        # a serve process that executes runs itself (not --n-jobs-per-worker 0)
        executing = Process("serve", [*deployment._common(), "--shutdown-timeout", "0"], {}, tmp_path / "serve.log")
        executing.start()
        executing.wait_ready(time.monotonic() + 60)
        url = f"http://127.0.0.1:{executing.port}"
        tid, run_id = _start_sleepy_run(url, 2)
        assert executing.proc is not None
        assert _terminate(executing.proc) < 15
        executing.stop()
        api = deployment.api_url(0)
        assert _status(api, tid, run_id) == "pending"  # handed back, nothing lost
        deployment.workers.append(deployment.new_worker(0, start=True))
        assert _wait_status(api, tid, run_id, {"success", "error"}) == "success"
    finally:
        deployment.destroy()
