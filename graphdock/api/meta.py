"""Health, server information and metrics (open routes: no authentication)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Literal

import langgraph.version
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from graphdock import __version__
from graphdock.api.common import JSONResponse, server
from graphdock.observability import metrics

if TYPE_CHECKING:
    from graphdock.server import Server

logger = logging.getLogger("graphdock.api")

router = APIRouter(tags=["meta"])

#: how long each dependency may take to answer a readiness check
CHECK_TIMEOUT_S = 2.0


async def check_services(srv: "Server") -> dict[str, str]:
    """Each service the process depends on, ``"healthy"`` or ``"unhealthy: <why>"``: the
    database (a trivial query) and, scaled out, Redis (PING), each within
    :data:`CHECK_TIMEOUT_S`."""

    async def probe(ping: Any) -> str:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await ping()
        except TimeoutError:
            return f"unhealthy: no answer within {CHECK_TIMEOUT_S:g}s"
        except Exception as exc:  # whatever the driver raises: the service is down
            return f"unhealthy: {type(exc).__name__}: {exc}".strip()
        return "healthy"

    names = ["postgres", "redis"] if srv.backend.kind == "postgres" else ["sqlite"]
    pings = [srv.storage.ping, srv.events.ping][: len(names)]
    results = await asyncio.gather(*(probe(ping) for ping in pings))
    return dict(zip(names, results))


async def health(srv: "Server", check_db: int) -> JSONResponse:
    """``{"ok": true, ...}``; with ``check_db`` the services are probed and any that is down
    makes it a 503 naming it."""
    if not check_db:
        return JSONResponse({"ok": True, "services": {}})
    services = await check_services(srv)
    down = [name for name, state in services.items() if state != "healthy"]
    if down:
        logger.warning("readiness check failed: %s", "; ".join(f"{n} {services[n]}" for n in down))
        return JSONResponse(
            {"ok": False, "services": services, "detail": f"unreachable: {', '.join(down)}"}, status_code=503
        )
    return JSONResponse({"ok": True, "services": services})


@router.get("/ok", summary="Health check")
async def ok(
    request: Request, check_db: int = Query(0, ge=0, le=1, description="1: probe the database and Redis")
) -> JSONResponse:
    if not check_db:  # cheap: no dependency touched
        return JSONResponse({"ok": True, "services": {}})
    return await health(server(request), check_db)


async def metrics_response(srv: "Server", format: str) -> Response:
    """The process's metrics, with the queue gauges read from the deployment's storage."""
    queue = await srv.storage.queue_stats()
    slots = srv.settings.n_jobs_per_worker
    busy = srv.queue.running
    if format == "json":
        return JSONResponse(metrics.as_json(queue, slots=slots, busy=busy))
    metrics.observe(
        queue, slots=slots, busy=busy, run_processes=[proc.inflight for proc in srv.runs.processes.running]
    )
    return Response(metrics.prometheus_text(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/metrics", summary="Metrics (Prometheus text, or JSON)")
async def get_metrics(
    request: Request,
    format: Literal["prometheus", "json"] = Query("prometheus", description="prometheus (text) or json"),
) -> Response:
    return await metrics_response(server(request), format)


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
