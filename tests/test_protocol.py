"""The thread streaming protocol through the official clients: ``client.threads.stream(...)``
(async and sync, SSE and WebSocket) and ``RemoteGraph.astream_events(version="v3")``, on the
embedded server and on the scaled-out deployment (commands and streams then reach different
API processes and the runs execute in workers)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Iterator

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from conftest import BACKENDS, make_server

TRANSPORTS = ["sse", "websocket"]


@pytest.fixture(scope="module", params=BACKENDS)
def proto_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = make_server(request.param, tmp_path_factory.mktemp("protocol")).start()
    yield server
    server.stop()


@pytest.fixture
def aclient(proto_server: Any) -> Any:
    return get_client(url=proto_server.url)


@pytest.fixture
def sclient(proto_server: Any) -> Any:
    return get_sync_client(url=proto_server.url)


@pytest.fixture
def http(proto_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proto_server.url, timeout=30) as c:
        yield c


def _text(content: Any) -> str:
    """A message's text, whether its content is a string or a list of blocks."""
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")


async def _with_timeout(awaitable: Any, seconds: float = 30) -> Any:
    return await asyncio.wait_for(awaitable, seconds)


# -- a plain graph ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_plain_graph_values_and_output(aclient, transport):
    async with aclient.threads.stream(assistant_id="simple", transport=transport) as thread:
        started = await thread.run.start(input={"items": ["x"]})
        snapshots = await _with_timeout(_collect(thread.values))
        output = await _with_timeout(thread.output)
    assert output == {"items": ["x", "a", "b"]}
    assert snapshots[-1] == {"items": ["x", "a", "b"]}
    assert {"items": ["x", "a"]} in snapshots
    # a protocol run is a run of the thread, created with it
    runs = await aclient.runs.list(thread.thread_id)
    assert [r["run_id"] for r in runs] == [started["run_id"]]
    assert runs[0]["status"] == "success"
    assert (await aclient.threads.get(thread.thread_id))["status"] == "idle"


async def _collect(projection: Any) -> list[Any]:
    return [item async for item in projection]


# -- a chat graph: messages and tool calls ----------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_chat_messages_stream_token_by_token(aclient, transport):
    async with aclient.threads.stream(assistant_id="chat", transport=transport) as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "hi"}]})
        streams = await _with_timeout(_collect(thread.messages))
        texts = [await s.text for s in streams]
        deltas = [d async for d in streams[0].text]
        output = await _with_timeout(thread.output)
    assert texts == ["hello there friend"]
    assert streams[0].node == "model"
    assert "".join(deltas) == "hello there friend" and len(deltas) > 1
    assert _text(output["messages"][-1]["content"]) == "hello there friend"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_agent_messages_and_tool_calls(aclient, transport):
    async with aclient.threads.stream(assistant_id="p_agent", transport=transport) as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "add"}]})
        # one subscription for both projections: two projections opened at once race in the
        # SDK (a shared stream closed before its response arrived leaves its opener waiting)
        items = await _with_timeout(_collect(thread.interleave_projections(["tool_calls", "messages"])))
        calls = [item for name, item in items if name == "tool_calls"]
        streams = [item for name, item in items if name == "messages"]
        output = await _with_timeout(thread.output)
        finished = [await call.output for call in calls]
        messages = [await s.output for s in streams]
    assert [(c.name, c.input, c.tool_call_id) for c in calls] == [("add", {"a": 1, "b": 2}, "call-1")]
    assert "3" in str(finished[0])
    assert [m.tool_calls[0]["name"] for m in messages if m.tool_calls] == ["add"]
    assert _text(messages[-1].content) == "the answer is 3"
    assert [m["type"] for m in output["messages"]] == ["human", "ai", "tool", "ai"]


# -- interrupts --------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_interrupt_then_respond(aclient, transport):
    async with aclient.threads.stream(assistant_id="p_approve", transport=transport) as thread:
        await thread.run.start(input={"items": []})
        await _with_timeout(_until_interrupted(thread))
        assert [i["value"] for i in thread.interrupts] == [{"question": "approve?"}]
        assert thread.interrupts[0]["namespace"] == []
        # the interrupt is announced a moment before the run's outcome is recorded
        assert await _thread_status(aclient, thread.thread_id, "interrupted") == "interrupted"
        await thread.run.respond("yes")
        output = await _with_timeout(thread.output)
    assert output == {"items": ["yes"]}
    runs = await aclient.runs.list(thread.thread_id)
    assert len(runs) == 2 and {r["status"] for r in runs} == {"success"}


async def _thread_status(client: Any, thread_id: str, wanted: str, seconds: float = 10) -> str:
    """The thread's status once it is ``wanted`` (or whatever it is after ``seconds``)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        status = (await client.threads.get(thread_id))["status"]
        if status == wanted or asyncio.get_running_loop().time() > deadline:
            return status
        await asyncio.sleep(0.05)


async def _until_interrupted(thread: Any) -> None:
    while not thread.interrupted:
        async for _ in thread.values:
            pass
        if not thread.interrupted:
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_interrupt_inside_a_subgraph_then_respond(aclient, transport):
    async with aclient.threads.stream(assistant_id="subgraph", transport=transport) as thread:
        await thread.run.start(input={"items": [], "ask": True})
        await _with_timeout(_until_interrupted(thread))
        (pending,) = thread.interrupts
        assert pending["value"] == {"question": "inner?"}
        assert len(pending["namespace"]) == 1 and pending["namespace"][0].startswith("child:")
        await thread.run.respond("ok")
        output = await _with_timeout(thread.output)
    assert output == {"items": ["inner"], "ask": True, "answer": "ok"}


async def test_respond_in_a_new_session_on_the_thread(aclient):
    """A client that reattaches to an interrupted thread sees its pending interrupt (replayed)
    and resumes it."""
    async with aclient.threads.stream(assistant_id="p_approve") as thread:
        await thread.run.start(input={"items": []})
        await _with_timeout(_until_interrupted(thread))
    async with aclient.threads.stream(thread.thread_id, assistant_id="p_approve") as again:
        await _with_timeout(_until_interrupted(again))
        await again.run.respond("later")
        output = await _with_timeout(again.output)
    assert output == {"items": ["later"]}


async def test_run_start_on_an_interrupted_thread_resumes_it(aclient):
    async with aclient.threads.stream(assistant_id="p_approve") as thread:
        await thread.run.start(input={"items": []})
        await _with_timeout(_until_interrupted(thread))
        await thread.run.start(input="via start")
        output = await _with_timeout(thread.output)
    assert output == {"items": ["via start"]}


# -- subgraphs, namespaces, custom events -----------------------------------------------------------


async def test_subgraphs_are_discovered(aclient):
    async with aclient.threads.stream(assistant_id="p_nested") as thread:
        await thread.run.start(input={"items": []})
        handles = await _with_timeout(_collect(thread.subgraphs))
        await _with_timeout(thread.output)
    assert [(h.graph_name, len(h.path)) for h in handles] == [("outer", 1)]
    assert handles[0].path[0].startswith("outer:")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_subagent_run_by_a_tool(aclient, transport):
    """The deep-agent shape: a `task` tool runs a subagent graph; the subagent is discovered
    under the tool's namespace, caused by the tool call, and its messages stream there."""
    thread_id = (await aclient.threads.create())["thread_id"]
    async with aclient.threads.stream(thread_id, assistant_id="p_supervisor", transport=transport) as thread:
        collectors = await _attach(
            _collect_until_end(thread, ["lifecycle"]),
            _collect_until_end(thread, ["messages"], namespaces=[["tools"]]),
        )
        await thread.run.start(input={"messages": [{"role": "user", "content": "go"}]})
        lifecycle, messages = await _with_timeout(asyncio.gather(*collectors))
        output = await _with_timeout(thread.output)
    (started,) = [e for e in lifecycle if e["params"]["namespace"] and e["params"]["data"]["event"] == "started"]
    assert started["params"]["namespace"][0].startswith("tools:")
    assert started["params"]["data"]["cause"] == {"type": "toolCall", "tool_call_id": "task-1"}
    deltas = [
        e["params"]["data"]["delta"]["text"]
        for e in messages
        if e["params"]["data"]["event"] == "content-block-delta"
    ]
    assert "".join(deltas) == "worker done"
    assert [m["type"] for m in output["messages"]] == ["human", "ai", "tool", "ai"]
    assert output["messages"][2]["content"] == "worker done"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_namespace_and_depth_filters(aclient, transport):
    thread_id = (await aclient.threads.create())["thread_id"]
    async with aclient.threads.stream(thread_id, assistant_id="p_nested", transport=transport) as thread:
        collectors = await _attach(
            _collect_until_end(thread, ["custom"], namespaces=[[]], depth=0),
            _collect_until_end(thread, ["custom"], namespaces=[["outer"]], depth=0),
            _collect_until_end(thread, ["custom"], namespaces=[["outer"]]),
            _collect_until_end(thread, ["custom"]),
        )
        await thread.run.start(input={"items": []})
        root_only, outer_only, outer_and_below, everything = await _with_timeout(asyncio.gather(*collectors))
        await _with_timeout(thread.output)
    assert root_only == []
    assert [e["params"]["data"] for e in outer_only] == [{"at": "outer"}]
    assert [e["params"]["data"] for e in outer_and_below] == [{"at": "outer"}, {"at": "leaf"}]
    assert [e["params"]["data"] for e in everything] == [{"at": "outer"}, {"at": "leaf"}]
    leaf = outer_and_below[1]["params"]["namespace"]
    assert [s.partition(":")[0] for s in leaf] == ["outer", "inner"]


async def _collect_until_end(thread: Any, channels: list[str], **kwargs: Any) -> list[dict[str, Any]]:
    return [event async for event in thread.subscribe(channels, **kwargs)]


async def _attach(*collectors: Any) -> list[asyncio.Future[Any]]:
    """Start each collector and let its subscription connect before the next one.

    Subscriptions of one SDK stream share one connection that is replaced when a wider
    one is needed; two opened at the same instant can leave the first waiting forever for
    a connection the second already closed (an SDK race), so the tests open them one by
    one, before the run starts (a subscription opened after the run ended would wait for a
    run end that already went by).
    """
    started = []
    for collector in collectors:
        started.append(asyncio.ensure_future(collector))
        await asyncio.sleep(0.3)
    return started


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_custom_and_named_custom_channels(aclient, transport):
    thread_id = (await aclient.threads.create())["thread_id"]
    async with aclient.threads.stream(thread_id, assistant_id="p_named_custom", transport=transport) as thread:
        collectors = await _attach(_collect(thread.extensions["progress"]), _collect_until_end(thread, ["custom"]))
        await thread.run.start(input={})
        named, every = await _with_timeout(asyncio.gather(*collectors))
        await _with_timeout(thread.output)
    assert named == [{"name": "progress", "step": 1}, {"name": "progress", "step": 2}]
    assert [e["params"]["data"] for e in every] == [
        {"name": "progress", "step": 1},
        {"name": "progress", "step": 2},
        {"plain": True},
    ]


# -- closing, cancelling, concurrency ---------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_closing_mid_iteration_leaves_the_run_going(aclient, transport):
    async with aclient.threads.stream(assistant_id="p_ticker", transport=transport) as thread:
        started = await thread.run.start(input={"n": 15, "pause": 0.02})
        seen = []
        async for event in thread.subscribe(["custom"]):
            seen.append(event["params"]["data"]["tick"])
            if len(seen) == 3:
                break
    assert seen == [0, 1, 2]
    final = await _with_timeout(aclient.runs.join(thread.thread_id, started["run_id"]))
    assert final == {"n": 15, "pause": 0.02, "ticks": 15}


class DroppingProxy:
    """A TCP proxy in the test's event loop whose :meth:`drop` cuts every open connection
    (the client sees its stream break mid-run and reconnects through the proxy)."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.pipes: set[asyncio.StreamWriter] = set()
        self.server: asyncio.AbstractServer | None = None
        self.accepted = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.pipes.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.pipes.difference_update((writer, up_writer))

    def drop(self) -> None:
        for writer in list(self.pipes):
            writer.transport.abort()

    async def stop(self) -> None:
        self.drop()
        assert self.server is not None
        self.server.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_reconnect_after_the_connection_drops_mid_run(proto_server, transport):
    """The SDK reopens a dropped stream with ``since`` = the last seq it saw: every event
    arrives once, in order."""
    proxy = DroppingProxy(proto_server.url)
    client = get_client(url=await proxy.start())
    try:
        async with client.threads.stream(assistant_id="p_ticker", transport=transport) as thread:
            await thread.run.start(input={"n": 30, "pause": 0.03})
            ticks: list[int] = []
            async for event in thread.subscribe(["custom"]):
                ticks.append(event["params"]["data"]["tick"])
                if len(ticks) == 5:
                    proxy.drop()
                    dropped_at = proxy.accepted
            output = await _with_timeout(thread.output)
    finally:
        await proxy.stop()
    assert proxy.accepted > dropped_at  # the streams really broke and were opened again
    assert ticks == list(range(30))
    assert output["ticks"] == 30


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_wider_subscription_mid_run_rotates_the_stream_without_loss(aclient, transport):
    async with aclient.threads.stream(assistant_id="p_ticker", transport=transport) as thread:
        await thread.run.start(input={"n": 20, "pause": 0.03})
        ticks: list[int] = []
        enough = asyncio.Event()

        async def customs() -> None:
            async for event in thread.subscribe(["custom"]):
                ticks.append(event["params"]["data"]["tick"])
                if len(ticks) == 3:
                    enough.set()

        reading = asyncio.ensure_future(customs())
        await _with_timeout(enough.wait())
        values = await _with_timeout(_collect(thread.values))  # widens the shared stream: a new one from `since`
        await _with_timeout(reading)
    assert ticks == list(range(20))
    assert values[-1]["ticks"] == 20


async def test_cancel_from_the_client(aclient):
    async with aclient.threads.stream(assistant_id="p_ticker") as thread:
        started = await thread.run.start(input={"n": 1000, "pause": 0.05})
        async for event in thread.subscribe(["custom"]):
            break
        await aclient.runs.cancel(thread.thread_id, started["run_id"])
        with pytest.raises(RuntimeError, match="cancelled"):
            await _with_timeout(thread.output)
    run = await aclient.runs.get(thread.thread_id, started["run_id"])
    assert run["status"] == "interrupted"


async def test_concurrent_streams_on_one_thread(aclient):
    """Three clients on one thread (SSE and WebSocket sessions, and a late one that attaches
    mid-run and sees the run from its start)."""
    thread_id = (await aclient.threads.create())["thread_id"]
    async with aclient.threads.stream(thread_id, assistant_id="p_ticker") as first:
        async with aclient.threads.stream(thread_id, assistant_id="p_ticker", transport="websocket") as second:
            a, b = await _attach(_collect_until_end(first, ["custom"]), _collect_until_end(second, ["custom"]))
            await first.run.start(input={"n": 10, "pause": 0.05})
            async with aclient.threads.stream(thread_id, assistant_id="p_ticker") as late:
                first_tick = await _with_timeout(anext(aiter(late.subscribe(["custom"]))))
                assert first_tick["params"]["data"] == {"tick": 0}
            a, b = await _with_timeout(asyncio.gather(a, b))
            assert await _with_timeout(second.output) == {"n": 10, "pause": 0.05, "ticks": 10}
    assert [e["params"]["data"]["tick"] for e in a] == list(range(10))
    assert [e["params"]["data"]["tick"] for e in b] == list(range(10))


async def test_multitask_reject_applies_to_protocol_runs(aclient):
    async with aclient.threads.stream(assistant_id="p_ticker") as thread:
        await thread.run.start(input={"n": 200, "pause": 0.05})
        with pytest.raises(RuntimeError, match="invalid_argument"):
            await thread._send_command(
                "run.start", {"assistant_id": "p_ticker", "input": {"n": 1}, "multitaskStrategy": "reject"}
            )
        await aclient.runs.cancel(thread.thread_id, (await aclient.runs.list(thread.thread_id))[0]["run_id"])


async def test_a_v1_run_is_visible_on_the_thread_stream(aclient):
    thread = await aclient.threads.create()
    async with aclient.threads.stream(thread["thread_id"], assistant_id="simple") as stream:
        events = asyncio.ensure_future(_collect_until_end(stream, ["values", "lifecycle"]))
        await asyncio.sleep(0.5)  # the stream is attached before the v1 run starts
        await aclient.runs.wait(thread["thread_id"], "simple", input={"items": []})
        got = await _with_timeout(events)
    lifecycle = [e["params"]["data"]["event"] for e in got if e["method"] == "lifecycle"]
    assert lifecycle[0] == "running" and lifecycle[-1] == "completed"
    values = [e["params"]["data"] for e in got if e["method"] == "values"]
    assert values[-1] == {"items": ["a", "b"]}


# -- the sync client -------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sync_client_plain_and_chat(sclient, transport):
    with sclient.threads.stream(assistant_id="simple", transport=transport) as thread:
        thread.run.start(input={"items": []})
        snapshots = list(thread.values)
        assert thread.output == {"items": ["a", "b"]}
    assert snapshots[-1] == {"items": ["a", "b"]}
    with sclient.threads.stream(assistant_id="chat", transport=transport) as thread:
        thread.run.start(input={"messages": [{"role": "user", "content": "hi"}]})
        streams = list(thread.messages)
        assert [s.text.get() for s in streams] == ["hello there friend"]
        assert _text(thread.output["messages"][-1]["content"]) == "hello there friend"


def test_sync_client_interrupt_then_respond(sclient):
    with sclient.threads.stream(assistant_id="p_approve") as thread:
        thread.run.start(input={"items": []})
        while not thread.interrupted:
            for _ in thread.values:
                pass
        thread.run.respond("sync yes")
        assert thread.output == {"items": ["sync yes"]}


# -- RemoteGraph -------------------------------------------------------------------------------------


async def test_remote_graph_streams_through_the_protocol(proto_server):
    from langgraph.pregel.remote import RemoteGraph

    remote = RemoteGraph("p_agent", url=proto_server.url)
    async with await remote.astream_events(
        {"messages": [{"role": "user", "content": "add"}]}, version="v3"
    ) as run:
        streams = await _with_timeout(_collect(run.messages))
        texts = [_text((await s.output).content) for s in streams]
        output = await _with_timeout(run.output())
    assert texts[-1] == "the answer is 3"
    assert [m["type"] for m in output["messages"]] == ["human", "ai", "tool", "ai"]


def test_remote_graph_sync_interrupt_and_resume(proto_server):
    from langgraph.pregel.remote import RemoteGraph
    from langgraph.types import Command

    remote = RemoteGraph("p_approve", url=proto_server.url)
    thread_id = str(uuid.uuid4())
    config = {"configurable": {"thread_id": thread_id}}
    with remote.stream_events({"items": []}, config, version="v3") as run:
        for _ in run.values:
            pass
        assert run.interrupted
    with remote.stream_events(Command(resume="remote"), config, version="v3") as run:
        assert run.output == {"items": ["remote"]}
