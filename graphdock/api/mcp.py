"""``/mcp``: the MCP endpoint (Streamable HTTP, stateless), see :mod:`graphdock.integrations.mcp`.

The route authenticates the request like every other route, then hands it, body
unread, to the MCP transport of this process (``app.state.mcp``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from graphdock.api.common import JSONResponse
from graphdock.api.headers import configurable_headers
from graphdock.auth import AuthContext, request_auth

router = APIRouter(tags=["mcp"])


class _Handover(Response):
    """A response that lets an ASGI app answer the request itself."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.background = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@router.api_route(
    "/mcp",
    methods=["GET", "POST", "DELETE"],
    summary="MCP (Streamable HTTP): every assistant the caller may read is a tool",
    description=(
        "POST a JSON-RPC 2.0 message (`initialize`, `tools/list`, `tools/call`, ...) with "
        "`Accept: application/json, text/event-stream`; the answer is JSON. Stateless: no session "
        "is kept between requests, GET (a server stream) is not offered and DELETE has no session "
        "to end."
    ),
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {"type": "object", "description": "A JSON-RPC 2.0 message"}}},
        }
    },
)
async def mcp_endpoint(request: Request, auth: AuthContext = Depends(request_auth)) -> Response:
    if request.method == "GET":  # a server stream needs a session: there is none
        return JSONResponse(
            {"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": "Method Not Allowed: no server stream (stateless)"}},
            status_code=405,
            headers={"Allow": "POST, DELETE"},
        )
    transport = getattr(request.app.state, "mcp", None)
    if transport is None:  # an app whose lifespan was not entered (a worker's loopback app)
        return JSONResponse({"detail": "MCP is not served by this process"}, status_code=503)
    request.state.run_headers = configurable_headers(request)  # read by the tool call
    return _Handover(transport.handle_request)
