"""The vector distance functions langgraph's SQLite store searches with.

langgraph's ``SqliteStore`` keeps each embedding as a float32 blob (``store_vectors``)
and ranks by the SQL functions ``vec_distance_cosine``, ``vec_distance_L2`` and
``vec_distance_L1`` of the sqlite-vec extension. :func:`enable_vectors` loads sqlite-vec
on a connection when the Python build can load SQLite extensions; builds that cannot
(``sqlite3.Connection`` without ``enable_load_extension``, e.g. pyenv's default builds)
get the same three functions defined in Python, with sqlite-vec's results (cosine
distance ``NULL`` for a zero vector, an error for vectors of different lengths).
"""

from __future__ import annotations

import logging
import math
import sqlite3
from array import array
from functools import lru_cache
from typing import Literal

logger = logging.getLogger("graphdock.sqlite")

Provider = Literal["sqlite-vec", "python"]


def can_load_extensions() -> bool:
    """Whether this Python's sqlite3 can load SQLite extensions."""
    return hasattr(sqlite3.Connection, "enable_load_extension")


def enable_vectors(conn: sqlite3.Connection) -> Provider:
    """Make the vector distance functions available on ``conn``; which implementation."""
    if can_load_extensions():
        try:
            import sqlite_vec  # type: ignore[import-untyped]

            conn.enable_load_extension(True)
            try:
                sqlite_vec.load(conn)
            finally:
                conn.enable_load_extension(False)
            return "sqlite-vec"
        except (ImportError, sqlite3.Error, AttributeError) as exc:
            logger.warning("sqlite-vec could not be loaded (%s); vector distances are computed in Python", exc)
    conn.create_function("vec_distance_cosine", 2, _cosine, deterministic=True)
    conn.create_function("vec_distance_L2", 2, _l2, deterministic=True)
    conn.create_function("vec_distance_L1", 2, _l1, deterministic=True)
    return "python"


def _vector(blob: bytes) -> tuple[array, float]:
    """A float32 blob as numbers, with its Euclidean norm."""
    if not isinstance(blob, (bytes, memoryview)):
        raise ValueError("expected a float32 vector blob")
    values = array("f")
    values.frombytes(blob)
    return values, math.sqrt(math.fsum(x * x for x in values))


# a search compares one query blob (the second argument) with every row: decoded once
_query_vector = lru_cache(maxsize=16)(_vector)


def _pair(a: bytes, b: bytes) -> tuple[tuple[array, float], tuple[array, float]]:
    va, vb = _vector(a), _query_vector(bytes(b))
    if len(va[0]) != len(vb[0]):
        raise ValueError(
            f"Vector dimension mismatch: first vector has {len(va[0])} dimensions, the second {len(vb[0])}"
        )
    return va, vb


def _cosine(a: bytes | None, b: bytes | None) -> float | None:
    if a is None or b is None:
        return None
    (xs, nx), (ys, ny) = _pair(a, b)
    if nx == 0.0 or ny == 0.0:
        return None
    return 1.0 - math.fsum(x * y for x, y in zip(xs, ys)) / (nx * ny)


def _l2(a: bytes | None, b: bytes | None) -> float | None:
    if a is None or b is None:
        return None
    (xs, _), (ys, _) = _pair(a, b)
    return math.dist(xs, ys)


def _l1(a: bytes | None, b: bytes | None) -> float | None:
    if a is None or b is None:
        return None
    (xs, _), (ys, _) = _pair(a, b)
    return math.fsum(abs(x - y) for x, y in zip(xs, ys))
