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
from graphdock.bounds import ERROR_TYPE as UNSTORABLE
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
        elif not loc and isinstance(err.get("input"), (bytes, bytearray)):
            # a body that is not JSON (FastAPI decodes only application/json and +json)
            return "The request body must be JSON, sent with Content-Type: application/json"
        elif kind == UNSTORABLE:  # the message names the value's path within the body item
            lines.append(f"{where}: {err.get('msg')}" if loc else str(err.get("msg")))
        elif kind == "missing":
            lines.append(f"'{where}' is a required property")
        else:
            lines.append(f"'{where}': {err.get('msg', 'invalid value')}")
    return "\n".join(lines) or "Invalid request"


def _undecodable(cause: BaseException) -> str | None:
    """Why a request body could not be decoded as JSON, or None if that is not the cause."""
    if isinstance(cause, UnicodeDecodeError):
        return f"Invalid JSON in request body: not UTF-8 (byte {cause.start})"
    if isinstance(cause, RecursionError):
        return "Invalid JSON in request body: nested too deeply"
    if isinstance(cause, ValueError) and "digits" in str(cause):  # Python's int conversion limit
        return "Invalid JSON in request body: a number has too many digits"
    if isinstance(cause, ValueError):
        return f"Invalid JSON in request body: {cause}"
    return None


def error_response(exc: BaseException) -> Response | None:
    """The response for ``exc``, or None for an unexpected error (a 500, logged elsewhere)."""
    if isinstance(exc, APIError):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
    if isinstance(exc, RequestValidationError):
        return JSONResponse({"detail": describe_validation(exc)}, status_code=422)
    if isinstance(exc, StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "unknown error"
        if exc.status_code == 400 and exc.__cause__ is not None:  # the body could not be decoded
            detail = _undecodable(exc.__cause__) or detail
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)
    if isinstance(exc, ValueError):
        return JSONResponse({"detail": str(exc)}, status_code=400)
    return None
