"""A graph factory that opens a resource only for runs, and closes it when the run ends.

graphdock calls `make_graph` on every access to the `resources` graph, passing a
`ServerRuntime`:

* to execute a run (`runtime.execution_runtime` is not None) it opens a `Greeter` configured
  from the run's context, hands it to the graph, and closes it after the run;
* to read state, update state or draw the graph it yields the *same* topology without
  opening anything.

A real application would open an MCP session, a database pool or an HTTP client here.

Try it:

    await client.runs.wait(None, "resources", input={"name": "Ada"}, context={"greeting": "Hello"})
    # -> {"name": "Ada", "message": "Hello, Ada!", "resource": "greeter-1"}
"""

import contextlib
import itertools
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator, Optional

from typing_extensions import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph_sdk.runtime import ServerRuntime

logger = logging.getLogger(__name__)


@dataclass
class ResourceCtx:
    greeting: str = "hi"


class State(TypedDict, total=False):
    name: str
    message: str
    resource: Optional[str]


class Greeter:
    """Stands in for an expensive resource with an explicit open/close life cycle."""

    _ids = itertools.count(1)

    def __init__(self, greeting: str) -> None:
        self.id = f"greeter-{next(self._ids)}"
        self.greeting = greeting
        self.closed = False
        logger.info("opened %s", self.id)

    def greet(self, name: str) -> str:
        if self.closed:
            raise RuntimeError(f"{self.id} is closed")
        return f"{self.greeting}, {name}!"

    async def aclose(self) -> None:
        self.closed = True
        logger.info("closed %s", self.id)


def build_graph(greeter: Optional[Greeter]):
    """The one topology used in every access context; only the resource differs."""

    def greet(state: State) -> dict:
        name = state.get("name", "world")
        if greeter is None:  # never happens in a run; kept so the node is total
            return {"message": f"hi, {name}!", "resource": None}
        return {"message": greeter.greet(name), "resource": greeter.id}

    builder = StateGraph(State, context_schema=ResourceCtx)
    builder.add_node("greet", greet)
    builder.add_edge(START, "greet")
    builder.add_edge("greet", END)
    return builder.compile()


@contextlib.asynccontextmanager
async def make_graph(runtime: ServerRuntime[ResourceCtx]) -> AsyncIterator[Any]:
    if ert := runtime.execution_runtime:
        # A run is about to execute: open the resource for exactly this run.
        # ert.context is a ResourceCtx: graphdock types it by the ServerRuntime[...] annotation.
        greeter = Greeter(ert.context.greeting)
        try:
            yield build_graph(greeter)
        finally:
            await greeter.aclose()
    else:
        # Introspection or state access: same graph, no resource.
        yield build_graph(None)
