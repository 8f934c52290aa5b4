"""The :class:`graphdock.backends.base.Housekeeping` contract of every backend's checkpointer.

Checkpoints are written by real langgraph graphs compiled with ``backend.checkpointer``
(a parent graph with a subgraph, so that threads have several namespaces), and read back
through the saver's own API; the run id is in each checkpoint's metadata because the
server puts it in ``configurable`` (as here).
"""

from __future__ import annotations

import operator
import uuid
from collections import defaultdict
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from graphdock.backends import Backend

from .conftest import new_id


class State(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    fail: bool


def _step(name: str) -> Any:
    def step(state: State) -> State:
        return {"log": [name]}

    return step


def _flaky(state: State) -> State:
    if state.get("fail"):
        raise ValueError("failing on purpose")
    return {"log": ["y"]}


def nested_graph(checkpointer: Any) -> Any:
    """``a`` then a subgraph (``inner``): checkpoints in the root and a child namespace."""
    sub = StateGraph(State)
    sub.add_node("inner", _step("inner"))
    sub.add_edge(START, "inner")
    builder = StateGraph(State)
    builder.add_node("a", _step("a"))
    builder.add_node("sub", sub.compile())
    builder.add_edge(START, "a")
    builder.add_edge("a", "sub")
    builder.add_edge("sub", END)
    return builder.compile(checkpointer=checkpointer)


def parallel_graph(checkpointer: Any) -> Any:
    """``x`` and ``y`` in one step; ``y`` fails while ``fail`` is set, leaving ``x``'s
    write pending on the checkpoint the step started from."""
    builder = StateGraph(State)
    builder.add_node("x", _step("x"))
    builder.add_node("y", _flaky)
    builder.add_edge(START, "x")
    builder.add_edge(START, "y")
    builder.add_edge("x", END)
    builder.add_edge("y", END)
    return builder.compile(checkpointer=checkpointer)


def config(thread_id: str, run_id: str | None = None) -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if run_id is not None:
        configurable["run_id"] = run_id
    return {"configurable": configurable}


async def checkpoints(backend: Backend, thread_id: str) -> list[Any]:
    """Every checkpoint tuple of a thread, in every namespace."""
    return [t async for t in backend.checkpointer.alist(config(thread_id))]


async def by_namespace(backend: Backend, thread_id: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for t in await checkpoints(backend, thread_id):
        out[t.config["configurable"]["checkpoint_ns"]].append(t.config["configurable"]["checkpoint_id"])
    return {ns: sorted(ids) for ns, ids in out.items()}


async def by_run(backend: Backend, thread_id: str) -> dict[str, set[tuple[str, str]]]:
    out: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for t in await checkpoints(backend, thread_id):
        conf = t.config["configurable"]
        out[t.metadata.get("run_id")].add((conf["checkpoint_ns"], conf["checkpoint_id"]))
    return dict(out)


def writes_of(t: Any) -> list[tuple[str, str, Any]]:
    return sorted((task, channel, repr(value)) for task, channel, value in t.pending_writes or [])


async def tuple_at(backend: Backend, thread_id: str, ns: str = "", checkpoint_id: str | None = None) -> Any:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    found = await backend.checkpointer.aget_tuple({"configurable": conf})
    assert found is not None, (thread_id, ns, checkpoint_id)
    return found


async def test_delete_for_runs_removes_exactly_those_runs_checkpoints(backend: Backend) -> None:
    graph = nested_graph(backend.checkpointer)
    thread, other = new_id(), new_id()
    r1, r2, r3 = new_id(), new_id(), new_id()
    await graph.ainvoke({"log": []}, config(thread, r1))
    after_first = await graph.aget_state(config(thread))
    await graph.ainvoke({"log": []}, config(thread, r2))
    await graph.ainvoke({"log": []}, config(other, r3))
    before = await by_run(backend, thread)
    assert set(before) == {r1, r2}
    assert {ns for ns, _ in before[r2]} - {""}, "the subgraph wrote checkpoints of its own namespace"
    other_before = await by_namespace(backend, other)
    kept_writes = {cid: writes_of(await tuple_at(backend, thread, ns, cid)) for ns, cid in before[r1]}

    await backend.checkpointer.adelete_for_runs([r2])
    assert await by_run(backend, thread) == {r1: before[r1]}
    assert await by_namespace(backend, other) == other_before
    for ns, cid in before[r1]:
        assert writes_of(await tuple_at(backend, thread, ns, cid)) == kept_writes[cid]
    # the thread's state is the first run's again
    assert (await graph.aget_state(config(thread))).values == after_first.values

    await backend.checkpointer.adelete_for_runs([r1, r3])
    assert await checkpoints(backend, thread) == []
    assert await checkpoints(backend, other) == []
    await backend.checkpointer.adelete_for_runs([new_id()])  # nothing of it: no error


async def test_prune_keeps_the_latest_checkpoint_of_each_namespace(backend: Backend) -> None:
    graph = nested_graph(backend.checkpointer)
    thread, second, untouched = new_id(), new_id(), new_id()
    for t in (thread, second, untouched):
        await graph.ainvoke({"log": []}, config(t, new_id()))
        await graph.ainvoke({"log": []}, config(t, new_id()))
    state = await graph.aget_state(config(thread))
    before = await by_namespace(backend, thread)
    assert len(before) >= 3 and all(len(ids) > 1 for ids in before.values())
    untouched_before = await by_namespace(backend, untouched)

    await backend.checkpointer.aprune([thread, second], strategy="keep_latest")
    after = await by_namespace(backend, thread)
    # the root namespace keeps its latest checkpoint; every namespace left keeps only its
    # latest (a subgraph call's namespace may also go with the root checkpoint it started
    # from, as langgraph's own savers do)
    assert after[""] == [before[""][-1]]
    assert set(after) <= set(before)
    assert after == {ns: [before[ns][-1]] for ns in after}
    assert all(len(ids) == 1 for ids in (await by_namespace(backend, second)).values())
    assert await by_namespace(backend, untouched) == untouched_before
    pruned = await graph.aget_state(config(thread))
    assert pruned.values == state.values
    assert pruned.config["configurable"]["checkpoint_id"] == state.config["configurable"]["checkpoint_id"]
    # the thread goes on from its latest checkpoint, as one with the same history does
    result = await graph.ainvoke({"log": []}, config(thread, new_id()))
    assert result == await graph.ainvoke({"log": []}, config(untouched, new_id()))


async def test_head_writes_restored_after_a_rolled_back_run(backend: Backend) -> None:
    saver = backend.checkpointer
    graph = parallel_graph(saver)
    thread = new_id()
    try:
        await graph.ainvoke({"log": [], "fail": True}, config(thread, new_id()))
    except ValueError:
        pass
    else:
        raise AssertionError("the graph was to fail")
    head = await tuple_at(backend, thread)
    before = writes_of(head)
    assert any(channel == "log" for _, channel, _ in before), "x's write is pending on the head"

    snapshot = await saver.ahead_writes(thread)
    # a run that is rolled back adds writes to the head (e.g. resuming the failed step)
    await saver.aput_writes(head.config, [("log", ["rolled back"])], task_id=str(uuid.uuid4()))
    await saver.aput_writes(head.config, [("fail", False)], task_id=str(uuid.uuid4()))
    assert len(writes_of(await tuple_at(backend, thread))) == len(before) + 2
    await saver.arestore_writes(thread, snapshot)
    restored = await tuple_at(backend, thread)
    assert restored.config["configurable"]["checkpoint_id"] == head.config["configurable"]["checkpoint_id"]
    assert writes_of(restored) == before


async def test_head_writes_of_every_namespace_and_of_the_given_checkpoint(backend: Backend) -> None:
    saver = backend.checkpointer
    graph = nested_graph(saver)
    thread = new_id()
    await graph.ainvoke({"log": []}, config(thread, new_id()))
    namespaces = await by_namespace(backend, thread)
    heads = {ns: await tuple_at(backend, thread, ns, ids[-1]) for ns, ids in namespaces.items()}
    start_id = namespaces[""][0]  # a run started from the thread's first checkpoint
    start = await tuple_at(backend, thread, "", start_id)
    before = {ns: writes_of(t) for ns, t in heads.items()}
    start_before = writes_of(start)
    assert start_before, "the first checkpoint has the writes of its step"

    snapshot = await saver.ahead_writes(thread, start_id)
    for t in [*heads.values(), start]:
        await saver.aput_writes(t.config, [("log", ["extra"])], task_id=str(uuid.uuid4()))
    await saver.arestore_writes(thread, snapshot)
    for ns, t in heads.items():
        again = await tuple_at(backend, thread, ns, t.config["configurable"]["checkpoint_id"])
        assert writes_of(again) == before[ns], ns
    assert writes_of(await tuple_at(backend, thread, "", start_id)) == start_before
    assert await by_namespace(backend, thread) == namespaces  # no checkpoint added or lost
