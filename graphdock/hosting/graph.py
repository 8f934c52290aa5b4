"""The one way into a user graph.

:meth:`Hosting.open_graph` is the only place where a graph factory is called, a
``ServerRuntime`` is built, a context-manager factory is entered and exited, and
the server's checkpointer and store are attached to a graph.
"""

from __future__ import annotations

import functools
import inspect
import logging
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from langchain_core.runnables.config import var_child_runnable_config
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore
from langgraph_sdk.runtime import _ExecutionRuntime, _ReadRuntime

from graphdock.config import ConfigError
from graphdock.errors import FailedDependency, NotFound
from graphdock.hosting import context as ctx
from graphdock.hosting.access import AccessContext, Operation, access_context_of
from graphdock.hosting.loader import LoadedGraph
from graphdock.hosting.topology import TopologyGuard, TopologyMode

logger = logging.getLogger("graphdock.hosting")

SYSTEM_ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")

_UNSET: Any = object()


@functools.lru_cache(maxsize=1024)
def system_assistant_id(graph_id: str) -> str:
    """The id of the assistant the server creates for ``graph_id``."""
    return str(uuid.uuid5(SYSTEM_ASSISTANT_NAMESPACE, graph_id))


class Hosting:
    """The registered graphs and the server resources attached to them."""

    def __init__(
        self,
        graphs: dict[str, LoadedGraph],
        *,
        store: BaseStore,
        checkpointer: BaseCheckpointSaver,
        topology: TopologyMode = "warn",
    ) -> None:
        self.graphs = graphs
        self.store = store
        self.checkpointer = checkpointer
        self.topology = TopologyGuard(topology)
        self._learned_schemas: dict[str, Any] = {}
        self._attached: dict[tuple[str, bool], Pregel] = {}

    # -- registry -------------------------------------------------------------

    def get(self, graph_id: str) -> LoadedGraph:
        try:
            return self.graphs[graph_id]
        except KeyError:
            raise NotFound(
                f"Graph '{graph_id}' not found. Expected one of: {sorted(self.graphs)}"
            ) from None

    def __contains__(self, graph_id: object) -> bool:
        return graph_id in self.graphs

    def system_assistant_name(self, graph_id: str) -> str:
        loaded = self.graphs[graph_id]
        if loaded.graph is not None and loaded.graph.name and loaded.graph.name != "LangGraph":
            return loaded.graph.name
        return graph_id

    # -- context ----------------------------------------------------------------

    def context_schema(self, graph_id: str) -> Any:
        """The graph's context schema: the compiled graph's, a factory's ``ServerRuntime[Ctx]``
        annotation, or the schema seen the last time the factory built the graph."""
        loaded = self.get(graph_id)
        if loaded.graph is not None:
            return loaded.graph.context_schema
        assert loaded.signature is not None
        if loaded.signature.context_type is not None:
            return loaded.signature.context_type
        return self._learned_schemas.get(graph_id)

    def validate_context(self, graph_id: str, context: dict[str, Any] | None) -> None:
        """422 naming the field when ``context`` does not fit the graph's context schema."""
        ctx.validate_context(self.context_schema(graph_id), context)

    # -- access ---------------------------------------------------------------

    @asynccontextmanager
    async def open_graph(
        self,
        graph_id: str,
        operation: Operation | AccessContext,
        *,
        config: dict[str, Any] | None = None,
        context: Any = None,
        user: Any = None,
        checkpointer: BaseCheckpointSaver | None = _UNSET,
    ) -> AsyncIterator[Pregel]:
        """Yield the graph for one access, with the server's checkpointer and store attached.

        ``checkpointer=None`` opens the graph without persistence (temporary runs).
        Factories are called once per access with a ``ServerRuntime`` for
        ``access_context``; context-manager factories stay entered until the
        ``async with`` block exits, whatever way it exits.
        """
        access_context = access_context_of(operation)
        loaded = self.get(graph_id)
        saver = self.checkpointer if checkpointer is _UNSET else checkpointer
        if loaded.graph is not None:
            # a compiled graph is shared by every access; so is its copy with persistence
            key = (graph_id, saver is None)
            graph = self._attached.get(key) if saver is None or saver is self.checkpointer else None
            if graph is None:
                graph = self._attach(loaded.graph, graph_id, saver)
                if saver is None or saver is self.checkpointer:
                    self._attached[key] = graph
            yield graph
            return
        if access_context == "threads.create_run":
            context = ctx.typed_context(self.context_schema(graph_id), context)
        runtime = self._runtime(access_context, user=user, context=context)
        factory_config = dict(config or {})
        factory_config.setdefault("configurable", {})
        factory_config.setdefault("metadata", {})
        factory_config.setdefault("tags", [])
        factory_config.setdefault("recursion_limit", 10011)
        assert loaded.signature is not None and loaded.factory is not None
        kwargs = loaded.signature.arguments(factory_config, runtime)
        token = var_child_runnable_config.set(factory_config)
        try:
            result = loaded.factory(**kwargs)
        finally:
            var_child_runnable_config.reset(token)
        if hasattr(result, "__aenter__") and hasattr(result, "__aexit__"):
            async with result as value:
                yield self._built(value, graph_id, access_context, saver)
        elif hasattr(result, "__enter__") and hasattr(result, "__exit__"):
            with result as value:
                yield self._built(value, graph_id, access_context, saver)
        else:
            if inspect.isawaitable(result):
                result = await result
            yield self._built(result, graph_id, access_context, saver)

    def _built(
        self,
        value: Any,
        graph_id: str,
        access_context: AccessContext,
        saver: BaseCheckpointSaver | None,
    ) -> Pregel:
        """A factory's result, checked, remembered and with persistence attached."""
        graph = self._as_graph(value, graph_id)
        self._learned_schemas[graph_id] = graph.context_schema
        self.topology.check(graph_id, access_context, graph)
        return self._attach(graph, graph_id, saver)

    def _runtime(self, access_context: AccessContext, *, user: Any, context: Any) -> Any:
        if access_context == "threads.create_run":
            return _ExecutionRuntime(
                access_context=access_context, user=user, store=self.store, context=context
            )
        return _ReadRuntime(access_context=access_context, user=user, store=self.store)

    @staticmethod
    def _as_graph(value: Any, graph_id: str) -> Pregel:
        if isinstance(value, StateGraph):
            value = value.compile()
        if not isinstance(value, Pregel):
            raise FailedDependency(
                f"Graph '{graph_id}' is not valid. Review graph registration. "
                f"The factory returned {type(value).__name__}, not a graph."
            )
        return value

    def _attach(self, graph: Pregel, graph_id: str, saver: BaseCheckpointSaver | None) -> Pregel:
        update: dict[str, Any] = {"checkpointer": saver, "store": self.store}
        if graph.name == "LangGraph":
            update["name"] = graph_id
        return graph.copy(update=update)


__all__ = ["Hosting", "AccessContext", "system_assistant_id", "ConfigError"]
