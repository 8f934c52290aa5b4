"""A2A (protocol 0.3, JSON-RPC 2.0): every assistant whose graph takes ``messages`` is an agent.

``POST /a2a/{assistant_id}`` takes ``message/send``, ``message/stream`` (SSE),
``tasks/get`` and ``tasks/cancel``; ``GET /.well-known/agent-card.json?assistant_id=``
describes the agent. See :mod:`graphdock.integrations.a2a_tasks` for how runs, threads
and messages map to tasks, contexts and A2A messages.

A message becomes the input of a run on its context's thread (``contextId``; a new
thread when absent): its text parts one human message (``messages``), its data parts
merged into the input. A message naming a task (``taskId``) that waits for input
(input-required) resumes that run's thread instead (``Command(resume=...)``: the text, or
a data part's ``resume``). Every run goes through the runs service (``threads.create_run``
authorization, queue, event log); reading a task checks ``threads.read``; streaming reads
the run's event log (its ``messages-tuple`` tokens become pieces of the reply artifact), so
a deployment's API processes and workers may each do their part.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncIterator

import orjson
from a2a.compat.v0_3 import types as a2a
from pydantic import BaseModel, ValidationError

from graphdock import models, serde
from graphdock.auth import AuthContext
from graphdock.backends.base import Row
from graphdock.errors import APIError, BadRequest, NotFound, Unprocessable
from graphdock.integrations.a2a_tasks import TERMINAL, build_task, dump, message_text
from graphdock.integrations.runs import run_events, start_run, wait_for
from graphdock.services.common import parse_uuid

if TYPE_CHECKING:
    from graphdock.server import Server

PROTOCOL_VERSION = "0.3.0"
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
TASK_NOT_FOUND, TASK_NOT_CANCELABLE, PUSH_NOT_SUPPORTED, UNSUPPORTED, CONTENT_TYPE = -32001, -32002, -32003, -32004, -32005
_UNSUPPORTED_METHODS = {
    "tasks/resubscribe",
    "tasks/pushNotificationConfig/set",
    "tasks/pushNotificationConfig/get",
    "tasks/pushNotificationConfig/list",
    "tasks/pushNotificationConfig/delete",
    "agent/getAuthenticatedExtendedCard",
}


class RPCError(Exception):
    """A JSON-RPC error answer."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_answer(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def result_answer(request_id: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def _unknown_fields(model: BaseModel, data: Any, where: str) -> list[str]:
    """Names in ``data`` that ``model`` (validated from it) has no field for, recursively."""
    if not isinstance(data, dict):
        return []
    if hasattr(model, "root"):
        return _unknown_fields(model.root, data, where)  # type: ignore[attr-defined]
    fields = type(model).model_fields
    by_alias = {(info.alias or name): name for name, info in fields.items()} | {name: name for name in fields}
    out = []
    for key, value in data.items():
        name = by_alias.get(key)
        if name is None:
            out.append(f"{where}{key}")
            continue
        attr = getattr(model, name, None)
        items = list(zip(attr, value)) if isinstance(attr, list) and isinstance(value, list) else [(attr, value)]
        for sub, raw in items:
            if isinstance(sub, BaseModel):
                out.extend(_unknown_fields(sub, raw, f"{where}{key}."))
    return out


def parse_params(model: type[BaseModel], params: Any, allow: tuple[str, ...] = ()) -> tuple[BaseModel, dict[str, Any]]:
    """``params`` validated as ``model``; unknown fields are an error (``allow``: extra
    names taken as they are, returned apart)."""
    if not isinstance(params, dict):
        raise RPCError(INVALID_PARAMS, "params: expected an object")
    extra = {k: params[k] for k in allow if k in params}
    rest = {k: v for k, v in params.items() if k not in allow}
    try:
        parsed = model.model_validate(rest)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RPCError(INVALID_PARAMS, f"Invalid params: {where}: {first['msg']}") from None
    unknown = _unknown_fields(parsed, rest, "")
    if unknown:
        raise RPCError(INVALID_PARAMS, f"Invalid params: unknown field(s) {', '.join(unknown)}")
    return parsed, extra


def _id(value: Any, what: str) -> str:
    try:
        return parse_uuid(str(value), what)
    except Unprocessable:
        raise RPCError(INVALID_PARAMS, f"Invalid {what} id '{value}': expected a UUID") from None


class Agent:
    """One assistant seen as an A2A agent by one caller."""

    def __init__(
        self,
        srv: "Server",
        assistant: Row,
        schemas: dict[str, Any],
        auth: AuthContext,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.srv = srv
        self.headers = headers
        self.assistant = assistant
        self.assistant_id: str = assistant["assistant_id"]
        input_schema = schemas.get("input_schema") or {}
        self.takes_messages = "messages" in (input_schema.get("properties") or {})
        self.auth = auth

    @classmethod
    async def open(cls, srv: "Server", assistant_id: str, auth: AuthContext) -> "Agent":
        """The agent of ``assistant_id`` (404 when ``auth`` may not read the assistant)."""
        resolved = srv.assistants.resolve_id(assistant_id)
        assistant = await srv.assistants.get(resolved, auth)
        schemas = await srv.assistants.schemas(resolved, auth)
        return cls(srv, assistant, schemas, auth)

    # -- the agent card ----------------------------------------------------------------

    def card(self, base_url: str) -> dict[str, Any]:
        if not self.takes_messages:
            raise BadRequest(
                f"Assistant {self.assistant_id} cannot be an A2A agent: the input of its graph "
                f"'{self.assistant['graph_id']}' has no 'messages' field"
            )
        row = self.assistant
        description = row.get("description") or getattr(
            getattr(self.srv.hosting.graphs.get(row["graph_id"]), "spec", None), "description", None
        ) or f"The {row['graph_id']} graph served by graphdock"
        card = a2a.AgentCard(
            name=row.get("name") or row["graph_id"],
            description=description,
            url=f"{base_url}/a2a/{self.assistant_id}",
            version=str(row.get("version") or 1),
            protocol_version=PROTOCOL_VERSION,
            preferred_transport="JSONRPC",
            capabilities=a2a.AgentCapabilities(streaming=True, push_notifications=False, state_transition_history=False),
            default_input_modes=["text/plain", "application/json"],
            default_output_modes=["text/plain", "application/json"],
            skills=[
                a2a.AgentSkill(
                    id=f"{row['graph_id']}-main",
                    name=row.get("name") or row["graph_id"],
                    description=description,
                    tags=["assistant", row["graph_id"]],
                )
            ],
        )
        return dump(card)

    # -- tasks --------------------------------------------------------------------------

    async def _run(self, task_id: str, context_id: str | None) -> Row:
        """The run of a task this caller may read (TaskNotFound otherwise)."""
        task_id = _id(task_id, "task")
        if context_id is None:
            row = await self.srv.storage.get_run(task_id)
            if row is None:
                raise RPCError(TASK_NOT_FOUND, f"Task {task_id} not found")
            context_id = row["thread_id"]
        try:
            run = await self.srv.runs.get(_id(context_id, "context"), task_id, self.auth)
        except NotFound:
            raise RPCError(TASK_NOT_FOUND, f"Task {task_id} not found") from None
        if run["assistant_id"] != self.assistant_id:
            raise RPCError(TASK_NOT_FOUND, f"Task {task_id} not found")
        return run

    async def task(self, run: Row, history_length: int | None = None) -> a2a.Task:
        """The task of ``run`` as it is now."""
        run = await self.srv.storage.get_run(run["run_id"], run["thread_id"]) or run
        thread = await self.srv.threads.get(run["thread_id"], self.auth)
        newest = await self.srv.storage.list_runs(run["thread_id"], limit=1, offset=0, status=None)
        latest = bool(newest) and newest[0]["run_id"] == run["run_id"]
        return build_task(run, thread, latest=latest, history_length=history_length)

    async def get_task(self, params: Any) -> dict[str, Any]:
        query, extra = parse_params(a2a.TaskQueryParams, params, allow=("contextId",))
        assert isinstance(query, a2a.TaskQueryParams)
        run = await self._run(query.id, extra.get("contextId"))
        return dump(await self.task(run, query.history_length))

    async def cancel_task(self, params: Any) -> dict[str, Any]:
        query, extra = parse_params(a2a.TaskIdParams, params, allow=("contextId",))
        assert isinstance(query, a2a.TaskIdParams)
        run = await self._run(query.id, extra.get("contextId"))
        if run["status"] not in ("pending", "running"):
            state = (await self.task(run)).status.state
            raise RPCError(TASK_NOT_CANCELABLE, f"Task {run['run_id']} is {state.value} and cannot be canceled")
        try:
            await self.srv.runs.cancel(run["thread_id"], [run["run_id"]], action="interrupt", wait=True, auth=self.auth)
        except NotFound:
            pass  # it ended meanwhile: the task shows how
        return dump(await self.task(run))

    # -- messages -----------------------------------------------------------------------

    async def _prepare(
        self, params: Any, stream_mode: list[str] | None = None
    ) -> tuple[models.RunCreate, str, a2a.MessageSendParams]:
        """The run a ``message/send`` or ``message/stream`` asks for, and its thread."""
        parsed, _ = parse_params(a2a.MessageSendParams, params)
        assert isinstance(parsed, a2a.MessageSendParams)
        message = parsed.message
        config = parsed.configuration
        if config is not None and config.push_notification_config is not None:
            raise RPCError(PUSH_NOT_SUPPORTED, "Push notifications are not supported")
        if message.role != a2a.Role.user:
            raise RPCError(INVALID_PARAMS, "Invalid params: message.role must be 'user'")
        if message.reference_task_ids or message.extensions:
            raise RPCError(UNSUPPORTED, "message.referenceTaskIds and message.extensions are not supported")
        texts, data = [], {}
        for part in message.parts:
            root = part.root
            if isinstance(root, a2a.TextPart):
                texts.append(root.text)
            elif isinstance(root, a2a.DataPart):
                data.update(root.data)
            else:
                raise RPCError(CONTENT_TYPE, "Only text and data parts are supported; file parts are not")
        if not texts and not data:
            raise RPCError(INVALID_PARAMS, "Invalid params: message.parts has no text or data part")
        if texts and not self.takes_messages:
            raise RPCError(
                INVALID_PARAMS,
                f"Text parts need an assistant whose graph input has a 'messages' field; "
                f"'{self.assistant['graph_id']}' has none (send a data part)",
            )
        text = "\n".join(texts)
        thread_id = _id(message.context_id, "context") if message.context_id else serde.uuid7()
        command = None
        if message.task_id:
            run = await self._run(message.task_id, thread_id if message.context_id else None)
            thread_id = run["thread_id"]
            state = (await self.task(run)).status.state
            if state in TERMINAL:
                raise RPCError(
                    INVALID_PARAMS,
                    f"Task {run['run_id']} is {state.value} and takes no more messages (send without taskId)",
                )
            if state == a2a.TaskState.input_required:
                command = {"resume": data["resume"] if "resume" in data else text}
        metadata = {**(parsed.metadata or {}), **(message.metadata or {})}
        run_input = None
        if command is None:
            run_input = dict(data)
            if texts:
                run_input["messages"] = [{"type": "human", "content": text, "id": message.message_id}]
        try:
            body = models.RunCreate(
                assistant_id=self.assistant_id,
                input=run_input,
                command=command,
                metadata=metadata or None,
                if_not_exists="create",
                stream_mode=stream_mode or ["values"],
            )
        except ValidationError as exc:
            raise RPCError(INVALID_PARAMS, f"Invalid params: {exc.errors()[0]['msg']}") from None
        return body, thread_id, parsed

    async def _start(self, body: models.RunCreate, thread_id: str) -> Row:
        try:
            return await start_run(self.srv, body, thread_id=thread_id, auth=self.auth, headers=self.headers)
        except APIError as exc:
            code = TASK_NOT_FOUND if exc.status_code == 404 else INVALID_PARAMS
            raise RPCError(code, str(exc.detail)) from None

    async def send(self, params: Any) -> dict[str, Any]:
        body, thread_id, parsed = await self._prepare(params)
        run = await self._start(body, thread_id)
        config = parsed.configuration
        if config is None or config.blocking is not False:
            await wait_for(self.srv, run)
        return dump(await self.task(run, config.history_length if config else None))

    async def stream(self, params: Any) -> AsyncIterator[dict[str, Any]]:
        """Check and start the run, then (the returned iterator) its task's events: the
        task, ``working``, the reply artifact as the model's tokens come (see
        :class:`_ReplyTokens`), the whole reply artifact, the final status."""
        body, thread_id, parsed = await self._prepare(params, ["values", "messages-tuple"])
        run = await self._start(body, thread_id)
        return self._events(run, parsed)

    async def _events(self, run: Row, parsed: a2a.MessageSendParams) -> AsyncIterator[dict[str, Any]]:
        run_id, context_id = run["run_id"], run["thread_id"]
        events = run_events(self.srv, run)  # from the run's start: nothing published before is missed
        first = a2a.Task(
            id=run_id,
            context_id=context_id,
            status=a2a.TaskStatus(state=a2a.TaskState.submitted, timestamp=run.get("created_at")),
            history=[parsed.message.model_copy(update={"context_id": context_id, "task_id": run_id})],
        )
        tokens = _ReplyTokens(run_id, context_id)
        try:
            yield dump(first)
            yield dump(_status(run_id, context_id, a2a.TaskState.working, final=False))
            async for event in events:
                if event.event == "messages":
                    update = tokens.add(orjson.loads(event.data))
                    if update is not None:
                        yield dump(update)
        finally:
            await events.aclose()
        task = await self.task(run)
        for artifact in task.artifacts or ():
            yield dump(a2a.TaskArtifactUpdateEvent(task_id=run_id, context_id=context_id, artifact=artifact, last_chunk=True))
        yield dump(_status(run_id, context_id, task.status.state, final=True, message=task.status.message))


class _ReplyTokens:
    """The AI messages of a run's ``messages-tuple`` events as updates of its reply artifact:
    each message's first piece replaces the artifact's text, the next ones are appended (the
    final update, once the run has ended, carries the whole reply)."""

    def __init__(self, run_id: str, context_id: str) -> None:
        self.run_id, self.context_id = run_id, context_id
        self.current: str | None = None
        self.chunked: set[str] = set()

    def add(self, data: Any) -> a2a.TaskArtifactUpdateEvent | None:
        message = data[0] if isinstance(data, list) and data else None
        if not isinstance(message, dict) or message.get("type") not in ("AIMessageChunk", "ai"):
            return None
        message_id = str(message.get("id") or "")
        if message["type"] == "AIMessageChunk":
            self.chunked.add(message_id)
        elif message_id in self.chunked:
            return None  # the whole message after its tokens: already sent
        text = message_text(message)
        if not text:
            return None
        append = message_id == self.current
        self.current = message_id
        artifact = a2a.Artifact(
            artifact_id=f"{self.run_id}-reply", name="Assistant Response", parts=[a2a.Part(root=a2a.TextPart(text=text))]
        )
        return a2a.TaskArtifactUpdateEvent(
            task_id=self.run_id, context_id=self.context_id, artifact=artifact, append=append, last_chunk=False
        )


def _status(
    run_id: str, context_id: str, state: a2a.TaskState, *, final: bool, message: a2a.Message | None = None
) -> a2a.TaskStatusUpdateEvent:
    return a2a.TaskStatusUpdateEvent(
        task_id=run_id,
        context_id=context_id,
        status=a2a.TaskStatus(state=state, message=message, timestamp=serde.now_iso()),
        final=final,
    )


async def handle(
    srv: "Server", assistant_id: str, raw: bytes, auth: AuthContext, headers: dict[str, str] | None = None
) -> Any:
    """Answer one JSON-RPC request: a JSON-RPC answer (dict), or for ``message/stream`` an
    async iterator of them. A caller who may not read the assistant gets a 404 (APIError).
    ``headers``: the request headers that go into the configurable of the runs it starts."""
    try:
        envelope = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return error_answer(None, PARSE_ERROR, "Parse error: the body is not JSON")
    if not isinstance(envelope, dict):
        return error_answer(None, INVALID_REQUEST, "Invalid Request: expected a JSON-RPC 2.0 request object")
    request_id = envelope.get("id")
    unknown = set(envelope) - {"jsonrpc", "id", "method", "params"}
    if (
        envelope.get("jsonrpc") != "2.0"
        or not isinstance(envelope.get("method"), str)
        or not isinstance(request_id, (str, int))
        or isinstance(request_id, bool)
        or unknown
    ):
        detail = f"unknown field(s) {', '.join(sorted(unknown))}" if unknown else "jsonrpc '2.0', a string method and an id are required"
        return error_answer(request_id if isinstance(request_id, (str, int)) else None, INVALID_REQUEST, f"Invalid Request: {detail}")
    agent = await Agent.open(srv, assistant_id, auth)
    agent.headers = headers
    method, params = envelope["method"], envelope.get("params")
    try:
        if method == "message/send":
            return result_answer(request_id, await agent.send(params))
        if method == "message/stream":
            events = await agent.stream(params)
            return _answers(request_id, events)
        if method == "tasks/get":
            return result_answer(request_id, await agent.get_task(params))
        if method == "tasks/cancel":
            return result_answer(request_id, await agent.cancel_task(params))
        if method in _UNSUPPORTED_METHODS:
            raise RPCError(UNSUPPORTED, f"{method} is not supported")
        raise RPCError(METHOD_NOT_FOUND, f"Method not found: {method}")
    except RPCError as exc:
        return error_answer(request_id, exc.code, exc.message)
    except APIError as exc:
        return _api_error(request_id, exc)


def _api_error(request_id: Any, exc: APIError) -> dict[str, Any]:
    """A service's refusal (403, 404, 409, 422...) as a JSON-RPC error naming its status."""
    code = INVALID_PARAMS if exc.status_code in (400, 422) else INVALID_REQUEST
    return error_answer(request_id, code, f"{exc.status_code}: {exc.detail}")


async def _answers(request_id: Any, events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    try:
        async for event in events:
            yield result_answer(request_id, event)
    except APIError as exc:
        yield _api_error(request_id, exc)


async def agent_card(srv: "Server", assistant_id: str, auth: AuthContext, base_url: str) -> dict[str, Any]:
    """The agent card of ``assistant_id`` (404 when unreadable, 400 without ``messages``)."""
    agent = await Agent.open(srv, assistant_id, auth)
    return agent.card(base_url)
