"""How an exception raised while answering a request becomes an error response.

The app's exception handlers and the run fast path (:mod:`graphdock.api.fastpath`) both
answer through :func:`error_response`, so an error reads the same whichever way the
request went.
"""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from graphdock.api.common import JSONResponse
from graphdock.errors import APIError


def describe_validation(exc: RequestValidationError) -> str:
    """A request validation error as one message naming each offending field."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        where = ".".join(loc) or "body"
        kind = err.get("type", "")
        if kind == "extra_forbidden":
            lines.append(f"Unknown field '{where}': not accepted by this endpoint")
        elif kind == "json_invalid":
            return "Invalid JSON in request body"
        elif kind == "missing":
            lines.append(f"'{where}' is a required property")
        else:
            lines.append(f"'{where}': {err.get('msg', 'invalid value')}")
    return "\n".join(lines) or "Invalid request"


def error_response(exc: BaseException) -> Response | None:
    """The response for ``exc``, or None for an unexpected error (a 500, logged elsewhere)."""
    if isinstance(exc, APIError):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
    if isinstance(exc, RequestValidationError):
        return JSONResponse({"detail": describe_validation(exc)}, status_code=422)
    if isinstance(exc, StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "unknown error"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)
    if isinstance(exc, ValueError):
        return JSONResponse({"detail": str(exc)}, status_code=400)
    return None
