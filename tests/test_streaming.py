"""Run streaming through the official SDK: stream modes, event names and payloads,
errors, subgraph namespaces, resumable joins and the thread stream (spec §6, §12, §13)."""

from __future__ import annotations

import asyncio
import warnings
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import UnprocessableEntityError

from conftest import ServerProcess

HI = {"messages": [{"role": "user", "content": "hi"}]}
REPLY = "hello there friend"
TOKENS = ["hello", " ", "there", " ", "friend"]
MODES = ["values", "messages", "messages-tuple", "updates", "events", "debug", "tasks", "checkpoints", "custom"]


async def _stream(client, assistant: str, input: Any = None, *, thread_id: str | None = None, **kwargs) -> list:
    if thread_id is None:
        thread_id = (await client.threads.create())["thread_id"]
    return [p async for p in client.runs.stream(thread_id, assistant, input=input, **kwargs)]


def _names(parts) -> list[str]:
    return [p.event for p in parts]


def _data(parts, name: str) -> list:
    return [p.data for p in parts if p.event == name]


def _run_id(parts) -> str:
    assert parts[0].event == "metadata"
    return parts[0].data["run_id"]


def _frames(text: str) -> list[dict[str, str]]:
    frames = []
    for block in text.split("\r\n\r\n"):
        fields: dict[str, str] = {}
        for line in block.split("\r\n"):
            if line.startswith(":") or not line:
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        if fields:
            frames.append(fields)
    return frames


class _SSEReader:
    """Reads frames from a raw httpx streaming response, one at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_raw()
        self._buffer = b""

    def next(self) -> dict[str, Any]:
        while True:
            while b"\r\n\r\n" in self._buffer:
                block, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
                frames = _frames(block.decode() + "\r\n\r\n")
                if frames:
                    frame = frames[0]
                    frame["data"] = orjson.loads(frame["data"]) if "data" in frame else None
                    return frame
            self._buffer += next(self._chunks)

    def until(self, predicate) -> list[dict[str, Any]]:
        seen = []
        while True:
            frame = self.next()
            seen.append(frame)
            if predicate(frame):
                return seen


def _run_done(run_id: str):
    return lambda f: f["event"] == "metadata" and f["data"] == {"status": "run_done", "run_id": run_id}


# -- the first event, values, updates ------------------------------------------------------


async def test_first_event_is_metadata_with_run_id_and_attempt(client):
    thread = await client.threads.create()
    created: list[dict] = []
    parts = await _stream(
        client, "simple", {"items": ["x"]}, thread_id=thread["thread_id"], on_run_created=created.append
    )
    assert parts[0].event == "metadata"
    assert parts[0].data == {"run_id": created[0]["run_id"], "attempt": 1}
    assert [p.event for p in parts].count("metadata") == 1
    run = await client.runs.get(thread["thread_id"], created[0]["run_id"])
    assert run["status"] == "success"


async def test_default_stream_mode_is_values(client):
    parts = await _stream(client, "simple", {"items": ["x"]})
    assert _names(parts) == ["metadata", "values", "values", "values"]
    assert _data(parts, "values") == [{"items": ["x"]}, {"items": ["x", "a"]}, {"items": ["x", "a", "b"]}]


async def test_stream_mode_as_string_equals_one_element_list(client):
    as_string = await _stream(client, "simple", {"items": ["x"]}, stream_mode="updates")
    as_list = await _stream(client, "simple", {"items": ["x"]}, stream_mode=["updates"])
    assert _names(as_string) == _names(as_list) == ["metadata", "updates", "updates"]
    assert [p.data for p in as_string[1:]] == [p.data for p in as_list[1:]] == [
        {"a": {"items": ["a"]}},
        {"b": {"items": ["b"]}},
    ]


async def test_values_and_updates_interleave_like_the_transcript(client):
    parts = await _stream(client, "simple", {"items": ["x"]}, stream_mode=["values", "updates"])
    assert [(p.event, p.data) for p in parts[1:]] == [
        ("values", {"items": ["x"]}),
        ("updates", {"a": {"items": ["a"]}}),
        ("values", {"items": ["x", "a"]}),
        ("updates", {"b": {"items": ["b"]}}),
        ("values", {"items": ["x", "a", "b"]}),
    ]


async def test_interrupt_shows_in_updates_and_final_values(client):
    parts = await _stream(client, "simple", {"items": [], "ask": True}, stream_mode=["values", "updates"])
    updates = _data(parts, "updates")
    assert updates[0] == {"a": {"items": ["a"]}}
    (interrupt,) = updates[-1]["__interrupt__"]
    assert interrupt["value"] == {"question": "approve?"}
    assert set(interrupt) == {"value", "id", "response_schema"}
    last_values = _data(parts, "values")[-1]
    assert last_values["items"] == ["a"]
    assert last_values["__interrupt__"] == [interrupt]


async def test_static_breakpoint_stream(client):
    thread = await client.threads.create()
    parts = await _stream(
        client, "breakpoints", {"items": ["x"]}, thread_id=thread["thread_id"], stream_mode=["values", "updates"]
    )
    assert [(p.event, p.data) for p in parts[1:]] == [
        ("values", {"items": ["x"]}),
        ("updates", {"a": {"items": ["a"]}}),
        ("values", {"items": ["x", "a"]}),
        ("updates", {"__interrupt__": []}),
    ]
    resumed = await _stream(client, "breakpoints", None, thread_id=thread["thread_id"], stream_mode="values")
    assert _data(resumed, "values")[-1] == {"items": ["x", "a", "b", "c"]}


async def test_sync_client_streams(sync_client):
    thread = sync_client.threads.create()
    parts = list(
        sync_client.runs.stream(
            thread["thread_id"], "simple", input={"items": ["s"]}, stream_mode=["updates", "values"]
        )
    )
    assert _names(parts) == ["metadata", "values", "updates", "values", "updates", "values"]
    assert parts[-1].data == {"items": ["s", "a", "b"]}


async def test_stateless_stream(client):
    created: list[dict] = []
    parts = [
        p
        async for p in client.runs.stream(
            None, "simple", input={"items": ["z"]}, stream_mode="values", on_run_created=created.append
        )
    ]
    assert created[0]["thread_id"] is None
    assert parts[0].data == {"run_id": created[0]["run_id"], "attempt": 1}
    assert parts[-1].data == {"items": ["z", "a", "b"]}


async def test_sdk_v2_stream_parts(client):
    thread = await client.threads.create()
    parts = [
        p
        async for p in client.runs.stream(
            thread["thread_id"],
            "subgraph",
            input={"items": []},
            stream_mode=["values"],
            stream_subgraphs=True,
            version="v2",
        )
    ]
    values = [p for p in parts if p["type"] == "values"]
    assert values[0]["ns"] == [] and values[-1]["ns"] == []
    nested = [p for p in values if p["ns"]]
    assert nested and all(len(p["ns"]) == 1 and p["ns"][0].startswith("child:") for p in nested)
    assert values[-1]["data"] == {"items": ["inner"]}


# -- invalid modes -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bogus", ["values", "bogus"], "messages_tuple", "VALUES"])
async def test_invalid_stream_mode_is_422(client, http, mode):
    thread = await client.threads.create()
    with pytest.raises(UnprocessableEntityError):
        await _stream(client, "simple", {"items": []}, thread_id=thread["thread_id"], stream_mode=mode)
    r = http.post("/runs/stream", json={"assistant_id": "simple", "input": {"items": []}, "stream_mode": mode})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/json")
    assert "stream_mode" in r.json()["detail"]
    # nothing was created on the thread
    assert await client.runs.list(thread["thread_id"]) == []


# -- messages ------------------------------------------------------------------------------


async def test_legacy_messages_mode_accumulates_partials(client):
    parts = await _stream(client, "chat", HI, stream_mode="messages")
    names = _names(parts)
    assert names[0] == "metadata"
    assert names[1] == "messages/metadata"
    assert set(names[2:]) == {"messages/partial"}
    assert "messages" not in names
    (meta,) = _data(parts, "messages/metadata")
    ((msg_id, entry),) = meta.items()
    assert entry["metadata"]["langgraph_node"] == "model"
    assert entry["metadata"]["ls_provider"] == "genericfakechatmodel"
    assert entry["metadata"]["run_id"] == _run_id(parts)
    partials = _data(parts, "messages/partial")
    contents = []
    for partial in partials:
        assert isinstance(partial, list) and len(partial) == 1
        (message,) = partial
        assert message["type"] == "ai"
        assert message["id"] == msg_id
        assert "tool_call_chunks" not in message
        contents.append(message["content"])
    expected = ["".join(TOKENS[: i + 1]) for i in range(len(TOKENS))]
    assert contents == expected
    assert contents[-1] == REPLY


async def test_legacy_messages_metadata_once_per_message_id(client):
    thread = await client.threads.create()
    await _stream(client, "chat", HI, thread_id=thread["thread_id"], stream_mode="values")
    parts = await _stream(
        client, "chat", {"messages": [{"role": "user", "content": "again"}]},
        thread_id=thread["thread_id"], stream_mode="messages",
    )
    metas = _data(parts, "messages/metadata")
    ids = [next(iter(m)) for m in metas]
    assert len(ids) == len(set(ids)) == 1
    partial_ids = {p[0]["id"] for p in _data(parts, "messages/partial")}
    assert partial_ids == set(ids)
    # the second reply is a new message, not an accumulation of the first
    assert _data(parts, "messages/partial")[-1][0]["content"] == REPLY


async def test_legacy_messages_complete_for_whole_message(client):
    parts = await _stream(client, "complete", HI, stream_mode=["messages"])
    assert _names(parts) == ["metadata", "messages/metadata", "messages/complete"]
    assert list(parts[1].data) == ["whole-reply"]
    assert parts[1].data["whole-reply"]["metadata"]["langgraph_node"] == "reply"
    (message,) = parts[2].data
    assert message["type"] == "ai"
    assert message["content"] == "all at once"
    assert message["id"] == "whole-reply"


async def test_messages_tuple_mode_sends_delta_chunks_with_metadata(client):
    parts = await _stream(client, "chat", HI, stream_mode="messages-tuple")
    names = _names(parts)
    assert names[0] == "metadata"
    assert set(names[1:]) == {"messages"}
    chunks = _data(parts, "messages")
    deltas = []
    for item in chunks:
        assert isinstance(item, list) and len(item) == 2
        chunk, metadata = item
        assert chunk["type"] == "AIMessageChunk"
        assert "tool_call_chunks" in chunk and "chunk_position" in chunk
        assert metadata["langgraph_node"] == "model"
        assert metadata["ls_provider"] == "genericfakechatmodel"
        deltas.append(chunk["content"])
    assert "".join(deltas) == REPLY
    assert deltas[: len(TOKENS)] == TOKENS
    assert len({c[0]["id"] for c in chunks}) == 1


async def test_messages_and_messages_tuple_together(client):
    parts = await _stream(client, "chat", HI, stream_mode=["messages", "messages-tuple"])
    tuples = _data(parts, "messages")
    partials = _data(parts, "messages/partial")
    assert len(tuples) == len(partials) >= len(TOKENS)
    assert [t[0]["type"] for t in tuples] == ["AIMessageChunk"] * len(tuples)
    assert partials[-1][0]["content"] == REPLY


async def test_sync_client_messages_tuple(sync_client):
    thread = sync_client.threads.create()
    parts = list(sync_client.runs.stream(thread["thread_id"], "chat", input=HI, stream_mode="messages-tuple"))
    assert "".join(p.data[0]["content"] for p in parts if p.event == "messages") == REPLY


# -- custom, events, debug, tasks, checkpoints ---------------------------------------------


async def test_custom_mode(client):
    parts = await _stream(client, "custom", {}, stream_mode="custom")
    assert _names(parts) == ["metadata", "custom", "custom"]
    assert _data(parts, "custom") == [{"progress": 1}, {"progress": 2}]


async def test_custom_event_arrives_before_its_node_finishes(client, tmp_path: Path):
    gate = tmp_path / "gate"
    thread = await client.threads.create()
    seen: list = []
    try:
        async with aclosing(
            client.runs.stream(
                thread["thread_id"], "gate", input={"gate": str(gate), "items": []},
                stream_mode=["custom", "updates"],
            )
        ) as stream:
            async for part in stream:
                seen.append(part)
                if part.event == "custom":
                    assert part.data == {"waiting": str(gate)}
                    assert not gate.exists()
                    run = await client.runs.get(thread["thread_id"], _run_id(seen))
                    assert run["status"] == "running"
                    assert "updates" not in _names(seen)
                    gate.touch()
    finally:
        gate.touch()
    assert _names(seen) == ["metadata", "custom", "updates"]
    assert seen[-1].data == {"wait": {"items": ["opened"]}}


async def test_events_mode_sends_astream_events_v2(client):
    parts = await _stream(client, "chat", HI, stream_mode="events")
    run_id = _run_id(parts)
    assert set(_names(parts)) == {"metadata", "events"}
    events = _data(parts, "events")
    for event in events:
        assert {"event", "name", "run_id", "tags", "metadata", "data", "parent_ids"} <= set(event)
        assert not (event["event"] == "on_chain_stream" and event["run_id"] == run_id)
        assert "langsmith:hidden" not in event["tags"]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "on_chain_start" and events[0]["run_id"] == run_id
    assert kinds[-1] == "on_chain_end" and events[-1]["run_id"] == run_id
    assert events[-1]["data"]["output"]["messages"][-1]["content"] == REPLY
    streamed = [e["data"]["chunk"]["content"] for e in events if e["event"] == "on_chat_model_stream"]
    assert "".join(streamed) == REPLY
    assert any(e["event"] == "on_chain_start" and e["name"] == "model" for e in events)


async def test_events_mode_with_other_modes(client):
    parts = await _stream(client, "custom", {}, stream_mode=["events", "custom", "values"])
    assert set(_names(parts)) == {"metadata", "events", "custom", "values"}
    assert _data(parts, "custom") == [{"progress": 1}, {"progress": 2}]
    assert _data(parts, "values")[-1] == {"done": True, "progress": [1, 2]}
    assert any(e["event"] == "on_chain_start" and e["name"] == "emit" for e in _data(parts, "events"))


async def test_debug_mode(client):
    thread = await client.threads.create()
    parts = await _stream(client, "simple", {"items": ["x"]}, thread_id=thread["thread_id"], stream_mode="debug")
    assert set(_names(parts)) == {"metadata", "debug"}
    debug = _data(parts, "debug")
    assert [(d["type"], d["step"]) for d in debug] == [
        ("checkpoint", -1),
        ("checkpoint", 0),
        ("task", 1),
        ("task_result", 1),
        ("checkpoint", 1),
        ("task", 2),
        ("task_result", 2),
        ("checkpoint", 2),
    ]
    for d in debug:
        assert set(d) == {"step", "timestamp", "type", "payload"}
    checkpoints = [d["payload"] for d in debug if d["type"] == "checkpoint"]
    previous = None
    for cp in checkpoints:
        ref = cp["checkpoint"]
        assert set(ref) == {"checkpoint_id", "thread_id", "checkpoint_ns"}
        assert ref == {
            "checkpoint_id": cp["config"]["configurable"]["checkpoint_id"],
            "thread_id": thread["thread_id"],
            "checkpoint_ns": "",
        }
        assert cp["parent_checkpoint"] == previous
        previous = ref
    assert checkpoints[-1]["values"] == {"items": ["x", "a", "b"]}
    state = await client.threads.get_state(thread["thread_id"])
    assert state["checkpoint"]["checkpoint_id"] == checkpoints[-1]["checkpoint"]["checkpoint_id"]
    task, result = debug[2]["payload"], debug[3]["payload"]
    assert task["name"] == result["name"] == "a" and task["id"] == result["id"]
    assert result["result"] == {"items": ["a"]}


async def test_debug_checkpoint_task_state_becomes_checkpoint(client):
    thread = await client.threads.create()
    parts = await _stream(client, "subgraph", {"items": []}, thread_id=thread["thread_id"], stream_mode="debug")
    tasks = [
        t
        for d in _data(parts, "debug")
        if d["type"] == "checkpoint"
        for t in d["payload"]["tasks"]
        if t["name"] == "child"
    ]
    assert tasks
    for task in tasks:
        assert "state" not in task
        assert task["checkpoint"]["thread_id"] == thread["thread_id"]
        assert task["checkpoint"]["checkpoint_ns"] == f"child:{task['id']}"


async def test_tasks_mode(client):
    parts = await _stream(client, "simple", {"items": ["x"]}, stream_mode="tasks")
    assert set(_names(parts)) == {"metadata", "tasks"}
    tasks = _data(parts, "tasks")
    assert len(tasks) == 4
    start_a, end_a, start_b, end_b = tasks
    assert {"id", "name", "input", "triggers"} <= set(start_a) and "result" not in start_a
    assert set(end_a) == {"id", "name", "error", "result", "interrupts"}
    assert (start_a["name"], start_a["input"], start_a["triggers"]) == ("a", {"items": ["x"]}, ["branch:to:a"])
    assert end_a == {"id": start_a["id"], "name": "a", "error": None, "result": {"items": ["a"]}, "interrupts": []}
    assert start_b["name"] == "b" and start_b["input"] == {"items": ["x", "a"]}
    assert end_b["id"] == start_b["id"] and end_b["result"] == {"items": ["b"]}


async def test_tasks_mode_reports_errors(client):
    parts = await _stream(client, "simple", {"items": [], "fail": True}, stream_mode="tasks")
    end = [t for t in _data(parts, "tasks") if "result" in t]
    assert end[-1]["name"] == "a"
    assert "boom from node_a" in str(end[-1]["error"])
    assert parts[-1].event == "error"


async def test_checkpoints_mode(client):
    thread = await client.threads.create()
    parts = await _stream(
        client, "simple", {"items": ["x"]}, thread_id=thread["thread_id"], stream_mode="checkpoints"
    )
    assert set(_names(parts)) == {"metadata", "checkpoints"}
    cps = _data(parts, "checkpoints")
    for cp in cps:
        assert set(cp) == {"config", "parent_config", "values", "metadata", "next", "tasks"}
        for task in cp["tasks"]:
            assert {"id", "name", "interrupts", "state"} <= set(task)
    assert [cp["values"] for cp in cps] == [
        {"items": []},
        {"items": ["x"]},
        {"items": ["x", "a"]},
        {"items": ["x", "a", "b"]},
    ]
    assert [cp["next"] for cp in cps] == [["__start__"], ["a"], ["b"], []]
    assert [cp["metadata"]["step"] for cp in cps] == [-1, 0, 1, 2]
    assert cps[0]["parent_config"] is None
    for prev, cp in zip(cps, cps[1:]):
        assert cp["parent_config"]["configurable"]["checkpoint_id"] == prev["config"]["configurable"]["checkpoint_id"]
    assert all(cp["config"]["configurable"]["thread_id"] == thread["thread_id"] for cp in cps)
    state = await client.threads.get_state(thread["thread_id"])
    assert state["checkpoint"]["checkpoint_id"] == cps[-1]["config"]["configurable"]["checkpoint_id"]


async def test_all_modes_at_once(client):
    parts = await _stream(client, "chat", HI, stream_mode=MODES)
    names = set(_names(parts))
    assert names == {
        "metadata", "values", "updates", "events", "debug", "tasks", "checkpoints",
        "messages", "messages/metadata", "messages/partial",
    }
    assert _data(parts, "values")[-1]["messages"][-1]["content"] == REPLY


@pytest.mark.parametrize("mode", ["values", "updates", "debug", "tasks", "checkpoints", "custom"])
async def test_each_mode_alone_emits_only_itself(client, mode):
    parts = await _stream(client, "custom", {}, stream_mode=mode)
    assert _names(parts)[0] == "metadata"
    assert set(_names(parts)[1:]) == {mode}


async def test_duplicate_modes_emit_once(client):
    parts = await _stream(client, "simple", {"items": []}, stream_mode=["updates", "updates"])
    assert _names(parts) == ["metadata", "updates", "updates"]


# -- errors --------------------------------------------------------------------------------


async def test_error_event_on_failing_graph(client, recwarn):
    thread = await client.threads.create()
    parts = await _stream(
        client, "simple", {"items": [], "fail": True}, thread_id=thread["thread_id"],
        stream_mode=["values", "updates"],
    )
    assert _names(parts) == ["metadata", "values", "error"]
    assert parts[1].data == {"items": [], "fail": True}
    assert parts[-1].data == {"error": "ValueError", "message": "boom from node_a"}
    assert "end" not in _names(parts)
    run = await client.runs.get(thread["thread_id"], _run_id(parts))
    assert run["status"] == "error"
    state = await client.threads.get(thread["thread_id"])
    assert state["status"] == "error"
    assert not [w for w in recwarn if "Reconnect" in str(w.message)]


async def test_graph_construction_failure_sends_only_error(client):
    parts = [p async for p in client.runs.stream(None, "raising_factory", input={})]
    assert [(p.event, p.data) for p in parts] == [("error", {"error": "ValueError", "message": "factory refused"})]


async def test_stream_ends_without_end_event_and_without_reconnect(client):
    thread = await client.threads.create()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parts = await _stream(client, "simple", {"items": []}, thread_id=thread["thread_id"])
    assert _names(parts) == ["metadata", "values", "values", "values"]
    # the run is final when its stream closes, so the SDK did not reconnect
    run = await client.runs.get(thread["thread_id"], _run_id(parts))
    assert run["status"] == "success"


async def test_sync_client_error_event(sync_client):
    parts = list(sync_client.runs.stream(None, "simple", input={"items": [], "fail": True}))
    assert parts[-1].event == "error"
    assert parts[-1].data == {"error": "ValueError", "message": "boom from node_a"}


# -- subgraphs -----------------------------------------------------------------------------


async def test_subgraph_event_names_carry_namespace(client):
    parts = await _stream(
        client, "subgraph", {"items": ["x"]}, stream_mode=["values", "updates", "tasks", "debug", "checkpoints"],
        stream_subgraphs=True,
    )
    (child_task,) = [t for t in _data(parts, "tasks") if t["name"] == "child" and "input" in t]
    suffix = f"|child:{child_task['id']}"
    names = _names(parts)
    nested = [n for n in names if "|" in n]
    assert {n.split("|", 1)[1] for n in nested} == {suffix[1:]}
    assert {n.split("|", 1)[0] for n in nested} == {"values", "updates", "tasks", "debug", "checkpoints"}
    assert _data(parts, "updates" + suffix) == [{"inner": {"items": ["inner"]}}]
    assert _data(parts, "values" + suffix) == [{"items": ["x"]}, {"items": ["x", "inner"]}]
    assert _data(parts, "values")[-1] == {"items": ["x", "x", "inner"]}
    assert _data(parts, "updates") == [{"child": {"items": ["x", "inner"]}}]
    # inner checkpoints live in the child namespace
    for cp in _data(parts, "checkpoints" + suffix):
        assert cp["config"]["configurable"]["checkpoint_ns"].startswith(f"child:{child_task['id']}")


async def test_without_stream_subgraphs_no_namespaced_events(client):
    parts = await _stream(client, "subgraph", {"items": ["x"]}, stream_mode=["values", "updates"])
    assert all("|" not in n for n in _names(parts))
    assert _data(parts, "updates") == [{"child": {"items": ["x", "inner"]}}]


async def test_subgraph_messages_tuple_suffixed_legacy_messages_not(client):
    parts = await _stream(
        client, "chat_child", HI, stream_mode=["messages", "messages-tuple", "updates"], stream_subgraphs=True
    )
    names = _names(parts)
    tuple_names = {n for n in names if n.startswith("messages|")}
    assert len(tuple_names) == 1
    (tuple_name,) = tuple_names
    assert tuple_name.startswith("messages|child:")
    assert "".join(d[0]["content"] for d in _data(parts, tuple_name)) == REPLY
    legacy = [n for n in names if n.startswith("messages/")]
    assert legacy and all("|" not in n for n in legacy)
    assert _data(parts, "messages/partial")[-1][0]["content"] == REPLY
    assert "updates" + tuple_name[len("messages"):] in names


async def test_subgraph_tokens_hidden_without_stream_subgraphs(client):
    parts = await _stream(client, "chat_child", HI, stream_mode=["messages"])
    # the child's reply reaches the parent as one whole message
    assert _names(parts) == ["metadata", "messages/metadata", "messages/complete"]
    assert parts[-1].data[0]["content"] == REPLY


# -- resumable streams and joins -----------------------------------------------------------


async def _resumable_run(client, thread_id: str, **kwargs) -> list:
    return await _stream(
        client, "simple", {"items": ["r"]}, thread_id=thread_id, stream_resumable=True,
        stream_mode=["values", "updates"], **kwargs,
    )


async def test_resumable_stream_has_increasing_ids(client):
    thread = await client.threads.create()
    parts = await _resumable_run(client, thread["thread_id"])
    ids = [p.id for p in parts]
    assert all(ids)
    keys = [tuple(int(x) for x in i.split("-")) for i in ids]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


async def test_non_resumable_stream_has_no_ids(client):
    parts = await _stream(client, "simple", {"items": []})
    assert [p.id for p in parts] == [None] * len(parts)


async def test_join_finished_run_after_last_event_id(client):
    thread = await client.threads.create()
    parts = await _resumable_run(client, thread["thread_id"])
    run_id = _run_id(parts)
    for cut in (0, 2, len(parts) - 2):
        joined = [
            p async for p in client.runs.join_stream(thread["thread_id"], run_id, last_event_id=parts[cut].id)
        ]
        assert [(p.event, p.data, p.id) for p in joined] == [(p.event, p.data, p.id) for p in parts[cut + 1 :]]
    last = [p async for p in client.runs.join_stream(thread["thread_id"], run_id, last_event_id=parts[-1].id)]
    assert last == []


@pytest.mark.parametrize("start", ["0", "-"])
async def test_join_with_last_event_id_zero_replays_everything(client, start):
    thread = await client.threads.create()
    parts = await _resumable_run(client, thread["thread_id"])
    joined = [
        p async for p in client.runs.join_stream(thread["thread_id"], _run_id(parts), last_event_id=start)
    ]
    assert [(p.event, p.data, p.id) for p in joined] == [(p.event, p.data, p.id) for p in parts]


async def test_join_finished_run_without_last_event_id_is_empty(client):
    thread = await client.threads.create()
    parts = await _resumable_run(client, thread["thread_id"])
    assert [p async for p in client.runs.join_stream(thread["thread_id"], _run_id(parts))] == []
    plain = await _stream(client, "simple", {"items": []}, thread_id=thread["thread_id"])
    assert [p async for p in client.runs.join_stream(thread["thread_id"], _run_id(plain), last_event_id="0")] == []


async def test_join_live_run_then_resume_from_an_id(client, tmp_path: Path):
    gate = tmp_path / "gate"
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "gate", input={"gate": str(gate), "items": []},
        stream_mode=["values", "custom"], stream_resumable=True,
    )
    first: list = []
    try:
        async for part in client.runs.join_stream(thread["thread_id"], run["run_id"], last_event_id="-"):
            first.append(part)
            if part.event == "custom":
                gate.touch()
    finally:
        gate.touch()
    assert _names(first) == ["metadata", "values", "custom", "values"]
    assert first[0].data == {"run_id": run["run_id"], "attempt": 1}
    assert first[-1].data == {"gate": str(gate), "items": ["opened"]}
    again = [
        p async for p in client.runs.join_stream(thread["thread_id"], run["run_id"], last_event_id=first[1].id)
    ]
    assert [(p.event, p.id) for p in again] == [(p.event, p.id) for p in first[2:]]


def test_join_pending_run_sees_all_its_events(http, tmp_path: Path):
    gate = tmp_path / "gate"
    tid = http.post("/threads", json={}).json()["thread_id"]
    try:
        first = http.post(f"/threads/{tid}/runs", json={"assistant_id": "gate", "input": {"gate": str(gate), "items": []}})
        second = http.post(
            f"/threads/{tid}/runs", json={"assistant_id": "simple", "input": {"items": []}, "stream_mode": "updates"}
        ).json()
        assert http.get(f"/threads/{tid}/runs/{second['run_id']}").json()["status"] == "pending"
        with http.stream("GET", f"/threads/{tid}/runs/{second['run_id']}/stream") as r:
            gate.touch()  # only now can the first run, and then the second, finish
            frames = _frames(r.read().decode())
    finally:
        gate.touch()
    assert [(f["event"], orjson.loads(f["data"])) for f in frames] == [
        ("metadata", {"run_id": second["run_id"], "attempt": 1}),
        ("updates", {"a": {"items": ["a"]}}),
        ("updates", {"b": {"items": ["b"]}}),
    ]
    assert http.get(f"/threads/{tid}/runs/{first.json()['run_id']}").json()["status"] == "success"


async def test_sdk_join_stream_mode_filter(client):
    thread = await client.threads.create()
    parts = await _resumable_run(client, thread["thread_id"])
    run_id = _run_id(parts)
    only_updates = [
        p
        async for p in client.runs.join_stream(
            thread["thread_id"], run_id, last_event_id="0", stream_mode="updates"
        )
    ]
    assert _names(only_updates) == ["updates", "updates"]
    both = [
        p
        async for p in client.runs.join_stream(
            thread["thread_id"], run_id, last_event_id="0", stream_mode=["updates", "metadata"]
        )
    ]
    assert _names(both) == ["metadata", "updates", "updates"]


def test_join_stream_mode_filter_json_array_string(http):
    thread = http.post("/threads", json={}).json()
    with http.stream(
        "POST", f"/threads/{thread['thread_id']}/runs/stream",
        json={"assistant_id": "simple", "input": {"items": []}, "stream_mode": ["values", "updates"],
              "stream_resumable": True},
    ) as r:
        body = r.read()
    run_id = r.headers["content-location"].rsplit("/", 1)[1]
    assert body.count(b"event: values") == 3
    path = f"/threads/{thread['thread_id']}/runs/{run_id}/stream"
    r = http.get(path, params={"stream_mode": '["values"]'}, headers={"Last-Event-ID": "0"})
    assert r.status_code == 200
    events = [line for line in r.text.split("\r\n") if line.startswith("event:")]
    assert events == ["event: values"] * 3
    r = http.get(path, params={"stream_mode": '["updates","metadata"]'}, headers={"Last-Event-ID": "0"})
    events = [line for line in r.text.split("\r\n") if line.startswith("event:")]
    assert events == ["event: metadata", "event: updates", "event: updates"]


async def test_join_stream_filter_messages_matches_all_message_events(client):
    thread = await client.threads.create()
    parts = await _stream(
        client, "chat", HI, thread_id=thread["thread_id"], stream_resumable=True,
        stream_mode=["messages", "messages-tuple", "values"],
    )
    joined = [
        p
        async for p in client.runs.join_stream(
            thread["thread_id"], _run_id(parts), last_event_id="0", stream_mode="messages-tuple"
        )
    ]
    assert set(_names(joined)) == {"messages", "messages/metadata", "messages/partial"}
    assert len(joined) == len([p for p in parts if p.event.startswith("messages")])


async def test_join_stream_filter_matches_subgraph_base_name(client):
    thread = await client.threads.create()
    parts = await _stream(
        client, "subgraph", {"items": []}, thread_id=thread["thread_id"], stream_resumable=True,
        stream_mode=["values", "updates"], stream_subgraphs=True,
    )
    joined = [
        p
        async for p in client.runs.join_stream(
            thread["thread_id"], _run_id(parts), last_event_id="0", stream_mode="updates"
        )
    ]
    assert [p.event for p in joined] == [p.event for p in parts if p.event.split("|")[0] == "updates"]
    assert any("|" in p.event for p in joined)


async def test_join_missing_run_is_one_error_event(client):
    thread = await client.threads.create()
    missing = "00000000-0000-4000-8000-000000000000"
    parts = [p async for p in client.runs.join_stream(thread["thread_id"], missing)]
    assert [(p.event, p.data) for p in parts] == [
        ("error", {"error": "HTTPException", "message": "404: Run not found"})
    ]


def test_join_invalid_last_event_id_is_422(http):
    thread = http.post("/threads", json={}).json()
    with http.stream(
        "POST", f"/threads/{thread['thread_id']}/runs/stream",
        json={"assistant_id": "simple", "input": {"items": []}, "stream_resumable": True},
    ) as r:
        r.read()
    path = r.headers["location"]
    bad = http.get(path, headers={"Last-Event-ID": "not-an-id"})
    assert bad.status_code == 422


# -- disconnects ---------------------------------------------------------------------------


def test_stream_on_disconnect_cancel(http):
    tid = http.post("/threads", json={}).json()["thread_id"]
    with http.stream(
        "POST", f"/threads/{tid}/runs/stream",
        json={"assistant_id": "hang", "input": {"items": []}, "stream_mode": "custom", "on_disconnect": "cancel"},
    ) as r:
        reader = _SSEReader(r)
        assert reader.until(lambda f: f["event"] == "custom")[-1]["data"] == {"status": "hanging"}
        run_id = r.headers["content-location"].rsplit("/", 1)[1]
    # the client went away: the run is cancelled, so joining it returns
    assert http.get(f"/threads/{tid}/runs/{run_id}/join").status_code == 200
    assert http.get(f"/threads/{tid}/runs/{run_id}").json()["status"] == "interrupted"


def test_join_stream_cancel_on_disconnect(http):
    tid = http.post("/threads", json={}).json()["thread_id"]
    run = http.post(
        f"/threads/{tid}/runs",
        json={"assistant_id": "hang", "input": {"items": []}, "stream_mode": "custom", "stream_resumable": True},
    ).json()
    with http.stream(
        "GET", f"/threads/{tid}/runs/{run['run_id']}/stream",
        params={"cancel_on_disconnect": "true"}, headers={"Last-Event-ID": "0"},
    ) as r:
        reader = _SSEReader(r)
        assert reader.until(lambda f: f["event"] == "custom")[-1]["data"] == {"status": "hanging"}
    assert http.get(f"/threads/{tid}/runs/{run['run_id']}/join").status_code == 200
    assert http.get(f"/threads/{tid}/runs/{run['run_id']}").json()["status"] == "interrupted"


def test_stream_survives_disconnect_by_default(http, tmp_path: Path):
    gate = tmp_path / "gate"
    tid = http.post("/threads", json={}).json()["thread_id"]
    try:
        with http.stream(
            "POST", f"/threads/{tid}/runs/stream",
            json={"assistant_id": "gate", "input": {"gate": str(gate), "items": []}, "stream_mode": "custom"},
        ) as r:
            _SSEReader(r).until(lambda f: f["event"] == "custom")
            run_id = r.headers["content-location"].rsplit("/", 1)[1]
        gate.touch()
    finally:
        gate.touch()
    assert http.get(f"/threads/{tid}/runs/{run_id}/join").json() == {"gate": str(gate), "items": ["opened"]}
    assert http.get(f"/threads/{tid}/runs/{run_id}").json()["status"] == "success"


# -- thread stream -------------------------------------------------------------------------


def test_thread_stream_run_modes(http):
    thread = http.post("/threads", json={}).json()
    tid = thread["thread_id"]
    with http.stream("GET", f"/threads/{tid}/stream") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        reader = _SSEReader(r)
        run = http.post(
            f"/threads/{tid}/runs",
            json={"assistant_id": "simple", "input": {"items": ["t"]}, "stream_mode": ["updates"]},
        ).json()
        frames = reader.until(_run_done(run["run_id"]))
    assert [(f["event"], f["data"]) for f in frames] == [
        ("metadata", {"run_id": run["run_id"], "attempt": 1}),
        ("updates", {"a": {"items": ["a"]}}),
        ("updates", {"b": {"items": ["b"]}}),
        ("metadata", {"status": "run_done", "run_id": run["run_id"]}),
    ]
    assert all(f.get("id") for f in frames)


def test_thread_stream_lifecycle_and_state_update(http):
    thread = http.post("/threads", json={}).json()
    tid = thread["thread_id"]
    with http.stream("GET", f"/threads/{tid}/stream", params={"stream_modes": "lifecycle,state_update"}) as r:
        reader = _SSEReader(r)
        run = http.post(
            f"/threads/{tid}/runs", json={"assistant_id": "simple", "input": {"items": []}, "stream_mode": "updates"}
        ).json()
        frames = reader.until(_run_done(run["run_id"]))
        assert [(f["event"], f["data"]) for f in frames] == [
            ("metadata", {"run_id": run["run_id"], "attempt": 1}),
            ("metadata", {"status": "run_done", "run_id": run["run_id"]}),
        ]
        # the run finished (its done marker came after its status was recorded)
        joined = http.get(f"/threads/{tid}/runs/{run['run_id']}/join")
        assert joined.json() == {"items": ["a", "b"]}
        update = http.post(f"/threads/{tid}/state", json={"values": {"items": ["u"]}})
        assert update.status_code == 200
        frame = reader.next()
    assert frame["event"] == "state_update"
    assert frame["data"]["thread_id"] == tid
    assert frame["data"]["state"]["values"] == {"items": ["a", "b", "u"]}
    assert frame["data"]["state"]["checkpoint"]["checkpoint_id"] == update.json()["checkpoint"]["checkpoint_id"]
    assert frame.get("id")


def test_thread_stream_default_excludes_state_update(http):
    thread = http.post("/threads", json={}).json()
    tid = thread["thread_id"]
    http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "simple", "input": {"items": []}})
    with http.stream("GET", f"/threads/{tid}/stream") as r:
        reader = _SSEReader(r)
        assert http.post(f"/threads/{tid}/state", json={"values": {"items": ["u"]}}).status_code == 200
        run = http.post(
            f"/threads/{tid}/runs", json={"assistant_id": "simple", "input": {"items": []}, "stream_mode": "values"}
        ).json()
        frames = reader.until(_run_done(run["run_id"]))
    names = [f["event"] for f in frames]
    assert "state_update" not in names
    assert names[0] == "metadata" and names[-1] == "metadata"
    assert set(names[1:-1]) == {"values"}


def test_thread_stream_ids_increase_across_runs(http):
    thread = http.post("/threads", json={}).json()
    tid = thread["thread_id"]
    with http.stream("GET", f"/threads/{tid}/stream") as r:
        reader = _SSEReader(r)
        frames = []
        for _ in range(2):
            run = http.post(f"/threads/{tid}/runs", json={"assistant_id": "simple", "input": {"items": []}}).json()
            frames += reader.until(_run_done(run["run_id"]))
    keys = [tuple(int(x) for x in f["id"].split("-")) for f in frames]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert [f["event"] for f in frames].count("metadata") == 4


def test_thread_stream_has_no_run_done_for_a_rejected_run(http, tmp_path: Path):
    gate = tmp_path / "gate"
    tid = http.post("/threads", json={}).json()["thread_id"]
    with http.stream("GET", f"/threads/{tid}/stream", params={"stream_modes": "lifecycle"}) as r:
        reader = _SSEReader(r)
        try:
            run = http.post(
                f"/threads/{tid}/runs", json={"assistant_id": "gate", "input": {"gate": str(gate), "items": []}}
            ).json()
            rejected = http.post(
                f"/threads/{tid}/runs",
                json={"assistant_id": "simple", "input": {"items": []}, "multitask_strategy": "reject"},
            )
            assert rejected.status_code == 409
        finally:
            gate.touch()
        frames = reader.until(_run_done(run["run_id"]))
    assert [f["data"] for f in frames] == [
        {"run_id": run["run_id"], "attempt": 1},
        {"status": "run_done", "run_id": run["run_id"]},
    ]


@pytest.mark.parametrize(
    "params", [{"stream_modes": "bogus"}, {"stream_modes": "run_modes,values"}, {"stream_mode": "values"}]
)
def test_thread_stream_invalid_modes_422(http, params):
    tid = http.post("/threads", json={}).json()["thread_id"]
    r = http.get(f"/threads/{tid}/stream", params=params)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/json")


def test_thread_stream_invalid_last_event_id_422(http):
    tid = http.post("/threads", json={}).json()["thread_id"]
    assert http.get(f"/threads/{tid}/stream", headers={"Last-Event-ID": "nope"}).status_code == 422


async def test_sdk_thread_join_stream_replays_and_follows(client, tmp_path: Path):
    gate = tmp_path / "gate"
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(
        tid, "gate", input={"gate": str(gate), "items": []}, stream_mode=["custom", "updates"],
        stream_resumable=True,
    )
    seen: list = []
    try:
        async with aclosing(await client.threads.join_stream(tid, last_event_id="0")) as stream:
            async for part in stream:
                seen.append(part)
                if part.event == "custom":
                    gate.touch()
                if part.event == "metadata" and part.data.get("status") == "run_done":
                    break
    finally:
        gate.touch()
    assert [(p.event, p.data) for p in seen] == [
        ("metadata", {"run_id": run["run_id"], "attempt": 1}),
        ("custom", {"waiting": str(gate)}),
        ("updates", {"wait": {"items": ["opened"]}}),
        ("metadata", {"status": "run_done", "run_id": run["run_id"]}),
    ]
    assert all(p.id for p in seen)
    # replay from an id: strictly later stored events of the thread's resumable runs
    replay: list = []
    async with aclosing(await client.threads.join_stream(tid, last_event_id=seen[0].id)) as stream:
        async for part in stream:
            replay.append(part)
            if part.event == "updates":
                break
    assert [(p.event, p.id) for p in replay] == [(p.event, p.id) for p in seen[1:3]]


def test_sync_sdk_thread_join_stream(sync_client):
    thread = sync_client.threads.create()
    tid = thread["thread_id"]
    parts = list(
        sync_client.runs.stream(tid, "simple", input={"items": []}, stream_mode="updates", stream_resumable=True)
    )
    stream = sync_client.threads.join_stream(tid, last_event_id="-", stream_mode="run_modes")
    got = []
    for part in stream:
        got.append(part)
        if len(got) == len(parts):
            break
    stream.close()
    assert [(p.event, p.data, p.id) for p in got] == [(p.event, p.data, p.id) for p in parts]


# -- SDK reconnection through Location + Last-Event-ID -------------------------------------


class _CuttingProxy:
    """A TCP proxy to the server that drops the first client connection right after the
    server sent a ``custom`` SSE frame (as a load balancer cutting a stream would)."""

    def __init__(self, upstream: str) -> None:
        self.host, port = upstream.removeprefix("http://").split(":")
        self.port = int(port)
        self.cuts = 0
        self.server: Any = None

    async def __aenter__(self) -> "_CuttingProxy":
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.server.close()

    async def _handle(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)

        async def client_to_server() -> None:
            try:
                while data := await reader.read(65536):
                    up_writer.write(data)
                    await up_writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                up_writer.close()

        async def server_to_client() -> None:
            seen = b""
            try:
                while data := await up_reader.read(65536):
                    seen += data
                    start = seen.find(b"event: custom\r\n")
                    end = seen.find(b"\r\n\r\n", start) if start >= 0 else -1
                    if self.cuts == 0 and end >= 0:
                        self.cuts += 1
                        keep = len(data) - (len(seen) - (end + 4))
                        writer.write(data[:keep])
                        await writer.drain()
                        return
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()
                up_writer.close()

        await asyncio.gather(client_to_server(), server_to_client())


async def test_sdk_reconnects_to_location_with_last_event_id(url, tmp_path: Path):
    gate = tmp_path / "gate"
    async with _CuttingProxy(url) as proxy:
        client = get_client(url=proxy.url)
        thread = await client.threads.create()
        parts: list = []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a reconnect without Last-Event-ID warns
                async for part in client.runs.stream(
                    thread["thread_id"], "gate", input={"gate": str(gate), "items": []},
                    stream_mode=["values", "custom"], stream_resumable=True,
                ):
                    parts.append(part)
                    if part.event == "custom":
                        gate.touch()
        finally:
            gate.touch()
    assert proxy.cuts == 1
    assert _names(parts) == ["metadata", "values", "custom", "values"]
    assert parts[-1].data == {"gate": str(gate), "items": ["opened"]}
    ids = [p.id for p in parts]
    assert len(set(ids)) == len(ids)


# -- retries -------------------------------------------------------------------------------------


def test_retried_run_starts_with_metadata_attempt_2(tmp_path: Path):
    data = tmp_path / "data"
    first = ServerProcess(data).start()
    try:
        http = httpx.Client(base_url=first.url, timeout=30)
        tid = http.post("/threads", json={}).json()["thread_id"]
        run = http.post(
            f"/threads/{tid}/runs",
            json={"assistant_id": "hang", "input": {"items": []}, "stream_mode": "custom", "stream_resumable": True},
        ).json()
        with http.stream("GET", f"/threads/{tid}/runs/{run['run_id']}/stream", headers={"Last-Event-ID": "0"}) as r:
            _SSEReader(r).until(lambda f: f["event"] == "custom")
        http.close()
    finally:
        first.stop()  # the run was interrupted by the shutdown: it is retried on the next start
    second = ServerProcess(data).start()
    try:
        with httpx.Client(base_url=second.url, timeout=30) as http:
            path = f"/threads/{tid}/runs/{run['run_id']}"
            with http.stream("GET", path + "/stream", headers={"Last-Event-ID": "0"}) as r:
                frames = _SSEReader(r).until(lambda f: f["event"] == "custom")
            assert [(f["event"], f["data"]) for f in frames] == [
                ("metadata", {"run_id": run["run_id"], "attempt": 2}),
                ("custom", {"status": "hanging"}),
            ]
            assert http.post(path + "/cancel").status_code == 202
            assert http.get(path + "/join").status_code == 200
            assert http.get(path).json()["status"] == "interrupted"
    finally:
        second.stop()
