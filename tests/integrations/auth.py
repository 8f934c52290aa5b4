"""Auth for the MCP and A2A tests: ``Bearer <name>`` is user <name> (any name but "bad");
everything is owned by its creator (a ``metadata.owner`` stamp and an owner filter)."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> dict[str, Any]:
    if not authorization or not authorization.startswith("Bearer ") or authorization == "Bearer bad":
        raise Auth.exceptions.HTTPException(status_code=401, detail="missing or bad token")
    name = authorization.removeprefix("Bearer ")
    return {"identity": name, "permissions": ["read", "write"]}


@auth.on
async def owner(ctx: Auth.types.AuthContext, value: Any) -> Any:
    filters = {"owner": ctx.user.identity}
    if isinstance(value, dict):
        metadata = value.setdefault("metadata", {})
        if isinstance(metadata, dict):
            metadata.update(filters)
    return filters
