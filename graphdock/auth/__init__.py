"""Turning a request into a user, and authorizing actions on resources.

Every API route depends on :func:`request_auth`, which authenticates the request
once with the server's :class:`graphdock.auth.handlers.Authorizer`. Without a custom
``auth.path`` in the configuration there is no user (``None``) and every action is
allowed.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from graphdock.auth.context import ANONYMOUS, AuthContext
from graphdock.hosting import loopback


async def request_auth(conn: HTTPConnection) -> AuthContext:
    """The auth context of a request (a dependency of every API route)."""
    cached = getattr(conn.state, "auth", None)
    if cached is not None:
        return cached
    server = getattr(conn.app.state, "server", None)
    if server is None:
        ctx = ANONYMOUS
    else:
        # a request of the in-process client acts as its calling run's user
        ctx = loopback.caller_of(conn) if server.authorizer.enabled else None
        if ctx is None:
            ctx = await server.authorizer.authenticate(conn)
    conn.state.auth = ctx
    return ctx


__all__ = ["ANONYMOUS", "AuthContext", "request_auth"]
