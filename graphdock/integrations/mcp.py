"""MCP: every assistant the caller may read is a tool (Streamable HTTP transport, stateless).

- ``tools/list``: the assistants ``assistants.search`` shows the caller (custom auth
  filters apply), oldest first. A tool's name is the assistant's name with every
  character outside ``[A-Za-z0-9_.-]`` replaced by ``_`` (a name already taken by an
  older assistant gets ``_2``, ``_3``...); its description is the assistant's, else its
  graph's; its input schema is the graph's input JSON schema, as
  ``GET /assistants/{id}/schemas`` gives it (the graph is opened in ``assistants.read``
  through the assistants service).
- ``tools/call``: the arguments are checked against that schema, then the assistant runs
  as a stateless run through the runs service, exactly like ``POST /runs/wait``
  (``threads.create_run`` authorization, queue, event log); the result is the run's final
  values as JSON text (and as structured content when they are an object). Bad
  arguments, an unknown tool, a refused or failed run are results with ``isError``.

The transport is stateless (no session survives a request), so any API process of a
deployment answers any request.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import jsonschema
import mcp_types as types
from mcp.server.lowlevel import Server as MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from graphdock import __version__, models, serde
from graphdock.auth import ANONYMOUS, AuthContext
from graphdock.backends.base import Row
from graphdock.errors import APIError
from graphdock.integrations.runs import start_run, wait_for

if TYPE_CHECKING:
    from graphdock.server import Server

logger = logging.getLogger("graphdock.mcp")

_PAGE = 1000
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def tool_name(name: str | None) -> str:
    """An assistant name as an MCP tool name (1 to 128 of ``[A-Za-z0-9_.-]``)."""
    return _UNSAFE.sub("_", name or "")[:128] or "assistant"


async def named_assistants(srv: "Server", auth: AuthContext) -> list[tuple[str, Row]]:
    """(tool name, assistant) for every assistant ``auth`` may see, oldest first."""
    rows: list[Row] = []
    offset = 0
    while True:
        page = await srv.assistants.search(
            models.AssistantSearch(limit=_PAGE, offset=offset, sort_by="created_at", sort_order="asc"), auth
        )
        rows.extend(page.rows)
        if not page.has_more:
            break
        offset += _PAGE
    named: list[tuple[str, Row]] = []
    taken: set[str] = set()
    for row in rows:
        base = name = tool_name(row.get("name"))
        n = 1
        while name in taken:
            n += 1
            suffix = f"_{n}"
            name = base[: 128 - len(suffix)] + suffix
        taken.add(name)
        named.append((name, row))
    return named


def _description(srv: "Server", row: Row) -> str | None:
    if row.get("description"):
        return row["description"]
    loaded = srv.hosting.graphs.get(row["graph_id"])
    return getattr(getattr(loaded, "spec", None), "description", None)


async def _input_schema(srv: "Server", row: Row, auth: AuthContext) -> dict[str, Any]:
    schemas = await srv.assistants.schemas(row["assistant_id"], auth)
    schema = schemas.get("input_schema")
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return {"type": "object"}
    return schema


async def list_tools(srv: "Server", auth: AuthContext) -> list[types.Tool]:
    """The caller's tools; an assistant that search shows but ``assistants.read`` refuses is
    left out, one whose graph cannot be opened is listed with a plain object schema."""
    tools = []
    for name, row in await named_assistants(srv, auth):
        try:
            schema = await _input_schema(srv, row, auth)
        except APIError:
            continue
        except Exception:
            logger.warning("MCP: no input schema for assistant %s", row["assistant_id"], exc_info=True)
            schema = {"type": "object"}
        tools.append(types.Tool(name=name, description=_description(srv, row), input_schema=schema))
    return tools


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _lenient(schema: Any) -> Any:
    """``schema`` with ``oneOf`` read as ``anyOf``: the message schemas of a ``messages``
    field overlap (``{"role": "user", "content": ...}`` fits several), which LangGraph accepts."""
    if isinstance(schema, dict):
        return {("anyOf" if k == "oneOf" else k): _lenient(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_lenient(v) for v in schema]
    return schema


def _argument_error(schema: dict[str, Any], arguments: dict[str, Any]) -> str | None:
    """Why ``arguments`` do not fit ``schema``, or None when they do."""
    schema = _lenient(schema)
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{error.message} (at '{where}')" if where else error.message


async def call_tool(
    srv: "Server",
    name: str,
    arguments: dict[str, Any] | None,
    auth: AuthContext,
    headers: dict[str, str] | None = None,
) -> types.CallToolResult:
    found = next((row for tool, row in await named_assistants(srv, auth) if tool == name), None)
    if found is None:
        return _error(f"Unknown tool: {name}")
    arguments = arguments or {}
    try:
        try:
            schema = await _input_schema(srv, found, auth)
        except APIError:
            raise
        except Exception:  # the run reports what is wrong with the graph
            schema = {"type": "object"}
        problem = _argument_error(schema, arguments)
        if problem is not None:
            return _error(f"Invalid arguments for tool {name}: {problem}")
        run = await start_run(
            srv,
            models.RunCreate(assistant_id=found["assistant_id"], input=arguments),
            thread_id=None,
            auth=auth,
            headers=headers,
        )
    except APIError as exc:
        return _error(f"{exc.status_code}: {exc.detail}")
    outcome = await wait_for(srv, run)
    if outcome.error is not None:
        return _error(f"{outcome.error.get('error')}: {outcome.error.get('message')}")
    values = outcome.values if outcome.values is not None else {}
    text = serde.dumps(values).decode()
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=values if isinstance(values, dict) else None,
        is_error=False,
    )


def _context(ctx: Any) -> tuple["Server", AuthContext]:
    """The graphdock server and the caller of an MCP request (authenticated by the route)."""
    request = ctx.request
    return request.app.state.server, getattr(request.state, "auth", None) or ANONYMOUS


async def _on_list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    srv, auth = _context(ctx)
    return types.ListToolsResult(tools=await list_tools(srv, auth))


async def _on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    srv, auth = _context(ctx)
    headers = getattr(ctx.request.state, "run_headers", None)
    return await call_tool(srv, params.name, params.arguments, auth, headers)


def session_manager() -> StreamableHTTPSessionManager:
    """The MCP transport of one API process (enter its ``run()`` for the app's lifetime)."""
    # stateless: the transport logs the end of a "session" at INFO for every request
    logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
    server: MCPServer[Any] = MCPServer(
        "graphdock",
        version=__version__,
        instructions="Each tool runs one assistant of this graphdock server and returns its output.",
        on_list_tools=_on_list_tools,
        on_call_tool=_on_call_tool,
    )
    return StreamableHTTPSessionManager(server, stateless=True, json_response=True)

