"""PostgreSQL and Redis for tests: reachability, throw-away databases and key prefixes.

Tests of the scaled-out backend use the real servers on 127.0.0.1 (PostgreSQL 5432 as
user ``postgres``, Redis 6379). Everything a test session creates has a name of its own
(databases ``gdtest_<pid>_<hex>``, Redis keys under ``gdtest-<pid>-<hex>:``) and is
removed again by the session, also when tests fail; nothing else is ever dropped or
deleted (no ``FLUSHDB``, no ``DROP`` of a name this module did not make).

When the servers cannot be reached, :func:`require_services` skips the test, except with
``CI=true``, where the scaled-out tests must run and it fails instead.

:func:`scaled_services` is a session fixture: import it into a ``conftest.py``
(``from services import scaled_services``) and ask it for databases and prefixes.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from typing import Iterator

import pytest

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
ADMIN_URI = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
REDIS_URI = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"

# the shapes of the names this module makes (and the only ones it drops or deletes)
_NAME = re.compile(r"^[a-z][a-z0-9]{0,39}_[0-9]+_[0-9a-f]{8}$")
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,39}-[0-9]+-[0-9a-f]{8}$")


def in_ci() -> bool:
    """Whether this is a CI run (``CI=true``), where the scaled-out tests must not skip."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def postgres_available(timeout: float = 2.0) -> bool:
    """True when PostgreSQL on 127.0.0.1:5432 accepts user ``postgres`` on database ``postgres``."""
    import psycopg

    try:
        with psycopg.connect(ADMIN_URI, connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
    except (psycopg.Error, OSError):
        return False
    return True


def redis_available(timeout: float = 2.0) -> bool:
    """True when Redis on 127.0.0.1:6379 answers ``PING``."""
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def require_services() -> None:
    """Skip the calling test when PostgreSQL or Redis is not reachable; with ``CI=true``,
    fail it instead (in CI these tests must run)."""
    missing = [
        name
        for name, available in (
            (f"PostgreSQL at {PG_HOST}:{PG_PORT}", postgres_available),
            (f"Redis at {REDIS_HOST}:{REDIS_PORT}", redis_available),
        )
        if not available()
    ]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not reachable"
    if in_ci():
        pytest.fail(f"{reason}, and CI=true: the scaled-out tests must run in CI", pytrace=False)
    pytest.skip(reason)


def _unique(name_prefix: str, separator: str) -> str:
    return f"{name_prefix}{separator}{os.getpid()}{separator}{secrets.token_hex(4)}"


def database_uri(name: str) -> str:
    """The URI of database ``name`` on the test server."""
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def create_database(name_prefix: str = "gdtest") -> tuple[str, str]:
    """Create an empty database named ``<name_prefix>_<pid>_<random hex>``; return (name, uri)."""
    import psycopg
    from psycopg import sql

    name = _unique(name_prefix, "_")
    if not _NAME.match(name):
        raise ValueError(f"name_prefix must be lower-case letters and digits: {name_prefix!r}")
    with psycopg.connect(ADMIN_URI, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, database_uri(name)


def drop_database(name: str) -> None:
    """Drop database ``name`` (one :func:`create_database` made), closing its connections."""
    import psycopg
    from psycopg import sql

    if not _NAME.match(name):
        raise ValueError(f"not a database name this module makes: {name!r}")
    with psycopg.connect(ADMIN_URI, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def redis_prefix(name_prefix: str = "gdtest") -> str:
    """A Redis key prefix no other run uses: ``<name_prefix>-<pid>-<random hex>``."""
    prefix = _unique(name_prefix, "-")
    if not _PREFIX.match(prefix):
        raise ValueError(f"name_prefix must be lower-case letters and digits: {name_prefix!r}")
    return prefix


def delete_redis_prefix(prefix: str) -> int:
    """Delete the keys ``<prefix>:*`` (and only those); return how many were deleted."""
    import redis

    if not _PREFIX.match(prefix):
        raise ValueError(f"refusing to delete keys under {prefix!r}: not a prefix this module makes")
    deleted = 0
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
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


@dataclass(frozen=True)
class Deployment:
    """Where one scaled-out deployment keeps its state: its own database and key prefix."""

    database_name: str
    database_uri: str
    redis_uri: str
    redis_prefix: str


@dataclass
class ScaledServices:
    """The databases and Redis prefixes a test session made; :meth:`close` removes them all.

    Check reachability first (:func:`require_services`); every method may be called
    from any test, and everything made is removed once, at :meth:`close`, unless a test
    removed it earlier with :meth:`drop` / :meth:`forget_prefix`.
    """

    databases: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)

    def database(self, name_prefix: str = "gdtest") -> str:
        """A new empty database; its URI."""
        name, uri = create_database(name_prefix)
        self.databases.append(name)
        return uri

    def drop(self, uri: str) -> None:
        """Drop a database :meth:`database` made, now rather than at :meth:`close`."""
        name = uri.rsplit("/", 1)[-1]
        if name not in self.databases:
            raise ValueError(f"{uri} was not made by this session")
        drop_database(name)
        self.databases.remove(name)

    def prefix(self, name_prefix: str = "gdtest") -> str:
        """A new Redis key prefix, whose keys are deleted at :meth:`close`."""
        prefix = redis_prefix(name_prefix)
        self.prefixes.append(prefix)
        return prefix

    def forget_prefix(self, prefix: str) -> None:
        """Delete a prefix's keys now rather than at :meth:`close`."""
        if prefix not in self.prefixes:
            raise ValueError(f"{prefix!r} was not made by this session")
        delete_redis_prefix(prefix)
        self.prefixes.remove(prefix)

    def deployment(self) -> Deployment:
        """A database and a Redis prefix for one deployment (e.g. a set of server processes)."""
        uri = self.database()
        return Deployment(uri.rsplit("/", 1)[-1], uri, REDIS_URI, self.prefix())

    def close(self) -> None:
        """Drop every database and delete every prefix's keys that are still there; the
        first failure is raised after all were tried."""
        errors: list[BaseException] = []
        for name in reversed(self.databases):
            try:
                drop_database(name)
            except Exception as exc:  # try the others, then report
                errors.append(exc)
        self.databases.clear()
        for prefix in reversed(self.prefixes):
            try:
                delete_redis_prefix(prefix)
            except Exception as exc:
                errors.append(exc)
        self.prefixes.clear()
        if errors:
            raise errors[0]


@pytest.fixture(scope="session")
def scaled_services() -> Iterator[ScaledServices]:
    """The session's :class:`ScaledServices` (skips, or fails with CI=true, when PostgreSQL
    or Redis is not reachable); everything it made is removed when the session ends."""
    require_services()
    services = ScaledServices()
    try:
        yield services
    finally:
        services.close()
