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


class _Principal:
    """An object with an identity (and permissions), as some auth libraries return."""

    def __init__(self, identity: str, permissions: list[str]) -> None:
        self.identity = identity
        self.permissions = permissions
        self.tier = "gold"


@auth.authenticate
async def authenticate(
    authorization: str | None,
    headers: dict,
    path: str,
    method: str,
    request: Any,
    query_params: Any,
    path_params: dict,
    scopes: list,
) -> Any:
    assert isinstance(headers, dict) and all(isinstance(k, bytes) for k in headers)
    if not authorization or not authorization.startswith("Bearer "):
        raise Auth.exceptions.HTTPException(status_code=401, detail="missing token")
    token = authorization.removeprefix("Bearer ")
    # the other return forms
    if token == "str-carol":
        return "carol"
    if token == "obj-dave":
        return _Principal("dave", ["obj-perm"])
    if token == "tuple-erin":
        return (["tuple-perm"], {"identity": "erin", "display_name": "Erin"})
    if token == "inspect":
        return {
            "identity": "inspector",
            "seen_path": path,
            "seen_method": method,
            "seen_query": dict(query_params),
            "seen_header": headers.get(b"x-probe", b"").decode(),
            "has_request": request is not None and hasattr(request, "url"),
            "scopes": list(scopes),
        }
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


@auth.on.assistants.delete
async def assistants_delete(ctx: Auth.types.AuthContext, value: Any) -> Any:
    """Owner-only deletes; for bob the handler fails, which must deny (fail closed)."""
    if ctx.user.identity == "bob":
        raise RuntimeError("handler blew up")
    return {"owner": ctx.user.identity}


@auth.on.store
async def store_scope(ctx: Auth.types.AuthContext, value: Any) -> None:
    namespace = tuple(value.get("namespace") or ())
    value["namespace"] = (ctx.user.identity, *namespace)


@auth.on.crons.create
async def crons_create(ctx: Auth.types.AuthContext, value: Any) -> Any:
    """Crons are owned like everything else, and record the schedule they were made with;
    erin may not create any (403)."""
    if ctx.user.identity == "erin":
        raise Auth.exceptions.HTTPException(status_code=403, detail="erin may not schedule")
    metadata = value.setdefault("metadata", {})
    metadata.update({"owner": ctx.user.identity, "seen_schedule": value.get("schedule")})
    return {"owner": ctx.user.identity}
