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


def _contains_value(actual: Any, expected: Any) -> bool:
    if not isinstance(actual, list):
        return False
    if isinstance(expected, list):
        return all(item in actual for item in expected)
    return expected in actual


def auth_match(metadata: Any, flt: Any) -> bool:
    """True when ``metadata`` satisfies an authorization filter.

    The filter language: ``{"k": v}`` or ``{"k": {"$eq": v}}`` (equality),
    ``{"k": {"$contains": x}}`` (the value is a list containing ``x``, or every element
    of a list ``x``), ``{"$or": [f, ...]}`` and ``{"$and": [f, ...]}``; keys are ANDed.
    """
    if not flt:
        return True
    if not isinstance(metadata, dict):
        metadata = {}
    for key, cond in flt.items():
        if key == "$or":
            if not any(auth_match(metadata, sub) for sub in cond):
                return False
        elif key == "$and":
            if not all(auth_match(metadata, sub) for sub in cond):
                return False
        elif isinstance(cond, dict) and len(cond) == 1 and next(iter(cond)) in ("$eq", "$contains"):
            op, expected = next(iter(cond.items()))
            if op == "$eq":
                if metadata.get(key, _MISSING) != expected:
                    return False
            elif not _contains_value(metadata.get(key), expected):
                return False
        elif metadata.get(key, _MISSING) != cond:
            return False
    return True


_MISSING = object()


def validate_auth_filter(flt: Any, depth: int = 0) -> None:
    """Raise ValueError when ``flt`` is not a valid authorization filter."""
    if not isinstance(flt, dict):
        raise ValueError(f"an authorization filter must be a dict, got {type(flt).__name__}")
    for key, cond in flt.items():
        if key in ("$or", "$and"):
            if depth >= 2:
                raise ValueError(f"{key} filters may nest at most two levels")
            if not isinstance(cond, list) or len(cond) < 2:
                raise ValueError(f"{key} needs a list of at least two filters")
            for sub in cond:
                validate_auth_filter(sub, depth + 1)
        elif key.startswith("$"):
            raise ValueError(f"unknown filter operator {key}")
        elif isinstance(cond, dict) and any(str(k).startswith("$") for k in cond):
            if len(cond) != 1 or next(iter(cond)) not in ("$eq", "$contains"):
                raise ValueError(f"filter on '{key}': only $eq and $contains are supported")


def json_auth_match(doc_text: str | bytes | None, filter_text: str | bytes) -> int:
    """SQL function form of :func:`auth_match` over JSON text."""
    doc = orjson.loads(doc_text) if doc_text is not None else {}
    return int(auth_match(doc, orjson.loads(filter_text)))
