"""Embedding a batch of store operations before the batch touches the database.

langgraph's stores embed the texts of a batch (the indexed fields of the items put, the
queries searched) while they hold a connection, or on SQLite inside the transaction.
graphdock's stores embed them first, with the model's async method where there is an
event loop: a slow or failing model then holds no transaction and leaves nothing
half-written. :class:`PrecomputedEmbeddings` is the model the langgraph store calls; it
answers from the vectors computed for the batch at hand (a context variable, so
concurrent batches never see each other's), and asks the model itself otherwise.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterable, Iterator, Sequence

from langchain_core.embeddings import Embeddings
from langgraph.store.base import Op, PutOp, SearchOp
from langgraph.store.base.embed import get_text_at_path, tokenize_path

_BATCH_VECTORS: ContextVar[dict[str, list[float]] | None] = ContextVar("graphdock_batch_vectors", default=None)


def batch_texts(ops: Iterable[Op], tokenized_fields: Sequence[tuple[str, Any]]) -> list[str]:
    """The texts langgraph's store embeds for ``ops`` (each once): the indexed fields of
    each item put (``index`` paths, else the configured ``fields``; none with
    ``index=False``) and each search's ``query``."""
    texts: list[str] = []
    for op in ops:
        if isinstance(op, PutOp) and op.value is not None and op.index is not False:
            paths = tokenized_fields if op.index is None else [(p, tokenize_path(p)) for p in op.index]
            for _, tokens in paths:
                texts.extend(get_text_at_path(op.value, tokens))
        elif isinstance(op, SearchOp) and op.query:
            texts.append(op.query)
    return list(dict.fromkeys(texts))


class PrecomputedEmbeddings(Embeddings):
    """The store's model, answering from the current batch's vectors when it has them."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner

    @staticmethod
    def _known(texts: list[str]) -> list[list[float]] | None:
        vectors = _BATCH_VECTORS.get()
        if vectors is None or not all(t in vectors for t in texts):
            return None
        return [vectors[t] for t in texts]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        known = self._known(texts)
        return known if known is not None else self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        known = self._known(texts)
        return known if known is not None else await self.inner.aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]

    def compute(self, texts: list[str]) -> dict[str, list[float]]:
        """The vectors of ``texts``, by the model's synchronous method."""
        return dict(zip(texts, self.inner.embed_documents(texts))) if texts else {}

    async def acompute(self, texts: list[str]) -> dict[str, list[float]]:
        """The vectors of ``texts``, by the model's async method."""
        return dict(zip(texts, await self.inner.aembed_documents(texts))) if texts else {}


@contextmanager
def batch_vectors(vectors: dict[str, list[float]]) -> Iterator[None]:
    """Let :class:`PrecomputedEmbeddings` answer from ``vectors`` inside the block."""
    token = _BATCH_VECTORS.set(vectors)
    try:
        yield
    finally:
        _BATCH_VECTORS.reset(token)


def page_ranked(ops: list[Op], *, per_item: int) -> tuple[list[Op], dict[int, tuple[int, int]]]:
    """``ops`` with each ranked search (one with a ``query``) asking for its first
    ``(offset + limit) * per_item`` items from offset 0, and each one's ``(offset,
    limit)`` by position: langgraph's ranked SQL picks its best vectors for ``limit``
    (``2 * limit`` on SQLite, whatever the vectors per item) before it applies ``offset``,
    so a later page would come out short. :func:`unpage_ranked` cuts the pages out."""
    pages: dict[int, tuple[int, int]] = {}
    out: list[Op] = []
    for i, op in enumerate(ops):
        if isinstance(op, SearchOp) and op.query and (op.offset or per_item > 1):
            pages[i] = (op.offset, op.limit)
            op = op._replace(limit=(op.offset + op.limit) * per_item, offset=0)
        out.append(op)
    return out, pages


def unpage_ranked(results: list[Any], pages: dict[int, tuple[int, int]]) -> list[Any]:
    """The results of :func:`page_ranked`'s operations, each search cut to its page."""
    for i, (offset, limit) in pages.items():
        results[i] = list(results[i] or [])[offset : offset + limit]
    return results
