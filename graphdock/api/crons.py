"""Cron routes: create (stateless and per thread), get, patch, delete, search, count."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from graphdock.api.common import JSONResponse, paginated, select_fields, server
from graphdock.auth import AuthContext, request_auth
from graphdock.crons.models import CronCount, CronCreate, CronPatch, CronSearch
from graphdock.services.common import parse_uuid

router = APIRouter(tags=["crons"])


@router.post("/runs/crons", summary="Create a cron whose fires are stateless runs")
async def create_cron(body: CronCreate, request: Request, auth: AuthContext = Depends(request_auth)) -> JSONResponse:
    return JSONResponse(await server(request).crons.create(body, thread_id=None, auth=auth))


@router.post("/threads/{thread_id}/runs/crons", summary="Create a cron whose fires run on a thread")
async def create_thread_cron(
    thread_id: str, body: CronCreate, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    tid = parse_uuid(thread_id, "thread")
    return JSONResponse(await server(request).crons.create(body, thread_id=tid, auth=auth))


@router.post("/runs/crons/search", summary="Search crons")
async def search_crons(body: CronSearch, request: Request, auth: AuthContext = Depends(request_auth)) -> JSONResponse:
    page = await server(request).crons.search(body, auth)
    return paginated(select_fields(page.rows, body.select), offset=body.offset, limit=body.limit, has_more=page.has_more)


@router.post("/runs/crons/count", summary="Count crons")
async def count_crons(body: CronCount, request: Request, auth: AuthContext = Depends(request_auth)) -> JSONResponse:
    return JSONResponse(await server(request).crons.count(body, auth))


@router.get("/runs/crons/{cron_id}", summary="Get a cron")
async def get_cron(cron_id: str, request: Request, auth: AuthContext = Depends(request_auth)) -> JSONResponse:
    return JSONResponse(await server(request).crons.get(cron_id, auth))


@router.patch("/runs/crons/{cron_id}", summary="Update a cron")
async def patch_cron(
    cron_id: str, body: CronPatch, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    return JSONResponse(await server(request).crons.patch(cron_id, body, auth))


@router.delete("/runs/crons/{cron_id}", status_code=204, summary="Delete a cron")
async def delete_cron(cron_id: str, request: Request, auth: AuthContext = Depends(request_auth)) -> Response:
    await server(request).crons.delete(cron_id, auth)
    return Response(status_code=204)
