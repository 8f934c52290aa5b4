"""langgraph's own SQLite checkpointer and store, opened on graphdock's database file."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import aiosqlite
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.store.base import TTLConfig
from langgraph.store.sqlite.aio import AsyncSqliteStore


class SqliteStore(AsyncSqliteStore):
    """langgraph's AsyncSqliteStore with its TTL support reported truthfully.

    The async store writes ``expires_at`` for items put with a ``ttl`` and sweeps
    them, but inherits ``supports_ttl = False``, which makes ``aput(ttl=...)`` refuse.
    """

    supports_ttl = True


async def _connect(path: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=NORMAL")
    await conn.execute("PRAGMA busy_timeout=30000")
    return conn


@asynccontextmanager
async def open_persistence(
    path: Path | str, *, ttl: TTLConfig | None = None
) -> AsyncIterator[tuple[AsyncSqliteSaver, SqliteStore]]:
    """Open the checkpointer and the store (each on its own connection) for the server's life."""
    path = str(path)
    saver_conn = await _connect(path)
    store_conn = await _connect(path)
    try:
        saver = AsyncSqliteSaver(saver_conn)
        await saver.setup()
        store = SqliteStore(store_conn, ttl=ttl or {"sweep_interval_minutes": 5})
        await store.setup()
        await store.start_ttl_sweeper()
        try:
            yield saver, store
        finally:
            await store.stop_ttl_sweeper(timeout=1)
    finally:
        await saver_conn.close()
        await store_conn.close()


