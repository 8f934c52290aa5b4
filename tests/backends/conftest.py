"""Fixtures of the backend conformance suite: every test runs against every adapter.

``backend`` is a :class:`graphdock.backends.Backend` opened by
:func:`graphdock.backends.open_backend`, once per test, for each kind of deployment:

- ``sqlite``: the embedded default, in the test's own data directory;
- ``postgres``: PostgreSQL + Redis, on one database per test session (a module may
  override ``database_uri`` for a fresh database per test) and a Redis key prefix per test.

Tests marked ``scaled_only`` run on ``postgres`` alone (what two processes on one embedded
database cannot do). ``make_backend(**settings)`` opens another backend on the same
deployment (a second process, as far as the ports can tell), with settings changed.

Test data is unique per test (uuid ids, a metadata tag), so that tests sharing a database
never see each other's rows.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import pytest

from graphdock import serde
from graphdock.backends import Backend, Role, open_backend
from graphdock.backends.base import Event, Row, Subscription
from graphdock.config import Settings, load_config
from services import REDIS_URI, ScaledServices, scaled_services  # noqa: F401 (a fixture)

BACKEND_KINDS = ("sqlite", "postgres")

#: how long any single await of the suite may take before the test fails
TIMEOUT = 10.0

BackendOpener = Callable[..., AbstractAsyncContextManager[Backend]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "scaled_only: runs on the postgres backend only (needs two processes on one deployment)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_kind" in metafunc.fixturenames:
        scaled_only = metafunc.definition.get_closest_marker("scaled_only") is not None
        metafunc.parametrize("backend_kind", ["postgres"] if scaled_only else list(BACKEND_KINDS))


# -- deployments ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def database_uri(scaled_services: ScaledServices) -> str:
    """The session's PostgreSQL database (shared by the tests that do not override it)."""
    return scaled_services.database()


@pytest.fixture
def fresh_database_uri(scaled_services: ScaledServices) -> Iterator[str]:
    """A database of this test's own, dropped after it."""
    uri = scaled_services.database()
    yield uri
    scaled_services.drop(uri)


@pytest.fixture
def redis_prefix(scaled_services: ScaledServices) -> Iterator[str]:
    """A Redis key prefix of this test's own, whose keys are deleted after it."""
    prefix = scaled_services.prefix()
    yield prefix
    scaled_services.forget_prefix(prefix)


def _write_config(directory: Path) -> Path:
    """A minimal ``langgraph.json`` (the backend reads only its store settings)."""
    path = directory / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"agent": "./agent.py:graph"}}))
    return path


@pytest.fixture
def settings(request: pytest.FixtureRequest, backend_kind: str, tmp_path: Path) -> Settings:
    """The settings of this test's deployment of ``backend_kind``."""
    base = Settings(
        config=load_config(_write_config(tmp_path)),
        data_dir=tmp_path / "data",
        n_jobs_per_worker=10,
        run_processes=0,
        lease_seconds=2.0,
        shutdown_timeout=1.0,
    )
    if backend_kind == "sqlite":
        return base
    return replace(
        base,
        database_uri=request.getfixturevalue("database_uri"),
        redis_uri=REDIS_URI,
        redis_prefix=request.getfixturevalue("redis_prefix"),
    )


@pytest.fixture
def make_backend(settings: Settings) -> BackendOpener:
    """``make_backend(role="server", **changes)``: open a backend of this test's deployment
    (the same database and Redis prefix) with ``changes`` to its settings."""

    def opener(role: Role = "server", **changes: Any) -> AbstractAsyncContextManager[Backend]:
        return open_backend(replace(settings, **changes), role)

    return opener


@pytest.fixture
async def backend(make_backend: BackendOpener) -> AsyncIterator[Backend]:
    async with make_backend() as opened:
        yield opened


@pytest.fixture
def tag() -> str:
    """A value unique to this test, put in the metadata of the rows it creates."""
    return uuid.uuid4().hex


# -- rows ---------------------------------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4())


def at(offset_ms: float = 0.0, base: datetime | None = None) -> str:
    """An ISO timestamp ``offset_ms`` after ``base`` (now), as the services write them."""
    return serde.iso((base or serde.now()) + timedelta(milliseconds=offset_ms))


def assistant_row(**changes: Any) -> Row:
    now = serde.now_iso()
    row: Row = {
        "assistant_id": new_id(),
        "graph_id": "agent",
        "config": {},
        "context": {},
        "metadata": {},
        "name": "Agent",
        "description": None,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    row.update(changes)
    return row


def thread_row(**changes: Any) -> Row:
    now = serde.now_iso()
    row: Row = {
        "thread_id": new_id(),
        "created_at": now,
        "updated_at": now,
        "state_updated_at": now,
        "metadata": {},
        "config": {},
        "status": "idle",
    }
    row.update(changes)
    return row


def run_row(thread_id: str, **changes: Any) -> Row:
    now = changes.get("created_at") or serde.now_iso()
    row: Row = {
        "run_id": new_id(),
        "thread_id": thread_id,
        "assistant_id": new_id(),
        "created_at": now,
        "updated_at": now,
        "status": "pending",
        "metadata": {},
        "kwargs": {"input": {"n": 1}, "resumable": False, "temporary": False},
        "multitask_strategy": "enqueue",
        "attempt": 0,
    }
    row.update(changes)
    return row


def thread_defaults(metadata: Row | None = None, config: Row | None = None) -> Row:
    """The ``thread`` argument of ``Storage.create_run``."""
    return {"metadata": metadata or {}, "config": config or {}}


async def add_run(
    backend: Backend,
    thread_id: str,
    *,
    if_not_exists: str = "create",
    multitask_strategy: str = "enqueue",
    start: bool = False,
    thread: Row | None = None,
    **changes: Any,
) -> Row:
    """Create a pending run (and its thread if missing) with ``Storage.create_run``."""
    row, _ = await backend.storage.create_run(
        run_row(thread_id, multitask_strategy=multitask_strategy, **changes),
        thread=thread or thread_defaults(),
        if_not_exists=if_not_exists,
        multitask_strategy=multitask_strategy,
        start=start,
    )
    return row


# -- awaiting ---------------------------------------------------------------------------


async def within(awaitable: Any, timeout: float = TIMEOUT) -> Any:
    """``await awaitable``, failing the test when it takes more than ``timeout`` seconds."""
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            return await awaitable
    except TimeoutError:
        if not deadline.expired():
            raise  # the awaitable's own
        pytest.fail(f"not done within {timeout}s: {awaitable!r}")


async def collect(sub: Subscription, timeout: float = TIMEOUT) -> list[Event]:
    """Every event of a subscription until it ends."""

    async def drain() -> list[Event]:
        return [event async for event in sub]

    return await within(drain(), timeout)


async def take(sub: Subscription, n: int, timeout: float = TIMEOUT) -> list[Event]:
    """The next ``n`` events of a subscription."""

    async def read() -> list[Event]:
        return [await sub.__anext__() for _ in range(n)]

    return await within(read(), timeout)


async def not_within(task: "asyncio.Future[Any]", timeout: float) -> None:
    """Assert that ``task`` is still not done after ``timeout`` seconds (it is left running)."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    assert not done, f"finished, but should still be waiting: {task!r}"


def pairs(events: list[Event]) -> list[tuple[str, bytes]]:
    """Events without their ids."""
    return [(event.event, event.data) for event in events]
