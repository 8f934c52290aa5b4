"""langgraph's ``AsyncPostgresStore``, and its vector index on pgvector.

Without ``store.index`` the store is langgraph's as it is. With an index,
:func:`prepare_vector_index` runs before the schema is migrated: the database must have
the ``vector`` extension (pgvector), or be able to create it, else start-up stops with
one line saying so; the ANN index is langgraph's HNSW where pgvector has it (0.5 and
later, at most 2,000 dimensions), else none (an exact scan: ``"flat"``); and a database
whose ``store_vectors`` were made for other ``dims`` is refused. :class:`PostgresStore`
embeds each batch's texts before it takes a connection, replaces an item's vectors on
put, and pages ranked searches over the whole ranking.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import psycopg
from langgraph.store.base import Op, PutOp, Result, TTLConfig
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.postgres.base import _namespace_to_text
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool

from graphdock.backends.postgres.database import describe, reason, setup_lock
from graphdock.backends.vectors import (
    PrecomputedEmbeddings,
    batch_texts,
    batch_vectors,
    page_ranked,
    unpage_ranked,
)
from graphdock.config import ConfigError

__all__ = ["PostgresStore", "VectorIndex", "prepare_vector_index"]

#: pgvector's first version with HNSW indexes, and their largest ``vector`` dimension
HNSW_SINCE = (0, 5, 0)
HNSW_MAX_DIMS = 2000
#: pgvector's first version with iterative index scans (filtered searches stay complete)
ITERATIVE_SCAN_SINCE = (0, 8, 0)


class VectorIndex:
    """What :func:`prepare_vector_index` decided: the store's index config (with its
    ``ann_index_config``), pgvector's version, and per-connection settings."""

    def __init__(self, config: dict[str, Any], version: tuple[int, ...]) -> None:
        self.config = config
        self.version = version

    @property
    def kind(self) -> str:
        return str(self.config["ann_index_config"]["kind"])

    @property
    def session_settings(self) -> list[str]:
        """``SET`` statements for the store's connections: with HNSW on pgvector 0.8+,
        index scans go on until a filtered search (a namespace, a filter) has its rows,
        instead of stopping at the index's first candidates (``ef_search``)."""
        if self.kind == "hnsw" and self.version >= ITERATIVE_SCAN_SINCE:
            return ["SET hnsw.iterative_scan = relaxed_order"]
        return []


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


async def prepare_vector_index(
    conn: AsyncConnection[DictRow], uri: str, index: dict[str, Any]
) -> VectorIndex:
    """Make sure the database can hold ``index`` (see the module docstring); ConfigError
    with one line naming the database otherwise."""
    where = describe(uri)
    cur = await conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    row = await cur.fetchone()
    if row is None:
        cur = await conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
        if await cur.fetchone() is None:
            raise ConfigError(
                f"store.index: PostgreSQL at {where} has no pgvector ('vector' is not in"
                " pg_available_extensions): install pgvector on the database server and run"
                " CREATE EXTENSION vector in the database, or remove store.index"
            )
        try:
            async with setup_lock(conn):
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            raise ConfigError(
                f"store.index: cannot CREATE EXTENSION vector in PostgreSQL at {where}: {reason(exc)};"
                " run CREATE EXTENSION vector in that database as a superuser, or remove store.index"
            ) from exc
        cur = await conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = await cur.fetchone()
        assert row is not None
    version = _version(str(row["extversion"]))
    dims = int(index["dims"])
    cur = await conn.execute(
        "SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute"
        " WHERE attrelid = to_regclass('store_vectors') AND attname = 'embedding' AND NOT attisdropped"
    )
    column = await cur.fetchone()
    if column is not None:
        existing = re.fullmatch(r"\w+\((\d+)\)", str(column["type"]))
        if existing is not None and int(existing.group(1)) != dims:
            raise ConfigError(
                f"store.index.dims: {dims}, but the store's vectors in PostgreSQL at {where} have"
                f" {existing.group(1)} dimensions (store_vectors.embedding is {column['type']}):"
                f" set dims to {existing.group(1)}, or drop store_vectors and its vector_migrations to re-index"
            )
    kind = "hnsw" if version >= HNSW_SINCE and dims <= HNSW_MAX_DIMS else "flat"
    return VectorIndex({**index, "ann_index_config": {"kind": kind, "vector_type": "vector"}}, version)


class PostgresStore(AsyncPostgresStore):
    """langgraph's ``AsyncPostgresStore``; with an index see the module docstring."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        *,
        ttl: TTLConfig | None = None,
        index: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(pool, ttl=ttl, index=index)  # type: ignore[arg-type]
        self.precomputed = PrecomputedEmbeddings(self.embeddings) if self.embeddings is not None else None
        self.embeddings = self.precomputed

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        if self.precomputed is None or self.index_config is None:
            return await super().abatch(ops)
        ops = list(ops)
        vectors = await self.precomputed.acompute(batch_texts(ops, self.index_config["__tokenized_fields"]))  # type: ignore[typeddict-item]
        # langgraph's ranked SQL takes its best vectors for ``limit`` before ``offset``
        paged, pages = page_ranked(ops, per_item=1)
        with batch_vectors(vectors):
            return unpage_ranked(await super().abatch(paged), pages)

    async def _batch_put_ops(self, put_ops: Any, cur: AsyncCursor[DictRow]) -> None:
        """langgraph's puts, after dropping the vectors of the items put (langgraph's
        upsert keeps those of fields no longer indexed, and of ``index=False``)."""
        if self.index_config:
            items = {(_namespace_to_text(op.namespace), op.key) for _, op in put_ops if isinstance(op, PutOp)}
            if items:
                await cur.executemany("DELETE FROM store_vectors WHERE prefix = %s AND key = %s", sorted(items))
        await super()._batch_put_ops(put_ops, cur)
