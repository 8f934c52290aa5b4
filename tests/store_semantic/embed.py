"""A deterministic bag-of-words embedding for the semantic store tests (no model, no network).

Each word of ``VOCABULARY`` has a dimension of its own, so the tests' similarities are
exact cosines of word counts (e.g. "apple pie" vs "apple apple pie" = 3 / sqrt(10));
any other word falls into one of the remaining dimensions by a stable hash.
"""

from __future__ import annotations

import hashlib
import re

DIMS = 32
VOCABULARY = [
    "apple", "banana", "cherry", "pie", "red", "blue", "green", "truck", "boat", "car",
    "bike", "train", "river", "mountain", "sea", "fruit",
]
_INDEX = {word: i for i, word in enumerate(VOCABULARY)}


def _vector(text: str) -> list[float]:
    vector = [0.0] * DIMS
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        at = _INDEX.get(word)
        if at is None:
            digest = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big")
            at = len(VOCABULARY) + digest % (DIMS - len(VOCABULARY))
        vector[at] += 1.0
    return vector


def embed(texts: list[str]) -> list[list[float]]:
    """``list[str] -> list[list[float]]``, synchronous."""
    return [_vector(t) for t in texts]


async def aembed(texts: list[str]) -> list[list[float]]:
    """The same, as an async function."""
    return embed(texts)


def wrong_dims(texts: list[str]) -> list[list[float]]:
    """Vectors one number short of ``DIMS``: the server must refuse them."""
    return [_vector(t)[:-1] for t in texts]
