"""Auth of the semantic store tests: ``Bearer <identity>`` is that user (others: 401).

The store handler puts every item under a namespace that starts with the caller's
identity and marks a put's value ``"visible": true`` unless it says otherwise; a search
only sees visible items (the handler's filter, ANDed with the request's).
"""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer "):
        raise Auth.exceptions.HTTPException(status_code=401, detail="missing token")
    return authorization.removeprefix("Bearer ")


@auth.on.store
async def own_namespace(ctx: Auth.types.AuthContext, value: Any) -> Any:
    value["namespace"] = (ctx.user.identity, *tuple(value.get("namespace") or ()))
    if ctx.action == "put" and value.get("value") is not None:
        value["value"].setdefault("visible", True)
    if ctx.action == "search":
        return {"visible": True}
    return None
