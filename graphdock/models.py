"""Request bodies of the HTTP API.

Every model forbids unknown fields: a field graphdock does not know is a 422 that
names it, never silently dropped. Fields accepted for client compatibility but not
acted upon are documented on the field.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from graphdock.bounds import (
    MAX_DELAY_SECONDS, MAX_INT32, MAX_INT64, MAX_OFFSET, MAX_TTL_MINUTES, MIN_TTL_MINUTES, RAW_CHECKED,
    check_json,
)

Metadata = Optional[dict[str, Any]]
Json = Any


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    _checked_by_service: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        """A JSON ``null`` for a field that has a default but cannot be null (``limit``,
        ``if_exists``, ...) means "not given", as JS clients send ``null`` for unset options."""
        if not isinstance(data, dict):
            return data
        defaulted = _non_nullable_defaults(cls)
        if not any(data.get(key, 0) is None for key in defaulted):
            return data
        return {key: value for key, value in data.items() if not (value is None and key in defaulted)}

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any, info: ValidationInfo) -> Any:
        """Every value storable on every backend (:mod:`graphdock.bounds`): 422 naming
        the first one that is not (a NUL character, a non-finite or oversized number,
        nesting too deep). Fields in ``_checked_by_service`` are left to the service, whose
        own message names the problem (a store namespace's labels). Nothing to look at
        when the body's bytes said so (``bounds.RAW_CHECKED``: the run fast path)."""
        if info.context is RAW_CHECKED:
            return data
        if cls._checked_by_service and isinstance(data, dict):
            check_json({k: v for k, v in data.items() if k not in cls._checked_by_service})
            return data
        return check_json(data)


def _admits_none(annotation: Any) -> bool:
    if annotation is None or annotation is type(None) or annotation is Any:
        return True
    return any(_admits_none(arg) for arg in get_args(annotation) if get_origin(annotation) is not Literal)


_DEFAULTED: dict[type, frozenset[str]] = {}


def _non_nullable_defaults(model: type[BaseModel]) -> frozenset[str]:
    names = _DEFAULTED.get(model)
    if names is None:
        names = frozenset(
            name
            for name, field in model.model_fields.items()
            if not field.is_required() and not _admits_none(field.annotation)
        )
        _DEFAULTED[model] = names
    return names


class Config(BaseModel):
    """A RunnableConfig. Known keys are typed; other top-level keys pass to the graph."""

    model_config = ConfigDict(extra="allow")

    tags: Optional[list[str]] = None
    recursion_limit: Optional[int] = Field(None, ge=1, le=MAX_INT32)
    configurable: Optional[dict[str, Any]] = None
    metadata: Optional[dict[str, Any]] = None
    run_name: Optional[str] = None
    max_concurrency: Optional[int] = Field(None, ge=1, le=MAX_INT32)


class CheckpointRef(Body):
    thread_id: Optional[str] = None
    checkpoint_ns: Optional[str] = ""
    checkpoint_id: Optional[str] = None
    checkpoint_map: Optional[dict[str, Any]] = None


# -- assistants ----------------------------------------------------------------

class AssistantCreate(Body):
    assistant_id: Optional[str] = None
    graph_id: str
    config: Optional[Config] = None
    context: Optional[dict[str, Any]] = None
    metadata: Metadata = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: Optional[str] = None
    description: Optional[str] = None


class AssistantPatch(Body):
    graph_id: Optional[str] = None
    config: Optional[Config] = None
    context: Optional[dict[str, Any]] = None
    metadata: Metadata = None
    name: Optional[str] = None
    description: Optional[str] = None


AssistantSortBy = Literal["assistant_id", "created_at", "updated_at", "name", "graph_id"]
AssistantSelect = Literal[
    "assistant_id", "graph_id", "name", "description", "config", "context",
    "created_at", "updated_at", "metadata", "version",
]


class AssistantSearch(Body):
    graph_id: Optional[str] = None
    name: Optional[str] = None
    metadata: Metadata = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    sort_by: Optional[AssistantSortBy] = None
    sort_order: Optional[Literal["asc", "desc"]] = None
    select: Optional[list[AssistantSelect]] = None


class AssistantCount(Body):
    graph_id: Optional[str] = None
    name: Optional[str] = None
    metadata: Metadata = None


class AssistantVersionsSearch(Body):
    metadata: Metadata = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class AssistantSetLatest(Body):
    version: int = Field(..., ge=1, le=MAX_INT32)


# -- threads -------------------------------------------------------------------

class SuperstepUpdate(Body):
    values: Json = None
    command: Optional[dict[str, Any]] = None
    as_node: str


class Superstep(Body):
    updates: list[SuperstepUpdate]


def _no_state_select(value: Any) -> Any:
    if value:
        raise ValueError("selecting parts of a thread state is not supported yet; omit select")
    return value


class ThreadTTL(Body):
    """A thread's time to live: swept ``ttl`` minutes after its last update."""

    strategy: Literal["delete", "keep_latest"] = "delete"
    ttl: float = Field(..., gt=0, le=MAX_TTL_MINUTES, description="Minutes after the thread's last update until it is swept.")


class ThreadCreate(Body):
    thread_id: Optional[str] = None
    metadata: Metadata = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    supersteps: Optional[list[Superstep]] = None
    ttl: Optional[ThreadTTL] = None


class ThreadPatch(Body):
    metadata: Metadata = None
    ttl: Optional[ThreadTTL] = None


ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
ThreadSortBy = Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"]
ThreadSelect = Literal[
    "thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "config",
    "status", "values", "interrupts",
]


class ThreadSearch(Body):
    ids: Optional[list[str]] = None
    metadata: Metadata = None
    values: Optional[dict[str, Any]] = None
    status: Optional[ThreadStatus] = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    sort_by: Optional[ThreadSortBy] = None
    sort_order: Optional[Literal["asc", "desc"]] = None
    select: Optional[list[ThreadSelect]] = None
    extract: Optional[dict[str, str]] = None

    @field_validator("extract")
    @classmethod
    def _extract_paths(cls, value: Optional[dict[str, str]]) -> Optional[dict[str, str]]:
        for alias, path in (value or {}).items():
            root = path.split(".", 1)[0].split("[", 1)[0]
            if root not in ("values", "metadata", "config", "interrupts"):
                raise ValueError(
                    f"extract path for '{alias}' must start with values, metadata, config or interrupts"
                )
        return value


class ThreadCount(Body):
    metadata: Metadata = None
    values: Optional[dict[str, Any]] = None
    status: Optional[ThreadStatus] = None


class ThreadPrune(Body):
    thread_ids: list[str]
    strategy: Literal["delete", "keep_latest"] = "delete"


class ThreadStateUpdate(Body):
    values: Json = None
    as_node: Optional[str] = None
    checkpoint: Optional[CheckpointRef] = None
    checkpoint_id: Optional[str] = None


class ThreadStateAtCheckpoint(Body):
    checkpoint: CheckpointRef
    subgraphs: bool = False
    select: Optional[list[str]] = Field(None, description="Not supported yet: a non-empty list is rejected.")

    _select = field_validator("select")(classmethod(lambda cls, v: _no_state_select(v)))


class ThreadHistory(Body):
    limit: int = Field(1, ge=1, le=1000)
    before: Optional[Union[str, dict[str, Any]]] = None
    metadata: Metadata = None
    checkpoint: Optional[CheckpointRef] = None
    select: Optional[list[str]] = Field(None, description="Not supported yet: a non-empty list is rejected.")

    _select = field_validator("select")(classmethod(lambda cls, v: _no_state_select(v)))


# -- store ---------------------------------------------------------------------

class StorePut(Body):
    _checked_by_service = frozenset({"namespace"})  # its labels: NUL, periods, empty
    namespace: list[str]
    key: str
    value: dict[str, Any]
    index: Optional[Union[Literal[False], list[str]]] = None
    ttl: Optional[float] = Field(None, ge=0, le=MAX_TTL_MINUTES)

    @field_validator("ttl")
    @classmethod
    def _ttl_resolution(cls, value: Optional[float]) -> Optional[float]:
        if value and value < MIN_TTL_MINUTES:  # the store writes it as a decimal number of seconds
            raise ValueError(f"a time to live is 0 or at least {MIN_TTL_MINUTES} minutes")
        return value


class StoreDelete(Body):
    _checked_by_service = frozenset({"namespace"})
    namespace: list[str]
    key: str


class StoreSearch(Body):
    _checked_by_service = frozenset({"namespace_prefix"})
    namespace_prefix: list[str] = Field(default_factory=list)
    filter: Optional[dict[str, Any]] = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    query: Optional[str] = None
    refresh_ttl: Optional[bool] = None


class StoreListNamespaces(Body):
    prefix: Optional[list[str]] = None
    suffix: Optional[list[str]] = None
    max_depth: Optional[int] = Field(None, ge=1, le=MAX_INT32)
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


# -- runs ----------------------------------------------------------------------

StreamMode = Literal[
    "values", "messages", "messages-tuple", "updates", "events", "debug", "tasks", "checkpoints", "custom"
]


class RunCreate(Body):
    """A run request (thread runs and stateless runs share it)."""

    assistant_id: str
    input: Json = None
    command: Optional[dict[str, Any]] = None
    metadata: Metadata = None
    config: Optional[Config] = None
    context: Optional[dict[str, Any]] = None
    checkpoint_id: Optional[str] = None
    checkpoint: Optional[dict[str, Any]] = None
    interrupt_before: Optional[Union[Literal["*"], list[str]]] = None
    interrupt_after: Optional[Union[Literal["*"], list[str]]] = None
    stream_mode: Optional[Union[StreamMode, list[StreamMode]]] = None
    stream_subgraphs: Optional[bool] = False
    stream_resumable: Optional[bool] = False
    multitask_strategy: Optional[Literal["reject", "interrupt", "rollback", "enqueue"]] = None
    if_not_exists: Optional[Literal["reject", "create"]] = None
    on_disconnect: Optional[Literal["cancel", "continue"]] = None
    on_completion: Optional[Literal["delete", "keep"]] = None
    after_seconds: Optional[float] = Field(None, ge=0, le=MAX_DELAY_SECONDS)
    durability: Optional[Literal["sync", "async", "exit"]] = None
    checkpoint_during: Optional[bool] = None
    strict_resume: Optional[bool] = None
    webhook: Optional[str] = None
    feedback_keys: Optional[list[str]] = None
    langsmith_tracer: Optional[dict[str, Any]] = None

    @field_validator("command")
    @classmethod
    def _command(cls, value: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        if value is None:
            return None
        unknown = set(value) - {"resume", "update", "goto"}
        if unknown:
            raise ValueError(f"unknown command keys {sorted(unknown)}; expected resume, update, goto")
        goto = value.get("goto")
        items = goto if isinstance(goto, list) else [goto] if goto is not None else []
        for item in items:
            if isinstance(item, dict) and "node" not in item:
                raise ValueError("command.goto items given as objects need a 'node'")
            if not isinstance(item, (str, dict)):
                raise ValueError("command.goto must be a node name, a {node, input} object or a list of them")
        return value

    @field_validator("feedback_keys")
    @classmethod
    def _feedback(cls, value: Optional[list[str]]) -> Optional[list[str]]:
        if value:
            raise ValueError("feedback_keys need LangSmith, which this server does not use")
        return None

    @field_validator("langsmith_tracer")
    @classmethod
    def _tracer(cls, value: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        if value:
            raise ValueError("langsmith_tracer needs LangSmith, which this server does not use")
        return None


class BatchRunCreate(RunCreate):
    """One item of ``POST /runs/batch``.

    The JS SDK's ``runs.createBatch`` sends each payload as the caller wrote it, with
    camelCase keys (``assistantId``, ``streamMode``, ``onCompletion``, ...) next to the
    ``assistant_id`` it adds. The camelCase name of every field is therefore accepted
    as a synonym and honoured like the snake_case one; giving both with different values
    is a 422. Any other key is still unknown.
    """

    @model_validator(mode="before")
    @classmethod
    def _camel_case_synonyms(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out: dict[str, Any] = {}
        given_as: dict[str, str] = {}
        for key, value in data.items():
            name = _RUN_FIELD_SYNONYMS.get(key, key)
            if name in out and out[name] != value:
                raise ValueError(f"'{given_as[name]}' and '{key}' name the same field with different values")
            out[name] = value
            given_as[name] = key
        return out


_RUN_FIELD_SYNONYMS = {to_camel(name): name for name in RunCreate.model_fields if to_camel(name) != name}
_RUN_FIELD_SYNONYMS["_langsmithTracer"] = "langsmith_tracer"


class RunsCancel(Body):
    status: Optional[Literal["pending", "running", "all"]] = None
    thread_id: Optional[str] = None
    run_ids: Optional[list[str]] = None


class ProtocolEventStream(Body):
    """``POST /threads/{thread_id}/stream/events``: which events the stream carries and
    where it starts (the protocol's ``EventStreamRequest``)."""

    channels: list[str] = Field(..., min_length=1)
    namespaces: Optional[list[list[str]]] = None
    depth: Optional[int] = Field(None, ge=0, le=MAX_INT32)
    since: Optional[int] = Field(None, ge=0, le=MAX_INT64)
