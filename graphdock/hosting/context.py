"""Run context: filtering to the graph's context schema, validating and typing it.

The seeds document ``ServerRuntime.execution_runtime.context`` as typed by the
graph's ``context_schema``: a dataclass or pydantic schema yields an instance, a
TypedDict (or no schema) a dict. Keys the schema does not declare are dropped.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any

from graphdock.errors import Unprocessable


def _per_schema(fn: Any) -> Any:
    """Compute ``fn(schema)`` once per schema (a class), not once per request."""
    cached = functools.lru_cache(maxsize=256)(fn)

    @functools.wraps(fn)
    def wrapper(schema: Any) -> Any:
        try:
            return cached(schema)
        except TypeError:  # an unhashable schema object
            return fn(schema)

    return wrapper


@_per_schema
def schema_fields(schema: Any) -> frozenset[str] | None:
    """The field names a context schema declares; None when they cannot be known."""
    if schema is None:
        return None
    if dataclasses.is_dataclass(schema):
        return frozenset(f.name for f in dataclasses.fields(schema))
    model_fields = getattr(schema, "model_fields", None)
    if isinstance(model_fields, dict):
        return frozenset(model_fields)
    if typing.is_typeddict(schema):
        return frozenset(typing.get_type_hints(schema))
    return None


def filter_to_schema(schema: Any, context: dict[str, Any] | None) -> dict[str, Any] | None:
    fields = schema_fields(schema)
    if context is None or fields is None:
        return context
    return {k: v for k, v in context.items() if k in fields}


@_per_schema
def _adapter(schema: Any) -> Any:
    """The schema's pydantic validator (building one compiles the schema: done once)."""
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(schema)
    except Exception:  # e.g. typing.TypedDict on Python < 3.12: no type validation
        return None


def validate_context(schema: Any, context: dict[str, Any] | None) -> None:
    """Raise 422 naming the field when ``context`` does not fit ``schema``."""
    if schema is None or context is None:
        return
    filtered = filter_to_schema(schema, context) or {}
    adapter = _adapter(schema)
    if adapter is None:
        return
    from pydantic import ValidationError

    try:
        adapter.validate_python(filtered)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ())) or "context"
            problems.append(f"context.{where}: {err.get('msg', 'invalid')}")
        raise Unprocessable(
            f"Invalid context for {getattr(schema, '__name__', 'the context schema')}: " + "; ".join(problems)
        ) from None


def typed_context(schema: Any, context: dict[str, Any] | None) -> Any:
    """The context as the schema's type (dataclass / pydantic instance), else the dict."""
    if context is None:
        return None
    if schema is None:
        return dict(context)
    filtered = filter_to_schema(schema, context) or {}
    if dataclasses.is_dataclass(schema) or hasattr(schema, "model_validate"):
        adapter = _adapter(schema)
        if adapter is not None:
            try:
                return adapter.validate_python(filtered)
            except Exception:
                pass
        try:
            return schema(**filtered)
        except Exception:
            return filtered
    return filtered
