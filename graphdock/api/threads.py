"""/threads routes (rows, state and history; run routes live in runs.py)."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import Response

from graphdock import models
from graphdock.api.fastpath import fast
from graphdock.api.common import JSONResponse, paginated, parse_bool, select_fields, server
from graphdock.auth import AuthContext, request_auth
from graphdock.bounds import text_problem
from graphdock.errors import NotFound, Unprocessable
from graphdock.services.common import parse_uuid

router = APIRouter(prefix="/threads", tags=["threads"])


def _no_select(select: Optional[list[str]]) -> None:
    if select:
        raise Unprocessable("selecting parts of a thread state is not supported yet; omit select")


def _storable_text(value: Optional[str], name: str) -> None:
    problem = text_problem(value, name)  # a path or query value that reaches storage
    if problem is not None:
        raise Unprocessable(problem)


def _tid(thread_id: str) -> str:
    return parse_uuid(thread_id, "thread")


async def answer_create_thread(request: Request, body: models.ThreadCreate, auth: AuthContext) -> JSONResponse:
    """``POST /threads``, for the route and for :mod:`graphdock.api.fastpath`."""
    row, problem = await server(request).threads.create(body, auth)
    if problem is not None:
        return JSONResponse({"detail": problem}, status_code=201)
    return JSONResponse(row)


@router.post("", summary="Create a thread")
@fast(lambda request, body, params, auth: answer_create_thread(request, body, auth))
async def create_thread(
    body: models.ThreadCreate, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    return await answer_create_thread(request, body, auth)


@router.post("/search", summary="Search threads")
async def search_threads(
    body: models.ThreadSearch, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    page = await server(request).threads.search(body, auth)
    rows = page.rows
    if body.select:
        rows = select_fields(rows, [*body.select, *(["extracted"] if body.extract else [])])
    return paginated(rows, offset=body.offset, limit=body.limit, has_more=page.has_more)


@router.post("/count", summary="Count threads")
async def count_threads(
    body: models.ThreadCount, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    return JSONResponse(await server(request).threads.count(body, auth))


@router.post("/prune", summary="Prune threads (delete them, or keep only their latest checkpoint)")
async def prune_threads(
    body: models.ThreadPrune, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    srv = server(request)
    if body.strategy == "keep_latest":
        return JSONResponse({"pruned_count": await srv.threads.prune(body, auth)})
    ids = await srv.threads.prunable(body, auth)  # every id is checked before anything is deleted
    pruned = 0
    for thread_id in ids:
        try:
            await srv.delete_thread(thread_id, auth)  # stops its runs first, like DELETE /threads/{id}
        except NotFound:
            continue
        pruned += 1
    return JSONResponse({"pruned_count": pruned})


@router.get("/{thread_id}", summary="Get a thread")
async def get_thread(
    thread_id: str, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    return JSONResponse(await server(request).threads.get(_tid(thread_id), auth))


@router.patch("/{thread_id}", summary="Update a thread's metadata")
async def patch_thread(
    thread_id: str,
    body: models.ThreadPatch,
    request: Request,
    prefer: Optional[str] = Header(None),
    auth: AuthContext = Depends(request_auth),
) -> Response:
    row = await server(request).threads.patch(_tid(thread_id), body, auth)
    if prefer and "return=minimal" in prefer:
        return Response(status_code=204)
    return JSONResponse(row)


@router.delete("/{thread_id}", status_code=204, summary="Delete a thread, its runs and checkpoints")
async def delete_thread(
    thread_id: str, request: Request, auth: AuthContext = Depends(request_auth)
) -> Response:
    await server(request).delete_thread(_tid(thread_id), auth)
    return Response(status_code=204)


@router.post("/{thread_id}/copy", summary="Copy a thread with its checkpoints")
async def copy_thread(
    thread_id: str, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    return JSONResponse(await server(request).threads.copy(_tid(thread_id), auth))


@router.get("/{thread_id}/state", summary="The thread's current state")
async def get_state(
    thread_id: str,
    request: Request,
    subgraphs: Optional[str] = Query(None),
    select: Optional[list[str]] = Query(None),
    auth: AuthContext = Depends(request_auth),
) -> JSONResponse:
    _no_select(select)
    return JSONResponse(
        await server(request).threads.state(
            _tid(thread_id), subgraphs=parse_bool(subgraphs), auth=auth
        )
    )


@router.post("/{thread_id}/state", summary="Update the thread's state")
async def update_state(
    thread_id: str,
    body: models.ThreadStateUpdate,
    request: Request,
    auth: AuthContext = Depends(request_auth),
) -> JSONResponse:
    return JSONResponse(await server(request).threads.update_state(_tid(thread_id), body, auth))


@router.post("/{thread_id}/state/checkpoint", summary="The thread's state at a checkpoint")
async def get_state_at_checkpoint_post(
    thread_id: str,
    body: models.ThreadStateAtCheckpoint,
    request: Request,
    auth: AuthContext = Depends(request_auth),
) -> JSONResponse:
    return JSONResponse(
        await server(request).threads.state(
            _tid(thread_id),
            subgraphs=body.subgraphs,
            checkpoint=body.checkpoint.model_dump(exclude_none=True),
            auth=auth,
        )
    )


@router.get("/{thread_id}/state/{checkpoint_id}", summary="The thread's state at a checkpoint")
async def get_state_at_checkpoint(
    thread_id: str,
    checkpoint_id: str,
    request: Request,
    subgraphs: Optional[str] = Query(None),
    select: Optional[list[str]] = Query(None),
    auth: AuthContext = Depends(request_auth),
) -> JSONResponse:
    _no_select(select)
    _storable_text(checkpoint_id, "checkpoint_id")
    return JSONResponse(
        await server(request).threads.state(
            _tid(thread_id),
            subgraphs=parse_bool(subgraphs),
            checkpoint={"checkpoint_id": checkpoint_id},
            auth=auth,
        )
    )


@router.get("/{thread_id}/history", summary="The thread's past states, newest first")
async def get_history(
    thread_id: str,
    request: Request,
    limit: int = Query(1, ge=1, le=1000),
    before: Optional[str] = Query(None),
    auth: AuthContext = Depends(request_auth),
) -> JSONResponse:
    _storable_text(before, "before")
    return JSONResponse(
        await server(request).threads.history(_tid(thread_id), limit=limit, before=before, auth=auth)
    )


@router.post("/{thread_id}/history", summary="The thread's past states, newest first")
async def post_history(
    thread_id: str,
    body: models.ThreadHistory,
    request: Request,
    auth: AuthContext = Depends(request_auth),
) -> JSONResponse:
    return JSONResponse(
        await server(request).threads.history(
            _tid(thread_id),
            limit=body.limit,
            before=body.before,
            metadata=body.metadata,
            checkpoint=body.checkpoint.model_dump(exclude_none=True) if body.checkpoint else None,
            auth=auth,
        )
    )
