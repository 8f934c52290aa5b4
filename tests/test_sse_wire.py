"""SSE bytes on the wire, read with raw httpx: framing, headers, ids, heartbeats (spec §6, §10.5, §13)."""

from __future__ import annotations

import re
from typing import Iterator

import httpx
import orjson
import pytest
from langgraph_sdk import get_client, get_sync_client

from conftest import BACKENDS, ServerProcess, make_server

HEARTBEAT = b": heartbeat\r\n\r\n"
EVENT_ID = re.compile(rb"^\d+-\d+$")


def _thread(http: httpx.Client) -> str:
    return http.post("/threads", json={}).json()["thread_id"]


def _post_stream(http: httpx.Client, path: str, body: dict) -> tuple[httpx.Response, bytes]:
    with http.stream("POST", path, json=body) as r:
        raw = r.read()
    return r, raw


def _blocks(raw: bytes) -> list[list[bytes]]:
    """The frames of a body (heartbeats dropped), each as its list of lines."""
    assert raw.endswith(b"\r\n\r\n"), raw[-40:]
    blocks = raw[: -len(b"\r\n\r\n")].split(b"\r\n\r\n")
    return [block.split(b"\r\n") for block in blocks if block != b": heartbeat"]


def _assert_crlf_only(raw: bytes) -> None:
    assert raw.count(b"\n") == raw.count(b"\r\n")
    assert raw.count(b"\r") == raw.count(b"\r\n")


# -- framing -------------------------------------------------------------------------------


def test_exact_bytes_of_a_values_and_updates_stream(http):
    tid = _thread(http)
    r, raw = _post_stream(
        http, f"/threads/{tid}/runs/stream",
        {"assistant_id": "simple", "input": {"items": ["x"]}, "stream_mode": ["values", "updates"]},
    )
    run_id = r.headers["content-location"].rsplit("/", 1)[1]
    expected = (
        b"event: metadata\r\ndata: {\"run_id\":\"" + run_id.encode() + b"\",\"attempt\":1}\r\n\r\n"
        b"event: values\r\ndata: {\"items\":[\"x\"]}\r\n\r\n"
        b"event: updates\r\ndata: {\"a\":{\"items\":[\"a\"]}}\r\n\r\n"
        b"event: values\r\ndata: {\"items\":[\"x\",\"a\"]}\r\n\r\n"
        b"event: updates\r\ndata: {\"b\":{\"items\":[\"b\"]}}\r\n\r\n"
        b"event: values\r\ndata: {\"items\":[\"x\",\"a\",\"b\"]}\r\n\r\n"
    )
    assert raw.replace(HEARTBEAT, b"") == expected


def test_error_frame_bytes_and_no_end_event(http):
    tid = _thread(http)
    _, raw = _post_stream(
        http, f"/threads/{tid}/runs/stream",
        {"assistant_id": "simple", "input": {"items": [], "fail": True}, "stream_mode": "values"},
    )
    _assert_crlf_only(raw)
    assert raw.replace(HEARTBEAT, b"").endswith(
        b"\r\n\r\nevent: values\r\ndata: {\"items\":[],\"fail\":true}\r\n\r\n"
        b"event: error\r\ndata: {\"error\":\"ValueError\",\"message\":\"boom from node_a\"}\r\n\r\n"
    )
    assert b"event: end" not in raw


def test_every_frame_is_event_then_one_data_line(http):
    tid = _thread(http)
    _, raw = _post_stream(
        http, f"/threads/{tid}/runs/stream",
        {
            "assistant_id": "chat",
            "input": {"messages": [{"role": "user", "content": "two\nlines\r\nhere"}]},
            "stream_mode": ["values", "updates", "messages", "messages-tuple", "debug", "tasks", "checkpoints",
                            "custom", "events"],
        },
    )
    _assert_crlf_only(raw)
    blocks = _blocks(raw)
    assert len(blocks) > 10
    for lines in blocks:
        assert len(lines) == 2, lines
        assert lines[0].startswith(b"event: ") and len(lines[0]) > len(b"event: ")
        assert lines[1].startswith(b"data: ")
        orjson.loads(lines[1][len(b"data: "):])
    # the newlines of the input travel escaped inside the JSON
    assert b"two\\nlines\\r\\nhere" in raw


def test_resumable_stream_puts_id_after_data(http):
    tid = _thread(http)
    _, raw = _post_stream(
        http, f"/threads/{tid}/runs/stream",
        {"assistant_id": "simple", "input": {"items": []}, "stream_mode": ["values", "updates"],
         "stream_resumable": True},
    )
    _assert_crlf_only(raw)
    blocks = _blocks(raw)
    assert len(blocks) == 6
    ids = []
    for lines in blocks:
        assert len(lines) == 3, lines
        assert lines[0].startswith(b"event: ")
        assert lines[1].startswith(b"data: ")
        assert lines[2].startswith(b"id: ")
        ids.append(lines[2][len(b"id: "):])
    assert all(EVENT_ID.match(i) for i in ids)
    keys = [tuple(int(x) for x in i.split(b"-")) for i in ids]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_non_resumable_streams_have_no_id_lines(http):
    tid = _thread(http)
    _, raw = _post_stream(
        http, f"/threads/{tid}/runs/stream", {"assistant_id": "simple", "input": {"items": []}}
    )
    assert b"\r\nid:" not in raw
    _, raw = _post_stream(http, "/runs/stream", {"assistant_id": "simple", "input": {"items": []}})
    assert b"\r\nid:" not in raw


# -- headers -------------------------------------------------------------------------------


def test_stream_headers_thread_run(http):
    tid = _thread(http)
    r, raw = _post_stream(http, f"/threads/{tid}/runs/stream", {"assistant_id": "simple", "input": {"items": []}})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-accel-buffering"] == "no"
    run_id = orjson.loads(_blocks(raw)[0][1][len(b"data: "):])["run_id"]
    assert r.headers["location"] == f"/threads/{tid}/runs/{run_id}/stream"
    assert r.headers["content-location"] == f"/threads/{tid}/runs/{run_id}"
    # the Location is where the run's stream can be joined
    assert http.get(f"/threads/{tid}/runs/{run_id}").json()["status"] == "success"
    joined = http.get(r.headers["location"])
    assert joined.status_code == 200
    assert joined.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert joined.headers["location"] == f"/threads/{tid}/runs/{run_id}/stream"
    assert joined.headers["content-location"] == f"/threads/{tid}/runs/{run_id}"


def test_stream_headers_stateless_run(http):
    r, raw = _post_stream(http, "/runs/stream", {"assistant_id": "simple", "input": {"items": []}})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    run_id = orjson.loads(_blocks(raw)[0][1][len(b"data: "):])["run_id"]
    assert r.headers["location"] == f"/runs/{run_id}/stream"
    assert r.headers["content-location"] == f"/runs/{run_id}"


def test_errors_before_streaming_are_json(http):
    missing = "00000000-0000-4000-8000-000000000000"
    r = http.post(f"/threads/{missing}/runs/stream", json={"assistant_id": "simple", "input": {"items": []}})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert "detail" in r.json()
    tid = _thread(http)
    r = http.post(f"/threads/{tid}/runs/stream", json={"assistant_id": missing, "input": {}})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    r = http.post(f"/threads/{tid}/runs/stream", json={"assistant_id": "no-such-graph", "input": {}})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")
    r = http.post(f"/threads/{tid}/runs/stream", json={"assistant_id": "simple", "stream_mode": ["values", 3]})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")


def test_join_missing_run_bytes(http):
    tid = _thread(http)
    missing = "00000000-0000-4000-8000-000000000000"
    r = http.get(f"/threads/{tid}/runs/{missing}/stream")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.content == (
        b"event: error\r\ndata: {\"error\":\"HTTPException\",\"message\":\"404: Run not found\"}\r\n\r\n"
    )


def test_join_replay_bytes_after_last_event_id(http):
    tid = _thread(http)
    _, raw = _post_stream(
        http, f"/threads/{tid}/runs/stream",
        {"assistant_id": "simple", "input": {"items": []}, "stream_mode": "updates", "stream_resumable": True},
    )
    frames = raw.replace(HEARTBEAT, b"").split(b"\r\n\r\n")[:-1]
    assert len(frames) == 3
    first_id = frames[0].split(b"\r\nid: ")[1].decode()
    run_id = orjson.loads(frames[0].split(b"\r\n")[1][len(b"data: "):])["run_id"]
    r = http.get(f"/threads/{tid}/runs/{run_id}/stream", headers={"Last-Event-ID": first_id})
    assert r.content.replace(HEARTBEAT, b"") == frames[1] + b"\r\n\r\n" + frames[2] + b"\r\n\r\n"


# -- on_run_created (parses Content-Location) ------------------------------------------------


async def test_sdk_on_run_created_async(client):
    thread = await client.threads.create()
    got: list = []
    parts = [
        p async for p in client.runs.stream(
            thread["thread_id"], "simple", input={"items": []}, on_run_created=got.append
        )
    ]
    assert got == [{"run_id": parts[0].data["run_id"], "thread_id": thread["thread_id"]}]
    got.clear()
    run = await client.runs.create(thread["thread_id"], "simple", input={"items": []}, on_run_created=got.append)
    assert got == [{"run_id": run["run_id"], "thread_id": thread["thread_id"]}]
    got.clear()
    await client.runs.wait(None, "simple", input={"items": []}, on_run_created=got.append)
    assert len(got) == 1 and got[0]["thread_id"] is None


def test_sdk_on_run_created_sync(sync_client):
    thread = sync_client.threads.create()
    got: list = []
    parts = list(
        sync_client.runs.stream(thread["thread_id"], "simple", input={"items": []}, on_run_created=got.append)
    )
    assert got == [{"run_id": parts[0].data["run_id"], "thread_id": thread["thread_id"]}]
    got.clear()
    parts = list(sync_client.runs.stream(None, "simple", input={"items": []}, on_run_created=got.append))
    assert got == [{"run_id": parts[0].data["run_id"], "thread_id": None}]


# -- heartbeats ------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def fast_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = make_server(
        request.param, tmp_path_factory.mktemp("heartbeat"), env={"GRAPHDOCK_HEARTBEAT_SECONDS": "0.2"}
    ).start()
    yield proc
    proc.stop()


@pytest.fixture
def fast(fast_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fast_server.url, timeout=30) as c:
        yield c


def _read_until(chunks: Iterator[bytes], buffer: bytes, needle: bytes) -> bytes:
    """Read until ``needle`` was received and the body so far ends on a frame boundary."""
    while needle not in buffer or not buffer.endswith(b"\r\n\r\n"):
        buffer += next(chunks)
    return buffer


def test_heartbeat_on_long_run_stream_then_cancel(fast):
    tid = _thread(fast)
    with fast.stream(
        "POST", f"/threads/{tid}/runs/stream",
        json={"assistant_id": "hang", "input": {"items": []}, "stream_mode": ["custom"]},
    ) as r:
        chunks = r.iter_raw()
        buffer = _read_until(chunks, b"", b"event: custom\r\ndata: {\"status\":\"hanging\"}\r\n\r\n")
        buffer = _read_until(chunks, buffer, HEARTBEAT)
        # heartbeats are whole comment frames between events
        assert buffer.replace(HEARTBEAT, b"").startswith(b"event: metadata\r\n")
        run_id = r.headers["content-location"].rsplit("/", 1)[1]
        assert fast.get(f"/threads/{tid}/runs/{run_id}").json()["status"] == "running"
        assert fast.post(f"/threads/{tid}/runs/{run_id}/cancel").status_code == 202
        for chunk in chunks:
            buffer += chunk
    _assert_crlf_only(buffer)
    rest = buffer.replace(HEARTBEAT, b"")
    assert rest.count(b"event: ") == 2  # metadata, custom: cancellation adds no error or end event
    assert fast.get(f"/threads/{tid}/runs/{run_id}").json()["status"] == "interrupted"


def test_heartbeat_on_thread_stream(fast):
    tid = _thread(fast)
    with fast.stream("GET", f"/threads/{tid}/stream") as r:
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        buffer = _read_until(r.iter_raw(), b"", HEARTBEAT + HEARTBEAT)
    assert buffer.startswith(HEARTBEAT)


def test_heartbeat_on_join_stream(fast):
    tid = _thread(fast)
    run = fast.post(f"/threads/{tid}/runs", json={"assistant_id": "hang", "input": {"items": []}}).json()
    try:
        with fast.stream("GET", f"/threads/{tid}/runs/{run['run_id']}/stream") as r:
            buffer = _read_until(r.iter_raw(), b"", HEARTBEAT)
        _assert_crlf_only(buffer)
    finally:
        fast.post(f"/threads/{tid}/runs/{run['run_id']}/cancel")


def test_wait_keepalive_uses_the_same_interval(fast):
    tid = _thread(fast)
    with fast.stream(
        "POST", f"/threads/{tid}/runs/wait", json={"assistant_id": "hang", "input": {"items": []}}
    ) as r:
        chunks = r.iter_raw()
        buffer = next(chunks)
        assert buffer and buffer.strip(b"\n") == b""  # whitespace that JSON parsers skip
        run_id = r.headers["location"].split("/")[-2]
        assert fast.post(f"/threads/{tid}/runs/{run_id}/cancel").status_code == 202
        for chunk in chunks:
            buffer += chunk
    assert isinstance(orjson.loads(buffer), dict)


def test_heartbeat_interval_is_configurable(fast):
    # the node sleeps 1 s between its custom event and its update: with a 0.2 s interval
    # (not the default 5 s) heartbeats fill that gap
    _, raw = _post_stream(
        fast, "/runs/stream", {"assistant_id": "slow", "input": {"sleep": 1.0}, "stream_mode": ["custom", "updates"]}
    )
    gap = raw.split(b"event: custom\r\n", 1)[1].split(b"event: updates\r\n", 1)[0]
    assert HEARTBEAT in gap
    assert gap.split(b"\r\n\r\n", 1)[1].replace(HEARTBEAT, b"") == b""


async def test_sdk_ignores_heartbeats(fast_server):
    client = get_client(url=fast_server.url)
    thread = await client.threads.create()
    parts = [
        p async for p in client.runs.stream(
            thread["thread_id"], "slow", input={"sleep": 0.7}, stream_mode=["custom", "updates"]
        )
    ]
    assert [p.event for p in parts] == ["metadata", "custom", "updates"]
    sync = get_sync_client(url=fast_server.url)
    parts = list(sync.runs.stream(None, "slow", input={"sleep": 0.7}, stream_mode="custom"))
    assert [p.event for p in parts] == ["metadata", "custom"]


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan"])
def test_invalid_heartbeat_setting_stops_start_up(tmp_path, value):
    proc = ServerProcess(tmp_path, env={"GRAPHDOCK_HEARTBEAT_SECONDS": value})
    with pytest.raises(RuntimeError) as info:
        proc.start(timeout=60)
    proc.stop()
    assert "GRAPHDOCK_HEARTBEAT_SECONDS" in str(info.value)
