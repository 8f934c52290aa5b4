"""langgraph's own SQLite checkpointer and store, on graphdock's shared connection.

Both are langgraph's synchronous classes (``SqliteSaver``, ``SqliteStore``): their SQL,
their serialisation and their on-disk format are used unchanged. graphdock only
decides how they reach the connection: each call is one transaction on the shared
:class:`Database` (so checkpoint writes never contend with graphdock's own rows for
SQLite's lock), and the async methods langgraph calls from the event loop run the
synchronous ones there, instead of raising; the writing ones start their transaction
with :meth:`Database.awrite`, so that a wait for another process's write lock lets the
event loop go on.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Iterator, Mapping, Sequence

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.sqlite import SqliteSaver as _LangGraphSqliteSaver
from langgraph.store.base import Op, PutOp, Result, SearchOp, TTLConfig
from langgraph.store.sqlite import SqliteStore as _LangGraphSqliteStore
from langgraph.store.sqlite.base import _namespace_to_text

from graphdock.backends.base import Housekeeping
from graphdock.backends.sqlite.database import Database
from graphdock.backends.sqlite.vectors import enable_vectors
from graphdock.backends.vectors import (
    PrecomputedEmbeddings,
    batch_texts,
    batch_vectors,
    page_ranked,
    unpage_ranked,
)

_WRITE_COLUMNS = "thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value"


class _OnSharedDatabase:
    """Set-up and cursors of a langgraph SQLite saver or store on graphdock's connection.

    Every cursor is one transaction of :class:`Database`; set-up runs once, locked.
    """

    database: Database
    is_setup: bool

    def setup(self) -> None:
        if self.is_setup:
            return
        with self.database.locked():
            super().setup()  # type: ignore[misc]

    @contextmanager
    def _transaction_cursor(self, write: bool) -> Iterator[sqlite3.Cursor]:
        self.setup()
        with self.database.transaction(write=write) as conn:
            cur = conn.cursor()
            try:
                yield cur
            finally:
                cur.close()


class SqliteSaver(_OnSharedDatabase, _LangGraphSqliteSaver, Housekeeping):
    """langgraph's ``SqliteSaver`` on the shared connection, with an async interface and
    graphdock's checkpoint housekeeping (:class:`~graphdock.backends.base.Housekeeping`)."""

    def __init__(self, database: Database) -> None:
        super().__init__(database.conn)
        self.database = database

    def cursor(self, transaction: bool = True) -> Any:
        return self._transaction_cursor(transaction)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for item in list(self.list(config, filter=filter, before=before, limit=limit)):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self.database.awrite(
            lambda _conn: self.put(config, checkpoint, metadata, new_versions)
        )

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self.database.awrite(lambda _conn: self.put_writes(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        await self.database.awrite(lambda _conn: self.delete_thread(thread_id))

    # -- housekeeping: each one transaction on langgraph's tables (checkpoints, writes)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self.database.awrite(_delete_for_runs, list(run_ids))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if strategy == "delete":
            for thread_id in thread_ids:
                await self.adelete_thread(thread_id)
        elif strategy == "keep_latest":
            await self.database.awrite(_keep_latest, list(thread_ids))
        else:
            raise ValueError(f"unknown prune strategy {strategy!r}")

    async def ahead_writes(self, thread_id: str, checkpoint_id: str | None = None) -> Any:
        self.setup()
        return self.database.read(_head_writes, thread_id, checkpoint_id)

    async def arestore_writes(self, thread_id: str, snapshot: Any) -> None:
        await self.database.awrite(_restore_writes, snapshot)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return self.get_delta_channel_history(config=config, channels=channels)


def _delete_for_runs(conn: sqlite3.Connection, run_ids: list[str]) -> None:
    for run_id in run_ids:
        rows = conn.execute(
            "SELECT thread_id, checkpoint_ns, checkpoint_id FROM checkpoints"
            " WHERE json_extract(CAST(metadata AS TEXT), '$.run_id') = ?",
            (run_id,),
        ).fetchall()
        for key in rows:
            where = "thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
            conn.execute(f"DELETE FROM writes WHERE {where}", tuple(key))
            conn.execute(f"DELETE FROM checkpoints WHERE {where}", tuple(key))


def _keep_latest(conn: sqlite3.Connection, thread_ids: list[str]) -> None:
    for thread_id in thread_ids:
        latest = conn.execute(
            "SELECT checkpoint_ns, MAX(checkpoint_id) FROM checkpoints WHERE thread_id = ?"
            " GROUP BY checkpoint_ns",
            (thread_id,),
        ).fetchall()
        for ns, keep in latest:
            params = (thread_id, ns, keep)
            where = "thread_id = ? AND checkpoint_ns = ?"
            conn.execute(f"DELETE FROM writes WHERE {where} AND checkpoint_id != ?", params)
            conn.execute(f"DELETE FROM checkpoints WHERE {where} AND checkpoint_id != ?", params)
            conn.execute(
                f"UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE {where} AND checkpoint_id = ?",
                params,
            )


def _head_writes(conn: sqlite3.Connection, thread_id: str, checkpoint_id: str | None) -> Any:
    heads = [
        (ns, cid)
        for ns, cid in conn.execute(
            "SELECT checkpoint_ns, MAX(checkpoint_id) FROM checkpoints WHERE thread_id = ?"
            " GROUP BY checkpoint_ns",
            (thread_id,),
        ).fetchall()
    ]
    if checkpoint_id is not None and ("", checkpoint_id) not in heads:
        heads.append(("", checkpoint_id))
    writes: list[tuple[Any, ...]] = []
    for ns, cid in heads:
        writes.extend(
            tuple(row)
            for row in conn.execute(
                f"SELECT {_WRITE_COLUMNS} FROM writes WHERE thread_id = ? AND checkpoint_ns = ?"
                " AND checkpoint_id = ?",
                (thread_id, ns, cid),
            ).fetchall()
        )
    return {"thread_id": thread_id, "checkpoints": heads, "writes": writes}


def _restore_writes(conn: sqlite3.Connection, snapshot: Any) -> None:
    thread_id = snapshot["thread_id"]
    for ns, cid in snapshot["checkpoints"]:
        conn.execute(
            "DELETE FROM writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
            (thread_id, ns, cid),
        )
    conn.executemany(
        f"INSERT OR REPLACE INTO writes ({_WRITE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
        snapshot["writes"],
    )


# the reader-thread connection a ranked search runs on (see SqliteStore._scan)
_SCANNING = threading.local()


@contextmanager
def _plain_cursor(conn: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
    cur = conn.cursor()
    try:
        yield cur
    finally:
        cur.close()


class SqliteStore(_OnSharedDatabase, _LangGraphSqliteStore):
    """langgraph's ``SqliteStore`` on the shared connection, with an async interface.

    With ``index`` (``{"dims", "embed", "fields"}``, ``embed`` an ``Embeddings``) it is
    langgraph's vector search: the connection gets the vector distance functions
    (:meth:`Database.enable_vectors`), the batch's texts are embedded before its
    transaction (:mod:`graphdock.backends.vectors`), a put replaces the item's vectors
    (langgraph's keeps those of fields no longer indexed, and of ``index=False``), a
    ranked search pages with ``offset`` over the whole ranking, and ranked searches
    from the event loop run on the reader thread (their cost grows with the store).
    """

    def __init__(
        self, database: Database, *, ttl: TTLConfig | None = None, index: dict[str, Any] | None = None
    ) -> None:
        if index:
            database.enable_vectors()
            # langgraph's SQLite store reads the indexed paths from "text_fields"
            index = {**index, "text_fields": list(index.get("fields") or ["$"])}
        super().__init__(database.conn, ttl=ttl, index=index)  # type: ignore[arg-type]
        self.database = database
        self._vector_conns: set[int] = {id(database.conn)}
        self.precomputed = PrecomputedEmbeddings(self.embeddings) if self.embeddings is not None else None
        self.embeddings = self.precomputed

    def setup(self) -> None:
        """langgraph's migrations, then its vector migrations (applied here: langgraph's
        set-up would load sqlite-vec itself, which not every Python build can)."""
        if self.is_setup:
            return
        with self.database.locked() as conn:
            index, self.index_config = self.index_config, None
            try:
                _LangGraphSqliteStore.setup(self)
            finally:
                self.index_config = index
            if index:
                try:
                    _apply_vector_migrations(conn, self.VECTOR_MIGRATIONS)
                except BaseException:
                    self.is_setup = False
                    raise

    def _cursor(self, *, transaction: bool = True) -> Any:
        reader = getattr(_SCANNING, "conn", None)
        if reader is not None:
            return _plain_cursor(reader)
        return self._transaction_cursor(transaction)

    def _texts(self, ops: list[Op]) -> list[str]:
        if self.precomputed is None:
            return []
        return batch_texts(ops, self.index_config["__tokenized_fields"])  # type: ignore[index]

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        vectors = self.precomputed.compute(self._texts(ops)) if self.precomputed is not None else {}
        with batch_vectors(vectors):
            return self._batch(ops)

    async def abatch(self, ops: Any) -> list[Result]:
        ops = list(ops)
        vectors = await self.precomputed.acompute(self._texts(ops)) if self.precomputed is not None else {}

        def run(_conn: Any = None) -> list[Result]:
            with batch_vectors(vectors):
                return self._batch(ops)

        if self.index_config and ops and all(self._ranked_read(op) for op in ops):
            return await self.database.scan(self._scan, ops, vectors)
        if not any(isinstance(op, PutOp) for op in ops):
            return run()
        return await self.database.awrite(run)

    def _ranked_read(self, op: Op) -> bool:
        """A ranked search that writes nothing (no TTL to refresh): its cost grows with
        the store, so it runs on the reader thread (:meth:`Database.scan`)."""
        refreshes = bool(op.refresh_ttl and self.ttl_config and self.ttl_config.get("refresh_on_read", False)) if isinstance(op, SearchOp) else True
        return isinstance(op, SearchOp) and bool(op.query) and not refreshes

    def _scan(self, conn: sqlite3.Connection, ops: list[Op], vectors: dict[str, list[float]]) -> list[Result]:
        if id(conn) not in self._vector_conns:
            enable_vectors(conn)  # a reader connection opened before the store
            self._vector_conns.add(id(conn))
        _SCANNING.conn = conn
        try:
            with batch_vectors(vectors):
                return self._batch(ops)
        finally:
            _SCANNING.conn = None

    def _batch(self, ops: list[Op]) -> list[Result]:
        """langgraph's batch, except that a put replacing an item keeps its ``created_at``
        (langgraph's SQLite store rewrites the row, creation time included: it is read
        before and put back after, in the same transaction), that a put or delete first
        drops the item's vectors (with an index), and the paging of ranked searches."""
        per_item = int(self.index_config.get("__estimated_num_vectors", 1)) if self.index_config else 1  # type: ignore[call-overload]
        ops, pages = page_ranked(ops, per_item=max(1, per_item)) if self.index_config else (ops, {})
        puts = {(_namespace_to_text(op.namespace), op.key): op for op in ops if isinstance(op, PutOp)}
        replaced = [item for item, op in puts.items() if op.value is not None]
        if not replaced and not (puts and self.index_config):
            return unpage_ranked(super().batch(ops), pages)
        self.setup()
        with self.database.transaction() as conn:
            created = [
                (row[0], prefix, key)
                for prefix, key in replaced
                if (
                    row := conn.execute(
                        "SELECT created_at FROM store WHERE prefix = ? AND key = ?", (prefix, key)
                    ).fetchone()
                )
                is not None
            ]
            if self.index_config:
                conn.executemany("DELETE FROM store_vectors WHERE prefix = ? AND key = ?", list(puts))
            results = super().batch(ops)
            conn.executemany("UPDATE store SET created_at = ? WHERE prefix = ? AND key = ?", created)
        return unpage_ranked(results, pages)

    def sweep_ttl(self) -> int:
        """langgraph's sweep of expired items, then (with an index) of their vectors."""
        deleted = super().sweep_ttl()
        if deleted and self.index_config:
            with self._cursor() as cur:
                cur.execute(
                    "DELETE FROM store_vectors WHERE NOT EXISTS (SELECT 1 FROM store s"
                    " WHERE s.prefix = store_vectors.prefix AND s.key = store_vectors.key)"
                )
        return deleted


def _apply_vector_migrations(conn: sqlite3.Connection, migrations: Sequence[str]) -> None:
    """langgraph's ``VECTOR_MIGRATIONS`` not yet applied, recorded in ``vector_migrations``
    as langgraph's set-up records them."""
    conn.execute("CREATE TABLE IF NOT EXISTS vector_migrations (v INTEGER PRIMARY KEY)")
    row = conn.execute("SELECT v FROM vector_migrations ORDER BY v DESC LIMIT 1").fetchone()
    version = -1 if row is None else int(row[0])
    for v, sql in enumerate(migrations[version + 1 :], start=version + 1):
        conn.executescript(sql)
        conn.execute("INSERT INTO vector_migrations (v) VALUES (?)", (v,))


@asynccontextmanager
async def open_persistence(
    path: Path | str | None = None,
    *,
    ttl: TTLConfig | None = None,
    index: dict[str, Any] | None = None,
    database: Database | None = None,
    sweeper: bool = True,
) -> AsyncIterator[tuple[SqliteSaver, SqliteStore]]:
    """The checkpointer and the store for the server's life, on ``database`` (shared with
    the storage) or on a database of their own opened at ``path``. ``index``: the
    store's vector index (``store.index`` with ``embed`` resolved). ``sweeper``: this
    process deletes the store's expired items (one process per database should)."""
    own = database is None
    if database is None:
        assert path is not None, "give a path or a database"
        database = Database(path)
        database.open()
    try:
        saver = SqliteSaver(database)
        saver.setup()
        store = SqliteStore(database, ttl=ttl or {"sweep_interval_minutes": 5}, index=index)
        store.setup()
        if sweeper:
            store.start_ttl_sweeper()
        try:
            yield saver, store
        finally:
            if sweeper:
                store.stop_ttl_sweeper(timeout=1)
    finally:
        if own:
            database.close()
