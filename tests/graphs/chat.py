"""`chat`: a MessagesState graph with one node, `model`, backed by a fake chat model.

The reply is always the AI message "hello there friend". GenericFakeChatModel streams it
as whitespace-separated chunks ("hello", " ", "there", " ", "friend"), so the `messages`
stream mode yields several AIMessageChunk tokens with the same message id.

{"messages": [{"role": "user", "content": "hi"}]}
  -> {"messages": [HumanMessage("hi"), AIMessage("hello there friend")]}
"""

from __future__ import annotations

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from langgraph.graph import END, START, MessagesState, StateGraph

REPLY = "hello there friend"


async def model(state: MessagesState) -> dict:
    # GenericFakeChatModel consumes its iterator: build a fresh model on every call.
    llm = GenericFakeChatModel(messages=iter([AIMessage(content=REPLY)]))
    response = await llm.ainvoke(state["messages"])
    return {"messages": [response]}


builder = StateGraph(MessagesState)
builder.add_node("model", model)
builder.add_edge(START, "model")
builder.add_edge("model", END)
graph = builder.compile()
