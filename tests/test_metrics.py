"""``GET /metrics``: Prometheus text and JSON, request metrics by route template, run and
token counters, queue gauges, on every placement of runs.

Placements: the embedded server executing runs itself, the embedded server with every
run in a run process (their counts must reach the server's own ``/metrics``), and a
scaled-out deployment (two API processes, two workers on PostgreSQL + Redis: runs and
tokens are counted on the workers' own ``/metrics``, the queue gauges by every process).
The graphs are written by :func:`write_graphs`: a fake chat model whose replies carry
``usage_metadata``, a graph that sleeps, one that fails.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from langgraph_sdk import get_client
from prometheus_client.parser import text_string_to_metric_families

from conftest import ServerProcess

GRAPHS = '''
"""Graphs of graphdock's observability tests (written by tests/test_metrics.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.graph import END, START, MessagesState, StateGraph
from typing_extensions import TypedDict

USAGE = {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}


class UsageModel(BaseChatModel):
    """A fake chat model: every reply carries USAGE."""

    model_name: str = "fake-usage-model"

    @property
    def _llm_type(self) -> str:
        return "fake-usage"

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        reply = AIMessage(content="hi there", usage_metadata=dict(USAGE))
        return ChatResult(generations=[ChatGeneration(message=reply)])


async def _model(state: MessagesState) -> dict:
    return {"messages": [await UsageModel().ainvoke(state["messages"])]}


chat = StateGraph(MessagesState).add_node("model", _model).add_edge(START, "model").add_edge("model", END).compile()


class Sleep(TypedDict, total=False):
    sleep: float
    done: bool


async def _sleep(state: Sleep) -> dict:
    logging.getLogger("tests.graph").warning("sleeping %s", state.get("sleep", 0.0))
    await asyncio.sleep(state.get("sleep", 0.0))
    return {"done": True}


sleepy = StateGraph(Sleep).add_node("sleep", _sleep).add_edge(START, "sleep").add_edge("sleep", END).compile()


def _fail(state: Sleep) -> dict:
    raise ValueError("boom from the graph")


failing = StateGraph(Sleep).add_node("fail", _fail).add_edge(START, "fail").add_edge("fail", END).compile()
'''

CHAT_INPUT = {"messages": [{"role": "user", "content": "hi"}]}


def write_graphs(directory: Path) -> Path:
    """The test graphs and their ``langgraph.json`` in ``directory``; the config's path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "obs_graphs.py").write_text(GRAPHS)
    config = directory / "langgraph.json"
    config.write_text(
        json.dumps(
            {
                "graphs": {
                    "chat": "./obs_graphs.py:chat",
                    "sleepy": "./obs_graphs.py:sleepy",
                    "failing": "./obs_graphs.py:failing",
                }
            }
        )
    )
    return config


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` at ``url``, parsed: (sample name, sorted labels) -> value."""
    r = httpx.get(f"{url}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


class Placement:
    """Where runs execute, and the processes whose ``/metrics`` count them."""

    def __init__(self, kind: str, proc: Any) -> None:
        self.kind = kind
        self.proc = proc

    @property
    def url(self) -> str:  # one API process (scaled out: not the round-robin proxy)
        return self.proc.api_url(0) if self.kind == "scaled-out" else self.proc.url

    def run_urls(self) -> list[str]:
        """The processes that execute runs (and count them)."""
        if self.kind == "scaled-out":
            return [f"http://127.0.0.1:{w.port}" for w in self.proc.workers]
        return [self.proc.url]

    def run_samples(self) -> dict[Any, float]:
        total: dict[Any, float] = {}
        for url in self.run_urls():
            for key, v in scrape(url).items():
                total[key] = total.get(key, 0.0) + v
        return total


@pytest.fixture(scope="module", params=["runs-in-server", "runs-in-run-process", "scaled-out"])
def placement(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Placement]:
    config = write_graphs(tmp_path_factory.mktemp("obsgraphs"))
    data = tmp_path_factory.mktemp("obsdata")
    if request.param == "scaled-out":
        from deployment import Deployment
        from services import require_services

        require_services()
        deployment = Deployment(data, config=config).start()
        try:
            yield Placement("scaled-out", deployment)
        finally:
            deployment.destroy()
        return
    args = ["--run-processes", "0"] if request.param == "runs-in-server" else ["--run-process-policy", "always"]
    proc = ServerProcess(data, config=config, args=args).start()
    try:
        yield Placement(request.param, proc)
    finally:
        proc.stop()


def test_text_format_parses_and_labels_requests_by_route_template(placement: Placement) -> None:
    url = placement.url
    with httpx.Client(base_url=url, timeout=30) as http:
        thread_ids = [http.post("/threads", json={}).json()["thread_id"] for _ in range(3)]
        for tid in thread_ids:
            assert http.get(f"/threads/{tid}").status_code == 200
        assert http.get("/threads/00000000-0000-0000-0000-000000000009").status_code == 404
        assert http.get(f"/no/such/path/{thread_ids[0]}").status_code == 404
    samples = scrape(url)
    routes = {dict(labels).get("route") for (name, labels) in samples if name == "graphdock_http_requests_total"}
    assert "/threads/{thread_id}" in routes and "/threads" in routes and "unmatched" in routes
    assert not any(tid in str(route) for route in routes for tid in thread_ids), routes  # never raw ids
    assert value(samples, "graphdock_http_requests_total", method="GET", route="/threads/{thread_id}", status="200") >= 3
    assert value(samples, "graphdock_http_requests_total", method="GET", route="/threads/{thread_id}", status="404") >= 1
    # POST /threads is answered by the fast path: counted under its template all the same
    assert value(samples, "graphdock_http_requests_total", method="POST", route="/threads", status="200") >= 3
    assert value(samples, "graphdock_http_request_duration_seconds_count", method="GET", route="/threads/{thread_id}") >= 4
    assert value(samples, "graphdock_http_requests_total", route="unmatched", status="404") >= 1


async def test_runs_and_token_usage_are_counted(placement: Placement) -> None:
    client = get_client(url=placement.url)
    before = placement.run_samples()
    thread = await client.threads.create()
    out = await client.runs.wait(thread["thread_id"], "chat", input=CHAT_INPUT)
    assert out["messages"][-1]["usage_metadata"]["total_tokens"] == 10
    await client.runs.wait(None, "chat", input=CHAT_INPUT)  # stateless: counted too
    async for _ in client.runs.stream(None, "chat", input=CHAT_INPUT, stream_mode=["messages", "values"]):
        pass
    with pytest.raises(Exception, match="boom from the graph"):
        await client.runs.wait(None, "failing", input={})

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    deadline = time.monotonic() + 10
    while True:  # a worker counts a run just after it records the outcome the client saw
        after = placement.run_samples()
        if delta("graphdock_runs_total", graph_id="failing", status="error") >= 1 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert delta("graphdock_runs_total", graph_id="chat", status="success") == 3
    assert delta("graphdock_runs_total", graph_id="failing", status="error") == 1
    assert delta("graphdock_run_duration_seconds_count", graph_id="chat", status="success") == 3
    assert delta("graphdock_run_queue_wait_seconds_count", graph_id="chat") == 3
    model = {"graph_id": "chat", "model": "fake-usage-model"}
    assert delta("graphdock_llm_tokens_total", **model, type="input") == 3 * 7
    assert delta("graphdock_llm_tokens_total", **model, type="output") == 3 * 3
    assert delta("graphdock_llm_tokens_total", **model, type="total") == 3 * 10


async def test_queue_gauges_and_json_format(placement: Placement) -> None:
    client = get_client(url=placement.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "sleepy", input={"sleep": 30})
    queued = [
        await client.runs.create(tid, "sleepy", input={"sleep": 0}, multitask_strategy="enqueue") for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 20
        while (await client.runs.get(tid, first["run_id"]))["status"] != "running":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.1)  # the queued runs have waited at least a second
        for url in {placement.url, *placement.run_urls()}:  # every process: the deployment's numbers
            samples = scrape(url)
            assert value(samples, "graphdock_runs_pending") >= 2
            assert value(samples, "graphdock_runs_running") >= 1
            assert value(samples, "graphdock_runs_pending_wait_max_seconds") >= 1.0
        doc = httpx.get(f"{placement.url}/metrics", params={"format": "json"}, timeout=10).json()
        queue = doc["queue"]
        assert set(queue) == {
            "n_pending", "n_running", "pending_runs_wait_time_max_secs",
            "pending_runs_wait_time_med_secs", "pending_unblocked_runs_wait_time_max_secs",
        }  # fmt: skip
        assert queue["n_pending"] >= 2 and queue["n_running"] >= 1
        assert queue["pending_runs_wait_time_max_secs"] >= 1.0
        assert queue["pending_runs_wait_time_med_secs"] >= 0.0
        assert set(doc["workers"]) == {"max", "active", "available"}
        requests = doc["api"]["http_requests_total"]
        assert any(r["route"] == "/threads/{thread_id}/runs" and r["method"] == "POST" for r in requests)
        assert all(set(r) == {"method", "route", "status", "value"} for r in requests)
        assert {"runs_total", "llm_tokens_total"} <= set(doc["runs"])
    finally:
        await client.runs.cancel(tid, first["run_id"], action="interrupt", wait=True)
        for run in queued:
            await client.runs.join(tid, run["run_id"])


def test_format_must_be_prometheus_or_json(placement: Placement) -> None:
    r = httpx.get(f"{placement.url}/metrics", params={"format": "xml"}, timeout=10)
    assert r.status_code == 422 and "format" in r.text
    assert httpx.get(f"{placement.url}/metrics", params={"format": "prometheus"}, timeout=10).status_code == 200


def test_process_gauges(placement: Placement) -> None:
    samples = scrape(placement.run_urls()[0])
    slots = value(samples, "graphdock_run_slots", state="busy") + value(samples, "graphdock_run_slots", state="free")
    assert slots == 10  # --n-jobs-per-worker's default
    assert ("graphdock_stream_subscribers", ()) in samples
    if placement.kind == "runs-in-run-process":
        processes = scrape(placement.url)
        assert value(processes, "graphdock_run_processes", state="busy") + value(
            processes, "graphdock_run_processes", state="idle"
        ) >= 1
    if placement.kind == "scaled-out":  # a worker's own health port serves them
        for url in placement.run_urls():
            r = httpx.get(f"{url}/metrics", params={"format": "json"}, timeout=10)
            assert r.status_code == 200 and r.json()["workers"]["max"] == 10


async def test_stream_subscribers_gauge_counts_open_streams(placement: Placement) -> None:
    client = get_client(url=placement.url)
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "sleepy", input={"sleep": 30})
    stream = httpx.AsyncClient(base_url=placement.url, timeout=30)
    try:
        async with stream.stream("GET", f"/threads/{thread['thread_id']}/runs/{run['run_id']}/stream") as response:
            assert response.status_code == 200
            deadline = time.monotonic() + 10
            while value(scrape(placement.url), "graphdock_stream_subscribers") < 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
    finally:
        await stream.aclose()
        await client.runs.cancel(thread["thread_id"], run["run_id"], action="interrupt", wait=True)


def test_disable_meta_turns_metrics_off(tmp_path: Path) -> None:
    config = write_graphs(tmp_path / "graphs")
    raw = json.loads(config.read_text())
    config.write_text(json.dumps({**raw, "http": {"disable_meta": True}}))
    proc = ServerProcess(tmp_path / "data", config=config).start()
    try:
        assert httpx.get(f"{proc.url}/metrics", timeout=10).status_code == 404
        assert httpx.get(f"{proc.url}/ok", timeout=10).status_code == 200
    finally:
        proc.stop()
