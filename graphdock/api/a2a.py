"""A2A routes: ``POST /a2a/{assistant_id}`` (JSON-RPC 2.0) and the agent card
``GET /.well-known/agent-card.json?assistant_id=...``; see :mod:`graphdock.integrations.a2a`."""

from __future__ import annotations

from typing import Any, AsyncIterator

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from graphdock import serde
from graphdock.api.common import JSONResponse, server
from graphdock.api.headers import configurable_headers
from graphdock.api.sse import HEARTBEAT, sse_response, with_ticks
from graphdock.auth import AuthContext, request_auth
from graphdock.integrations import a2a

router = APIRouter(tags=["a2a"])

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "A JSON-RPC 2.0 request: message/send, message/stream, tasks/get or tasks/cancel",
                    "required": ["jsonrpc", "id", "method"],
                    "properties": {
                        "jsonrpc": {"type": "string", "enum": ["2.0"]},
                        "id": {"type": ["string", "integer"]},
                        "method": {"type": "string", "enum": ["message/send", "message/stream", "tasks/get", "tasks/cancel"]},
                        "params": {"type": "object"},
                    },
                }
            }
        },
    }
}


async def _frames(answers: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for answer in with_ticks(answers):
        yield HEARTBEAT if answer is None else b"data: " + serde.dumps(answer) + b"\n\n"


@router.post(
    "/a2a/{assistant_id}",
    summary="A2A JSON-RPC: talk to an assistant as an agent",
    description=(
        "`message/send` (the task once the run has finished), `message/stream` (SSE of JSON-RPC "
        "answers: the task, status updates, the reply artifact), `tasks/get`, `tasks/cancel`. "
        "`contextId` is a thread id (a new thread when absent), a task id a run id."
    ),
    openapi_extra=_BODY,
)
async def a2a_endpoint(assistant_id: str, request: Request, auth: AuthContext = Depends(request_auth)) -> Response:
    answer = await a2a.handle(
        server(request), assistant_id, await request.body(), auth, configurable_headers(request)
    )
    if isinstance(answer, dict):
        return JSONResponse(answer)
    return sse_response(_frames(answer))


@router.get("/.well-known/agent-card.json", summary="The A2A agent card of an assistant")
async def agent_card(
    request: Request, assistant_id: str = Query(...), auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    base = str(request.base_url).rstrip("/")
    return JSONResponse(await a2a.agent_card(server(request), assistant_id, auth, base))
