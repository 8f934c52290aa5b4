"""Helpers shared by the routers: JSON responses, pagination, services lookup."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterable

from fastapi import Request
from starlette.responses import Response

from graphdock import serde
from graphdock.errors import Unprocessable

if TYPE_CHECKING:
    from graphdock.server import Server


class JSONResponse(Response):
    """Compact JSON encoded with graphdock's encoder."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return serde.dumps(content)


def server(request: Request) -> "Server":
    return request.app.state.server


def paginated(rows: list[dict[str, Any]], *, offset: int, limit: int, has_more: bool) -> JSONResponse:
    headers = {}
    if has_more:
        headers["X-Pagination-Next"] = str(offset + limit)
        headers["X-Pagination-Total"] = str(offset + limit + 1)
    else:
        headers["X-Pagination-Total"] = str(offset + len(rows))
    return JSONResponse(rows, headers=headers)


def select_fields(rows: list[dict[str, Any]], select: Iterable[str] | None) -> list[dict[str, Any]]:
    if not select:
        return rows
    keep = list(select)
    return [{k: r.get(k) for k in keep} for r in rows]


def query_list(values: Iterable[str] | None, name: str) -> list[str]:
    """The items of a repeatable query parameter ``name``, empty values dropped.

    The JS SDK sends a list as one JSON-encoded value (``select=["run_id","status"]``)
    where the Python SDK repeats the parameter; a value that starts with ``[`` is read as
    a JSON array of strings (422 if it is not one).
    """
    items: list[str] = []
    for value in values or ():
        value = value.strip()
        if value.startswith("["):
            try:
                decoded = json.loads(value)
            except ValueError:
                decoded = None
            if not isinstance(decoded, list) or not all(isinstance(v, str) for v in decoded):
                raise Unprocessable(f"Invalid {name}: {value}")
            items.extend(v.strip() for v in decoded if v.strip())
        elif value:
            items.append(value)
    return items


def last_event_id(value: str | None) -> str | None:
    """A ``Last-Event-ID`` header with the JS SDK's ``-1`` ("from the start", what
    ``useStream``'s ``joinStream`` sends by default) read as ``0``, which replays everything."""
    if value is not None and value.strip() == "-1":
        return "0"
    return value


def parse_bool(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.strip().lower() in ("true", "1", "yes")


NO_CONTENT = Response(status_code=204)
