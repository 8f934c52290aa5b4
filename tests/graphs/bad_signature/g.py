"""A factory with three parameters: the server must refuse it at start-up.

(Official behaviour: factories must take 0, 1 or 2 arguments; the signature is checked when
the graph is registered, not when it is first used.)
"""

from langgraph.graph import END, START, MessagesState, StateGraph


def three_param_factory(config, runtime, extra):
    builder = StateGraph(MessagesState)
    builder.add_node("noop", lambda state: {})
    builder.add_edge(START, "noop")
    builder.add_edge("noop", END)
    return builder.compile()
