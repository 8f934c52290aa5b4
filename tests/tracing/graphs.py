"""Graphs of tests/test_tracing.py.

`agent`: ``model`` (a fake chat model whose reply carries usage metadata) -> ``tools`` (one
tool call) -> ``record``, which reports what a node sees of the trace: the trace context
in ``config["configurable"]`` and the span current while it executes.

{"messages": [{"role": "user", "content": "hi"}]}
  -> {"messages": [..., AIMessage("hello")], "tool_result": 3,
      "seen_configurable": {"__otel_traceparent__": ..., ...}, "current_span": {"trace_id": ..., "span_id": ...}}

`failing`: one node, ``explode``, that raises ValueError("boom").

`slow`: one node, ``wait``, that sleeps for a minute (to be cancelled).
"""

from __future__ import annotations

import json
import operator
from typing import Annotated, Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    tool_result: int
    seen_configurable: dict[str, Any]
    current_span: dict[str, str]
    steps: Annotated[list[str], operator.add]


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


async def model(state: State) -> dict:
    reply = AIMessage(
        content="hello",
        usage_metadata={"input_tokens": 7, "output_tokens": 5, "total_tokens": 12},
    )
    llm = GenericFakeChatModel(messages=iter([reply]))
    return {"messages": [await llm.ainvoke(state.get("messages") or [])], "steps": ["model"]}


async def tools(state: State) -> dict:
    return {"tool_result": await add.ainvoke({"a": 1, "b": 2}), "steps": ["tools"]}


def record(state: State, config: RunnableConfig) -> dict:
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    configurable = {}
    for key, value in (config.get("configurable") or {}).items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        if not key.startswith("__pregel"):
            configurable[key] = value
    return {
        "seen_configurable": configurable,
        "current_span": {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")},
        "steps": ["record"],
    }


builder = StateGraph(State)
builder.add_node("model", model)
builder.add_node("tools", tools)
builder.add_node("record", record)
builder.add_edge(START, "model")
builder.add_edge("model", "tools")
builder.add_edge("tools", "record")
builder.add_edge("record", END)
agent = builder.compile()


def explode(state: State) -> dict:
    raise ValueError("boom")


failing_builder = StateGraph(State)
failing_builder.add_node("explode", explode)
failing_builder.add_edge(START, "explode")
failing_builder.add_edge("explode", END)
failing = failing_builder.compile()


async def wait(state: State) -> dict:
    import asyncio

    await asyncio.sleep(60)
    return {"steps": ["wait"]}


slow_builder = StateGraph(State)
slow_builder.add_node("wait", wait)
slow_builder.add_edge(START, "wait")
slow_builder.add_edge("wait", END)
slow = slow_builder.compile()
