"""`pid` and `exit_process`: graphs for tests of run processes.

`pid` returns the id of the process that executed its node: {} -> {"pid": <int>}.

`spin` computes for ``state["ms"]`` milliseconds (default 20) without yielding, then returns
the same: {"ms": 5} -> {"ms": 5, "pid": <int>}; many at once saturate a process.

`exit_process` ends the process executing it at once (``os._exit``), as a crash would; it
refuses to when that process is not a run process (``graphdock.runs.run_process``), so that it
can never take a test server down.
"""

from __future__ import annotations

import os
import sys
import time

from typing_extensions import NotRequired, TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    pid: NotRequired[int]
    ms: NotRequired[float]


def _pid(state: State) -> State:
    return {"pid": os.getpid()}


def _spin(state: State) -> State:
    deadline = time.perf_counter() + state.get("ms", 20) / 1000
    while time.perf_counter() < deadline:
        pass
    return {"pid": os.getpid()}


def _exit(state: State) -> State:
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None) != "graphdock.runs.run_process":
        raise RuntimeError("exit_process only ends run processes")
    os._exit(3)


graph = StateGraph(State).add_node("pid", _pid).add_edge(START, "pid").add_edge("pid", END).compile()
exit_graph = StateGraph(State).add_node("exit", _exit).add_edge(START, "exit").add_edge("exit", END).compile()
spin_graph = StateGraph(State).add_node("spin", _spin).add_edge(START, "spin").add_edge("spin", END).compile()
