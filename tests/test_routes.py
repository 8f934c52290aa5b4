"""The route table: no two routes accept the same request.

The app matches a request against its routes in order and puts the routes every run goes
through first. That is only safe because the order cannot change which route answers: for
every route and method, a request built from the route's own path is accepted by that route
alone. A new route that overlaps another (say ``GET /threads/{thread_id}/runs/search`` beside
``GET /threads/{thread_id}/runs/{run_id}``) fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Match

from graphdock.app import create_app
from graphdock.config import load_config, Settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "langgraph.json"
SAMPLE_ID = "00000000-0000-4000-8000-000000000000"


def _routes(tmp_path: Path) -> list:
    app = create_app(Settings(config=load_config(EXAMPLES), data_dir=tmp_path))
    return [route for route in app.router.routes if getattr(route, "path", None)]


def _scope(method: str, path: str) -> dict:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}


def test_every_request_has_exactly_one_route(tmp_path: Path) -> None:
    routes = _routes(tmp_path)
    assert len(routes) > 40
    for route in routes:
        sample = re.sub(r"\{[^}]+\}", SAMPLE_ID, route.path)
        for method in sorted(getattr(route, "methods", None) or ()):  # WebSocket routes have none
            scope = _scope(method, sample)
            accepting = [other for other in routes if other.matches(scope)[0] == Match.FULL]
            assert accepting == [route], (
                f"{method} {sample} is accepted by "
                + ", ".join(f"{sorted(r.methods or ())} {r.path}" for r in accepting)
            )


def test_every_websocket_has_exactly_one_route(tmp_path: Path) -> None:
    routes = _routes(tmp_path)
    sockets = [route for route in routes if getattr(route, "methods", None) is None]
    assert [route.path for route in sockets] == ["/threads/{thread_id}/stream/events"]
    for route in sockets:
        scope = {**_scope("GET", re.sub(r"\{[^}]+\}", SAMPLE_ID, route.path)), "type": "websocket"}
        assert [other for other in routes if other.matches(scope)[0] == Match.FULL] == [route]


def test_run_routes_come_first(tmp_path: Path) -> None:
    paths = [route.path for route in _routes(tmp_path)]
    assert paths[:2] == ["/runs/wait", "/threads/{thread_id}/runs/wait"]
