"""/store routes: the server's long-term memory store."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from graphdock import models
from graphdock.api.common import JSONResponse, parse_bool, server
from graphdock.auth import AuthContext, request_auth
from graphdock.bounds import text_problem
from graphdock.errors import Unprocessable

router = APIRouter(prefix="/store", tags=["store"])


@router.put("/items", status_code=204, summary="Put an item")
async def put_item(
    body: models.StorePut, request: Request, auth: AuthContext = Depends(request_auth)
) -> Response:
    await server(request).store.put(body, auth)
    return Response(status_code=204)


@router.get("/items", summary="Get an item (null when absent)")
async def get_item(
    request: Request,
    key: Optional[str] = Query(None),
    namespace: Optional[str] = Query(None),
    refresh_ttl: Optional[str] = Query(None),
    auth: AuthContext = Depends(request_auth),
) -> Response:
    if key is None:
        return JSONResponse({"error": "Key is required"}, status_code=400)
    problem = text_problem(key, "key")
    if problem is not None:
        raise Unprocessable(problem)
    return JSONResponse(
        await server(request).store.get(
            namespace, key, refresh_ttl=None if refresh_ttl is None else parse_bool(refresh_ttl), auth=auth
        )
    )


@router.delete("/items", status_code=204, summary="Delete an item")
async def delete_item(
    body: models.StoreDelete, request: Request, auth: AuthContext = Depends(request_auth)
) -> Response:
    await server(request).store.delete(body, auth)
    return Response(status_code=204)


@router.post("/items/search", summary="Search items under a namespace prefix")
async def search_items(
    body: models.StoreSearch, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    return JSONResponse({"items": await server(request).store.search(body, auth)})


@router.post("/namespaces", summary="List namespaces")
async def list_namespaces(
    body: models.StoreListNamespaces, request: Request, auth: AuthContext = Depends(request_auth)
) -> JSONResponse:
    return JSONResponse({"namespaces": await server(request).store.list_namespaces(body, auth)})
