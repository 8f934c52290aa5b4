"""Run routes: creation (plain, stream, wait, batch), streams, join, cancel and lookup."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Optional

import orjson
from fastapi import APIRouter, Body as BodyParam, Depends, Header, Query, Request
from starlette.responses import Response, StreamingResponse

from graphdock import serde
from graphdock import models
from graphdock.api.common import (
    JSONResponse,
    last_event_id as read_last_event_id,
    parse_bool,
    query_list,
    select_fields,
    server,
)
from graphdock.api.fastpath import fast
from graphdock.api.headers import configurable_headers
from graphdock.api.sse import HEARTBEAT, LastChunk, RunResponse, frame, sse_response, with_ticks
from graphdock.auth import AuthContext, request_auth
from graphdock.backends.base import Event, parse_event_id
from graphdock.bounds import MAX_OFFSET
from graphdock.errors import Unprocessable
from graphdock.services.common import parse_uuid

router = APIRouter(tags=["runs"])

RUN_NOT_FOUND = {"error": "HTTPException", "message": "404: Run not found"}


_RUN_FIELDS = (
    "run_id",
    "thread_id",
    "assistant_id",
    "created_at",
    "updated_at",
    "status",
    "metadata",
    "kwargs",
    "multitask_strategy",
)


def public_run(row: dict[str, Any]) -> dict[str, Any]:
    """A run row as the API shows it (the Run object of the Agent Server API)."""
    out = {key: row.get(key) for key in _RUN_FIELDS}
    out["langsmith_session_name"] = None
    return out


def _tid(value: str) -> str:
    return parse_uuid(value, "thread")


def _rid(value: str) -> str:
    return parse_uuid(value, "run")


def _check_applicable(body: models.RunCreate, *, stateless: bool, attached: bool) -> None:
    """422 for fields that cannot take effect on this endpoint (never silently ignored)."""
    if not attached and body.on_disconnect is not None:
        raise Unprocessable(
            "on_disconnect applies only to /stream and /wait, where a client stays connected to the run"
        )
    if not stateless and body.on_completion is not None:
        raise Unprocessable("on_completion applies only to stateless runs (POST /runs...); a thread run's thread is kept")
    if stateless and body.if_not_exists == "reject":
        raise Unprocessable("if_not_exists 'reject' cannot apply to a stateless run: it always creates its thread")


async def _create(
    request: Request,
    body: models.RunCreate,
    thread_id: str | None,
    auth: AuthContext,
    *,
    attached: bool = False,
) -> dict[str, Any]:
    _check_applicable(body, stateless=thread_id is None, attached=attached)
    return await server(request).runs.create(
        body,
        thread_id=thread_id,
        auth=auth,
        request_id=request.headers.get("x-request-id"),
        attached=attached,
        headers=configurable_headers(request),
    )


def _locations(run: dict[str, Any], stateless: bool, suffix: str) -> dict[str, str]:
    base = f"/runs/{run['run_id']}" if stateless else f"/threads/{run['thread_id']}/runs/{run['run_id']}"
    location = f"/threads/{run['thread_id']}/runs/{run['run_id']}{suffix}" if suffix == "/join" else base + suffix
    return {"Location": location, "Content-Location": base}


def _cancel_on_disconnect(request: Request, run: dict[str, Any]) -> None:
    runs = server(request).runs

    async def _cancel() -> None:
        await runs._cancel_one(run["run_id"], run["thread_id"], "interrupt")

    asyncio.get_running_loop().create_task(_cancel())


async def _sse_events(
    request: Request,
    events: AsyncIterator[Event],
    *,
    with_ids: bool,
    accept: Any = None,
    run: dict[str, Any] | None = None,
    cancel_on_disconnect: bool = False,
) -> AsyncIterator[bytes]:
    finished = False
    # events already published when the response catches up go out in one write
    take_ready = getattr(events, "take_ready", None)
    try:
        async for item in with_ticks(events):
            if item is None:
                yield HEARTBEAT
                continue
            batch = [item, *take_ready()] if take_ready is not None else [item]
            chunk = b"".join(
                frame(ev.event, ev.data, ev.id if with_ids else None)
                for ev in batch
                if accept is None or accept(ev.event)
            )
            if chunk:
                yield chunk
        finished = True
    finally:
        if not finished and cancel_on_disconnect and run is not None:
            _cancel_on_disconnect(request, run)


class _WaitResult:
    """Collects what /wait and /join answer from a run's events."""

    def __init__(self) -> None:
        self.error: Any = None
        self.values_data: bytes | None = None  # the last values event, as sent
        self.interrupts: list[Any] = []  # every interrupt raised, in order, once each

    @property
    def has_values(self) -> bool:
        return self.values_data is not None

    @property
    def values(self) -> Any:
        return None if self.values_data is None else orjson.loads(self.values_data)

    def _add_interrupts(self, chunk: Any) -> None:
        if not isinstance(chunk, dict) or not chunk.get("__interrupt__"):
            return
        known = {i.get("id") for i in self.interrupts if isinstance(i, dict)}
        for item in chunk["__interrupt__"]:
            if not (isinstance(item, dict) and item.get("id") in known):
                self.interrupts.append(item)

    def add(self, event: Event) -> None:
        if event.event == "error":
            self.error = orjson.loads(event.data)
        elif event.event == "values":
            self.values_data = event.data
            if b'"__interrupt__"' in event.data:
                self._add_interrupts(orjson.loads(event.data))
        elif event.event == "updates":
            if b'"__interrupt__"' in event.data:
                self._add_interrupts(orjson.loads(event.data))

    def _interrupt_body(self) -> Any:
        """The last values when they carry every interrupt of the run, else all interrupts."""
        values = self.values
        last = values if isinstance(values, dict) else {}
        carried = [i.get("id") for i in last.get("__interrupt__") or () if isinstance(i, dict)]
        if carried and carried == [i.get("id") for i in self.interrupts if isinstance(i, dict)]:
            return values
        return {"__interrupt__": self.interrupts}

    async def body_bytes(self, request: Request, thread_id: str, stateless: bool) -> bytes:
        """:meth:`body` as JSON; the last values event's data as it was sent, when that is it."""
        if self.error is None and not self.interrupts and self.values_data is not None:
            return self.values_data
        return serde.dumps(await self.body(request, thread_id, stateless))

    async def body(self, request: Request, thread_id: str, stateless: bool) -> Any:
        if self.error is not None:
            return {"__error__": self.error}
        if self.interrupts:
            return self._interrupt_body()
        if self.has_values:
            return self.values
        if stateless:
            return {}
        thread = await server(request).storage.get_thread(thread_id)
        if thread is None:
            return {}
        if thread["status"] == "error" and thread.get("error"):
            return {"__error__": thread["error"]}
        if thread["status"] == "interrupted" and thread.get("interrupts"):
            return {"__interrupt__": [i for group in thread["interrupts"].values() for i in group]}
        return thread.get("values") or {}


async def _wait_body(
    request: Request,
    events: AsyncIterator[Event],
    *,
    thread_id: str,
    stateless: bool,
    run: dict[str, Any] | None,
    cancel_on_disconnect: bool,
) -> AsyncIterator[bytes]:
    result = _WaitResult()
    finished = False
    try:
        async for item in with_ticks(events):
            if item is None:
                yield b"\n"
                continue
            result.add(item)
        finished = True
    finally:
        if not finished and cancel_on_disconnect and run is not None:
            _cancel_on_disconnect(request, run)
    yield LastChunk(await result.body_bytes(request, thread_id, stateless))


# -- creation ---------------------------------------------------------------------


@router.post("/threads/{thread_id}/runs", summary="Create a run on a thread")
async def create_thread_run(
    thread_id: str, body: models.RunCreate, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    run = await _create(request, body, _tid(thread_id), auth)
    return JSONResponse(public_run(run), headers={"Content-Location": _locations(run, False, "")["Content-Location"]})


@router.post("/runs", summary="Create a stateless run")
async def create_stateless_run(
    body: models.RunCreate, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    run = await _create(request, body, None, auth)
    return JSONResponse(public_run(run), headers={"Content-Location": _locations(run, True, "")["Content-Location"]})


async def answer_stream(
    request: Request, body: models.RunCreate, thread_id: str | None, auth: AuthContext
) -> StreamingResponse:
    """``POST [/threads/{thread_id}]/runs/stream`` (``thread_id`` as given in the path; None
    for a stateless run), for the route and for :mod:`graphdock.api.fastpath`."""
    if thread_id is not None:
        thread_id = _tid(thread_id)
    srv = server(request)
    run = await _create(request, body, thread_id, auth, attached=True)
    events = srv.events.subscribe(run["run_id"], from_start=True)
    return sse_response(
        _sse_events(
            request,
            events,
            with_ids=bool(body.stream_resumable),
            run=run,
            cancel_on_disconnect=body.on_disconnect == "cancel",
        ),
        headers=_locations(run, thread_id is None, "/stream"),
        watch_disconnect=body.on_disconnect == "cancel",
    )


@router.post("/threads/{thread_id}/runs/stream", summary="Create a run on a thread and stream it")
@fast(lambda request, body, params, auth: answer_stream(request, body, params["thread_id"], auth))
async def stream_thread_run(
    thread_id: str, body: models.RunCreate, request: Request, auth: AuthContext = Depends(request_auth)
) -> StreamingResponse:
    return await answer_stream(request, body, thread_id, auth)


@router.post("/runs/stream", summary="Create a stateless run and stream it")
@fast(lambda request, body, params, auth: answer_stream(request, body, None, auth))
async def stream_stateless_run(
    body: models.RunCreate, request: Request, auth: AuthContext = Depends(request_auth)
) -> StreamingResponse:
    return await answer_stream(request, body, None, auth)


async def answer_wait(
    request: Request, body: models.RunCreate, thread_id: str | None, auth: AuthContext
) -> StreamingResponse:
    """``POST [/threads/{thread_id}]/runs/wait`` (``thread_id`` as given in the path; None
    for a stateless run), for the route and for :mod:`graphdock.api.fastpath`."""
    if thread_id is not None:
        thread_id = _tid(thread_id)
    srv = server(request)
    run = await _create(request, body, thread_id, auth, attached=True)
    events = srv.events.subscribe(run["run_id"], from_start=True, at_end=True)
    return RunResponse(
        _wait_body(
            request,
            events,
            thread_id=run["thread_id"],
            stateless=thread_id is None,
            run=run,
            cancel_on_disconnect=body.on_disconnect == "cancel",
        ),
        watch_disconnect=body.on_disconnect == "cancel",
        media_type="application/json",
        headers=_locations(run, thread_id is None, "/join"),
    )


@router.post("/threads/{thread_id}/runs/wait", summary="Create a run on a thread and wait for its output")
@fast(lambda request, body, params, auth: answer_wait(request, body, params["thread_id"], auth))
async def wait_thread_run(
    thread_id: str, body: models.RunCreate, request: Request, auth: AuthContext = Depends(request_auth)
) -> StreamingResponse:
    return await answer_wait(request, body, thread_id, auth)


@router.post("/runs/wait", summary="Create a stateless run and wait for its output")
@fast(lambda request, body, params, auth: answer_wait(request, body, None, auth))
async def wait_stateless_run(
    body: models.RunCreate, request: Request, auth: AuthContext = Depends(request_auth)
) -> StreamingResponse:
    return await answer_wait(request, body, None, auth)


@router.post("/runs/batch", summary="Create several stateless runs")
async def create_batch(
    request: Request,
    body: list[models.BatchRunCreate] = BodyParam(...),
    auth: AuthContext = Depends(request_auth),
) -> JSONResponse:
    for item in body:
        _check_applicable(item, stateless=True, attached=False)
    runs = await server(request).runs.create_batch(
        body,
        auth=auth,
        request_id=request.headers.get("x-request-id"),
        headers=configurable_headers(request),
    )
    return JSONResponse([public_run(run) for run in runs])


# -- lookup and control -------------------------------------------------------------


@router.get("/threads/{thread_id}/runs", summary="List a thread's runs, newest first")
async def list_runs(
    thread_id: str,
    request: Request,
    limit: int = Query(10, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    status: Optional[str] = Query(None),
    select: Optional[list[str]] = Query(None),
    auth: AuthContext = Depends(request_auth),
) -> JSONResponse:
    allowed = {"run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status", "metadata",
               "kwargs", "multitask_strategy", "langsmith_session_name"}
    select = query_list(select, "select") or None
    if select and set(select) - allowed:
        raise Unprocessable(f"Invalid select columns: {sorted(set(select) - allowed)}. Expected: {sorted(allowed)}")
    if status is not None and status not in ("pending", "running", "success", "error", "timeout", "interrupted"):
        raise Unprocessable(f"Invalid status '{status}'")
    rows = await server(request).runs.list(_tid(thread_id), limit=limit, offset=offset, status=status, auth=auth)
    return JSONResponse(select_fields([public_run(row) for row in rows], select))


@router.get("/threads/{thread_id}/runs/{run_id}", summary="Get a run")
async def get_run(
    thread_id: str, run_id: str, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    return JSONResponse(public_run(await server(request).runs.get(_tid(thread_id), _rid(run_id), auth)))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204, summary="Delete a run and its checkpoints")
async def delete_run(
    thread_id: str, run_id: str, request: Request, auth: AuthContext = Depends(request_auth)
) -> Response:
    await server(request).runs.delete(_tid(thread_id), _rid(run_id), auth)
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs/{run_id}/join", summary="Wait for a run and return its output")
async def join_run(
    thread_id: str,
    run_id: str,
    request: Request,
    cancel_on_disconnect: Optional[str] = Query(None),
    auth: AuthContext = Depends(request_auth),
) -> Response:
    tid, rid = _tid(thread_id), _rid(run_id)
    srv = server(request)
    await srv.threads.visible(tid, auth)
    run = await srv.storage.get_run(rid, tid)
    if run is None:
        return JSONResponse({"__error__": RUN_NOT_FOUND})
    events = srv.events.subscribe(rid, at_end=True)
    return StreamingResponse(
        _wait_body(
            request,
            _only_errors(events),
            thread_id=tid,
            stateless=False,
            run=run,
            cancel_on_disconnect=parse_bool(cancel_on_disconnect),
        ),
        media_type="application/json",
        headers={"Location": f"/threads/{tid}/runs/{rid}/join"},
    )


async def _only_errors(events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    """A joiner sees only the tail of a run, so only its error counts; the output is the thread's."""
    async for event in events:
        if event.event == "error":
            yield event


def _join_filter(stream_mode: Optional[list[str]]) -> Any:
    modes = query_list(stream_mode, "stream_mode")
    if not modes:
        return None
    wanted = set(modes)
    messages = bool(wanted & {"messages", "messages-tuple"})

    def accept(name: str) -> bool:
        if name in wanted:
            return True
        if messages and name.startswith("messages"):
            return True
        return name.split("|", 1)[0] in wanted

    return accept


@router.get("/threads/{thread_id}/runs/{run_id}/stream", summary="Join a run's event stream")
async def join_run_stream(
    thread_id: str,
    run_id: str,
    request: Request,
    stream_mode: Optional[list[str]] = Query(None),
    cancel_on_disconnect: Optional[str] = Query(None),
    last_event_id: Optional[str] = Header(None),
    auth: AuthContext = Depends(request_auth),
) -> StreamingResponse:
    tid, rid = _tid(thread_id), _rid(run_id)
    accept = _join_filter(stream_mode)
    last_event_id = read_last_event_id(last_event_id)
    if last_event_id is not None and parse_event_id(last_event_id) is None:
        raise Unprocessable("Invalid Last-Event-ID")
    srv = server(request)
    await srv.threads.visible(tid, auth)
    run = await srv.storage.get_run(rid, tid)
    if run is None:

        async def _missing() -> AsyncIterator[bytes]:
            yield frame("error", serde.dumps(RUN_NOT_FOUND))

        return sse_response(_missing())
    events = srv.events.subscribe(rid, last_event_id=last_event_id)
    return sse_response(
        _sse_events(
            request,
            events,
            with_ids=bool(run["kwargs"].get("resumable")),
            accept=accept,
            run=run,
            cancel_on_disconnect=parse_bool(cancel_on_disconnect),
        ),
        headers={"Location": f"/threads/{tid}/runs/{rid}/stream", "Content-Location": f"/threads/{tid}/runs/{rid}"},
    )


@router.post("/threads/{thread_id}/runs/{run_id}/cancel", summary="Cancel a run")
async def cancel_run(
    thread_id: str,
    run_id: str,
    request: Request,
    wait: Optional[str] = Query(None),
    action: Optional[str] = Query(None),
    auth: AuthContext = Depends(request_auth),
) -> Response:
    tid, rid = _tid(thread_id), _rid(run_id)
    act = "rollback" if action == "rollback" else "interrupt"
    srv = server(request)
    waiting = parse_bool(wait)
    await srv.runs.cancel(tid, [rid], action=act, wait=waiting, auth=auth)
    if not waiting:
        return Response(status_code=202)
    result = _WaitResult()
    return JSONResponse(await result.body(request, tid, False), headers={"Location": f"/threads/{tid}/runs/{rid}/join"})


@router.post("/runs/cancel", status_code=204, summary="Cancel runs by thread, ids or status")
async def cancel_runs(
    body: models.RunsCancel,
    request: Request,
    action: Optional[str] = Query(None),
    auth: AuthContext = Depends(request_auth),
) -> Response:
    act = "rollback" if action == "rollback" else "interrupt"
    await server(request).runs.cancel_many(
        thread_id=_tid(body.thread_id) if body.thread_id else None,
        run_ids=[_rid(r) for r in body.run_ids] if body.run_ids is not None else None,
        status=body.status,
        action=act,
        auth=auth,
    )
    return Response(status_code=204)


# -- thread stream ------------------------------------------------------------------

_THREAD_MODES = {"run_modes", "lifecycle", "state_update"}


@router.get("/threads/{thread_id}/stream", summary="Stream everything that happens on a thread")
async def thread_stream(
    thread_id: str,
    request: Request,
    stream_modes: Optional[str] = Query(None),
    stream_mode: Optional[list[str]] = Query(None),
    last_event_id: Optional[str] = Header(None),
    auth: AuthContext = Depends(request_auth),
) -> StreamingResponse:
    tid = _tid(thread_id)
    requested: list[str] = []
    if stream_modes:
        requested.extend(m.strip() for m in stream_modes.split(",") if m.strip())
    for value in query_list(stream_mode, "stream_mode"):
        requested.extend(m.strip() for m in value.split(",") if m.strip())
    unknown = set(requested) - _THREAD_MODES
    if unknown:
        raise Unprocessable(f"Invalid stream_modes {sorted(unknown)}; expected run_modes, lifecycle or state_update")
    modes = set(requested or ["run_modes"])
    last_event_id = read_last_event_id(last_event_id)
    if last_event_id is not None and parse_event_id(last_event_id) is None:
        raise Unprocessable("Invalid Last-Event-ID: expected <ms>-<seq>")
    srv = server(request)
    await srv.threads.get(tid, auth)

    def accept(name: str, data: bytes) -> bool:
        if name == "state_update":
            return "state_update" in modes
        if "run_modes" in modes:
            return True
        if "lifecycle" in modes and name == "metadata":
            return True
        return False

    # subscribe before answering, so nothing that happens after the headers is missed
    events = srv.events.subscribe_thread(tid, last_event_id=last_event_id)

    async def body() -> AsyncIterator[bytes]:
        async for item in with_ticks(events):
            if item is None:
                yield HEARTBEAT
            elif accept(item.event, item.data):
                yield frame(item.event, item.data, item.id)

    return sse_response(body())
