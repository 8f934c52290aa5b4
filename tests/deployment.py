"""A scaled-out graphdock for black-box tests: API processes and workers as real processes
on one PostgreSQL database and one Redis key prefix, behind a round-robin TCP proxy.

Clients talk to :attr:`Deployment.url`, the proxy, which hands each new connection to the
next API process in turn: an SDK client's concurrent requests (a stream and a cancel, a
create and a join) reach different processes, and the runs execute in the workers.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from conftest import CONFIG, ROOT, free_port
from services import create_database, delete_redis_prefix, drop_database, redis_prefix

REDIS_URI = "redis://127.0.0.1:6379/0"

# data directory -> (database name, database URI, Redis prefix): a deployment started
# again on the same directory finds its data (a restart)
_STORES: dict[Path, tuple[str, str, str]] = {}


def remove_all() -> None:
    """Drop every database and Redis prefix a deployment of this session made."""
    for name, _, prefix in _STORES.values():
        drop_database(name)
        delete_redis_prefix(prefix)
    _STORES.clear()


class RoundRobinProxy:
    """A TCP proxy on a free port of 127.0.0.1, run on a thread of its own: each accepted
    connection is piped to the next of ``ports``."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.port = free_port()
        self._next = itertools.cycle(range(len(ports)))
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def start(self) -> "RoundRobinProxy":
        self._thread.start()
        self._ready.wait(10)
        return self

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stopping = asyncio.Event()
            self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
            self._ready.set()
            await self._stopping.wait()
            self._server.close()
            pipes = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in pipes:
                task.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)

        self._loop.run_until_complete(main())
        self._loop.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = self.ports[next(self._next)]
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                try:
                    dst.close()
                except RuntimeError:
                    pass

        try:
            await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        except asyncio.CancelledError:
            pass  # the proxy is stopping

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)


class Process:
    """One ``graphdock serve`` or ``graphdock worker`` process of a deployment."""

    def __init__(self, command: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.port = free_port()
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "graphdock.cli", self.command, "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", *self.args],
            cwd=str(ROOT),
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, deadline: float) -> None:
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.command} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/ok", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.command} did not start:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: the process dies at once, leaving what it held."""
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class Deployment:
    """``apis`` API processes (``--n-jobs-per-worker 0``) and ``workers`` workers on a
    database and Redis prefix of their own, created by :meth:`start` and removed by
    :meth:`destroy`. :meth:`stop` / :meth:`start` again keep the data (a restart)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        apis: int = 2,
        workers: int = 2,
        config: Path = CONFIG,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        worker_args: list[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.n_apis, self.n_workers = apis, workers
        self.config = config
        self.env = env or {}
        self.args = args or []
        self.worker_args = worker_args or []
        self.database: str | None = None
        self.database_uri: str | None = None
        self.prefix = ""
        self.apis: list[Process] = []
        self.workers: list[Process] = []
        self.proxy: RoundRobinProxy | None = None

    @property
    def url(self) -> str:
        assert self.proxy is not None
        return f"http://127.0.0.1:{self.proxy.port}"

    def api_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.apis[index].port}"

    def _common(self) -> list[str]:
        assert self.database_uri is not None
        return ["--config", str(self.config), "--database-uri", self.database_uri,
                "--redis-uri", REDIS_URI, "--redis-prefix", self.prefix]

    def start(self, timeout: float = 90.0) -> "Deployment":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.database is None:
            key = self.data_dir.resolve()
            if key not in _STORES:
                name, uri = create_database("gdtest")
                _STORES[key] = (name, uri, redis_prefix())
            self.database, self.database_uri, self.prefix = _STORES[key]
        self.apis = [
            Process("serve", [*self._common(), "--n-jobs-per-worker", "0", *self.args], self.env,
                    self.data_dir / f"api-{i}.log")
            for i in range(self.n_apis)
        ]
        self.workers = [self.new_worker(i) for i in range(self.n_workers)]
        deadline = time.monotonic() + timeout
        # one process first: it creates the schema, the others find it there
        first, *rest = [*self.apis, *self.workers]
        first.start()
        first.wait_ready(deadline)
        for proc in rest:
            proc.start()
        for proc in rest:
            proc.wait_ready(deadline)
        self.proxy = RoundRobinProxy([p.port for p in self.apis]).start()
        return self

    def new_worker(self, index: int, *, start: bool = False) -> Process:
        # runs left at a test's end are handed back at once (later arguments win)
        args = [*self._common(), "--shutdown-timeout", "1", *self.args, *self.worker_args]
        proc = Process("worker", args, self.env,
                       self.data_dir / f"worker-{index}.log")
        if start:
            proc.start()
            proc.wait_ready(time.monotonic() + 60)
        return proc

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        procs = [*self.apis, *self.workers]
        for proc in procs:  # all at once: each may take its shutdown timeout
            proc.signal(signal.SIGTERM)
        for proc in procs:
            proc.stop()
        self.apis, self.workers = [], []

    def destroy(self) -> None:
        """Stop everything and remove the deployment's database and Redis keys."""
        self.stop()
        stores = _STORES.pop(self.data_dir.resolve(), None)
        if stores is not None:
            drop_database(stores[0])
            delete_redis_prefix(stores[2])
        self.database = None

    def log(self) -> str:
        return "\n".join(f"--- {p.log_path.name} ---\n{p.log()}" for p in [*self.apis, *self.workers])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
