"""Graph factories: callables the server must call on every graph access.

Every factory builds the same topology as `simple` (START -> a -> b -> END, state `items`,
`ask`, `answer`, `fail`), with `context_schema=Ctx`, so
{"items": ["x"]} -> {"items": ["x", "a", "b"]} whichever factory served the run.

Observability across processes: if the env var GRAPHDOCK_FACTORY_LOG names a file, each
factory appends one JSON object per line to it:

  factory        -- the factory's name
  event          -- "call" (plain/async factories) | "enter" | "exit" (context-manager factories)
  access_context -- runtime.access_context, or null when the factory takes no ServerRuntime
  runtime_type   -- type(runtime).__name__ ("_ExecutionRuntime" / "_ReadRuntime"), or null
  user           -- null if runtime.user is None, else runtime.user.identity
  context        -- JSON-safe form of execution_runtime.context (null for read runtimes)
  context_type   -- type(execution_runtime.context).__name__ (null for read runtimes)
  config_type    -- type name of the `config` argument, or null when none was received
  config_keys    -- sorted keys of config["configurable"], or null
  pid            -- os.getpid() of the process that called the factory

Signatures covered: (config), (runtime: ServerRuntime), async (runtime: ServerRuntime[Ctx]),
async context manager, sync context manager, (config: RunnableConfig, runtime: ServerRuntime),
(), an unannotated single parameter named `runtime` (must receive the config), a factory
returning an uncompiled StateGraph, one returning a non-graph, and one raising ValueError.
String annotations are covered in factories_strings.py.
"""

import asyncio
import contextlib
import functools
import dataclasses
import json
import operator
import os
from dataclasses import dataclass
from typing import Annotated, Any, AsyncIterator, Iterator, Optional

from langchain_core.runnables import RunnableConfig
from typing_extensions import NotRequired, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from langgraph_sdk.runtime import ServerRuntime


@dataclass
class Ctx:
    model: str = "default-model"
    temperature: float = 0.5


class State(TypedDict):
    items: Annotated[list[str], operator.add]
    ask: NotRequired[bool]
    answer: NotRequired[str]
    fail: NotRequired[bool]
    sleep: NotRequired[float]


async def node_a(state: State) -> dict:
    if state.get("fail"):
        raise ValueError("boom from node_a")
    if state.get("sleep"):
        await asyncio.sleep(state["sleep"])
    return {"items": ["a"]}


def node_b(state: State) -> dict:
    update: dict = {"items": ["b"]}
    if state.get("ask"):
        update["answer"] = interrupt({"question": "approve?"})
    return update


def build_builder() -> StateGraph:
    """The one topology every factory in this module returns."""
    builder = StateGraph(State, context_schema=Ctx)
    builder.add_node("a", node_a)
    builder.add_node("b", node_b)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    return builder


def build_graph():
    return build_builder().compile()


# --- logging ---------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    try:
        return json.loads(json.dumps(value, default=repr))
    except (TypeError, ValueError):
        return repr(value)


def _identity(user: Any) -> Any:
    if user is None:
        return None
    if isinstance(user, dict):
        return user.get("identity")
    return getattr(user, "identity", repr(user))


def log_access(
    factory: str,
    event: str = "call",
    *,
    runtime: Any = None,
    config: Any = None,
) -> None:
    path = os.environ.get("GRAPHDOCK_FACTORY_LOG")
    if not path:
        return
    record: dict[str, Any] = {
        "factory": factory,
        "event": event,
        "access_context": None,
        "runtime_type": None,
        "user": None,
        "context": None,
        "context_type": None,
        "config_type": None if config is None else type(config).__name__,
        "config_keys": None,
        "pid": os.getpid(),
    }
    if isinstance(config, dict):
        record["config_keys"] = sorted((config.get("configurable") or {}).keys())
    if runtime is not None:
        record["access_context"] = runtime.access_context
        record["runtime_type"] = type(runtime).__name__
        record["user"] = _identity(runtime.user)
        ert = runtime.execution_runtime
        if ert is not None:
            record["context"] = _jsonable(ert.context)
            record["context_type"] = type(ert.context).__name__
    line = json.dumps(record, default=repr)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


# --- factories -------------------------------------------------------------------------------


def plain_factory(config):
    """One unannotated parameter: receives the RunnableConfig (a dict)."""
    log_access("plain_factory", config=config)
    return build_graph()


def runtime_factory(runtime: ServerRuntime):
    """Sync factory receiving the ServerRuntime."""
    log_access("runtime_factory", runtime=runtime)
    return build_graph()


async def async_factory(runtime: ServerRuntime[Ctx]):
    """Async factory (the server must await it) with a parameterised ServerRuntime."""
    log_access("async_factory", runtime=runtime)
    return build_graph()


@contextlib.asynccontextmanager
async def cm_factory(runtime: ServerRuntime[Ctx]) -> AsyncIterator[Any]:
    """Async context manager: entered before and exited after each access (a whole run)."""
    log_access("cm_factory", "enter", runtime=runtime)
    try:
        yield build_graph()
    finally:
        log_access("cm_factory", "exit", runtime=runtime)


@contextlib.contextmanager
def sync_cm_factory(runtime: ServerRuntime) -> Iterator[Any]:
    """Sync context manager: entered before and exited after each access."""
    log_access("sync_cm_factory", "enter", runtime=runtime)
    try:
        yield build_graph()
    finally:
        log_access("sync_cm_factory", "exit", runtime=runtime)


def two_param_factory(config: RunnableConfig, runtime: ServerRuntime):
    """Two parameters told apart by annotation; the server passes both by keyword."""
    log_access("two_param_factory", runtime=runtime, config=config)
    return build_graph()


def zero_param_factory():
    """No parameters at all."""
    log_access("zero_param_factory")
    return build_graph()


def unannotated_runtime_factory(runtime):
    """Named `runtime` but unannotated: detection is by annotation, so this gets the config."""
    log_access("unannotated_runtime_factory", config=runtime)
    return build_graph()


def builder_factory(runtime: ServerRuntime):
    """Returns an uncompiled StateGraph; the server compiles it on every access."""
    log_access("builder_factory", runtime=runtime)
    return build_builder()


def bad_return_factory():
    """Returns something that is not a graph (official server: HTTP 424 on access)."""
    log_access("bad_return_factory")
    return "not a graph"


def raising_factory():
    """Raises ValueError (official server: HTTP 400 with the message in HTTP contexts)."""
    log_access("raising_factory")
    raise ValueError("factory refused")


def crashing_factory():
    """Raises something other than ValueError: an internal error (500), traceback in the log."""
    log_access("crashing_factory")
    raise RuntimeError("factory crashed")


def shifting_factory(runtime: ServerRuntime):
    """Breaks the contract on purpose: an extra node only when executing (topology guard)."""
    log_access("shifting_factory", runtime=runtime)
    builder = build_builder()
    if runtime.execution_runtime is not None:
        builder.add_node("extra", lambda state: {"items": ["extra"]})
        builder.add_edge("b", "extra")
    return builder.compile()


# --- the ServerRuntime seed example, made real -----------------------------------------------


@dataclass
class SeedCtx:
    mcp_endpoint: str


@contextlib.asynccontextmanager
async def seed_factory(runtime: ServerRuntime[SeedCtx]) -> AsyncIterator[Any]:
    """The seed's conditional resource set-up: ert.context is a SeedCtx instance, and
    ensure_user() raises PermissionError when the server has no custom auth."""
    log_access("seed_factory", "enter", runtime=runtime)
    try:
        if ert := runtime.execution_runtime:
            endpoint = ert.context.mcp_endpoint  # attribute access: the context is typed
            if endpoint == "needs-user":
                runtime.ensure_user()
            builder = build_builder()
            yield builder.compile()
        else:
            yield build_graph()
    finally:
        log_access("seed_factory", "exit", runtime=runtime)


# --- the remaining factory forms: functools.partial and a callable object ----------------------


def _configured_factory(label: str, runtime: ServerRuntime):
    log_access(label, runtime=runtime)
    return build_graph()


partial_factory = functools.partial(_configured_factory, "partial_factory")


class CallableFactory:
    """A callable object: the server calls the instance like a function."""

    def __call__(self, config: RunnableConfig, runtime: ServerRuntime):
        log_access("callable_factory", runtime=runtime, config=config)
        return build_graph()


callable_factory = CallableFactory()
