"""A personalised greeting: run context and the server's store, read from inside a node.

This is the `Runtime` example from the LangGraph docs, served for real:

* `Context` is the graph's context schema. Pass it per run with `context={"user_id": ...}`;
  LangGraph turns the dict into a `Context` instance before the node sees it.
* `runtime.store` is the server's store (graphdock injects it; do not compile your own).

Try it:

    await client.store.put_item(["users"], "user_123", {"name": "Alice"})
    await client.runs.wait(None, "greeting", input={}, context={"user_id": "user_123"})
    # -> {"response": "Hello Alice! Nice to see you again."}
"""

from dataclasses import dataclass

from typing_extensions import TypedDict

from langgraph.graph import StateGraph
from langgraph.runtime import Runtime


@dataclass
class Context:
    user_id: str


class State(TypedDict, total=False):
    response: str


async def personalized_greeting(state: State, runtime: Runtime[Context]) -> State:
    """Greet the user named by the run context, looking their name up in the store."""
    name = "unknown_user"
    if runtime.context is not None and runtime.store is not None:
        if memory := await runtime.store.aget(("users",), runtime.context.user_id):
            name = memory.value.get("name", name)
    return {"response": f"Hello {name}! Nice to see you again."}


graph = (
    StateGraph(state_schema=State, context_schema=Context)
    .add_node("personalized_greeting", personalized_greeting)
    .set_entry_point("personalized_greeting")
    .set_finish_point("personalized_greeting")
    .compile()  # no store= here: the server provides one
)
