"""The PostgreSQL backend: graphdock's rows, the run queue, langgraph's checkpointer and
store, all on one database and one connection pool.

:func:`open_postgres` is what :func:`graphdock.backends.open_backend` uses when a
``database_uri`` is configured (run events and cancel signals are Redis's).
"""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, cast

import psycopg
from langgraph.store.base import TTLConfig
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from graphdock.backends.postgres.checkpoint import PostgresSaver
from graphdock.backends.postgres.database import (
    CONNECT_TIMEOUT,
    configure_connection,
    configure_relaxed,
    connect,
    describe,
    migrate,
    reason,
    with_timeout,
)
from graphdock.backends.postgres.queue import PostgresQueue
from graphdock.backends.postgres.storage import PostgresStorage
from graphdock.backends.postgres.store import PostgresStore, VectorIndex, prepare_vector_index
from graphdock.config import ConfigError

__all__ = ["open_postgres", "PostgresStorage", "PostgresQueue", "PostgresSaver", "pool_size"]

#: connections beyond one per executing run: API requests, the queue, the store's sweeper
API_CONNECTIONS = 8


def pool_size(concurrency: int) -> int:
    """The pool's largest size for ``concurrency`` runs executing at once."""
    return max(0, concurrency) + API_CONNECTIONS


def _with_settings(statements: list[str]) -> Any:
    """:func:`configure_connection`, then ``statements`` (the store's session settings)."""

    async def configure(conn: Any) -> None:
        await configure_connection(conn)
        for statement in statements:
            await conn.execute(statement)

    return configure


@asynccontextmanager
async def open_postgres(
    uri: str,
    *,
    store_ttl: dict[str, Any] | None,
    store_index: dict[str, Any] | None = None,
    concurrency: int,
    lease_seconds: float,
) -> AsyncIterator[tuple[PostgresStorage, PostgresQueue, PostgresSaver, PostgresStore]]:
    """Open the deployment's database: (storage, queue, saver, store) on one pool.

    Connecting waits at most ~10 s; an unreachable server, an unknown database or
    refused credentials raise :class:`~graphdock.config.ConfigError` with one line
    naming the server (never the password), as does a schema that cannot be migrated.
    The schema (graphdock's, the saver's, the store's) is brought to the newest version
    first. The store sweeps expired items (``store_ttl``, and items put with a TTL);
    with ``store_index`` it has langgraph's pgvector index (a database without pgvector
    raises ConfigError: see :mod:`graphdock.backends.postgres.store`).
    Everything is closed on exit; the queue is stopped (without grace) if it still runs.
    """
    setup_conn = await connect(uri)
    pool_kwargs: dict[str, Any] = {
        "autocommit": True,
        "prepare_threshold": 0,
        "row_factory": dict_row,
        **with_timeout(uri),
    }
    relaxed: AsyncConnectionPool[Any] | None = None
    try:
        vectors: VectorIndex | None = None
        if store_index:
            vectors = await prepare_vector_index(setup_conn, uri, store_index)
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            uri,
            min_size=min(2, pool_size(concurrency)),
            max_size=pool_size(concurrency),
            kwargs=pool_kwargs,
            configure=_with_settings(vectors.session_settings) if vectors else configure_connection,
            open=False,
            name="graphdock",
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except PoolTimeout as exc:
            await pool.close()
            raise ConfigError(
                f"cannot connect to PostgreSQL at {describe(uri)}: no connection within"
                f" {CONNECT_TIMEOUT} s"
            ) from exc
        # the checkpoint writes of the runs executing here (see RELAXED_COMMIT)
        if concurrency > 0:
            relaxed = AsyncConnectionPool(
                uri,
                min_size=0,
                max_size=concurrency + 2,
                kwargs=pool_kwargs,
                configure=configure_relaxed,
                open=False,
                name="graphdock-runs",
            )
            await relaxed.open(wait=False)
        try:
            saver = PostgresSaver(pool, relaxed=relaxed)
            ttl = cast(TTLConfig, store_ttl or {"sweep_interval_minutes": 5})
            store = PostgresStore(pool, ttl=ttl, index=vectors.config if vectors else None)
            try:
                await migrate(setup_conn, saver=saver, store=store)
            except psycopg.Error as exc:
                raise ConfigError(
                    f"cannot migrate the schema in PostgreSQL at {describe(uri)}: {reason(exc)}"
                ) from exc
        except BaseException:
            await pool.close()
            if relaxed is not None:
                await relaxed.close()
            raise
    finally:
        await setup_conn.close()
    worker_id = str(uuid.uuid4())
    storage = PostgresStorage(pool, worker_id=worker_id, lease_seconds=lease_seconds)
    queue = PostgresQueue(
        pool, uri, concurrency=concurrency, lease_seconds=lease_seconds, worker_id=worker_id
    )
    try:
        await store.start_ttl_sweeper()
        try:
            yield storage, queue, saver, store
        finally:
            await queue.stop(0.0)
            await store.stop_ttl_sweeper(timeout=1.0)
    finally:
        await pool.close()
        if relaxed is not None:
            await relaxed.close()
