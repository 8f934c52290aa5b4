"""Test auth: ``Bearer <identity>`` for the users below; anything else is a 401."""

from __future__ import annotations

from langgraph_sdk import Auth

auth = Auth()

USERS = {
    "alice": {"identity": "alice", "permissions": ["custom:read"], "team": "red"},
    "bob": {"identity": "bob", "permissions": [], "team": "blue"},
}


@auth.authenticate
async def authenticate(authorization: str | None) -> dict:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or token not in USERS:
        raise Auth.exceptions.HTTPException(status_code=401, detail="missing or unknown token")
    return USERS[token]
