"""A chat agent that needs no API key.

`agent` is a one-node graph over `MessagesState`. Its "model" is langchain-core's
`GenericFakeChatModel`, which replies with a canned message and streams it word by word,
exactly like a real chat model would stream tokens. Swap `make_model()` for a real model
(e.g. `init_chat_model("openai:gpt-4o-mini")`) and nothing else has to change.

Try it:

    from langgraph_sdk import get_client
    client = get_client(url="http://127.0.0.1:2024")
    async for part in client.runs.stream(
        None, "agent",
        input={"messages": [{"role": "user", "content": "Hi!"}]},
        stream_mode="messages-tuple",
    ):
        print(part.event, part.data)
"""

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from langgraph.graph import END, START, MessagesState, StateGraph


def make_model(user_text: str) -> GenericFakeChatModel:
    """A fake chat model whose only reply echoes the user's last message."""
    reply = f"You said: {user_text!r}. I am a fake model, so that is all I can tell you."
    # The fake model pops replies from an iterator, so build a fresh one for every call.
    return GenericFakeChatModel(messages=iter([AIMessage(content=reply)]))


async def chat(state: MessagesState) -> dict:
    """Answer the conversation so far with one AI message."""
    last = state["messages"][-1] if state["messages"] else None
    model = make_model(last.text if last is not None else "")
    # Awaiting the model inside a node is enough: the server's `messages` stream mode
    # picks up every token the model produces.
    response = await model.ainvoke(state["messages"])
    return {"messages": [response]}


builder = StateGraph(MessagesState)
builder.add_node("chat", chat)
builder.add_edge(START, "chat")
builder.add_edge("chat", END)

# No checkpointer or store here: the server injects its own.
graph = builder.compile()
