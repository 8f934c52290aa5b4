"""`node_runtime`: a node that reports everything it receives through `langgraph.runtime.Runtime`.

State key `seen` (written by `inspect`):
  context_type, model          -- runtime.context (typed by the dataclass context schema)
  same_runtime                 -- get_runtime() is the injected runtime's equivalent
  store_is_get_store           -- runtime.store is get_store()
  note                         -- value of store item ("notes",)/"n1" (written by the API)
  execution                    -- runtime.execution_info: run_id, thread_id, task_id, node_attempt
  server                       -- runtime.server_info: assistant_id, graph_id, user
  configurable                 -- selected config["configurable"] keys
The node also writes the store item ("notes",)/"from-node" and two custom stream events
(one through runtime.stream_writer, one through get_stream_writer()).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_store, get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime, get_runtime
from typing_extensions import TypedDict


@dataclass
class Ctx:
    model: str = "default-model"


class State(TypedDict, total=False):
    seen: dict[str, Any]


async def inspect(state: State, runtime: Runtime[Ctx], config: RunnableConfig) -> dict:
    runtime.stream_writer({"via": "runtime.stream_writer"})
    get_stream_writer()({"via": "get_stream_writer"})
    note = await runtime.store.aget(("notes",), "n1") if runtime.store is not None else None
    await runtime.store.aput(("notes",), "from-node", {"run_id": config["configurable"]["run_id"]})
    info = runtime.execution_info
    server = runtime.server_info
    conf = config["configurable"]
    return {
        "seen": {
            "context_type": type(runtime.context).__name__,
            "model": getattr(runtime.context, "model", None),
            "same_runtime": get_runtime().context == runtime.context and get_runtime().store is runtime.store,
            "store_is_get_store": get_store() is runtime.store,
            "note": note.value if note else None,
            "execution": None if info is None else {
                "run_id": str(info.run_id) if info.run_id else None,
                "thread_id": info.thread_id,
                "task_id": info.task_id,
                "node_attempt": info.node_attempt,
            },
            "server": None if server is None else {
                "assistant_id": server.assistant_id,
                "graph_id": server.graph_id,
                "user": server.user,
            },
            "configurable": {k: conf.get(k) for k in ("run_id", "thread_id", "graph_id", "assistant_id", "user_id")},
        }
    }


builder = StateGraph(State, context_schema=Ctx)
builder.add_node("inspect", inspect)
builder.add_edge(START, "inspect")
builder.add_edge("inspect", END)
graph = builder.compile()
