"""/assistants routes."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from graphdock import models
from graphdock.api.common import JSONResponse, paginated, select_fields, server
from graphdock.auth import AuthContext, request_auth
from graphdock.errors import Unprocessable
from graphdock.services.common import parse_uuid

router = APIRouter(prefix="/assistants", tags=["assistants"])


def _xray(value: str | None) -> bool | int:
    if value is None or value in ("false", "False"):
        return False
    if value in ("true", "True"):
        return True
    try:
        depth = int(value)
    except ValueError:
        raise Unprocessable("Invalid xray value") from None
    if depth <= 0:
        raise Unprocessable("Invalid xray value")
    return depth


@router.post("", summary="Create an assistant")
async def create_assistant(
    body: models.AssistantCreate, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    return JSONResponse(await server(request).assistants.create(body, auth))


@router.post("/search", summary="Search assistants")
async def search_assistants(
    body: models.AssistantSearch, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    page = await server(request).assistants.search(body, auth)
    return paginated(
        select_fields(page.rows, body.select), offset=body.offset, limit=body.limit, has_more=page.has_more
    )


@router.post("/count", summary="Count assistants")
async def count_assistants(
    body: models.AssistantCount, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    return JSONResponse(await server(request).assistants.count(body, auth))


@router.get("/{assistant_id}", summary="Get an assistant")
async def get_assistant(
    assistant_id: str, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    return JSONResponse(await server(request).assistants.get(parse_uuid(assistant_id, "assistant"), auth))


@router.patch("/{assistant_id}", summary="Update an assistant (creates a new version)")
async def patch_assistant(
    assistant_id: str,
    body: models.AssistantPatch,
    request: Request,
    auth: AuthContext = Depends(request_auth),
) -> JSONResponse:
    return JSONResponse(
        await server(request).assistants.patch(parse_uuid(assistant_id, "assistant"), body, auth)
    )


@router.delete("/{assistant_id}", status_code=204, summary="Delete an assistant")
async def delete_assistant(
    assistant_id: str,
    request: Request,
    delete_threads: bool = Query(False),
    auth: AuthContext = Depends(request_auth),
) -> Response:
    await server(request).delete_assistant(
        parse_uuid(assistant_id, "assistant"), delete_threads=delete_threads, auth=auth
    )
    return Response(status_code=204)


@router.post("/{assistant_id}/versions", summary="List an assistant's versions")
async def assistant_versions(
    assistant_id: str,
    body: models.AssistantVersionsSearch,
    request: Request,
    auth: AuthContext = Depends(request_auth),
) -> JSONResponse:
    return JSONResponse(
        await server(request).assistants.versions(parse_uuid(assistant_id, "assistant"), body, auth)
    )


@router.post("/{assistant_id}/latest", summary="Make a version the current one")
async def set_latest_version(
    assistant_id: str,
    body: models.AssistantSetLatest,
    request: Request,
    auth: AuthContext = Depends(request_auth),
) -> JSONResponse:
    return JSONResponse(
        await server(request).assistants.set_latest(parse_uuid(assistant_id, "assistant"), body.version, auth)
    )


@router.get("/{assistant_id}/graph", summary="The assistant's graph, drawable")
async def assistant_graph(
    assistant_id: str,
    request: Request,
    xray: Optional[str] = Query(None),
    auth: AuthContext = Depends(request_auth),
) -> JSONResponse:
    svc = server(request).assistants
    return JSONResponse(await svc.graph(svc.resolve_id(assistant_id), _xray(xray), auth))


@router.get("/{assistant_id}/schemas", summary="The assistant's JSON schemas")
async def assistant_schemas(
    assistant_id: str, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    return JSONResponse(
        await server(request).assistants.schemas(parse_uuid(assistant_id, "assistant"), auth)
    )


@router.get("/{assistant_id}/subgraphs", summary="Schemas of the assistant's subgraphs")
async def assistant_subgraphs(
    assistant_id: str,
    request: Request,
    recurse: Optional[str] = Query(None),
    namespace: Optional[str] = Query(None),
    auth: AuthContext = Depends(request_auth),
) -> JSONResponse:
    return JSONResponse(
        await server(request).assistants.subgraphs(
            parse_uuid(assistant_id, "assistant"),
            namespace,
            recurse in ("true", "True"),
            auth=auth,
        )
    )


@router.get("/{assistant_id}/subgraphs/{namespace}", summary="Schemas of one subgraph namespace")
async def assistant_subgraphs_ns(
    assistant_id: str,
    namespace: str,
    request: Request,
    recurse: Optional[str] = Query(None),
    auth: AuthContext = Depends(request_auth),
) -> JSONResponse:
    return JSONResponse(
        await server(request).assistants.subgraphs(
            parse_uuid(assistant_id, "assistant"),
            namespace,
            recurse in ("true", "True"),
            auth=auth,
        )
    )
