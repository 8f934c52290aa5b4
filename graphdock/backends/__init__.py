"""Opening the backend a process runs on: one place for every kind of process.

:func:`open_backend` gives the API process, the worker and the run process the storage,
queue, event log, checkpointer and store of the deployment named by the settings:

- no database URI: the embedded default, one SQLite file (graphdock's rows, langgraph's
  ``SqliteSaver`` and ``SqliteStore``) with the in-process queue and event log;
- ``database_uri`` (and ``redis_uri``): PostgreSQL for every row, checkpoint and store
  item (langgraph's ``AsyncPostgresSaver`` / ``AsyncPostgresStore``), the queue in the
  database (``FOR UPDATE SKIP LOCKED``, leases, ``LISTEN/NOTIFY`` wake-ups), and Redis
  for run events and cancel signals.

Nothing above this package names a concrete adapter.
"""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Literal

from graphdock.backends.base import EventLog, Housekeeping, Queue, Storage

if TYPE_CHECKING:
    from graphdock.config import Settings

Role = Literal["server", "worker", "run-process"]


@dataclass
class Backend:
    """What one process runs on (see :func:`open_backend`)."""

    kind: Literal["sqlite", "postgres"]
    storage: Storage
    queue: Queue | None  # None in a run process: its server process dispatches
    events: EventLog | None  # None in a run process: events go to its server process
    checkpointer: Any  # a langgraph BaseCheckpointSaver that is also Housekeeping
    store: Any  # a langgraph BaseStore


@asynccontextmanager
async def open_backend(
    settings: "Settings", role: Role = "server", *, store_index: dict[str, Any] | None = None
) -> AsyncIterator[Backend]:
    """Open the deployment's backend for a process of kind ``role``; everything is closed
    on exit. A database or Redis that cannot be reached (or a schema that cannot be
    migrated, or a vector index the database cannot hold) raises
    :class:`graphdock.config.ConfigError` with one line naming it. ``store_index``: the
    store's vector index, ``store.index`` with its ``embed`` resolved
    (:func:`graphdock.hosting.embeddings.resolve_store_index`)."""
    if store_index is None and (settings.config.store or {}).get("index"):
        raise ValueError("store.index is configured: open the backend with its resolved store_index")
    if (settings.config.store or {}).get("path"):
        store_index = None  # store.path replaces graphdock's store: its index is the custom store's own
    async with AsyncExitStack() as stack:
        if settings.database_uri:
            backend = await _open_scaled(settings, role, stack, store_index)
        else:
            backend = await _open_embedded(settings, role, stack, store_index)
        config = settings.config
        if config.custom_persistence:  # checkpointer.path / store.path replace graphdock's own
            from graphdock.backends.custom import open_custom_persistence

            backend.checkpointer, backend.store = await open_custom_persistence(
                config, backend.checkpointer, backend.store, stack
            )
        if config.checkpointer_serde is not None:
            from graphdock.backends.custom import apply_serde

            apply_serde(backend.checkpointer, config.checkpointer_serde)
        assert isinstance(backend.checkpointer, Housekeeping)
        yield backend


async def _open_embedded(
    settings: "Settings", role: Role, stack: AsyncExitStack, store_index: dict[str, Any] | None
) -> Backend:
    from graphdock.backends.memory.eventlog import MemoryEventLog
    from graphdock.backends.memory.queue import MemoryQueue
    from graphdock.backends.sqlite.persistence import open_persistence
    from graphdock.backends.sqlite.storage import SqliteStorage

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    storage = SqliteStorage(settings.database_path)
    await storage.setup()
    stack.push_async_callback(storage.close)
    saver, store = await stack.enter_async_context(
        open_persistence(
            ttl=(settings.config.store or {}).get("ttl"),
            index=store_index,
            database=storage.database,
            sweeper=role != "run-process",
        )
    )
    if role == "run-process":
        return Backend("sqlite", storage, None, None, saver, store)
    events = MemoryEventLog(retention=settings.resumable_stream_ttl)
    stack.push_async_callback(events.aclose)
    queue = MemoryQueue(
        storage,
        events,
        concurrency=max(1, settings.n_jobs_per_worker),
        # with every run in run processes, the server loop's load says nothing of theirs
        adaptive=not (settings.run_processes > 0 and settings.run_process_policy == "always"),
    )
    return Backend("sqlite", storage, queue, events, saver, store)


async def _open_scaled(
    settings: "Settings", role: Role, stack: AsyncExitStack, store_index: dict[str, Any] | None
) -> Backend:
    from graphdock.backends.postgres import open_postgres
    from graphdock.backends.redis import open_redis_events
    from graphdock.config import ConfigError

    if not settings.redis_uri:
        raise ConfigError("REDIS_URI (--redis-uri) is required with DATABASE_URI: run events and cancel signals live in Redis")
    events = await stack.enter_async_context(
        open_redis_events(
            settings.redis_uri,
            prefix=settings.redis_prefix,
            retention=settings.resumable_stream_ttl,
        )
    )
    storage, queue, saver, store = await stack.enter_async_context(
        open_postgres(
            settings.database_uri,  # type: ignore[arg-type]
            store_ttl=(settings.config.store or {}).get("ttl"),
            store_index=store_index,
            concurrency=settings.n_jobs_per_worker,
            lease_seconds=settings.lease_seconds,
        )
    )
    return Backend("postgres", storage, queue, events, saver, store)
