"""`slow` and `hang`: graphs for concurrency, cancellation and multitask tests.

`slow` (START -> work -> END) sleeps `state["sleep"]` seconds (default 0.2) and records
wall-clock intervals so a test can prove two runs overlapped (or did not):

  starts      -- list[float], time.time() when the node started
  ends        -- list[float], time.time() when the node finished
  thread_ids  -- list[str | None], config["configurable"]["thread_id"] (None for stateless runs)

It also emits a custom stream event {"started": <thread_id>} as soon as the node begins.

{"sleep": 0.1} -> {"sleep": 0.1, "starts": [t0], "ends": [t1], "thread_ids": ["<tid>"]}, t1 - t0 >= 0.1

`hang` (START -> hang -> END) emits a custom event {"status": "hanging"} and then waits forever
until its task is cancelled. If the env var GRAPHDOCK_HANG_LOG names a file, the node appends
the lines "started <thread_id>" and "cancelled <thread_id>" to it, so a test can prove the node's
task really received CancelledError.
"""

from __future__ import annotations

import asyncio
import operator
import os
import time
from typing import Annotated, Optional

from langchain_core.runnables import RunnableConfig
from typing_extensions import NotRequired, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph


class SlowState(TypedDict):
    sleep: NotRequired[float]
    starts: Annotated[list[float], operator.add]
    ends: Annotated[list[float], operator.add]
    thread_ids: Annotated[list[Optional[str]], operator.add]


def _thread_id(config: RunnableConfig) -> Optional[str]:
    return (config.get("configurable") or {}).get("thread_id")


async def work(state: SlowState, config: RunnableConfig) -> dict:
    thread_id = _thread_id(config)
    start = time.time()
    get_stream_writer()({"started": thread_id})
    await asyncio.sleep(state.get("sleep", 0.2))
    return {"starts": [start], "ends": [time.time()], "thread_ids": [thread_id]}


_slow = StateGraph(SlowState)
_slow.add_node("work", work)
_slow.add_edge(START, "work")
_slow.add_edge("work", END)
graph = _slow.compile()


class HangState(TypedDict):
    items: Annotated[list[str], operator.add]


def _log(line: str) -> None:
    path = os.environ.get("GRAPHDOCK_HANG_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


async def hang(state: HangState, config: RunnableConfig) -> dict:
    thread_id = _thread_id(config)
    _log(f"started {thread_id}")
    get_stream_writer()({"status": "hanging"})
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        _log(f"cancelled {thread_id}")
        raise
    return {"items": ["unreachable"]}  # pragma: no cover


_hang = StateGraph(HangState)
_hang.add_node("hang", hang)
_hang.add_edge(START, "hang")
_hang.add_edge("hang", END)
hang_graph = _hang.compile()
