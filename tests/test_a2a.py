"""The A2A endpoint through ``a2a-sdk``'s client (it reads graphdock's 0.3 agent card and
speaks JSON-RPC 0.3), on every backend (tests/integrations/): the agent card, message/send
with a fake chat model's reply, message/stream, tasks/get, tasks/cancel, input-required and
resume, contextId continuity, data parts, JSON-RPC errors, auth and isolation."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types import a2a_pb2 as pb

from conftest import BACKENDS, ServerProcess, make_server

HERE = Path(__file__).resolve().parent / "integrations"


@pytest.fixture(scope="module", params=BACKENDS)
def base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    srv = make_server(request.param, tmp_path_factory.mktemp("a2a"), config=HERE / "langgraph.json").start()
    yield srv.url
    (getattr(srv, "destroy", None) or srv.stop)()


def _user() -> str:
    return f"u{uuid.uuid4().hex[:8]}"


def _assistant(base: str, user: str, graph_id: str = "parrot", **extra: Any) -> str:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {user}"}, timeout=30) as http:
        r = http.post("/assistants", json={"graph_id": graph_id, "name": f"{graph_id} agent", **extra})
        assert r.status_code == 200, r.text
        return r.json()["assistant_id"]


class Agent:
    """An a2a-sdk client of one assistant, for one user."""

    def __init__(self, base: str, user: str, assistant_id: str, *, streaming: bool = False) -> None:
        self.base, self.user, self.assistant_id, self.streaming = base, user, assistant_id, streaming

    async def __aenter__(self) -> "Agent":
        self.http = httpx.AsyncClient(headers={"Authorization": f"Bearer {self.user}"}, timeout=60)
        self.card = await A2ACardResolver(self.http, self.base).get_agent_card(
            relative_card_path=f"/.well-known/agent-card.json?assistant_id={self.assistant_id}"
        )
        self.client = ClientFactory(ClientConfig(httpx_client=self.http, streaming=self.streaming)).create(self.card)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.client.close()
        await self.http.aclose()

    async def send(self, text: str | None = None, *, data: dict[str, Any] | None = None, **fields: Any) -> list[Any]:
        parts = []
        if text is not None:
            parts.append(pb.Part(text=text))
        if data is not None:
            part = pb.Part()
            part.data.struct_value.update(data)
            parts.append(part)
        config = fields.pop("configuration", None)
        message = pb.Message(role=pb.ROLE_USER, parts=parts, message_id=uuid.uuid4().hex, **fields)
        request = pb.SendMessageRequest(message=message, configuration=config)
        return [event async for event in self.client.send_message(request)]

    async def task(self, task_id: str) -> Any:
        return await self.client.get_task(pb.GetTaskRequest(id=task_id))


def _reply(task: Any) -> str:
    assert len(task.artifacts) == 1 and task.artifacts[0].name == "Assistant Response"
    return task.artifacts[0].parts[0].text


def _rpc(base: str, user: str | None, assistant_id: str, method: str, params: Any, **extra: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {user}"} if user else {}
    body = {"jsonrpc": "2.0", "id": "1", "method": method, "params": params, **extra}
    return httpx.post(f"{base}/a2a/{assistant_id}", json=body, headers=headers, timeout=60)


def _message(text: str, **fields: Any) -> dict[str, Any]:
    return {"message": {"role": "user", "parts": [{"kind": "text", "text": text}], "messageId": uuid.uuid4().hex, **fields}}


async def test_agent_card(base):
    user = _user()
    aid = _assistant(base, user, description="a parrot")
    async with Agent(base, user, aid) as agent:
        card = agent.card
    assert card.name == "parrot agent" and card.description == "a parrot"
    assert card.capabilities.streaming is True
    assert [i.url for i in card.supported_interfaces] == [f"{base}/a2a/{aid}"]
    assert card.supported_interfaces[0].protocol_version == "0.3.0"
    assert card.skills[0].tags == ["assistant", "parrot"]
    headers = {"Authorization": f"Bearer {user}"}
    with httpx.Client(base_url=base, headers=headers) as http:
        adder = _assistant(base, user, "adder")
        r = http.get("/.well-known/agent-card.json", params={"assistant_id": adder})
        assert r.status_code == 400 and "no 'messages' field" in r.text
        r = http.get("/.well-known/agent-card.json")
        assert r.status_code == 422 and "assistant_id" in r.text
        r = http.get("/.well-known/agent-card.json", params={"assistant_id": str(uuid.uuid4())})
        assert r.status_code == 404
    assert httpx.get(f"{base}/.well-known/agent-card.json", params={"assistant_id": aid}).status_code == 401


async def test_send_continues_its_context_and_tasks_get(base):
    user = _user()
    aid = _assistant(base, user)
    async with Agent(base, user, aid) as agent:
        (first,) = await agent.send("hello")
        task = first.task
        assert task.status.state == pb.TASK_STATE_COMPLETED
        assert _reply(task) == "you said: hello"
        (second,) = await agent.send("again", context_id=task.context_id)
        assert second.task.context_id == task.context_id and second.task.id != task.id
        assert _reply(second.task) == "you said: hello | again"
        got = await agent.task(second.task.id)
        assert got.status.state == pb.TASK_STATE_COMPLETED and _reply(got) == "you said: hello | again"
        assert [(m.role, m.parts[0].text) for m in got.history] == [
            (pb.ROLE_USER, "hello"), (pb.ROLE_AGENT, "you said: hello"),
            (pb.ROLE_USER, "again"), (pb.ROLE_AGENT, "you said: hello | again"),
        ]
        # a new message without contextId: a new thread
        (other,) = await agent.send("fresh")
        assert other.task.context_id != task.context_id and _reply(other.task) == "you said: fresh"
    # the context is a graphdock thread, the task one of its runs
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {user}"}) as http:
        state = http.get(f"/threads/{task.context_id}/state").json()
        assert [m["content"] for m in state["values"]["messages"]][-1] == "you said: hello | again"
        run = http.get(f"/threads/{task.context_id}/runs/{task.id}").json()
        assert run["status"] == "success" and run["assistant_id"] == aid
    # tasks/get as the official server's clients send it (with contextId), and historyLength
    r = _rpc(base, user, aid, "tasks/get", {"id": second.task.id, "contextId": task.context_id, "historyLength": 1})
    result = r.json()["result"]
    assert result["kind"] == "task" and result["status"]["state"] == "completed"
    assert [m["parts"][0]["text"] for m in result["history"]] == ["you said: hello | again"]
    # an earlier task of the context: its state (its reply is in the context's history)
    r = _rpc(base, user, aid, "tasks/get", {"id": task.id, "contextId": task.context_id})
    assert r.json()["result"]["status"]["state"] == "completed"


async def test_stream(base):
    user = _user()
    aid = _assistant(base, user)
    async with Agent(base, user, aid, streaming=True) as agent:
        events = await agent.send("stream me")
    kinds = [event.WhichOneof("payload") for event in events]
    assert kinds[0] == "task" and events[0].task.status.state == pb.TASK_STATE_SUBMITTED
    assert kinds[1] == "status_update" and events[1].status_update.status.state == pb.TASK_STATE_WORKING
    # the fake model's tokens ("you", " ", "said:", ...) as appended pieces of the reply,
    # then the whole reply as the last chunk
    *pieces, whole = [e.artifact_update for e in events if e.WhichOneof("payload") == "artifact_update"]
    assert len(pieces) > 2 and not pieces[0].append and all(p.append for p in pieces[1:])
    assert "".join(p.artifact.parts[0].text for p in pieces) == "you said: stream me"
    assert not any(p.last_chunk for p in pieces)
    assert whole.artifact.parts[0].text == "you said: stream me" and whole.last_chunk and not whole.append
    assert len({p.artifact.artifact_id for p in [*pieces, whole]}) == 1
    assert kinds[-1] == "status_update" and events[-1].status_update.status.state == pb.TASK_STATE_COMPLETED
    task_id = events[0].task.id
    assert all(getattr(e, e.WhichOneof("payload")).task_id == task_id for e in events[1:])
    # raw: SSE frames of JSON-RPC answers carrying the request's id
    with httpx.Client(timeout=60) as http:
        body = {"jsonrpc": "2.0", "id": "s1", "method": "message/stream", "params": _message("raw")}
        r = http.post(f"{base}/a2a/{aid}", json=body, headers={"Authorization": f"Bearer {user}"})
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = [line for line in r.text.splitlines() if line.startswith("data: ")]
    assert '"id":"s1"' in frames[0] and '"kind":"task"' in frames[0]
    assert '"final":true' in frames[-1] and '"state":"completed"' in frames[-1]


async def test_cancel(base):
    user = _user()
    aid = _assistant(base, user)
    async with Agent(base, user, aid) as agent:
        (started,) = await agent.send("slow", configuration=pb.SendMessageConfiguration(return_immediately=True))
        task = started.task
        assert task.status.state in (pb.TASK_STATE_SUBMITTED, pb.TASK_STATE_WORKING)
        cancelled = await agent.client.cancel_task(pb.CancelTaskRequest(id=task.id))
        assert cancelled.status.state == pb.TASK_STATE_CANCELED
        assert (await agent.task(task.id)).status.state == pb.TASK_STATE_CANCELED
    r = _rpc(base, user, aid, "tasks/cancel", {"id": task.id, "contextId": task.context_id})
    assert r.json()["error"]["code"] == -32002 and "canceled" in r.json()["error"]["message"]


async def test_input_required_then_resume(base):
    user = _user()
    aid = _assistant(base, user)
    async with Agent(base, user, aid) as agent:
        (asked,) = await agent.send("ask")
        task = asked.task
        assert task.status.state == pb.TASK_STATE_INPUT_REQUIRED
        assert task.status.message.parts[0].text == "what is your name?"
        (answered,) = await agent.send("Bob", context_id=task.context_id, task_id=task.id)
        assert answered.task.status.state == pb.TASK_STATE_COMPLETED
        assert _reply(answered.task) == "hello Bob"
        # that task is over: it takes no more messages
    r = _rpc(base, user, aid, "message/send", _message("again", contextId=task.context_id, taskId=answered.task.id))
    assert r.json()["error"]["code"] == -32602 and "takes no more messages" in r.json()["error"]["message"]


async def test_data_parts(base):
    user = _user()
    adder = _assistant(base, user, "adder")
    r = _rpc(base, user, adder, "message/send",
             {"message": {"role": "user", "parts": [{"kind": "data", "data": {"a": 1, "b": 2}}], "messageId": "m1"}})
    result = r.json()["result"]
    assert result["status"]["state"] == "completed"
    assert result["artifacts"][0]["parts"] == [{"kind": "data", "data": {"a": 1, "b": 2, "total": 3}}]
    r = _rpc(base, user, adder, "message/send", _message("hi"))
    assert r.json()["error"]["code"] == -32602 and "'messages' field" in r.json()["error"]["message"]
    r = _rpc(base, user, adder, "message/send",
             {"message": {"role": "user", "parts": [{"kind": "data", "data": {"a": 1, "b": 2, "fail": True}}],
                          "messageId": "m2"}})
    status = r.json()["result"]["status"]
    assert status["state"] == "failed" and "adder failed on purpose" in status["message"]["parts"][0]["text"]


def test_message_send_copies_the_configurable_headers_into_its_run(base):
    user = _user()
    aid = _assistant(base, user)
    body = {"jsonrpc": "2.0", "id": "1", "method": "message/send", "params": _message("team?")}
    headers = {"Authorization": f"Bearer {user}", "X-Team": "green"}
    r = httpx.post(f"{base}/a2a/{aid}", json=body, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    artifacts = r.json()["result"]["artifacts"]
    assert artifacts[0]["parts"][0]["text"] == "team: green"


def test_jsonrpc_errors(base):
    user = _user()
    aid = _assistant(base, user)
    headers = {"Authorization": f"Bearer {user}"}
    r = httpx.post(f"{base}/a2a/{aid}", content=b"{not json", headers=headers)
    assert r.status_code == 200 and r.json()["error"]["code"] == -32700
    assert _rpc(base, user, aid, "tasks/list", {}).json()["error"]["code"] == -32601
    assert _rpc(base, user, aid, "tasks/resubscribe", {"id": "x"}).json()["error"]["code"] == -32004
    r = _rpc(base, user, aid, "message/send", {**_message("hi"), "colour": "red"})
    assert r.json()["error"]["code"] == -32602 and "colour" in r.json()["error"]["message"]
    r = _rpc(base, user, aid, "message/send", _message("hi", contextId="not-a-uuid"))
    assert r.json()["error"]["code"] == -32602 and "not-a-uuid" in r.json()["error"]["message"]
    file_part = {"kind": "file", "file": {"uri": "https://example.com/a.png"}}
    r = _rpc(base, user, aid, "message/send", {"message": {"role": "user", "parts": [file_part], "messageId": "m"}})
    assert r.json()["error"]["code"] == -32005
    r = _rpc(base, user, aid, "tasks/get", {"id": str(uuid.uuid4())})
    assert r.json()["error"]["code"] == -32001
    r = _rpc(base, user, aid, "message/send", _message("hi"), extra="x")
    assert r.json()["error"]["code"] == -32600


def test_auth_and_isolation(base):
    alice, bob = _user(), _user()
    aid = _assistant(base, alice)
    first = _rpc(base, alice, aid, "message/send", _message("secret")).json()["result"]
    assert _rpc(base, None, aid, "message/send", _message("hi")).status_code == 401
    # bob cannot reach alice's assistant, its card, or her task through it
    assert _rpc(base, bob, aid, "message/send", _message("hi")).status_code == 404
    assert _rpc(base, bob, aid, "tasks/get", {"id": first["id"], "contextId": first["contextId"]}).status_code == 404
    card = httpx.get(f"{base}/.well-known/agent-card.json", params={"assistant_id": aid},
                     headers={"Authorization": f"Bearer {bob}"})
    assert card.status_code == 404
    # nor through an assistant of his own
    mine = _assistant(base, bob)
    r = _rpc(base, bob, mine, "tasks/get", {"id": first["id"]})
    assert r.json()["error"]["code"] == -32001
    r = _rpc(base, bob, mine, "tasks/cancel", {"id": first["id"], "contextId": first["contextId"]})
    assert r.json()["error"]["code"] == -32001
    r = _rpc(base, bob, mine, "message/send", _message("mine now", contextId=first["contextId"]))
    assert "error" in r.json() and "secret" not in r.text
    # alice's context is untouched
    again = _rpc(base, alice, aid, "message/send", _message("still me", contextId=first["contextId"])).json()
    assert again["result"]["artifacts"][0]["parts"][0]["text"] == "you said: secret | still me"


@pytest.fixture(scope="module")
def noauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    srv = ServerProcess(tmp_path_factory.mktemp("a2a-noauth"), config=HERE / "langgraph_noauth.json").start()
    yield srv.url
    srv.stop()


def test_system_assistant_by_graph_id_without_auth(noauth):
    card = httpx.get(f"{noauth}/.well-known/agent-card.json", params={"assistant_id": "parrot"}).json()
    assert card["name"] == "parrot" and card["description"] == "Repeats what the user said"
    r = _rpc(noauth, None, "parrot", "message/send", _message("hi"))
    assert r.json()["result"]["artifacts"][0]["parts"][0]["text"] == "you said: hi"
