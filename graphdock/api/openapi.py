"""The OpenAPI document: FastAPI's, made to describe what the server really accepts.

FastAPI derives the document from the routes' signatures and request models. Some of
what a route accepts is only known to the code behind it: ids that must be UUIDs,
``assistant_id`` values that are a UUID or one of the served graphs, run fields that
apply only on some endpoints, query parameters read as enums, the command envelope a
route parses itself, and graphdock's error bodies (``{"detail": "..."}``). This module
adds that knowledge to the generated document, once, so that a client (or a fuzzer)
reading it sends requests the server can act upon.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Iterable

from graphdock.bounds import MAX_INT64, MAX_TTL_MINUTES, MIN_TTL_MINUTES

UUID = {"type": "string", "format": "uuid"}
RUN_STATUSES = ["pending", "running", "success", "error", "timeout", "interrupted"]
RUN_COLUMNS = [
    "run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status", "metadata",
    "kwargs", "multitask_strategy", "langsmith_session_name",
]  # fmt: skip
STREAM_MODES = ["values", "messages", "messages-tuple", "updates", "events", "debug", "tasks", "checkpoints", "custom"]
THREAD_STREAM_MODES = ["run_modes", "lifecycle", "state_update"]
BOOLEAN_TEXT = {"type": "string", "enum": ["true", "false"]}


def _cron_field(number: str) -> str:
    item = rf"(\*|{number}(-{number})?)(/[1-9][0-9]?)?"
    return rf"{item}(,{item})*"


# numeric 5-field cron schedules (the document's description of what croniter accepts)
CRON_PATTERN = "^" + " ".join(
    _cron_field(n) for n in ("[0-5]?[0-9]", "(1?[0-9]|2[0-3])", "([1-9]|[12][0-9]|3[01])", "([1-9]|1[0-2])", "[0-7]")
) + "$"

# path parameters that are UUIDs wherever they appear (assistant_id: but on /graph)
_UUID_PATH_PARAMS = {"thread_id", "run_id", "cron_id", "assistant_id"}

# the run fields each run endpoint does not take (a 422 when given)
_RUN_VARIANTS: dict[str, tuple[str, ...]] = {
    "ThreadRunCreate": ("on_disconnect", "on_completion"),  # POST /threads/{id}/runs
    "ThreadRunAttached": ("on_completion",),  # /threads/{id}/runs/stream and /wait
    "StatelessRunCreate": ("on_disconnect",),  # POST /runs
    "StatelessRunAttached": (),  # /runs/stream and /wait
}
_RUN_ROUTES = {
    ("/threads/{thread_id}/runs", "post"): "ThreadRunCreate",
    ("/threads/{thread_id}/runs/stream", "post"): "ThreadRunAttached",
    ("/threads/{thread_id}/runs/wait", "post"): "ThreadRunAttached",
    ("/runs", "post"): "StatelessRunCreate",
    ("/runs/stream", "post"): "StatelessRunAttached",
    ("/runs/wait", "post"): "StatelessRunAttached",
}

ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string", "description": "What is wrong, naming the field."}},
    "required": ["detail"],
    "title": "Error",
}

COMMAND = {
    "type": "object",
    "title": "ProtocolCommand",
    "description": "A thread streaming protocol command envelope.",
    "properties": {
        "id": {"type": "integer", "minimum": 0, "maximum": MAX_INT64},
        "method": {"type": "string", "minLength": 1},
        "params": {"anyOf": [{"type": "object"}, {"type": "null"}]},
    },
    "required": ["id", "method"],
    "additionalProperties": False,
}

COMMAND_FIELD = {
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "resume": {},
                "update": {},
                "goto": {
                    "anyOf": [
                        {"type": "string"},
                        {"$ref": "#/components/schemas/GotoTarget"},
                        {"type": "array", "items": {"anyOf": [{"type": "string"}, {"$ref": "#/components/schemas/GotoTarget"}]}},
                        {"type": "null"},
                    ]
                },
            },
            "additionalProperties": False,
        },
        {"type": "null"},
    ],
    "title": "Command",
}

GOTO_TARGET = {
    "type": "object",
    "properties": {"node": {"type": "string"}, "input": {}},
    "required": ["node"],
    "title": "GotoTarget",
}


def _assistant_ref(graph_ids: list[str]) -> dict[str, Any]:
    return {
        "anyOf": [UUID, {"type": "string", "enum": graph_ids}],
        "description": "An assistant's UUID, or the id of a served graph (its default assistant).",
    }


def _operations(doc: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            if isinstance(op, dict):
                yield path, method, op


def _set_param(op: dict[str, Any], name: str, change: Callable[[dict[str, Any]], None]) -> None:
    for param in op.get("parameters", ()):
        if param.get("name") == name:
            change(param)


def _schema(param: dict[str, Any], schema: dict[str, Any], *, list_of: bool = False) -> None:
    param["schema"] = {"type": "array", "items": schema} if list_of else dict(schema)


def improve(doc: dict[str, Any], graph_ids: Iterable[str]) -> dict[str, Any]:
    """``doc`` (FastAPI's document) made accurate; changed in place and returned."""
    graphs = sorted(graph_ids)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    assistant = _assistant_ref(graphs) if graphs else {"type": "string"}

    # error bodies: {"detail": "..."} for every 4xx graphdock answers
    schemas["HTTPValidationError"] = dict(ERROR, title="HTTPValidationError")
    schemas.pop("ValidationError", None)

    # request bodies: what the code behind them checks
    schemas["GotoTarget"] = GOTO_TARGET
    for name in ("RunCreate", "BatchRunCreate", "CronCreate"):
        props = schemas.get(name, {}).get("properties", {})
        if "assistant_id" in props:
            props["assistant_id"] = dict(assistant, title="Assistant Id")
        if "command" in props:
            props["command"] = COMMAND_FIELD
        if "feedback_keys" in props:
            props["feedback_keys"] = {"anyOf": [{"type": "array", "items": {"type": "string"}, "maxItems": 0}, {"type": "null"}],
                                      "description": "Needs LangSmith: only an empty list or null is accepted."}  # fmt: skip
        if "langsmith_tracer" in props:
            props["langsmith_tracer"] = {"anyOf": [{"type": "object", "maxProperties": 0}, {"type": "null"}],
                                         "description": "Needs LangSmith: only an empty object or null is accepted."}  # fmt: skip
    for name in ("AssistantCreate", "AssistantPatch"):
        props = schemas.get(name, {}).get("properties", {})
        if "graph_id" in props and graphs:
            graph = {"type": "string", "enum": graphs, "title": "Graph Id"}
            props["graph_id"] = graph if name == "AssistantCreate" else {"anyOf": [graph, {"type": "null"}]}
    for name, field, many in (
        ("AssistantCreate", "assistant_id", False),
        ("ThreadCreate", "thread_id", False),
        ("ThreadSearch", "ids", True),
        ("ThreadPrune", "thread_ids", True),
        ("RunsCancel", "thread_id", False),
        ("RunsCancel", "run_ids", True),
        ("CronSearch", "thread_id", False),
    ):
        props = schemas.get(name, {}).get("properties", {})
        if field in props:
            uuid = {"type": "array", "items": UUID} if many else UUID
            required = field in schemas[name].get("required", ())
            props[field] = uuid if required else {"anyOf": [uuid, {"type": "null"}]}
    label = {"type": "string", "minLength": 1, "pattern": "^[^.\\x00]+$"}  # a namespace label
    for name, field, non_empty in (
        ("StorePut", "namespace", True),
        ("StoreDelete", "namespace", True),
        ("StoreSearch", "namespace_prefix", False),
    ):
        props = schemas.get(name, {}).get("properties", {})
        if field in props:
            props[field] = dict({"type": "array", "items": label}, **({"minItems": 1} if non_empty else {}))
    put = schemas.get("StorePut", {}).get("properties", {})
    if "ttl" in put:  # minutes: 0, or within the bounds
        put["ttl"] = {"anyOf": [{"type": "number", "minimum": MIN_TTL_MINUTES, "maximum": MAX_TTL_MINUTES},
                                {"type": "number", "enum": [0]}, {"type": "null"}], "title": "Ttl"}  # fmt: skip
    for name in ("CronCreate", "CronPatch"):
        props = schemas.get(name, {}).get("properties", {})
        if "schedule" in props:
            schedule = {"type": "string", "pattern": CRON_PATTERN,
                        "description": "A cron schedule: minute hour day-of-month month day-of-week "
                        "(names such as MON and JAN are accepted too)."}  # fmt: skip
            props["schedule"] = schedule if name == "CronCreate" else {"anyOf": [schedule, {"type": "null"}]}
    if "CronPatch" in schemas:
        schemas["CronPatch"]["minProperties"] = 1  # an empty patch is a 400
    if "RunsCancel" in schemas:  # status alone, or a thread and/or run ids
        statuses = {"type": "string", "enum": ["pending", "running", "all"]}
        schemas["RunsCancel"]["anyOf"] = [
            {"required": ["status"], "properties": {"status": statuses, "thread_id": {"type": "null"}, "run_ids": {"type": "null"}}},
            {"required": ["thread_id"], "properties": {"status": {"type": "null"}, "thread_id": UUID}},
            {"required": ["run_ids"], "properties": {"status": {"type": "null"}, "thread_id": {"type": "null"},
                                                    "run_ids": {"type": "array", "items": UUID, "minItems": 1}}},
        ]  # fmt: skip
    cron_search = schemas.get("CronSearch", {}).get("properties", {})
    if "assistant_id" in cron_search:
        cron_search["assistant_id"] = {"anyOf": [assistant, {"type": "null"}]}

    # run endpoints: one schema each, without the fields that endpoint refuses
    run = schemas.get("RunCreate")
    if run is not None:
        for variant, dropped in _RUN_VARIANTS.items():
            body = copy.deepcopy(run)
            body["title"] = variant
            for field in dropped:
                body["properties"].pop(field, None)
            if variant.startswith("Stateless") and "if_not_exists" in body["properties"]:
                body["properties"]["if_not_exists"] = {"anyOf": [{"type": "string", "enum": ["create"]}, {"type": "null"}]}
            schemas[variant] = body
    batch = schemas.get("BatchRunCreate")
    if batch is not None:
        for field in ("on_disconnect", "onDisconnect"):
            batch.get("properties", {}).pop(field, None)

    for path, method, op in _operations(doc):
        variant = _RUN_ROUTES.get((path, method))
        if variant is not None and variant in schemas:
            op["requestBody"]["content"]["application/json"]["schema"] = {"$ref": f"#/components/schemas/{variant}"}
        for name in _UUID_PATH_PARAMS:
            if name == "assistant_id" and not path.startswith("/assistants/"):
                continue  # another protocol's route: its own document says what it takes
            if name == "assistant_id" and path.endswith("/graph"):
                _set_param(op, name, lambda p: _schema(p, assistant))
            else:
                _set_param(op, name, lambda p: _schema(p, UUID))
        if path == "/threads/{thread_id}/runs" and method == "get":
            _set_param(op, "status", lambda p: _schema(p, {"type": "string", "enum": RUN_STATUSES}))
            _set_param(op, "select", lambda p: _schema(p, {"type": "string", "enum": RUN_COLUMNS}, list_of=True))
        if path.endswith("/runs/{run_id}/stream"):
            _set_param(op, "stream_mode", lambda p: _schema(p, {"type": "string", "enum": STREAM_MODES}, list_of=True))
        if path == "/threads/{thread_id}/stream":
            _set_param(op, "stream_mode", lambda p: _schema(p, {"type": "string", "enum": THREAD_STREAM_MODES}, list_of=True))
            _set_param(op, "stream_modes", lambda p: _schema(p, {"type": "string", "enum": THREAD_STREAM_MODES}))
        if path.startswith("/threads/{thread_id}/state") and method == "get":  # select: not supported yet
            _set_param(op, "select", lambda p: _schema(p, {"type": "array", "items": {"type": "string"}, "maxItems": 0}))
        if path.endswith("/cancel"):
            _set_param(op, "action", lambda p: _schema(p, {"type": "string", "enum": ["interrupt", "rollback"]}))
        if path == "/store/items" and method == "get":
            for name in ("key", "namespace"):
                _set_param(op, name, lambda p: (p.update(required=True), _schema(p, {"type": "string", "minLength": 1})))
            _set_param(op, "refresh_ttl", lambda p: _schema(p, BOOLEAN_TEXT))
        if path == "/threads/{thread_id}/commands" and method == "post":
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ProtocolCommand"}}}}
            schemas["ProtocolCommand"] = COMMAND
        for name in ("subgraphs", "recurse", "wait", "cancel_on_disconnect"):
            _set_param(op, name, lambda p: _schema(p, BOOLEAN_TEXT))
        for param in op.get("parameters", ()):
            if param.get("name") == "last-event-id":
                param["schema"] = {"type": "string", "pattern": "^(-1|-|[0-9]{1,18}(-([0-9]{1,18}|\\*))?)$"}
    return doc


def install(app: Any, graph_ids: Iterable[str]) -> None:
    """Serve the improved document from ``app.openapi()`` (``/openapi.json``, ``/docs``)."""
    generate = app.openapi
    graphs = list(graph_ids)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = improve(generate(), graphs)
        return app.openapi_schema

    app.openapi = openapi
