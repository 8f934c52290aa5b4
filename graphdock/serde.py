"""JSON encoding of API objects and graph values.

Compact JSON (orjson). Graph values may hold LangChain messages, pydantic models,
dataclasses, langgraph types and exceptions; each is encoded the way Agent Server
clients expect (messages and models as their ``model_dump()``, exceptions as
``{"error": <class name>, "message": <text>}``).
"""

from __future__ import annotations

import base64
import dataclasses
import decimal
import enum
from collections import deque
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import orjson
import uuid_utils

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY

# Exception messages that are safe to show to API clients; others are masked.
_VISIBLE_ERRORS: tuple[str, ...] = (
    "ValueError",
    "TypeError",
    "KeyError",
    "AttributeError",
    "RuntimeError",
    "RecursionError",
    "TimeoutError",
    "InvalidUpdateError",
    "GraphRecursionError",
    "GraphInterrupt",
    "GraphBubbleUp",
    "EmptyInputError",
    "TaskNotFound",
    "HTTPException",
    "UserInterrupt",
    "UserRollback",
    "ValidationError",
    "NotImplementedError",
    "PermissionError",
)


def error_payload(exc: BaseException) -> dict[str, str]:
    """The wire form of an exception: its class name and, when safe to show, its message."""
    name = type(exc).__name__
    visible = any(
        cls.__name__ in _VISIBLE_ERRORS for cls in type(exc).__mro__
    )
    message = str(exc) if visible else "An internal error occurred"
    return {"error": name, "message": message}


def _interrupt(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"value": obj.value, "id": obj.id}
    schema = getattr(obj, "response_schema", None)
    if isinstance(schema, type):
        try:
            from pydantic import TypeAdapter

            schema = TypeAdapter(schema).json_schema()
        except Exception:  # a schema that cannot be described is reported as absent
            schema = None
    out["response_schema"] = schema
    return out


def _default(obj: Any) -> Any:
    from langgraph.types import Interrupt, Send, Command

    if isinstance(obj, Interrupt):
        return _interrupt(obj)
    if hasattr(obj, "model_dump") and callable(obj.model_dump):
        try:
            return obj.model_dump()
        except TypeError:
            return obj.model_dump(mode="json")
    if isinstance(obj, Send):
        return {"node": obj.node, "args": obj.arg}
    if isinstance(obj, Command):
        return {k: v for k, v in dataclasses.asdict(obj).items() if v not in (None, ())}
    if isinstance(obj, BaseException):
        return error_payload(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if hasattr(obj, "_asdict"):
        return obj._asdict()
    if hasattr(obj, "identity") and hasattr(obj, "permissions") and hasattr(obj, "is_authenticated"):
        # an auth user (e.g. langgraph_sdk's StudioUser)
        out = {
            "identity": obj.identity,
            "display_name": getattr(obj, "display_name", obj.identity),
            "is_authenticated": bool(obj.is_authenticated),
            "permissions": list(obj.permissions or []),
        }
        if getattr(obj, "kind", None):
            out["kind"] = obj.kind
        return out
    if isinstance(obj, (set, frozenset, deque)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode()
    if isinstance(obj, decimal.Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    if isinstance(obj, enum.Enum):
        return obj.value
    if hasattr(obj, "dict") and callable(obj.dict):
        try:
            return obj.dict()
        except Exception:
            pass
    if isinstance(obj, type):
        return obj.__name__
    return str(obj)


def dumps(obj: Any) -> bytes:
    """Encode ``obj`` as compact JSON bytes."""
    try:
        return orjson.dumps(obj, default=_default, option=_OPTIONS)
    except TypeError:
        # orjson refuses some edge values (e.g. integers over 64 bits, surrogates):
        # fall back to the standard library with the same conversions.
        import json

        return json.dumps(
            obj, default=_default, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8", "replace")


def dumps_str(obj: Any) -> str:
    return dumps(obj).decode()


def loads(data: bytes | str | None) -> Any:
    if data is None:
        return None
    return orjson.loads(data)


def to_jsonable(obj: Any) -> Any:
    """A plain-JSON copy of ``obj`` (dicts, lists, strings, numbers, null)."""
    return orjson.loads(dumps(obj))


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds")


def now_iso() -> str:
    return iso(now())


def uuid7() -> str:
    """A new time-ordered UUID (version 7), as its canonical string."""
    return str(uuid_utils.uuid7())


__all__ = [
    "dumps",
    "dumps_str",
    "loads",
    "to_jsonable",
    "error_payload",
    "now",
    "iso",
    "now_iso",
    "uuid7",
    "date",
    "time",
]
