"""Turning a request into a user, and authorizing actions on resources.

Every API route depends on :func:`request_auth`. Without a custom ``auth.path``
in the configuration there is no user (``None``) and every action is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection


@dataclass(frozen=True)
class AuthContext:
    """Who is asking: the authenticated user (None without custom auth) and permissions."""

    user: Any = None
    permissions: list[str] = field(default_factory=list)

    @property
    def identity(self) -> str:
        if self.user is None:
            return ""
        identity = getattr(self.user, "identity", None)
        if identity is None and isinstance(self.user, dict):
            identity = self.user.get("identity")
        return str(identity or "")


ANONYMOUS = AuthContext()


async def request_auth(conn: HTTPConnection) -> AuthContext:
    """The auth context of a request (dependency of every API route)."""
    return getattr(conn.state, "auth", ANONYMOUS)
