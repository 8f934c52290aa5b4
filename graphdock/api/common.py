"""Helpers shared by the routers: JSON responses, pagination, services lookup."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from fastapi import Request
from starlette.responses import Response

from graphdock import serde

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


def parse_bool(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.strip().lower() in ("true", "1", "yes")


NO_CONTENT = Response(status_code=204)
