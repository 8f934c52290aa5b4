"""Test auth for the in-process client: ``Bearer <identity>`` for alice and bob; every
resource is stamped with and filtered on ``metadata.owner``."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()

USERS = {"alice": ["read", "write"], "bob": ["read"]}


@auth.authenticate
async def authenticate(authorization: str | None) -> Any:
    token = (authorization or "").removeprefix("Bearer ")
    if token not in USERS:
        raise Auth.exceptions.HTTPException(status_code=401, detail="unknown token")
    return {"identity": token, "permissions": USERS[token]}


@auth.on
async def owner(ctx: Auth.types.AuthContext, value: Any) -> Any:
    filters = {"owner": ctx.user.identity}
    if isinstance(value, dict):
        metadata = value.setdefault("metadata", {})
        if isinstance(metadata, dict):
            metadata.update(filters)
    return filters
