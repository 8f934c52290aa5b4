"""The authenticated user: what ``authenticate`` returned, normalised."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

from graphdock.errors import APIError


class AuthenticatedUser:
    """A ``langgraph_sdk.auth.types.BaseUser``: attribute and item access, extra keys kept."""

    __slots__ = ("_identity", "_display_name", "_is_authenticated", "_permissions", "_extra")

    def __init__(
        self,
        identity: str,
        *,
        display_name: str | None = None,
        is_authenticated: bool = True,
        permissions: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self._identity = str(identity)
        self._display_name = display_name if display_name is not None else str(identity)
        self._is_authenticated = bool(is_authenticated)
        self._permissions = list(permissions)
        self._extra = dict(extra or {})

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def display_name(self) -> str:
        return self._display_name

    @property
    def is_authenticated(self) -> bool:
        return self._is_authenticated

    @property
    def permissions(self) -> Sequence[str]:
        return self._permissions

    def _asdict(self) -> dict[str, Any]:
        return {
            **self._extra,
            "identity": self._identity,
            "display_name": self._display_name,
            "is_authenticated": self._is_authenticated,
            "permissions": list(self._permissions),
        }

    def __getattr__(self, name: str) -> Any:
        try:
            return self._extra[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> Any:
        return self._asdict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._asdict()

    def __iter__(self) -> Iterator[str]:
        return iter(self._asdict())

    def get(self, key: str, default: Any = None) -> Any:
        return self._asdict().get(key, default)

    def keys(self) -> Any:
        return self._asdict().keys()

    def items(self) -> Any:
        return self._asdict().items()

    def values(self) -> Any:
        return self._asdict().values()

    def __len__(self) -> int:
        return len(self._asdict())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AuthenticatedUser) and self._asdict() == other._asdict()

    def __repr__(self) -> str:
        return f"AuthenticatedUser(identity={self._identity!r})"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AuthenticatedUser":
        extra = {k: v for k, v in data.items() if k not in ("identity", "display_name", "is_authenticated", "permissions")}
        return cls(
            data["identity"],
            display_name=data.get("display_name"),
            is_authenticated=data.get("is_authenticated", True),
            permissions=data.get("permissions") or (),
            extra=extra,
        )


def normalise_user(result: Any) -> tuple[AuthenticatedUser, list[str]]:
    """``authenticate``'s return value as (user, permissions).

    Accepted: a string identity; a mapping with ``identity``; an object with an
    ``identity`` attribute; a ``(permissions, user)`` pair.
    """
    permissions: list[str] | None = None
    if isinstance(result, tuple) and len(result) == 2:
        perms, result = result
        permissions = list(perms or [])
    if isinstance(result, str):
        user = AuthenticatedUser(result, permissions=permissions or [])
    elif isinstance(result, Mapping):
        if "identity" not in result:
            raise APIError("authenticate returned a mapping without 'identity'", 500)
        data = dict(result)
        if permissions is not None:
            data["permissions"] = permissions
        user = AuthenticatedUser.from_dict(data)
    elif hasattr(result, "identity"):
        perms = permissions if permissions is not None else list(getattr(result, "permissions", []) or [])
        extra: dict[str, Any] = {}
        if hasattr(result, "__dict__"):
            extra = {k: v for k, v in vars(result).items() if not k.startswith("_")}
        display = getattr(result, "display_name", None)
        is_auth = getattr(result, "is_authenticated", True)
        user = AuthenticatedUser(
            result.identity,
            display_name=display if isinstance(display, str) else None,
            is_authenticated=is_auth if isinstance(is_auth, bool) else True,
            permissions=perms,
            extra={k: v for k, v in extra.items() if k not in ("identity", "display_name", "is_authenticated", "permissions")},
        )
    else:
        raise APIError(f"authenticate returned an unsupported value of type {type(result).__name__}", 500)
    return user, list(user.permissions)
