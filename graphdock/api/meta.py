"""Health and server information."""

from __future__ import annotations

import langgraph.version
from fastapi import APIRouter

from graphdock import __version__
from graphdock.api.common import JSONResponse

router = APIRouter(tags=["meta"])


@router.get("/ok", summary="Health check")
async def ok() -> JSONResponse:
    return JSONResponse({"ok": True, "services": {}})


@router.get("/info", summary="Server information and feature flags")
async def info() -> JSONResponse:
    return JSONResponse(
        {
            "version": __version__,
            "server": "graphdock",
            "langgraph_py_version": langgraph.version.__version__,
            "flags": {
                "assistants": True,
                "crons": True,
                "langsmith": False,
                "langsmith_tracing_replicas": False,
            },
            "host": {
                "kind": "self-hosted",
                "project_id": None,
                "host_revision_id": None,
                "revision_id": None,
                "tenant_id": None,
            },
        }
    )
