"""Graphs for the thread streaming protocol tests (tests/test_protocol*.py).

`agent`: a tool-calling agent on MessagesState. `model` answers a conversation whose last
message is from the user with one AI message (content "let me add", id "call-msg") that calls
the tool `add(a=1, b=2)` (tool call id "call-1"), returned whole by a fake model; once the
tool's result (a ToolMessage "3") is in, it streams the reply "the answer is 3" token by token
(GenericFakeChatModel). `tools` is langgraph's ToolNode([add]).

{"messages": [{"role": "user", "content": "add"}]}
  -> messages: human "add", ai "let me add" (tool call add), tool "3", ai "the answer is 3"

`approve`: START -> ask -> END. `ask` calls interrupt({"question": "approve?"}) and stores
the answer: {"items": []} -> interrupted; resume "yes" -> {"items": ["yes"]}.

`named_custom`: one node that writes {"name": "progress", "step": 1}, {"name": "progress",
"step": 2} (the custom channel "custom:progress") and {"plain": True} (channel "custom"),
then returns {"done": True}.

`nested`: parent START -> outer -> END; `outer` is a compiled subgraph START -> inner -> END
whose `inner` is a compiled subgraph START -> leaf -> END. `leaf` appends "leaf" to `items`
and writes the custom event {"at": "leaf"}; `outer`'s graph also writes {"at": "outer"} from
its node `before` (START -> before -> inner). Namespaces: ("outer:<id>",) and
("outer:<id>", "inner:<id>").

`ticker`: START -> tick -> END; `tick` writes the custom event {"tick": i} for i in
0..state["n"]-1 (default 20), sleeping state["pause"] seconds (default 0.05) between them,
then returns {"ticks": n}. For reconnect and cancellation tests.
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from typing_extensions import NotRequired, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import interrupt

ANSWER = "the answer is 3"


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def model(state: MessagesState) -> dict:
    last = state["messages"][-1]
    if isinstance(last, ToolMessage):
        # fresh models every call: the fakes consume their responses
        llm = GenericFakeChatModel(messages=iter([AIMessage(content=ANSWER)]))
    else:
        call = AIMessage(
            content="let me add",
            id="call-msg",
            tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "call-1"}],
        )
        llm = FakeMessagesListChatModel(responses=[call])
    return {"messages": [await llm.ainvoke(state["messages"])]}


def route(state: MessagesState) -> str:
    last = state["messages"][-1]
    return "tools" if getattr(last, "tool_calls", None) else END


_agent = StateGraph(MessagesState)
_agent.add_node("model", model)
_agent.add_node("tools", ToolNode([add]))
_agent.add_edge(START, "model")
_agent.add_conditional_edges("model", route, {"tools": "tools", END: END})
_agent.add_edge("tools", "model")
agent = _agent.compile()


class Items(TypedDict):
    items: Annotated[list[str], operator.add]


def ask(state: Items) -> dict:
    answer = interrupt({"question": "approve?"})
    return {"items": [str(answer)]}


_approve = StateGraph(Items)
_approve.add_node("ask", ask)
_approve.add_edge(START, "ask")
_approve.add_edge("ask", END)
approve = _approve.compile()


class Done(TypedDict, total=False):
    done: bool


def emit(state: Done) -> dict:
    write = get_stream_writer()
    write({"name": "progress", "step": 1})
    write({"name": "progress", "step": 2})
    write({"plain": True})
    return {"done": True}


_named = StateGraph(Done)
_named.add_node("emit", emit)
_named.add_edge(START, "emit")
_named.add_edge("emit", END)
named_custom = _named.compile()


def leaf(state: Items) -> dict:
    get_stream_writer()({"at": "leaf"})
    return {"items": ["leaf"]}


_inner = StateGraph(Items)
_inner.add_node("leaf", leaf)
_inner.add_edge(START, "leaf")
_inner.add_edge("leaf", END)
inner_graph = _inner.compile()


def before(state: Items) -> dict:
    get_stream_writer()({"at": "outer"})
    return {}


_outer = StateGraph(Items)
_outer.add_node("before", before)
_outer.add_node("inner", inner_graph)
_outer.add_edge(START, "before")
_outer.add_edge("before", "inner")
_outer.add_edge("inner", END)
outer_graph = _outer.compile()

_nested = StateGraph(Items)
_nested.add_node("outer", outer_graph)
_nested.add_edge(START, "outer")
_nested.add_edge("outer", END)
nested = _nested.compile()


class Ticks(TypedDict):
    n: NotRequired[int]
    pause: NotRequired[float]
    ticks: NotRequired[int]


async def tick(state: Ticks) -> dict:
    n = state.get("n", 20)
    write = get_stream_writer()
    for i in range(n):
        write({"tick": i})
        await asyncio.sleep(state.get("pause", 0.05))
    return {"ticks": n}


_ticker = StateGraph(Ticks)
_ticker.add_node("tick", tick)
_ticker.add_edge(START, "tick")
_ticker.add_edge("tick", END)
ticker = _ticker.compile()


# -- a deep-agent shape: a `task` tool that runs a subagent graph ------------------------

WORKER_REPLY = "worker done"


async def worker_model(state: MessagesState) -> dict:
    llm = GenericFakeChatModel(messages=iter([AIMessage(content=WORKER_REPLY)]))
    return {"messages": [await llm.ainvoke(state["messages"])]}


_worker = StateGraph(MessagesState)
_worker.add_node("worker_model", worker_model)
_worker.add_edge(START, "worker_model")
_worker.add_edge("worker_model", END)
worker_graph = _worker.compile(name="worker")


@tool
async def task(description: str) -> str:
    """Hand a task to the worker subagent."""
    result = await worker_graph.ainvoke({"messages": [{"role": "user", "content": description}]})
    return result["messages"][-1].text


async def supervisor_model(state: MessagesState) -> dict:
    last = state["messages"][-1]
    if isinstance(last, ToolMessage):
        llm = GenericFakeChatModel(messages=iter([AIMessage(content="all done")]))
    else:
        call = AIMessage(
            content="delegating",
            tool_calls=[{"name": "task", "args": {"description": "do it"}, "id": "task-1"}],
        )
        llm = FakeMessagesListChatModel(responses=[call])
    return {"messages": [await llm.ainvoke(state["messages"])]}


_supervisor = StateGraph(MessagesState)
_supervisor.add_node("model", supervisor_model)
_supervisor.add_node("tools", ToolNode([task]))
_supervisor.add_edge(START, "model")
_supervisor.add_conditional_edges("model", route, {"tools": "tools", END: END})
_supervisor.add_edge("tools", "model")
supervisor = _supervisor.compile()
