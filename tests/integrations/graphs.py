"""Graphs for the MCP and A2A tests (tests/test_mcp.py, tests/test_a2a.py).

- ``parrot`` (MessagesState): a fake chat model answers "you said: <every user text so
  far, joined by ' | '>", so a reply shows what the thread's conversation holds;
  a user text "slow" makes the model wait 30 s first (for cancellation); "ask" makes the
  graph ``interrupt("what is your name?")`` and, once resumed, answer "hello <name>";
  "team?" answers "team: <the run's configurable x-team>" (``http.configurable_headers``).
- ``adder``: ``{"a": int, "b": int}`` -> ``{"a", "b", "total"}``; ``{"fail": true}`` raises
  ``ValueError("adder failed on purpose")``.
"""

from __future__ import annotations

import asyncio

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt
from typing_extensions import NotRequired, TypedDict


def _texts(state: MessagesState) -> list[str]:
    return [m.content for m in state["messages"] if isinstance(m, HumanMessage) and isinstance(m.content, str)]


async def model(state: MessagesState, config: RunnableConfig) -> dict:
    texts = _texts(state)
    if texts and texts[-1] == "slow":
        await asyncio.sleep(30)
    if texts and texts[-1] == "ask":
        name = interrupt("what is your name?")
        reply = f"hello {name}"
    elif texts and texts[-1] == "team?":
        reply = f"team: {config['configurable'].get('x-team')}"
    else:
        reply = "you said: " + " | ".join(texts)
    llm = GenericFakeChatModel(messages=iter([AIMessage(content=reply)]))
    return {"messages": [await llm.ainvoke(state["messages"])]}


_parrot = StateGraph(MessagesState)
_parrot.add_node("model", model)
_parrot.add_edge(START, "model")
_parrot.add_edge("model", END)
parrot = _parrot.compile()


class AdderState(TypedDict):
    a: int
    b: int
    fail: NotRequired[bool]
    total: NotRequired[int]


def add(state: AdderState) -> dict:
    if state.get("fail"):
        raise ValueError("adder failed on purpose")
    return {"total": state["a"] + state["b"]}


_adder = StateGraph(AdderState)
_adder.add_node("add", add)
_adder.add_edge(START, "add")
_adder.add_edge("add", END)
adder = _adder.compile()
