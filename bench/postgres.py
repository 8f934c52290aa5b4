"""The PostgreSQL + Redis targets of the harness (``bench/run.py --backend postgres``).

- :class:`Scratch`: the databases and Redis key prefixes one benchmark makes, and only
  those, removed again by :meth:`Scratch.close` (also after a failure). Names are
  ``gdbench_<pid>_<hex>`` (databases) and ``gdbench-<pid>-<hex>`` (key prefixes); nothing
  of another shape is ever dropped or deleted.
- :class:`Deployment`: one scaled-out graphdock, ``graphdock serve --n-jobs-per-worker 0``
  plus N ``graphdock worker`` processes on a database and a key prefix of its own,
  measured as one target (CPU and RSS of all its processes together).
- :func:`aegra_server`: Aegra (``aegra-api``, Apache-2.0) from a virtualenv of its own, on
  a database of its own on the same PostgreSQL.
- :func:`inprocess_saver`: the checkpointer of the in-process targets on graphdock's
  connection pool: langgraph's ``AsyncPostgresSaver`` as it is (the default), or
  graphdock's subclass, which a worker uses (no process-wide lock on a pool, relaxed
  commits inside runs).
- :func:`services_cpu_seconds`: CPU consumed so far by the PostgreSQL server (postmaster
  and every backend) and the Redis server, which every target here shares.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
import time
import urllib.parse
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from bench import procs

ADMIN_URI = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URI = "redis://127.0.0.1:6379/0"
AEGRA_VENV_ENV = "GRAPHDOCK_BENCH_AEGRA_VENV"

_NAME = re.compile(r"^gdbench_[0-9]+_[0-9a-f]{8}$")
_PREFIX = re.compile(r"^gdbench-[0-9]+-[0-9a-f]{8}$")


def new_name(separator: str) -> str:
    """``gdbench<sep><pid><sep><8 hex>``: a name no other run uses."""
    return f"gdbench{separator}{os.getpid()}{separator}{secrets.token_hex(4)}"


def database_uri(admin_uri: str, name: str) -> str:
    """``admin_uri`` with its database replaced by ``name``."""
    parts = urllib.parse.urlsplit(admin_uri)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def unreachable(admin_uri: str, redis_uri: str) -> str | None:
    """Why PostgreSQL at ``admin_uri`` or Redis at ``redis_uri`` cannot be used; None when both answer."""
    import psycopg
    import redis

    problems = []
    try:
        with psycopg.connect(admin_uri, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except (psycopg.Error, OSError) as exc:
        problems.append(f"PostgreSQL ({_redact(admin_uri)}): {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")
    client = redis.Redis.from_url(redis_uri, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        problems.append(f"Redis ({_redact(redis_uri)}): {exc}")
    finally:
        client.close()
    return "; ".join(problems) or None


def _redact(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class Scratch:
    """What one benchmark creates on the shared services; :meth:`close` removes it.

    Every database is created empty by :meth:`database` and dropped (``WITH (FORCE)``,
    closing connections left open) by :meth:`close`; every key prefix from :meth:`prefix`
    has its keys ``<prefix>:*`` deleted. Only names this class made are touched.
    """

    def __init__(self, admin_uri: str = ADMIN_URI, redis_uri: str = REDIS_URI) -> None:
        self.admin_uri = admin_uri
        self.redis_uri = redis_uri
        self.databases: list[str] = []
        self.prefixes: list[str] = []

    def database(self) -> str:
        """A new empty database; its URI."""
        import psycopg
        from psycopg import sql

        name = new_name("_")
        with psycopg.connect(self.admin_uri, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.databases.append(name)
        return database_uri(self.admin_uri, name)

    def prefix(self) -> str:
        """A new Redis key prefix (no key is made here)."""
        prefix = new_name("-")
        self.prefixes.append(prefix)
        return prefix

    def close(self) -> None:
        """Drop the databases and delete the prefixes' keys; every one is tried, then the
        first failure is raised."""
        errors: list[BaseException] = []
        for name in reversed(self.databases):
            try:
                drop_database(self.admin_uri, name)
            except Exception as exc:  # try the others first
                errors.append(exc)
        self.databases.clear()
        for prefix in reversed(self.prefixes):
            try:
                delete_prefix(self.redis_uri, prefix)
            except Exception as exc:
                errors.append(exc)
        self.prefixes.clear()
        if errors:
            raise errors[0]


def drop_database(admin_uri: str, name: str) -> None:
    """Drop database ``name``, which must have a name :class:`Scratch` makes."""
    import psycopg
    from psycopg import sql

    if not _NAME.match(name):
        raise ValueError(f"refusing to drop {name!r}: not a database the harness makes")
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def delete_prefix(redis_uri: str, prefix: str) -> int:
    """Delete the keys ``<prefix>:*`` of a prefix :class:`Scratch` makes; how many."""
    import redis

    if not _PREFIX.match(prefix):
        raise ValueError(f"refusing to delete keys under {prefix!r}: not a prefix the harness makes")
    client = redis.Redis.from_url(redis_uri)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}:*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += client.delete(*batch)
                batch.clear()
        if batch:
            deleted += client.delete(*batch)
    finally:
        client.close()
    return deleted


# -- graphdock, scaled out -------------------------------------------------------------


class Deployment:
    """One API process (``--n-jobs-per-worker 0``) and ``workers`` workers on one database
    and key prefix: a single target to the harness.

    It has what the harness uses of a :class:`bench.procs.Server`: ``url`` (the API
    process), ``pids`` (every process: CPU, RSS and pausing cover them all), ``startup_s``
    (from spawning the API process until the last worker answers ``/ok``), ``idle_rss_kb``,
    ``sampler``, :meth:`alive` and :meth:`stop`.
    """

    def __init__(
        self,
        name: str,
        workdir: Path,
        *,
        database_uri: str,
        redis_uri: str,
        redis_prefix: str,
        workers: int,
        n_jobs: int,
        extra: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.database_uri = database_uri
        self.redis_prefix = redis_prefix
        self.startup_s = 0.0
        self.idle_rss_kb = 0
        self.sampler: procs.RssSampler | None = None
        common = [
            "--config", str(procs.CONFIG), "--host", "127.0.0.1", "--database-uri", database_uri,
            "--redis-uri", redis_uri, "--redis-prefix", redis_prefix, "--log-level", "warning",
        ]
        slug = re.sub(r"[^A-Za-z0-9]+", "-", name)

        def process(role: str, command: str, index: int, args: list[str]) -> procs.Server:
            port = procs.free_port()
            return procs.Server(
                name=f"{name} {role}",
                argv=[sys.executable, "-m", "graphdock.cli", command, *common, "--port", str(port), *args],
                cwd=procs.ROOT,
                port=port,
                log_path=workdir / f"{slug}-{role}{index}.log",
            )

        self.api = process("api", "serve", 0, ["--n-jobs-per-worker", "0", *extra])
        self.workers = [
            process("worker", "worker", i, ["--n-jobs-per-worker", str(n_jobs), *extra]) for i in range(workers)
        ]

    @property
    def processes(self) -> list[procs.Server]:
        return [self.api, *self.workers]

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.proc is not None]

    @property
    def pid(self) -> int:
        """The API process (what a client talks to)."""
        return self.api.pid

    def start(self, *, timeout: float = 120.0, settle: float = 1.0) -> "Deployment":
        """The API process first (it applies the schema), then the workers together."""
        t0 = time.monotonic()
        try:
            self.api.spawn()
            self.api.wait_ready(timeout)
            for worker in self.workers:
                worker.spawn()
            for worker in self.workers:
                worker.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        time.sleep(settle)
        self.idle_rss_kb = procs.tree_rss_kb(self.pids)
        self.sampler = procs.RssSampler(self.pids).start()
        return self

    def alive(self) -> bool:
        return all(p.alive() for p in self.processes)

    def stop(self) -> None:
        """Workers first (nothing left to claim a run), then the API process."""
        if self.sampler is not None:
            self.sampler.stop()
        for p in [*self.workers, self.api]:
            p.stop()

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail(n)}" for p in self.processes)


# -- Aegra ------------------------------------------------------------------------------


def find_aegra_venv(explicit: str | None) -> Path | None:
    """The virtualenv holding ``aegra-api`` (``bin/aegra`` and ``bin/python``), or None."""
    candidate = explicit or os.environ.get(AEGRA_VENV_ENV)
    if not candidate:
        return None
    venv = Path(candidate).expanduser()
    return venv if (venv / "bin" / "aegra").exists() and (venv / "bin" / "python").exists() else None


def aegra_server(workdir: Path, venv: Path, *, database_uri: str, env: dict[str, str] | None = None) -> procs.Server:
    """Aegra on a copy of the bench graphs (it reads their ``langgraph.json``), on
    ``database_uri``.

    This is what ``aegra serve -c langgraph.json --host 127.0.0.1 --port P`` starts (it
    sets ``AEGRA_CONFIG`` and runs ``python -m uvicorn aegra_api.main:app``), without the
    CLI process in between, which would otherwise be measured with the server and would
    not pass SIGTERM on. Aegra applies its own migrations at start-up; ``LOG_LEVEL=WARNING``
    (its default, INFO, logs every request, which graphdock does not at ``warning``).
    ``env`` adds or overrides variables (e.g. its pool sizes).
    """
    copy = workdir / "aegra-graphs"
    shutil.copytree(procs.GRAPHS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    port = procs.free_port()
    return procs.Server(
        name="aegra",
        argv=[
            str(venv / "bin" / "python"), "-m", "uvicorn", "aegra_api.main:app",
            "--host", "127.0.0.1", "--port", str(port),
        ],
        cwd=copy,
        env={
            "AEGRA_CONFIG": str(copy / "langgraph.json"),
            "DATABASE_URL": database_uri,
            "LOG_LEVEL": "WARNING",
            **(env or {}),
        },
        port=port,
        log_path=workdir / "aegra.log",
        health="/health",
    )


# -- in-process -------------------------------------------------------------------------


@asynccontextmanager
async def inprocess_saver(uri: str, *, concurrency: int, kind: str = "langgraph") -> AsyncIterator[Any]:
    """An in-process checkpointer on the pool and schema that
    :func:`graphdock.backends.postgres.open_postgres` sets up for a process executing
    ``concurrency`` runs at once, on database ``uri``: ``kind`` ``langgraph`` is
    langgraph's ``AsyncPostgresSaver`` unchanged on that pool (what an application running
    its graphs in-process on PostgreSQL uses), ``graphdock`` graphdock's saver."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    from graphdock.backends.postgres import open_postgres

    async with open_postgres(uri, store_ttl=None, concurrency=concurrency, lease_seconds=30.0) as opened:
        _storage, _queue, saver, _store = opened
        yield saver if kind == "graphdock" else AsyncPostgresSaver(saver.conn)


# -- the shared services' CPU -------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(comm, ppid) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            raw = fh.read()
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        return comm, int(raw.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def service_roots() -> dict[str, list[int]]:
    """The PostgreSQL postmasters (a ``postgres`` process whose parent is not one) and
    Redis servers running on this machine, by service."""
    comms: dict[int, tuple[str, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            comms[int(entry)] = st
    postgres = [pid for pid, (comm, ppid) in comms.items() if comm == "postgres" and comms.get(ppid, ("", 0))[0] != "postgres"]
    redis = [pid for pid, (comm, _) in comms.items() if comm == "redis-server"]
    return {"postgres": sorted(postgres), "redis": sorted(redis)}


def services_cpu_seconds(roots: dict[str, list[int]]) -> dict[str, float]:
    """CPU consumed so far by the services of :func:`service_roots`, by service:
    ``postgres`` (each postmaster, its live backends and helpers, and the backends that
    have exited: the postmaster's children time) and ``redis`` (each Redis server)."""
    postgres_ticks = 0
    for root in roots.get("postgres", []):
        postgres_ticks += procs.process_cpu_ticks(root, children=True)
        postgres_ticks += sum(procs.process_cpu_ticks(p) for p in procs.process_tree(root)[1:])
    redis_ticks = sum(procs.process_cpu_ticks(p) for root in roots.get("redis", []) for p in procs.process_tree(root))
    return {"postgres": postgres_ticks / procs.CLK_TCK, "redis": redis_ticks / procs.CLK_TCK}


def versions(venv: Path) -> dict[str, str | None]:
    """Aegra's package versions (and what it runs on) in ``venv``."""
    return procs.venv_versions(
        venv / "bin" / "python",
        ["aegra-api", "aegra-cli", "langgraph", "langgraph-checkpoint-postgres", "psycopg", "sqlalchemy",
         "asyncpg", "fastapi", "uvicorn", "uvloop", "httptools", "greenlet"],
    )


def server_versions(admin_uri: str, redis_uri: str) -> dict[str, str | None]:
    """The PostgreSQL and Redis server versions (None when not answered)."""
    import psycopg
    import redis

    out: dict[str, str | None] = {"postgresql": None, "redis": None}
    try:
        with psycopg.connect(admin_uri, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            out["postgresql"] = row[0] if row else None
    except (psycopg.Error, OSError):
        pass
    client = redis.Redis.from_url(redis_uri, socket_connect_timeout=3, socket_timeout=3)
    try:
        out["redis"] = str(client.info("server").get("redis_version"))
    except (redis.RedisError, OSError):
        pass
    finally:
        client.close()
    return out
