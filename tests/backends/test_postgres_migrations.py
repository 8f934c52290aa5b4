"""The PostgreSQL schema's steps: a database an older graphdock left is brought up to date
at start-up, and what it held before keeps working."""

from __future__ import annotations

import psycopg
import pytest

from graphdock.backends.postgres.schema import STEPS

from .conftest import BackendOpener, run_row, thread_defaults, thread_row

pytestmark = pytest.mark.scaled_only


async def test_a_database_at_schema_version_1_is_migrated(
    make_backend: BackendOpener, fresh_database_uri: str, backend_kind: str
) -> None:
    async with await psycopg.AsyncConnection.connect(fresh_database_uri, autocommit=True) as conn:
        await conn.execute(
            "CREATE TABLE gd_migrations (version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.execute(STEPS[0])
        await conn.execute("INSERT INTO gd_migrations (version) VALUES (1)")
        # a thread written by the older graphdock
        await conn.execute(
            "INSERT INTO gd_threads (thread_id, created_at, updated_at, state_updated_at, metadata,"
            " config, status) VALUES ('00000000-0000-0000-0000-00000000000a', now(), now(), now(),"
            " '{\"z\": 1, \"a\": 2}', '{}', 'idle')"
        )

    async with make_backend(database_uri=fresh_database_uri) as backend:
        storage = backend.storage
        thread_id = "00000000-0000-0000-0000-00000000000a"
        run, inflight = await storage.create_run(
            run_row(thread_id), thread=thread_defaults({"a": 3, "b": 4}),
            if_not_exists="reject", multitask_strategy="enqueue",
        )
        assert inflight == [] and run["status"] == "pending"
        thread = await storage.get_thread(thread_id)
        assert thread is not None and thread["status"] == "busy"
        assert list(thread["metadata"].items()) == [("z", 1), ("a", 3), ("b", 4)]
        created, _ = await storage.create_thread(thread_row(), if_exists="raise")
        assert created["status"] == "idle"

    async with await psycopg.AsyncConnection.connect(fresh_database_uri, autocommit=True) as conn:
        cur = await conn.execute("SELECT max(version) FROM gd_migrations")
        row = await cur.fetchone()
        assert row is not None and row[0] == len(STEPS)
