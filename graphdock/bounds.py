"""Bounds on the values a request may carry.

Every value a request gives reaches storage (SQLite or PostgreSQL), a JSON encoder or
a clock intact, or the request is a 422 that names it. The same bounds hold on every
backend, so a request behaves the same wherever it is served:

- integers that storage keeps in a column (offsets, versions, depths) are 32-bit;
- numbers anywhere in a JSON value are finite and integers fit in 64 bits (the JSON
  encoder and PostgreSQL's ``jsonb`` refuse anything else);
- strings and object keys carry no NUL character (PostgreSQL's ``text`` and ``jsonb``
  cannot hold one) and no lone surrogate (it has no UTF-8 encoding);
- JSON values nest at most :data:`MAX_JSON_DEPTH` levels (deeper values cannot be
  encoded once the server wraps them in its own objects);
- durations keep the dates computed from them within the calendar.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic_core import PydanticCustomError

MAX_INT32 = 2**31 - 1
MIN_INT64, MAX_INT64 = -(2**63), 2**63 - 1
#: the largest offset of a paginated search
MAX_OFFSET = MAX_INT32
#: how deep a JSON value in a request may nest (objects and arrays)
MAX_JSON_DEPTH = 100
#: the longest time to live, in minutes (100 years)
MAX_TTL_MINUTES = 100 * 365 * 24 * 60
#: the shortest time to live of a store item, in minutes (60 ms), when it is not 0
MIN_TTL_MINUTES = 0.001
#: the longest delay, in seconds (100 years)
MAX_DELAY_SECONDS = MAX_TTL_MINUTES * 60

#: the pydantic error type of :func:`check_json`; its message names the value's path
ERROR_TYPE = "request_value"


def json_problem(value: Any, where: str = "") -> str | None:
    """What makes ``value`` (a decoded JSON value) unstorable, naming the path of the
    offending part (``metadata.tags[2]``), or None when it is fine."""
    # entries: (value, parent entry, key or index, depth); paths are spelled out only
    # for the value that is reported, so a large request costs no string formatting
    stack: list[tuple[Any, Any, Any, int]] = [(value, None, None, 0)]
    while stack:
        entry = stack.pop()
        item, depth = entry[0], entry[3]
        if isinstance(item, str):
            if "\x00" in item:
                return f"{_path(entry, where)}: NUL characters are not allowed"
            if not _encodable(item):
                return f"{_path(entry, where)}: text contains a lone surrogate, which is not Unicode text"
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not MIN_INT64 <= item <= MAX_INT64:
                return f"{_path(entry, where)}: integers must fit in 64 bits"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{_path(entry, where)}: NaN and Infinity are not JSON numbers"
        elif isinstance(item, dict):
            if depth >= MAX_JSON_DEPTH:
                return _too_deep(_path(entry, where))
            for key, child in item.items():
                if isinstance(key, str) and "\x00" in key:
                    return f"{_path(entry, where)}: NUL characters are not allowed (in a key)"
                if isinstance(key, str) and not _encodable(key):
                    return f"{_path(entry, where)}: a key contains a lone surrogate, which is not Unicode text"
                stack.append((child, entry, str(key), depth + 1))
        elif isinstance(item, (list, tuple)):
            if depth >= MAX_JSON_DEPTH:
                return _too_deep(_path(entry, where))
            stack.extend((child, entry, i, depth + 1) for i, child in enumerate(item))
    return None


#: a NUL or lone surrogate escape in a JSON text
_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
#: every digit to ``0``, every other byte to a space: a run of 19 ``0`` is an integer of 19
#: digits or more (orjson decodes integers up to 2**64 - 1)
_DIGITS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_LONG_INT = b"0" * 19

#: the validation context that says a body's values were judged storable from its bytes
RAW_CHECKED = {"storable": True}


def raw_json_storable(text: bytes) -> bool:
    """Whether a JSON text that orjson decoded is storable, judged from its bytes (True:
    :func:`json_problem` would find nothing in the decoded value; False: it has to look).
    orjson itself refuses raw control characters, NaN, Infinity and numbers out of a
    double's range; what it accepts that :func:`json_problem` does not shows in the text
    as a ``\\u0000`` or ``\\udXXX`` escape, a run of 19 digits, or (nesting) as brackets.
    A few scans of the bytes in C: a third of walking the decoded value."""
    return (
        text.count(b"[") + text.count(b"{") < MAX_JSON_DEPTH
        and _LONG_INT not in text.translate(_DIGITS)
        and (b"\\u" not in text or _ESCAPE.search(text) is None)
    )


def _path(entry: tuple[Any, Any, Any, int], where: str) -> str:
    parts: list[str] = []
    while entry[1] is not None:
        key = entry[2]
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
        entry = entry[1]
    text = where + "".join(reversed(parts))
    return text.lstrip(".") or "body"


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON can write one as \\udXXX)
        return False
    return True


def _too_deep(path: str) -> str:
    # named by the outermost field: the full path would be a hundred levels long
    field = path.split(".", 1)[0].split("[", 1)[0] or "body"
    return f"{field}: nested deeper than {MAX_JSON_DEPTH} levels"


def check_json(value: Any, where: str = "") -> Any:
    """``value`` unchanged, or a pydantic error naming what makes it unstorable (for
    validators; see :func:`json_problem`)."""
    problem = json_problem(value, where)
    if problem is not None:
        raise PydanticCustomError(ERROR_TYPE, "{problem}", {"problem": problem})
    return value


def text_problem(value: str | None, where: str) -> str | None:
    """What makes a query or path parameter unstorable (a NUL character), or None."""
    if value is not None and "\x00" in value:
        return f"{where}: NUL characters are not allowed"
    if value is not None and not _encodable(value):
        return f"{where}: text contains a lone surrogate, which is not Unicode text"
    return None
