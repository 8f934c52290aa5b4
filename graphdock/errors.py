"""Errors that services raise and the API layer maps to HTTP responses."""

from __future__ import annotations


class APIError(Exception):
    """An error with an HTTP status and a client-facing message."""

    status_code: int = 400

    def __init__(self, detail: str, status_code: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code


class BadRequest(APIError):
    status_code = 400


class Forbidden(APIError):
    status_code = 403


class NotFound(APIError):
    status_code = 404


class Conflict(APIError):
    status_code = 409


class Unprocessable(APIError):
    status_code = 422


class FailedDependency(APIError):
    status_code = 424
