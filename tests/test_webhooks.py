"""Webhooks through the official SDK, on every backend: a finished run's JSON delivered
to a local listener (loopback allowed by tests/crons/langgraph.json), with the configured
headers and a signature a receiver can verify, retried against a listener that fails at
first; URLs refused at creation by the policy (cloud metadata, link-local, loopback by
default, schemes), on runs and crons."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from langgraph_sdk import get_client

from conftest import BACKENDS, CONFIG as DEFAULT_CONFIG, ServerProcess, make_server

CONFIG = Path(__file__).resolve().parent / "crons" / "langgraph.json"
SECRET = "secret-1"
ENV = {"GRAPHDOCK_CRON_SECONDS": "1", "GD_TEST_HOOK_TOKEN": "token-1", "GD_TEST_HOOK_SECRET": SECRET}


class Listener:
    """A local HTTP receiver: records every POST; the first ``fail`` answers of a path are 503."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.received.append({"path": self.path, "headers": dict(self.headers), "raw": raw, "at": time.time()})
                left = outer.fail.get(self.path, 0)
                if left:
                    outer.fail[self.path] = left - 1
                    self.send_response(503)
                else:
                    self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r["path"] == path]

    def wait(self, path: str, n: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.at(path)) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.at(path)


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.server.shutdown()


@pytest.fixture(scope="module", params=BACKENDS)
def hook_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    srv = make_server(request.param, tmp_path_factory.mktemp("hooks"), config=CONFIG, env=ENV).start()
    yield srv
    (getattr(srv, "destroy", None) or srv.stop)()


@pytest.fixture
def client(hook_server: Any) -> Any:
    return get_client(url=hook_server.url)


def path() -> str:
    return f"/hook/{uuid.uuid4().hex}"


def verify(secret: str, raw: bytes, header: str) -> bool:
    """What a receiver does (README): recompute the HMAC over "<t>.<raw body>"."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


async def test_a_finished_run_is_delivered_signed_with_its_json(client, listener):
    p = path()
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "recorder", input={"tag": "hook"}, webhook=listener.url + p)
    assert result["count"] == 1
    got = listener.wait(p)
    assert len(got) == 1
    body = json.loads(got[0]["raw"])
    assert body["status"] == "success" and body["thread_id"] == thread["thread_id"]
    assert body["values"] == {"tag": "hook", "count": 1} and "error" not in body
    assert body["kwargs"]["webhook"] == listener.url + p
    for key in ("run_id", "assistant_id", "created_at", "updated_at", "metadata", "multitask_strategy",
                "run_started_at", "run_ended_at", "webhook_sent_at"):  # fmt: skip
        assert body.get(key) is not None, key
    assert body["run_started_at"] <= body["run_ended_at"] <= body["webhook_sent_at"]
    headers = {k.lower(): v for k, v in got[0]["headers"].items()}
    assert headers["x-test-token"] == "token-1" and headers["content-type"] == "application/json"
    assert verify(SECRET, got[0]["raw"], headers["x-graphdock-signature"])
    assert not verify("wrong", got[0]["raw"], headers["x-graphdock-signature"])
    assert not verify(SECRET, got[0]["raw"] + b" ", headers["x-graphdock-signature"])


async def test_a_stateless_run_is_delivered_with_its_final_values(client, listener):
    p = path()
    result = await client.runs.wait(None, "recorder", input={"tag": "stateless"}, webhook=listener.url + p)
    body = json.loads(listener.wait(p)[0]["raw"])
    assert body["status"] == "success" and body["values"] == result == {"tag": "stateless", "count": 1}


async def test_a_failed_stateless_run_is_delivered_with_its_error(client, listener):
    p = path()
    run = await client.runs.create(None, "failing", input={}, webhook=listener.url + p)
    body = json.loads(listener.wait(p)[0]["raw"])
    assert body["run_id"] == run["run_id"] and body["status"] == "error"
    assert body["error"]["error"] == "ValueError" and "exploded on purpose" in body["error"]["message"]


async def test_delivery_is_retried_with_backoff_and_never_blocks_the_run(client, listener):
    p = path()
    listener.fail[p] = 2
    thread = await client.threads.create()
    started = time.monotonic()
    await client.runs.wait(thread["thread_id"], "recorder", input={"tag": "retry"}, webhook=listener.url + p)
    assert time.monotonic() - started < 5
    got = listener.wait(p, 3)
    assert len(got) == 3
    gaps = [b["at"] - a["at"] for a, b in zip(got, got[1:])]
    assert gaps[0] >= 0.4 and gaps[1] >= gaps[0] * 1.5  # backoff grows
    runs = await client.runs.list(thread["thread_id"])
    assert runs[0]["status"] == "success"
    time.sleep(1.5)
    assert len(listener.at(p)) == 3  # no more once delivered


async def test_a_cron_fire_is_delivered(client, listener):
    p = path()
    cron = await client.crons.create("recorder", schedule="* * * * * */2", input={"tag": "cronhook"}, webhook=listener.url + p)
    got = listener.wait(p)
    await client.crons.delete(cron["cron_id"])
    body = json.loads(got[0]["raw"])
    assert body["status"] == "success"
    assert body["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"]


REFUSED = [
    ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
    ("http://[fd00:ec2::254]/", "cloud metadata"),
    ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata"),
    ("http://169.254.10.20/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("ftp://example.com/hook", "http"),
    ("/relative/hook", "http"),
    ("http://example.com/" + "x" * 5000, "longer than"),
]


def test_urls_refused_at_creation(hook_server):
    with httpx.Client(base_url=hook_server.url, timeout=30) as http:
        thread = http.post("/threads", json={}).json()["thread_id"]
        for url, rule in REFUSED:
            for route in ("/runs", f"/threads/{thread}/runs/wait", "/runs/crons"):
                body: dict[str, Any] = {"assistant_id": "recorder", "input": {}, "webhook": url}
                if route == "/runs/crons":
                    body["schedule"] = "0 0 1 1 *"
                r = http.post(route, json=body)
                assert r.status_code == 422 and rule in r.text, (route, url, r.text)
        cron = http.post("/runs/crons", json={"assistant_id": "recorder", "schedule": "0 0 1 1 *"}).json()
        r = http.patch(f"/runs/crons/{cron['cron_id']}", json={"webhook": "http://169.254.169.254/"})
        assert r.status_code == 422 and "metadata" in r.text
        assert http.get(f"/runs/crons/{cron['cron_id']}").json()["payload"].get("webhook") is None
        # nothing was created by a refused request
        assert http.get(f"/threads/{thread}/runs").json() == []


def test_loopback_is_refused_by_default(tmp_path, listener):
    srv = ServerProcess(tmp_path, config=DEFAULT_CONFIG).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            for url in (listener.url + "/x", "http://localhost:9/x", "http://[::1]/x", "http://0.0.0.0/x"):
                r = http.post("/runs", json={"assistant_id": "simple", "input": {"items": []}, "webhook": url})
                assert r.status_code == 422 and "loopback" in r.text, (url, r.text)
            # a public name is accepted (a disabled cron: nothing is delivered, no network)
            r = http.post("/runs/crons", json={"assistant_id": "simple", "schedule": "0 0 1 1 *", "enabled": False,
                                               "webhook": "https://hooks.example.com/x"})  # fmt: skip
            assert r.status_code == 200
    finally:
        srv.stop()


async def test_delivery_checks_the_address_a_name_resolves_to(monkeypatch, listener):
    """DNS rebinding: a name accepted at creation that resolves to a refused address at
    delivery is not contacted (the policy is applied to the resolved address)."""
    import asyncio

    from graphdock.webhooks import delivery
    from graphdock.webhooks.policy import WebhookPolicy

    policy = WebhookPolicy.from_config({"url": {"require_https": False, "disable_loopback": False}})
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def rebinding(host: str, port: int, **kw: Any) -> Any:
        if host == "rebind.test":
            return [(2, 1, 6, "", ("169.254.169.254", port))]
        if host == "good.test":
            return await real("127.0.0.1", port, **kw)
        return await real(host, port, **kw)

    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    port = listener.url.rsplit(":", 1)[1]
    p = path()
    assert policy.check(f"http://rebind.test:{port}{p}")  # fine as a name
    assert await delivery.deliver(f"http://rebind.test:{port}{p}", {"x": 1}, policy, attempts=1) is False
    assert await delivery.deliver(f"http://good.test:{port}{p}", {"x": 1}, policy, attempts=1) is True
    got = listener.at(p)
    assert len(got) == 1 and got[0]["headers"]["Host"] == f"good.test:{port}"


def _config(tmp_path: Path, **extra: Any) -> Path:
    recorder = Path(__file__).resolve().parent / "crons" / "recorder.py"
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"recorder": f"{recorder}:graph"}, **extra}))
    return path


def test_allowed_fields_and_disable_webhooks(tmp_path, listener):
    loopback = {"url": {"require_https": False, "disable_loopback": False}}
    cases = [
        ({"webhooks": {**loopback, "allowed_fields": ["run_id", "status", "values"]}}, True),
        ({"webhooks": loopback, "http": {"disable_webhooks": True}}, False),
    ]
    for i, (extra, delivered) in enumerate(cases):
        srv = ServerProcess(tmp_path / f"data{i}", config=_config(tmp_path, **extra)).start()
        try:
            p = path()
            with httpx.Client(base_url=srv.url, timeout=30) as http:
                thread = http.post("/threads", json={}).json()["thread_id"]
                r = http.post(f"/threads/{thread}/runs/wait",
                              json={"assistant_id": "recorder", "input": {"tag": "f"}, "webhook": listener.url + p})  # fmt: skip
                assert r.status_code == 200
            got = listener.wait(p, timeout=5 if delivered else 3)
            if delivered:
                assert set(json.loads(got[0]["raw"])) == {"run_id", "status", "values"}
                assert "x-graphdock-signature" not in {k.lower() for k in got[0]["headers"]}  # no secret configured
            else:
                assert got == []
        finally:
            srv.stop()
