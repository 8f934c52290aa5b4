"""The PostgreSQL connection pool, graphdock's schema and its migrations.

One :class:`psycopg_pool.AsyncConnectionPool` (autocommit, ``prepare_threshold=0``,
``dict_row``: what langgraph's ``AsyncPostgresSaver`` and ``AsyncPostgresStore`` expect)
serves graphdock's rows, the queue, the saver and the store.

graphdock's tables start with ``gd_``. Its schema is built by the numbered steps of
:data:`~.schema.STEPS`; ``gd_migrations`` records the steps applied. A later graphdock appends a
step (never edits one), and a database left by an older graphdock is brought up to date
at start-up. Set-up (graphdock's steps, then langgraph's ``saver.setup()`` and
``store.setup()``) runs while holding one advisory lock, so that processes starting at
once take turns; a database already at the newest version is only read.

The lock is a *session* advisory lock on a connection of its own, held while no
transaction is open on it, and waited for between statements: langgraph's set-up
creates indexes ``CONCURRENTLY``, which cannot run inside a transaction and waits for
every transaction of the database that holds a snapshot (a transaction-level lock, or a
process blocked inside ``pg_advisory_lock``, would make it wait for ever). Each of
graphdock's steps is one transaction on that connection.

Rows leave the database as plain dicts: timestamps (``timestamptz``) as ISO-8601 strings
made by :func:`graphdock.serde.iso`, JSON columns (type ``json``, which keeps the text as
written, key order included) as Python values.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any, AsyncIterator, NamedTuple, Sequence

import psycopg
from psycopg import AsyncConnection
from psycopg.adapt import Buffer, Loader
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import Format
from psycopg.rows import DictRow, dict_row

from graphdock import serde
from graphdock.backends.postgres.schema import (  # noqa: F401 (re-exported)
    ASSISTANT_COLUMNS,
    RUN_COLUMNS,
    RUN_READY,
    STEPS,
    THREAD_COLUMNS,
    VERSION_COLUMNS,
)
from graphdock.config import ConfigError

#: the advisory lock key (any constant bigint) serialising schema set-up
SETUP_LOCK = 0x6764_7363_6865_6D61  # "gdschema"

CONNECT_TIMEOUT = 10  # seconds an unreachable server is waited for

# -- leases as fencing tokens -------------------------------------------------------


class Lease(NamedTuple):
    """A claim on a run: who holds it and for which attempt."""

    run_id: str
    worker_id: str
    attempt: int


#: set by the queue in the task executing a claimed run: the run's status is then
#: written only while this lease still holds (a worker whose lease was taken over
#: cannot overwrite what the new holder records)
CURRENT_LEASE: ContextVar[Lease | None] = ContextVar("graphdock_pg_lease", default=None)


#: set by the queue in the task executing a claimed run whose durability is not
#: ``sync``: the checkpointer then commits that run's checkpoint writes without waiting
#: for their WAL flush (``synchronous_commit = off``). Nothing acknowledged depends on
#: them alone: the run's outcome is committed with a flush afterwards, which makes every
#: earlier write durable too, and a crash before it loses at most the last checkpoints of
#: a run that is then executed again from its last durable one.
RELAXED_COMMIT: ContextVar[bool] = ContextVar("graphdock_pg_relaxed_commit", default=False)


async def configure_relaxed(conn: AsyncConnection[Any]) -> None:
    """:func:`configure_connection`, and commits that do not wait for the WAL flush."""
    await configure_connection(conn)
    await conn.execute("SET synchronous_commit = off")


def lease_for(run_id: str) -> Lease | None:
    """The lease the current task holds on ``run_id``, if any."""
    lease = CURRENT_LEASE.get()
    return lease if lease is not None and lease.run_id == run_id else None


# -- values in and out --------------------------------------------------------------


class _JsonTextLoader(Loader):
    """``json`` columns decoded with graphdock's decoder (the standard library's for what
    orjson refuses, such as integers over 64 bits)."""

    format = Format.TEXT

    def load(self, data: Buffer) -> Any:
        raw = bytes(data)
        try:
            return serde.loads(raw)
        except ValueError:
            return json.loads(raw)


class _JsonBinaryLoader(_JsonTextLoader):
    format = Format.BINARY  # the binary form of ``json`` is its text


async def configure_connection(conn: AsyncConnection[Any]) -> None:
    """Per-connection set-up: graphdock's decoder for ``json`` (``jsonb``, which
    langgraph's tables use, keeps psycopg's)."""
    conn.adapters.register_loader("json", _JsonTextLoader)
    conn.adapters.register_loader("json", _JsonBinaryLoader)


def js(value: Any) -> str:
    """A JSON parameter (bind as ``%s::json`` / ``%s::jsonb``)."""
    return serde.dumps_str(value)


def js_or_null(value: Any) -> str | None:
    return None if value is None else serde.dumps_str(value)


def ts(value: str | datetime) -> datetime:
    """A timestamp parameter from an ISO-8601 string (no offset: UTC)."""
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def decode(row: DictRow | dict[str, Any]) -> dict[str, Any]:
    """A row as graphdock's adapters return it (timestamps as ISO strings)."""
    return {k: serde.iso(v) if isinstance(v, datetime) else v for k, v in row.items()}


def decode_all(rows: Sequence[DictRow | dict[str, Any]]) -> list[dict[str, Any]]:
    return [decode(r) for r in rows]


# -- connecting ---------------------------------------------------------------------


def describe(uri: str) -> str:
    """``host:port/dbname`` of a connection string (never its password)."""
    try:
        params = conninfo_to_dict(uri)
    except psycopg.ProgrammingError:
        return "DATABASE_URI"
    host = str(params.get("host") or os.environ.get("PGHOST") or "localhost").split(",")[0]
    port = str(params.get("port") or os.environ.get("PGPORT") or "5432").split(",")[0]
    user = params.get("user") or os.environ.get("PGUSER") or _login()
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user
    return f"{host}:{port}/{dbname}"


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in the environment: libpq would fail the same way
        return "postgres"


def reason(exc: BaseException) -> str:
    """The gist of a libpq / psycopg error, on one line (``connection refused``,
    ``database "x" does not exist``)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    line = next((ln for ln in lines if "failed: " in ln), lines[0])
    if "failed: " in line:
        line = line.rsplit("failed: ", 1)[1]
    for prefix in ("FATAL:", "ERROR:"):
        if line.startswith(prefix):
            line = line[len(prefix) :].strip()
    line = line.rstrip(".")
    return line[:1].lower() + line[1:] if line[:2] != line[:2].upper() else line


def connect_error(uri: str, exc: BaseException) -> ConfigError:
    return ConfigError(f"cannot connect to PostgreSQL at {describe(uri)}: {reason(exc)}")


def with_timeout(uri: str) -> dict[str, Any]:
    """Connection keyword arguments: a connect timeout unless the URI sets one."""
    try:
        given = conninfo_to_dict(uri)
    except psycopg.ProgrammingError:
        given = {}
    return {} if "connect_timeout" in given else {"connect_timeout": CONNECT_TIMEOUT}


async def connect(uri: str) -> AsyncConnection[DictRow]:
    """A connection of its own (not from the pool); ConfigError naming the server when
    it cannot be made."""
    try:
        conn = await AsyncConnection.connect(
            uri, autocommit=True, row_factory=dict_row, **with_timeout(uri)
        )
    except psycopg.ProgrammingError as exc:  # a malformed URI: its text may hold a password
        raise ConfigError("DATABASE_URI is not a valid PostgreSQL connection string") from exc
    except psycopg.Error as exc:
        raise connect_error(uri, exc) from exc
    await configure_connection(conn)
    return conn


# -- migrations ---------------------------------------------------------------------


async def schema_version(conn: AsyncConnection[DictRow]) -> int:
    """The version graphdock's schema is at (0: none yet)."""
    cur = await conn.execute("SELECT to_regclass('gd_migrations') IS NOT NULL AS present")
    found = await cur.fetchone()
    if not found or not found["present"]:
        return 0
    cur = await conn.execute("SELECT coalesce(max(version), 0) AS v FROM gd_migrations")
    row = await cur.fetchone()
    return int(row["v"]) if row else 0


async def _langgraph_current(conn: AsyncConnection[DictRow], saver: Any, store: Any) -> bool:
    """Whether langgraph's saver and store tables are at their newest migration."""
    for table, steps in (
        ("checkpoint_migrations", saver.MIGRATIONS if saver is not None else None),
        ("store_migrations", store.MIGRATIONS if store is not None else None),
    ):
        if steps is None:
            continue
        cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (table,))
        found = await cur.fetchone()
        if not found or not found["present"]:
            return False
        cur = await conn.execute(f"SELECT coalesce(max(v), -1) AS v FROM {table}")
        row = await cur.fetchone()
        if row is None or int(row["v"]) < len(steps) - 1:
            return False
    if store is not None and getattr(store, "index_config", None):
        return False  # vector migrations: let the store check them
    return True


async def apply_steps(conn: AsyncConnection[DictRow]) -> int:
    """Apply graphdock's missing steps, each in one transaction; the caller holds the
    set-up lock. Returns the number applied."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS gd_migrations ("
        " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    current = await schema_version(conn)
    if current > len(STEPS):
        raise ConfigError(
            f"the graphdock schema in PostgreSQL is at version {current}, newer than this"
            f" graphdock knows ({len(STEPS)}): upgrade graphdock"
        )
    for version in range(current + 1, len(STEPS) + 1):
        async with conn.transaction():
            await conn.execute(STEPS[version - 1], prepare=False)
            await conn.execute("INSERT INTO gd_migrations (version) VALUES (%s)", (version,))
    return len(STEPS) - current


async def migrate(
    conn: AsyncConnection[DictRow], *, saver: Any = None, store: Any = None
) -> None:
    """Bring graphdock's schema, and the saver's and store's, to their newest versions.

    ``conn`` is a connection of its own (the session lock is held on it). Nothing is
    written, and no lock taken, when everything is current already.
    """
    if await schema_version(conn) == len(STEPS) and await _langgraph_current(conn, saver, store):
        return
    async with setup_lock(conn):
        await apply_steps(conn)
        if saver is not None:
            await saver.setup()
        if store is not None:
            await store.setup()


@asynccontextmanager
async def setup_lock(conn: AsyncConnection[Any]) -> AsyncIterator[None]:
    """Hold the set-up lock on ``conn`` (a session lock, released on exit).

    It is waited for between statements (``pg_try_advisory_lock`` with back-off), never
    inside one: a session blocked in ``pg_advisory_lock`` keeps a snapshot open, which
    the holder's ``CREATE INDEX CONCURRENTLY`` would wait for in turn, for ever.
    """
    delay = 0.05
    while True:
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS locked", (SETUP_LOCK,))
        row = await cur.fetchone()
        if row is not None and row["locked"]:
            break
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))
