"""Matching JSON documents against containment filters (PostgreSQL ``@>`` semantics)."""

from __future__ import annotations

from typing import Any

import orjson


def contains(doc: Any, pattern: Any) -> bool:
    """True when ``doc`` contains ``pattern``: every key of a dict pattern exists in ``doc``
    and matches recursively; other values compare by equality."""
    if isinstance(pattern, dict):
        if not isinstance(doc, dict):
            return False
        return all(k in doc and contains(doc[k], v) for k, v in pattern.items())
    return doc == pattern


def json_contains(doc_text: str | bytes | None, pattern_text: str | bytes) -> int:
    """SQL function form of :func:`contains` over JSON text; NULL documents never match."""
    if doc_text is None:
        return 0
    return int(contains(orjson.loads(doc_text), orjson.loads(pattern_text)))
