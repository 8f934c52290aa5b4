"""Routes of the thread streaming protocol: commands, and the event stream over SSE and
WebSocket (semantics in :mod:`graphdock.protocol`)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

import orjson
from fastapi import APIRouter, Depends, Request, WebSocket, WebSocketDisconnect
from starlette.responses import StreamingResponse

from graphdock import models
from graphdock.api.common import JSONResponse, server
from graphdock.api.headers import configurable_headers
from graphdock.api.sse import HEARTBEAT, HEARTBEAT_SECONDS, frame, sse_response
from graphdock.auth import AuthContext, request_auth
from graphdock.bounds import json_problem
from graphdock.errors import APIError, NotFound, Unprocessable
from graphdock.protocol.commands import CommandError, Commands, parse_envelope
from graphdock.protocol.sockets import SocketSession
from graphdock.protocol.streams import open_thread_stream
from graphdock.protocol.wire import error, parse_filter
from graphdock.services.common import parse_uuid

router = APIRouter(tags=["protocol"])


def _commands(conn: Any) -> Commands:
    state = conn.app.state
    commands = getattr(state, "protocol_commands", None)
    if commands is None:
        commands = state.protocol_commands = Commands(state.server)
    return commands


@router.post("/threads/{thread_id}/commands", summary="Send a protocol command on a thread")
async def command(thread_id: str, request: Request, auth: AuthContext = Depends(request_auth)) -> JSONResponse:
    tid = parse_uuid(thread_id, "thread")
    raw = await request.body()
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return JSONResponse(error(None, "invalid_argument", "a command must be valid JSON"), status_code=400)
    problem = json_problem(payload)
    if problem is not None:
        return JSONResponse(error(None, "invalid_argument", problem), status_code=400)
    try:
        parse_envelope(payload)
    except CommandError as exc:
        raw_id = payload.get("id") if isinstance(payload, dict) else None
        command_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
        return JSONResponse(error(command_id, exc.code, exc.message), status_code=400)
    return JSONResponse(await _commands(request).handle(tid, payload, auth, configurable_headers(request)))


@router.post("/threads/{thread_id}/stream/events", summary="Stream a thread's protocol events (SSE)")
async def stream_events(
    thread_id: str,
    body: models.ProtocolEventStream,
    request: Request,
    auth: AuthContext = Depends(request_auth),
) -> StreamingResponse:
    tid = parse_uuid(thread_id, "thread")
    try:
        flt = parse_filter(body.channels, body.namespaces, body.depth)
    except ValueError as exc:
        raise Unprocessable(str(exc)) from None
    srv = server(request)
    await srv.threads.visible(tid, auth)
    # subscribed before the response starts: nothing published from now on is missed
    stream = open_thread_stream(srv.events, srv.storage, tid, body.since)

    async def frames() -> AsyncIterator[bytes]:
        try:
            async for batch in stream.ticking(HEARTBEAT_SECONDS):
                if batch is None:
                    yield HEARTBEAT
                    continue
                chunk = b"".join(
                    frame(event.method, event.json, event.event_id)
                    for event in batch
                    if flt.matches(event.channel, event.namespace)
                )
                if chunk:
                    yield chunk
        finally:
            await stream.aclose()

    return sse_response(frames())


@router.websocket("/threads/{thread_id}/stream/events")
async def stream_events_socket(websocket: WebSocket, thread_id: str) -> None:
    """The thread's protocol events and commands over one WebSocket. A connection that
    may not read the thread is accepted and closed with ``4000 + status`` (4401, 4403,
    4404, 4422), which clients read as a refusal not to retry."""
    await websocket.accept()
    readable = True
    try:
        tid = parse_uuid(thread_id, "thread")
        auth = await request_auth(websocket)
        srv = websocket.app.state.server
        try:
            await srv.threads.visible(tid, auth)
        except NotFound:
            # a thread the client will create with run.start on this socket (the JS SDK
            # connects first): its events are sent once it exists and the user may read it
            if await srv.storage.get_thread(tid) is not None:
                raise
            readable = False
    except APIError as exc:
        await websocket.close(code=4000 + exc.status_code, reason=exc.detail[:120])
        return

    async def refuse(status: int, detail: str) -> None:
        with contextlib.suppress(Exception):
            await websocket.close(code=4000 + status, reason=detail[:120])

    async def send(data: bytes) -> None:
        await websocket.send_text(data.decode())

    session = SocketSession(
        commands=_commands(websocket),
        events=srv.events,
        storage=srv.storage,
        thread_id=tid,
        auth=auth,
        send=send,
        heartbeat=HEARTBEAT_SECONDS,
        readable=readable,
        refuse=refuse,
        headers=configurable_headers(websocket),
    )
    tasks: set[asyncio.Task[None]] = set()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"].decode(errors="replace")
            if text is None:
                continue
            # commands run concurrently (a run.start need not wait for a slow state.get)
            task = asyncio.create_task(session.receive(text))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except WebSocketDisconnect:
        pass
    finally:
        for task in list(tasks):
            task.cancel()
        for task in list(tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await session.close()

