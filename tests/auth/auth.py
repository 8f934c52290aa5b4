"""Test auth: bearer tokens name the user; every resource is owned by its creator.

Tokens: ``Bearer <identity>`` for identities listed in USERS; ``Bearer bad`` → 403;
no or other tokens → 401; ``Bearer crash`` → an unexpected exception (500).
Authorization: one global owner handler stamps ``metadata.owner`` on what is created
and returns the ``{"owner": identity}`` filter; the store handler puts every item
under a namespace that starts with the caller's identity.
"""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()

USERS = {
    "alice": {"identity": "alice", "display_name": "Alice", "permissions": ["read", "write"], "team": "red"},
    "bob": {"identity": "bob", "display_name": "Bob", "permissions": ["read"], "team": "blue"},
}


@auth.authenticate
async def authenticate(authorization: str | None, headers: dict, path: str, method: str) -> Any:
    assert isinstance(headers, dict) and all(isinstance(k, bytes) for k in headers)
    if not authorization or not authorization.startswith("Bearer "):
        raise Auth.exceptions.HTTPException(status_code=401, detail="missing token")
    token = authorization.removeprefix("Bearer ")
    if token == "bad":
        raise Auth.exceptions.HTTPException(status_code=403, detail="bad token")
    if token == "crash":
        raise RuntimeError("secret internals")
    if token not in USERS:
        raise Auth.exceptions.HTTPException(status_code=401, detail="unknown token")
    return USERS[token]


@auth.on
async def owner(ctx: Auth.types.AuthContext, value: Any) -> Any:
    filters = {"owner": ctx.user.identity}
    if isinstance(value, dict):
        metadata = value.setdefault("metadata", {})
        if isinstance(metadata, dict):
            metadata.update(filters)
    return filters


@auth.on.store
async def store_scope(ctx: Auth.types.AuthContext, value: Any) -> None:
    namespace = tuple(value.get("namespace") or ())
    value["namespace"] = (ctx.user.identity, *namespace)
