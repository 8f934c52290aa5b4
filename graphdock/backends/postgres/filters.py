"""graphdock's filter languages as SQL conditions on ``json`` columns.

Each function returns ``(condition, params)``: a boolean SQL expression (safe to
combine with ``AND`` / ``OR`` as it is) with ``%s`` placeholders and its parameters (keys, paths and values are always parameters; only
column expressions chosen by the caller appear in the SQL text). The column is cast to
``jsonb`` where it is queried into; the semantics are exactly those of
:func:`graphdock.filters.contains` and :func:`graphdock.filters.auth_match` (which the
SQLite adapter evaluates in Python), not PostgreSQL's ``@>``:

- containment: a dict pattern requires an object with each key, recursively; any other
  pattern value (list, string, number, null) compares by equality — ``[1]`` does not
  match ``[1, 2]``;
- authorization: ``{"k": v}`` / ``{"k": {"$eq": v}}`` the key present and equal,
  ``{"k": {"$contains": x}}`` the value a list holding ``x`` (or every element of a
  list ``x``, each by equality), ``$or`` / ``$and`` over sub-filters, keys ANDed.

JSON equality is ``jsonb`` equality: numbers compare by value (``1`` equals ``1.0``, as
in Python), objects regardless of key order.
"""

from __future__ import annotations

from typing import Any

from graphdock import serde

Condition = tuple[str, list[Any]]


def _and(parts: list[Condition]) -> Condition:
    if not parts:
        return "TRUE", []
    if len(parts) == 1:
        return parts[0]
    sql = " AND ".join(f"({p[0]})" for p in parts)
    return f"({sql})", [v for p in parts for v in p[1]]


def _or(parts: list[Condition]) -> Condition:
    if not parts:
        return "FALSE", []
    sql = " OR ".join(f"({p[0]})" for p in parts)
    return f"({sql})", [v for p in parts for v in p[1]]


def contains(column: str, pattern: Any) -> Condition:
    """``column`` (a ``json`` column expression) contains ``pattern``; a NULL column
    never does."""
    doc = f"({column})::jsonb"
    parts: list[Condition] = []

    def walk(path: list[str], value: Any) -> None:
        if isinstance(value, dict):
            parts.append((f"jsonb_typeof({doc} #> %s::text[]) = 'object'", [path]))
            for key, sub in value.items():
                walk([*path, str(key)], sub)
        else:
            parts.append((f"({doc} #> %s::text[]) = %s::jsonb", [path, serde.dumps_str(value)]))

    walk([], pattern)
    return _and(parts)


def auth(column: str, flt: Any) -> Condition:
    """The row's ``column`` (its metadata, a ``json`` column expression) passes the
    authorization filter ``flt`` (empty or None: every row does)."""
    if not flt:
        return "TRUE", []
    doc = f"({column})::jsonb"
    parts: list[Condition] = []
    for key, cond in flt.items():
        if key == "$or":
            parts.append(_or([auth(column, sub) for sub in cond]))
        elif key == "$and":
            parts.append(_and([auth(column, sub) for sub in cond]))
        elif isinstance(cond, dict) and len(cond) == 1 and next(iter(cond)) in ("$eq", "$contains"):
            op, expected = next(iter(cond.items()))
            if op == "$eq":
                parts.append(_equals(doc, key, expected))
            else:
                parts.append(_list_contains(doc, key, expected))
        else:
            parts.append(_equals(doc, key, cond))
    return _and(parts)


def _equals(doc: str, key: str, expected: Any) -> Condition:
    return f"({doc} -> %s::text) = %s::jsonb", [key, serde.dumps_str(expected)]


def _list_contains(doc: str, key: str, expected: Any) -> Condition:
    # CASE: the elements are only read once the value is known to be an array
    items = expected if isinstance(expected, list) else [expected]
    each = _and(
        [
            (
                f"EXISTS (SELECT 1 FROM jsonb_array_elements({doc} -> %s::text) AS e(v)"
                " WHERE e.v = %s::jsonb)",
                [key, serde.dumps_str(item)],
            )
            for item in items
        ]
    )
    return (
        f"CASE WHEN jsonb_typeof({doc} -> %s::text) = 'array' THEN {each[0]} ELSE FALSE END",
        [key, *each[1]],
    )
