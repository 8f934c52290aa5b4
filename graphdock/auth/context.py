"""Who is asking: the authenticated user and permissions of one request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AuthContext:
    """The user (None without custom auth) and the permissions of a request."""

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
