"""Graphs for stream-mode tests.

`chat_child`: parent START -> child -> END, where `child` is a compiled subgraph whose one node,
`model`, calls the same fake chat model as `chat` (reply "hello there friend", streamed token by
token). With stream_subgraphs the model's tokens are emitted under the namespace
("child:<task_id>",).

`complete`: one node, `reply`, that returns a whole AIMessage (content "all at once", id
"whole-reply") without calling a model, so the legacy `messages` mode reports it as
`messages/complete`.

`gate`: one node, `wait`, that writes the custom event {"waiting": <gate path>} and then waits
until the file named by state["gate"] exists, then returns {"items": ["opened"]}. A test can
prove that a custom event reaches the client while its node is still running, and only then
let the run finish.
"""

from __future__ import annotations

import asyncio
import operator
import os
from typing import Annotated

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from typing_extensions import TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph

REPLY = "hello there friend"


async def model(state: MessagesState) -> dict:
    llm = GenericFakeChatModel(messages=iter([AIMessage(content=REPLY)]))
    return {"messages": [await llm.ainvoke(state["messages"])]}


_child = StateGraph(MessagesState)
_child.add_node("model", model)
_child.add_edge(START, "model")
_child.add_edge("model", END)

_parent = StateGraph(MessagesState)
_parent.add_node("child", _child.compile())
_parent.add_edge(START, "child")
_parent.add_edge("child", END)
chat_child = _parent.compile()


def reply(state: MessagesState) -> dict:
    return {"messages": [AIMessage(content="all at once", id="whole-reply")]}


_complete = StateGraph(MessagesState)
_complete.add_node("reply", reply)
_complete.add_edge(START, "reply")
_complete.add_edge("reply", END)
complete = _complete.compile()


class GateState(TypedDict):
    gate: str
    items: Annotated[list[str], operator.add]


async def wait(state: GateState) -> dict:
    get_stream_writer()({"waiting": state["gate"]})
    while not os.path.exists(state["gate"]):
        await asyncio.sleep(0.02)
    return {"items": ["opened"]}


_gate = StateGraph(GateState)
_gate.add_node("wait", wait)
_gate.add_edge(START, "wait")
_gate.add_edge("wait", END)
gate = _gate.compile()
