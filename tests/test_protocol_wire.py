"""The thread streaming protocol on the wire, read with raw httpx and a raw WebSocket:
SSE framing, event ids and seq, replay from ``since``, every channel's event shapes, the
commands and their error responses, on the embedded server and the scaled-out deployment."""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterator

import httpx
import orjson
import pytest
from websockets.sync.client import connect

from conftest import BACKENDS, make_server


@pytest.fixture(scope="module", params=BACKENDS)
def wire_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = make_server(
        request.param, tmp_path_factory.mktemp("protocol-wire"), env={"GRAPHDOCK_HEARTBEAT_SECONDS": "0.2"}
    ).start()
    yield server
    server.stop()


@pytest.fixture
def http(wire_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=wire_server.url, timeout=30) as c:
        yield c


def command(http: httpx.Client, thread_id: str, method: str, params: Any = None, *, id: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = {"id": id, "method": method}
    if params is not None:
        body["params"] = params
    r = http.post(f"/threads/{thread_id}/commands", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def start(http: httpx.Client, thread_id: str, assistant_id: str, input: Any, **extra: Any) -> dict[str, Any]:
    response = command(http, thread_id, "run.start", {"assistant_id": assistant_id, "input": input, **extra})
    assert response["type"] == "success", response
    return response


def frames(http: httpx.Client, thread_id: str, body: dict[str, Any], *, until: Any = None, limit: int = 500) -> list[dict[str, Any]]:
    """The SSE frames of a thread event stream (heartbeats dropped) until ``until(event)``
    holds (default: the root's terminal lifecycle), checking the framing of each."""
    until = until or _root_terminal
    out: list[dict[str, Any]] = []
    with http.stream("POST", f"/threads/{thread_id}/stream/events", json=body) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        buffer = b""
        for chunk in r.iter_bytes():
            buffer += chunk
            while b"\r\n\r\n" in buffer:
                block, buffer = buffer.split(b"\r\n\r\n", 1)
                if block == b": heartbeat":
                    continue
                lines = block.split(b"\r\n")
                assert [line.split(b":", 1)[0] for line in lines] == [b"event", b"data", b"id"], block
                name = lines[0][len(b"event: ") :].decode()
                event = orjson.loads(lines[1][len(b"data: ") :])
                event_id = lines[2][len(b"id: ") :].decode()
                assert event["type"] == "event" and event["method"] == name and event["event_id"] == event_id
                assert set(event["params"]) >= {"namespace", "timestamp", "data"}
                out.append(event)
                if until(event) or len(out) >= limit:
                    return out
    return out


def _root_terminal(event: dict[str, Any]) -> bool:
    return (
        event["method"] == "lifecycle"
        and event["params"]["namespace"] == []
        and event["params"]["data"]["event"] in ("completed", "failed", "interrupted")
    )


ALL = ["values", "updates", "messages", "tools", "lifecycle", "input", "checkpoints", "tasks", "custom"]


# -- framing, ids, seq --------------------------------------------------------------------


def test_frames_ids_and_seq_of_a_run(http):
    tid = str(uuid.uuid4())
    response = start(http, tid, "simple", {"items": ["x"]})
    assert response["meta"]["thread_id"] == tid
    assert isinstance(response["meta"]["applied_through_seq"], int)
    events = frames(http, tid, {"channels": ALL})
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(s > response["meta"]["applied_through_seq"] for s in seqs)
    assert len({e["event_id"] for e in events}) == len(events)
    assert events[0]["method"] == "lifecycle"
    assert events[0]["params"]["data"] == {"event": "running", "graph_name": "simple"}
    assert events[-1]["params"]["data"] == {"event": "completed", "graph_name": "simple"}
    values = [e["params"]["data"] for e in events if e["method"] == "values"]
    assert values == [{"items": ["x"]}, {"items": ["x", "a"]}, {"items": ["x", "a", "b"]}]
    updates = [(e["params"]["data"], e["params"].get("node")) for e in events if e["method"] == "updates"]
    assert updates == [({"a": {"items": ["a"]}}, "a"), ({"b": {"items": ["b"]}}, "b")]
    checkpoints = [e["params"]["data"] for e in events if e["method"] == "checkpoints"]
    assert checkpoints and all("config" in c and "metadata" in c for c in checkpoints)
    tasks = [e["params"]["data"] for e in events if e["method"] == "tasks"]
    assert [t["name"] for t in tasks if "result" in t] == ["a", "b"]


def test_the_stream_stays_open_after_the_run_and_spans_runs(http):
    tid = str(uuid.uuid4())
    start(http, tid, "simple", {"items": []})
    seen: list[str] = []

    def second_run_done(event: dict[str, Any]) -> bool:
        if _root_terminal(event):
            seen.append(event["params"]["data"]["event"])
            if len(seen) == 1:
                start(http, tid, "simple", {"items": ["again"]})
        return len(seen) == 2

    events = frames(http, tid, {"channels": ["lifecycle", "values"]}, until=second_run_done)
    assert seen == ["completed", "completed"]
    assert [e["params"]["data"] for e in events if e["method"] == "values"][-1]["items"][-3:] == ["again", "a", "b"]


def test_since_replays_exactly_what_follows(http):
    tid = str(uuid.uuid4())
    start(http, tid, "p_ticker", {"n": 6, "pause": 0.01})
    full = frames(http, tid, {"channels": ALL})
    for cut in (0, 3, len(full) - 2):
        again = frames(http, tid, {"channels": ALL, "since": full[cut]["seq"]})
        assert [e["event_id"] for e in again] == [e["event_id"] for e in full[cut + 1 :]]
        assert [e["seq"] for e in again] == [e["seq"] for e in full[cut + 1 :]]


def test_reconnect_mid_run_loses_and_repeats_nothing(http):
    tid = str(uuid.uuid4())
    start(http, tid, "p_ticker", {"n": 30, "pause": 0.03})
    ticks = lambda events: [e["params"]["data"]["tick"] for e in events if e["method"] == "custom"]  # noqa: E731
    first = frames(http, tid, {"channels": ["custom", "lifecycle"]}, until=lambda e: e["method"] == "custom" and e["params"]["data"]["tick"] == 4)
    rest = frames(http, tid, {"channels": ["custom", "lifecycle"], "since": first[-1]["seq"]})
    assert ticks(first) + ticks(rest) == list(range(30))
    assert rest[-1]["params"]["data"]["event"] == "completed"


def test_without_since_a_late_stream_replays_the_run(http):
    tid = str(uuid.uuid4())
    start(http, tid, "simple", {"items": []})
    frames(http, tid, {"channels": ["lifecycle"]})  # the run is over
    late = frames(http, tid, {"channels": ["lifecycle", "values"]})
    assert late[0]["params"]["data"]["event"] == "running"
    assert late[-1]["params"]["data"]["event"] == "completed"


# -- channels -------------------------------------------------------------------------------


def test_agent_messages_tools_and_their_shapes(http):
    tid = str(uuid.uuid4())
    start(http, tid, "p_agent", {"messages": [{"role": "user", "content": "add"}]})
    events = frames(http, tid, {"channels": ALL})
    methods = {e["method"] for e in events}
    assert {"values", "updates", "messages", "tools", "lifecycle", "checkpoints", "tasks"} <= methods
    messages = [e["params"]["data"] for e in events if e["method"] == "messages"]
    starts = [m for m in messages if m["event"] == "message-start"]
    assert [m["role"] for m in starts] == ["ai", "ai"]
    assert all(m["metadata"]["langgraph_node"] == "model" for m in starts)
    # every event of a message names it
    by_id: dict[str, list[str]] = {}
    for m in messages:
        by_id.setdefault(m["id"], []).append(m["event"])
    assert all(kinds[0] == "message-start" and kinds[-1] == "message-finish" for kinds in by_id.values())
    finished_blocks = [m["content"] for m in messages if m["event"] == "content-block-finish"]
    assert {"type": "tool_call", "id": "call-1", "name": "add", "args": {"a": 1, "b": 2}}.items() <= next(
        b for b in finished_blocks if b["type"] == "tool_call"
    ).items()
    deltas = [m["delta"]["text"] for m in messages if m["event"] == "content-block-delta" and m["delta"]["type"] == "text-delta"]
    assert "".join(deltas).endswith("the answer is 3")
    tools = [e["params"]["data"] for e in events if e["method"] == "tools"]
    assert [t["event"] for t in tools] == ["tool-started", "tool-finished"]
    assert tools[0]["tool_call_id"] == "call-1" and tools[0]["tool_name"] == "add"
    assert "3" in json.dumps(tools[1]["output"])


def test_input_requested_and_interrupted_lifecycle(http):
    tid = str(uuid.uuid4())
    start(http, tid, "p_approve", {"items": []})
    events = frames(http, tid, {"channels": ["input", "lifecycle", "values"]})
    (requested,) = [e for e in events if e["method"] == "input.requested"]
    data = requested["params"]["data"]
    assert data["payload"] == {"question": "approve?"} and data["value"] == {"question": "approve?"}
    assert events[-1]["params"]["data"]["event"] == "interrupted"
    assert all("__interrupt__" not in e["params"]["data"] for e in events if e["method"] == "values")
    # respond by id; an unknown id names the problem
    wrong = command(http, tid, "input.respond", {"interrupt_id": "nope", "namespace": [], "response": 1})
    assert wrong["type"] == "error" and wrong["error"] == "no_such_interrupt" and "nope" in wrong["message"]
    ok = command(http, tid, "input.respond", {"interrupt_id": data["interrupt_id"], "namespace": [], "response": "y"})
    assert ok["type"] == "success" and ok["result"] == {}
    after = frames(http, tid, {"channels": ["lifecycle", "values"], "since": events[-1]["seq"]})
    assert after[-1]["params"]["data"]["event"] == "completed"
    assert [e["params"]["data"] for e in after if e["method"] == "values"][-1] == {"items": ["y"]}


def test_subgraph_lifecycle_and_namespaces(http):
    tid = str(uuid.uuid4())
    start(http, tid, "p_nested", {"items": []})
    events = frames(http, tid, {"channels": ["lifecycle"]})
    lifecycle = [(tuple(s.partition(":")[0] for s in e["params"]["namespace"]), e["params"]["data"]["event"]) for e in events]
    assert lifecycle[0] == ((), "running") and lifecycle[-1] == ((), "completed")
    assert lifecycle.index((("outer",), "started")) < lifecycle.index((("outer", "inner"), "started"))
    assert lifecycle.index((("outer", "inner"), "completed")) < lifecycle.index((("outer",), "completed"))
    depth0 = frames(http, tid, {"channels": ["custom", "lifecycle"], "namespaces": [["outer"]], "depth": 0},
                    until=lambda e: e["method"] == "lifecycle" and len(e["params"]["namespace"]) == 1 and e["params"]["data"]["event"] == "completed")
    assert [e["params"]["data"] for e in depth0 if e["method"] == "custom"] == [{"at": "outer"}]
    assert all(len(e["params"]["namespace"]) == 1 for e in depth0)


def test_named_custom_channel_filter(http):
    tid = str(uuid.uuid4())
    start(http, tid, "p_named_custom", {})
    named = frames(http, tid, {"channels": ["custom:progress", "lifecycle"]})
    assert [e["params"]["data"] for e in named if e["method"] == "custom"] == [
        {"name": "progress", "step": 1},
        {"name": "progress", "step": 2},
    ]


def test_a_v1_run_on_the_thread_stream(http):
    tid = http.post("/threads", json={}).json()["thread_id"]
    with http.stream("POST", f"/threads/{tid}/stream/events", json={"channels": ["lifecycle", "values", "updates"]}) as r:
        http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "simple", "input": {"items": []}, "stream_mode": ["values", "updates"]})
        body = b""
        for chunk in r.iter_bytes():
            body += chunk
            if b'"event":"completed"' in body:
                break
    events = [orjson.loads(line[len(b"data: ") :]) for line in body.split(b"\r\n") if line.startswith(b"data: ")]
    assert [e["params"]["data"]["event"] for e in events if e["method"] == "lifecycle"] == ["running", "completed"]
    assert [e["params"]["data"] for e in events if e["method"] == "values"][-1] == {"items": ["a", "b"]}
    assert [e["params"]["data"] for e in events if e["method"] == "updates"] == [{"a": {"items": ["a"]}}, {"b": {"items": ["b"]}}]


# -- commands -----------------------------------------------------------------------------------


def test_command_errors_name_the_problem(http):
    tid = str(uuid.uuid4())
    unknown = command(http, tid, "run.explode", {}, id=7)
    assert unknown == {"type": "error", "id": 7, "error": "unknown_command", "message": unknown["message"]}
    assert "run.explode" in unknown["message"]
    missing = command(http, tid, "run.start", {"input": {}})
    assert missing["error"] == "invalid_argument" and "assistant_id" in missing["message"]
    extra = command(http, tid, "run.start", {"assistant_id": "simple", "input": {}, "bogus": 1})
    assert extra["error"] == "invalid_argument" and "bogus" in extra["message"]
    no_graph = command(http, tid, "run.start", {"assistant_id": "no-such-graph", "input": {}})
    assert no_graph["type"] == "error" and no_graph["error"] == "invalid_argument"
    over_http = command(http, tid, "subscription.subscribe", {"channels": ["values"]})
    assert over_http["error"] == "not_supported"
    no_run = command(http, tid, "input.respond", {"interrupt_id": "x", "namespace": [], "response": 1})
    assert no_run["type"] == "error" and no_run["error"] in ("no_such_run", "invalid_argument")
    bad_params = command(http, tid, "state.get", {"namespace": "root"})
    assert bad_params["error"] == "invalid_argument" and "namespace" in bad_params["message"]


def test_malformed_envelopes_are_400(http):
    tid = str(uuid.uuid4())
    r = http.post(f"/threads/{tid}/commands", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json() == {"type": "error", "id": None, "error": "invalid_argument", "message": r.json()["message"]}
    r = http.post(f"/threads/{tid}/commands", json={"method": "run.start"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_argument" and "id" in r.json()["message"]
    r = http.post(f"/threads/{tid}/commands", json={"id": 1, "method": "run.start", "extra": 1})
    assert r.status_code == 400 and "extra" in r.json()["message"]
    r = http.post("/threads/not-a-uuid/commands", json={"id": 1, "method": "state.get", "params": {}})
    assert r.status_code == 422


def test_stream_request_errors(http):
    tid = str(uuid.uuid4())
    start(http, tid, "simple", {"items": []})
    for body, needle in (
        ({"channels": ["values", "nope"]}, "nope"),
        ({"channels": []}, "channels"),
        ({"channels": ["values"], "since": -1}, "since"),
        ({"channels": ["values"], "depth": -2}, "depth"),
        ({"channels": ["values"], "bogus": True}, "bogus"),
    ):
        r = http.post(f"/threads/{tid}/stream/events", json=body)
        assert r.status_code == 422 and needle in r.text, (body, r.text)
    r = http.post(f"/threads/{uuid.uuid4()}/stream/events", json={"channels": ["values"]})
    assert r.status_code == 404


def test_state_commands(http):
    tid = str(uuid.uuid4())
    start(http, tid, "simple", {"items": ["x"]})
    frames(http, tid, {"channels": ["lifecycle"]})
    state = command(http, tid, "state.get", {"namespace": []})
    assert state["result"]["values"] == {"items": ["x", "a", "b"]}
    assert state["result"]["checkpoint"]["id"] and state["result"]["checkpoint"]["ns"] == ""
    keys = command(http, tid, "state.get", {"namespace": [], "keys": ["nothing"]})
    assert keys["result"]["values"] == {}
    listed = command(http, tid, "state.listCheckpoints", {"limit": 10})
    checkpoints = listed["result"]["checkpoints"]
    assert [c["step"] for c in checkpoints] == [2, 1, 0, -1]
    assert checkpoints[0]["id"] == state["result"]["checkpoint"]["id"]
    assert {"id", "timestamp", "step"} <= set(checkpoints[0])
    page = command(http, tid, "state.listCheckpoints", {"limit": 1, "before": checkpoints[1]["id"]})
    assert [c["id"] for c in page["result"]["checkpoints"]] == [checkpoints[2]["id"]]
    # fork from the checkpoint after "a": the run goes on from there
    fork = command(http, tid, "state.fork", {"checkpoint_id": checkpoints[1]["id"]})
    assert fork["type"] == "success" and fork["result"]["thread_id"] == tid
    run = http.get(f"/threads/{tid}/runs/{fork['result']['run_id']}/join").json()
    assert run == {"items": ["x", "a", "b"]}
    missing = command(http, tid, "state.fork", {"checkpoint_id": str(uuid.uuid4())})
    assert missing["error"] == "no_such_checkpoint"
    nothing = command(http, str(uuid.uuid4()), "state.get", {"namespace": []})
    assert nothing["type"] == "error" and nothing["error"] == "invalid_argument" and "not found" in nothing["message"]


def test_agent_get_tree(http):
    tid = str(uuid.uuid4())
    start(http, tid, "subgraph", {"items": [], "ask": True})
    frames(http, tid, {"channels": ["lifecycle"]})
    tree = command(http, tid, "agent.getTree", {})["result"]["tree"]
    assert tree["namespace"] == [] and tree["graph_name"] == "subgraph" and tree["status"] == "interrupted"
    (child,) = tree["children"]
    assert child["namespace"][0].startswith("child:") and child["graph_name"] == "child"
    assert child["status"] == "interrupted"
    missing = command(http, tid, "agent.getTree", {"run_id": str(uuid.uuid4())})
    assert missing["error"] == "no_such_run"


def test_input_inject_starts_a_run_with_the_message(http):
    tid = str(uuid.uuid4())
    start(http, tid, "chat", {"messages": [{"role": "user", "content": "hi"}]})
    frames(http, tid, {"channels": ["lifecycle"]})
    injected = command(http, tid, "input.inject", {"namespace": [], "message": {"role": "user", "content": "more"}})
    assert injected["type"] == "success", injected
    events = frames(http, tid, {"channels": ["lifecycle", "values"], "since": injected["meta"]["applied_through_seq"]})
    last = [e["params"]["data"] for e in events if e["method"] == "values"][-1]
    assert [m["type"] for m in last["messages"]] == ["human", "ai", "human", "ai"]
    assert last["messages"][2]["content"] == "more"
    bad = command(http, tid, "input.inject", {"namespace": [], "message": {"role": "robot", "content": "x"}})
    assert bad["error"] == "invalid_argument" and "role" in bad["message"]


# -- WebSocket ------------------------------------------------------------------------------------


def _ws_url(server: Any, thread_id: str) -> str:
    return server.url.replace("http://", "ws://") + f"/threads/{thread_id}/stream/events"


def test_websocket_subscribe_commands_and_events(wire_server, http):
    tid = str(uuid.uuid4())
    start(http, tid, "simple", {"items": []})
    with connect(_ws_url(wire_server, tid)) as ws:
        ws.send(json.dumps({"id": 1, "method": "subscription.subscribe", "params": {"channels": ["lifecycle", "values"]}}))
        first = json.loads(ws.recv(timeout=10))
        assert first["type"] == "success" and first["id"] == 1 and first["result"]["subscription_id"]
        events = []
        while True:
            event = json.loads(ws.recv(timeout=10))
            events.append(event)
            if _root_terminal(event):
                break
        assert [e["params"]["data"] for e in events if e["method"] == "values"][-1] == {"items": ["a", "b"]}
        # other commands on the same socket
        ws.send(json.dumps({"id": 2, "method": "state.get", "params": {"namespace": []}}))
        state = json.loads(ws.recv(timeout=10))
        assert state["id"] == 2 and state["result"]["values"] == {"items": ["a", "b"]}
        ws.send(json.dumps({"id": 3, "method": "subscription.unsubscribe", "params": {"subscription_id": "nope"}}))
        assert json.loads(ws.recv(timeout=10))["error"] == "no_such_subscription"
        ws.send("{not json")
        assert json.loads(ws.recv(timeout=10)) == {"type": "error", "id": None, "error": "invalid_argument", "message": "a command must be valid JSON"}
        ws.send(json.dumps({"id": 4, "method": "subscription.subscribe", "params": {"channels": ["bogus"]}}))
        bad = json.loads(ws.recv(timeout=10))
        assert bad["id"] == 4 and bad["error"] == "invalid_argument" and "bogus" in bad["message"]
        sub_id = first["result"]["subscription_id"]
        ws.send(json.dumps({"id": 5, "method": "subscription.reconnect", "params": {"run_id": str(uuid.uuid4())}}))
        assert json.loads(ws.recv(timeout=10))["error"] == "no_such_run"
        run_id = http.get(f"/threads/{tid}/runs").json()[0]["run_id"]
        ws.send(json.dumps({"id": 6, "method": "subscription.reconnect", "params": {"run_id": run_id, "last_event_id": events[-2]["event_id"], "subscriptions": [sub_id]}}))
        reconnected = json.loads(ws.recv(timeout=10))
        assert reconnected == {"type": "success", "id": 6, "result": {"restored": True}}
        assert json.loads(ws.recv(timeout=10))["event_id"] == events[-1]["event_id"]
        ws.send(json.dumps({"id": 7, "method": "subscription.unsubscribe", "params": {"subscription_id": sub_id}}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "success", "id": 7, "result": {}}


def test_websocket_run_start_on_the_socket_creates_the_thread(wire_server):
    """The JS SDK connects before the thread exists and sends run.start on the socket."""
    tid = str(uuid.uuid4())
    with connect(_ws_url(wire_server, tid)) as ws:
        ws.send(json.dumps({"id": 1, "method": "subscription.subscribe", "params": {"channels": ["lifecycle", "values"]}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "success"
        ws.send(json.dumps({"id": 2, "method": "run.start", "params": {"assistant_id": "simple", "input": {"items": ["ws"]}}}))
        values = []
        while True:
            message = json.loads(ws.recv(timeout=10))
            if message.get("type") == "success":
                assert message["id"] == 2 and message["result"]["run_id"]
            elif message["method"] == "values":
                values.append(message["params"]["data"])
            elif _root_terminal(message):
                break
    assert values[-1] == {"items": ["ws", "a", "b"]}


def _ws_until(ws: Any, done: Any, limit: int = 200) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while not done(out):
        out.append(json.loads(ws.recv(timeout=10)))
        assert len(out) < limit, out
    return out


def _responses(ids: set[int]) -> Any:
    """Until every command in ``ids`` is answered and a run's end has been seen."""
    return lambda out: {m.get("id") for m in out if m["type"] != "event"} >= ids and any(
        m["type"] == "event" and _root_terminal(m) for m in out
    )


def test_websocket_subscriptions_opened_together_see_one_ordered_history(wire_server, http):
    """The SDKs open a lifecycle subscription and a values subscription one after the other
    once run.start answers. For a run that has already ended, the second one's values
    arrive before the run's end (which both match): one stream per connection, each event
    once, in seq order."""
    tid = str(uuid.uuid4())
    start(http, tid, "simple", {"items": []})
    frames(http, tid, {"channels": ["lifecycle"]})  # the run has ended
    with connect(_ws_url(wire_server, tid)) as ws:
        ws.send(json.dumps({"id": 1, "method": "subscription.subscribe", "params": {"channels": ["lifecycle", "input"]}}))
        ws.send(json.dumps({"id": 2, "method": "subscription.subscribe", "params": {"channels": ["values", "lifecycle", "input"]}}))
        out = _ws_until(ws, _responses({1, 2}))
    events = [m for m in out if m["type"] == "event"]
    end = next(i for i, m in enumerate(events) if _root_terminal(m))
    values = [m["params"]["data"] for m in events if m["method"] == "values"]
    assert values and values[-1] == {"items": ["a", "b"]}
    assert all(m["method"] != "values" for m in events[end:]), [m["method"] for m in events]
    seqs = [m["seq"] for m in events]
    assert seqs == sorted(seqs) and len({m["event_id"] for m in events}) == len(events)


def test_websocket_late_subscription_gets_what_the_connection_has_read(wire_server, http):
    tid = str(uuid.uuid4())
    start(http, tid, "simple", {"items": []})
    with connect(_ws_url(wire_server, tid)) as ws:
        ws.send(json.dumps({"id": 1, "method": "subscription.subscribe", "params": {"channels": ["lifecycle"]}}))
        first = _ws_until(ws, _responses({1}))
        assert [m["method"] for m in first if m["type"] == "event"][-1] == "lifecycle"
        # joins the connection's stream: the values it missed, then the run's end again
        ws.send(json.dumps({"id": 2, "method": "subscription.subscribe", "params": {"channels": ["values"]}}))
        assert json.loads(ws.recv(timeout=10))["id"] == 2
        values = [json.loads(ws.recv(timeout=10)) for _ in range(3)]
        assert [m["params"]["data"] for m in values] == [{"items": []}, {"items": ["a"]}, {"items": ["a", "b"]}]
        # since: from a position the connection read past: replayed from there
        ws.send(json.dumps({"id": 3, "method": "subscription.subscribe", "params": {"channels": ["values"], "since": values[0]["seq"]}}))
        assert json.loads(ws.recv(timeout=10))["id"] == 3
        assert [json.loads(ws.recv(timeout=10))["event_id"] for _ in range(2)] == [m["event_id"] for m in values[1:]]


def test_websocket_subscription_from_before_the_connection_reads_on_its_own(wire_server, http):
    tid = str(uuid.uuid4())
    start(http, tid, "simple", {"items": []})
    events = frames(http, tid, {"channels": ["values", "lifecycle"]})
    values = [e for e in events if e["method"] == "values"]
    with connect(_ws_url(wire_server, tid)) as ws:
        # the connection's stream starts after the second values event
        ws.send(json.dumps({"id": 1, "method": "subscription.subscribe", "params": {"channels": ["values", "lifecycle"], "since": values[1]["seq"]}}))
        out = _ws_until(ws, _responses({1}))
        assert [m["event_id"] for m in out if m.get("method") == "values"] == [values[2]["event_id"]]
        # a subscription without since wants every kept event: a stream of its own
        ws.send(json.dumps({"id": 2, "method": "subscription.subscribe", "params": {"channels": ["values"]}}))
        assert json.loads(ws.recv(timeout=10))["id"] == 2
        assert [json.loads(ws.recv(timeout=10))["event_id"] for _ in range(3)] == [e["event_id"] for e in values]


def test_input_respond_to_several_interrupts_at_once(http):
    tid = str(uuid.uuid4())
    start(http, tid, "multi_interrupt", {"items": []})
    events = frames(http, tid, {"channels": ["input", "lifecycle"]})
    requested = {e["params"]["data"]["payload"]["node"]: e["params"]["data"]["interrupt_id"] for e in events if e["method"] == "input.requested"}
    assert sorted(requested) == ["x", "y"]
    both = command(http, tid, "input.respond", {"responses": [
        {"interrupt_id": requested["x"], "namespace": [], "response": "1"},
        {"interrupt_id": requested["y"], "namespace": [], "response": "2"},
    ]})
    assert both["type"] == "success", both
    after = frames(http, tid, {"channels": ["lifecycle", "values"], "since": events[-1]["seq"]})
    assert after[-1]["params"]["data"]["event"] == "completed"
    assert [e["params"]["data"] for e in after if e["method"] == "values"][-1] == {"items": ["join"], "answers": ["x=1", "y=2"]}
    empty = command(http, tid, "input.respond", {"responses": []})
    assert empty["error"] == "invalid_argument" and "responses" in empty["message"]


def test_run_start_forks_from_config_checkpoint_id(http):
    """The JS SDK's ``forkFrom`` arrives as ``config.configurable.checkpoint_id``."""
    tid = str(uuid.uuid4())
    start(http, tid, "simple", {"items": ["x"]})
    first = frames(http, tid, {"channels": ["lifecycle"]})
    checkpoints = command(http, tid, "state.listCheckpoints", {})["result"]["checkpoints"]
    before_b = next(c["id"] for c in checkpoints if c["step"] == 1)
    forked = start(http, tid, "simple", None, config={"configurable": {"checkpoint_id": before_b}})
    events = frames(http, tid, {"channels": ["lifecycle", "values"], "since": first[-1]["seq"]})
    assert events[-1]["params"]["data"]["event"] == "completed"
    assert [e["params"]["data"] for e in events if e["method"] == "values"][-1] == {"items": ["x", "a", "b"]}
    runs = http.get(f"/threads/{tid}/runs").json()
    assert forked["result"]["run_id"] in [r["run_id"] for r in runs]


def test_an_idle_stream_sends_heartbeats(http):
    tid = str(uuid.uuid4())
    start(http, tid, "simple", {"items": []})
    frames(http, tid, {"channels": ["lifecycle"]})
    with http.stream("POST", f"/threads/{tid}/stream/events", json={"channels": ["custom"]}) as r:
        body = b""
        for chunk in r.iter_bytes():
            body += chunk
            if body.count(b": heartbeat\r\n\r\n") >= 2:
                break
    assert body == b": heartbeat\r\n\r\n" * 2
