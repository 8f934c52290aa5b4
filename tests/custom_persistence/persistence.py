"""The "custom" checkpointer and store of tests/custom_persistence: langgraph's own
``InMemorySaver`` / ``InMemoryStore`` (embedded), or ``AsyncPostgresSaver`` /
``AsyncPostgresStore`` on ``GD_CUSTOM_PERSISTENCE_URI`` (shared by the processes of a
PostgreSQL deployment). Each marks what it saves, so that a client can tell that the
custom one was used: checkpoint metadata ``saved_by`` and item value ``stored_by``.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.base import PutOp
from langgraph.store.memory import InMemoryStore

MARK = "custom"


def _marked(saver_class: type) -> type:
    class Marked(saver_class):  # type: ignore[misc, valid-type]
        async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
            return await super().aput(config, checkpoint, {**metadata, "saved_by": MARK}, new_versions)

    return Marked


def _marked_store(store_class: type) -> type:
    class Marked(store_class):  # type: ignore[misc, valid-type]
        async def abatch(self, ops: Any) -> Any:
            ops = [
                op._replace(value={**op.value, "stored_by": MARK}) if isinstance(op, PutOp) and op.value is not None else op
                for op in ops
            ]
            return await super().abatch(ops)

    return Marked


@asynccontextmanager
async def checkpointer() -> AsyncIterator[Any]:
    uri = os.environ.get("GD_CUSTOM_PERSISTENCE_URI")
    if not uri:
        yield _marked(InMemorySaver)()
        return
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg_pool import AsyncConnectionPool

    async with AsyncConnectionPool(uri, kwargs={"autocommit": True, "prepare_threshold": 0}, open=False) as pool:
        saver = _marked(AsyncPostgresSaver)(pool)
        await saver.setup()
        yield saver


@asynccontextmanager
async def store() -> AsyncIterator[Any]:
    uri = os.environ.get("GD_CUSTOM_PERSISTENCE_URI")
    if not uri:
        yield _marked_store(InMemoryStore)()
        return
    from langgraph.store.postgres.aio import AsyncPostgresStore
    from psycopg_pool import AsyncConnectionPool

    async with AsyncConnectionPool(uri, kwargs={"autocommit": True, "prepare_threshold": 0}, open=False) as pool:
        custom = _marked_store(AsyncPostgresStore)(pool)
        await custom.setup()
        yield custom
