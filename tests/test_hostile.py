"""Hostile requests: whatever a client sends, the answer is a 4xx naming the problem.

A table of malformed requests (wrong content types, invalid JSON and UTF-8, NaN and
Infinity, deep nesting, numbers and strings beyond what storage holds, NUL characters,
ids that are not UUIDs, odd query strings and headers, methods a route does not take)
against the session server, in each of its placements. Every answer is below 500 with a
JSON error naming what is wrong. The request body size limit (``--max-body-size``) is
checked on the session server (its default) and on a server of its own (a small limit,
with and without ``Content-Length``, on the run fast path too).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import ServerProcess

JSON = {"content-type": "application/json"}
DEEP = "[" * 10_000 + "]" * 10_000
NESTED = "[" * 150 + "]" * 150  # parses, but deeper than a request value may nest
BIG_INT = 2**63  # one past the largest 64-bit integer (both JSON parsers read it as an integer)
OTHER = "00000000-0000-4000-8000-000000000000"  # a UUID nothing has


def raw(body: bytes | str, content_type: str | None = "application/json") -> dict[str, Any]:
    content = body.encode() if isinstance(body, str) else body
    return {"content": content, "headers": {"content-type": content_type} if content_type else {}}


# (id, method, path, request keywords, expected status or None for any 4xx, words the error names)
CASES: list[tuple[str, str, str, dict[str, Any], int | None, list[str]]] = [
    # content types and encodings
    ("text-plain", "POST", "/threads", raw("{}", "text/plain"), 422, ["json", "content-type"]),
    ("xml", "POST", "/threads", raw("<a/>", "application/xml"), 422, ["json", "content-type"]),
    ("no-content-type", "POST", "/threads", raw("{}", None), 422, ["json", "content-type"]),
    ("form-on-run", "POST", "/runs/wait", raw("a=b", "application/x-www-form-urlencoded"), 422, ["json"]),
    ("invalid-json", "POST", "/threads", raw("{bad json"), 422, ["invalid json"]),
    ("invalid-json-fast-path", "POST", "/runs/wait", raw("{bad"), 422, ["invalid json"]),
    ("invalid-utf8", "POST", "/threads", raw(b'{"metadata": {"a": "\xff\xfe"}}'), 400, ["utf-8"]),
    ("invalid-utf8-fast-path", "POST", "/runs/wait", raw(b'{"assistant_id": "simple", "input": "\xff"}'), 400, ["utf-8"]),
    ("nan", "POST", "/threads", raw('{"metadata": {"a": NaN}}'), 422, ["metadata.a", "nan"]),
    ("infinity", "POST", "/threads", raw('{"metadata": {"a": Infinity}}'), 422, ["metadata.a", "infinity"]),
    ("minus-infinity-input", "POST", "/runs/wait", raw('{"assistant_id": "simple", "input": {"a": -Infinity}}'), 422, ["input.a"]),
    ("overflowing-float", "POST", "/threads", raw('{"metadata": {"a": 1e999}}'), 422, ["metadata.a"]),
    ("too-many-digits", "POST", "/threads", raw('{"metadata": {"a": 1' + "0" * 5000 + "}}"), 400, ["json", "digits"]),
    ("lone-surrogate", "POST", "/threads", raw('{"metadata": {"a": "\\udab4"}}'), 422, ["metadata.a", "surrogate"]),
    ("lone-surrogate-fast-path", "POST", "/runs/wait", raw('{"assistant_id": "simple", "input": {"\\udc00": 1}}'), 422, ["input", "surrogate"]),
    ("int-beyond-64-bits", "POST", "/threads", {"json": {"metadata": {"a": [BIG_INT]}}}, 422, ["metadata.a[0]", "64 bits"]),
    ("deep-10k", "POST", "/threads", raw('{"metadata": {"a": ' + DEEP + "}}"), 400, ["nested"]),
    ("deep-10k-fast-path", "POST", "/runs/wait", raw('{"assistant_id": "simple", "input": ' + DEEP + "}"), 400, ["nested"]),
    ("deep-150", "POST", "/threads", raw('{"metadata": {"a": ' + NESTED + "}}"), 422, ["metadata", "nested deeper"]),
    ("deep-150-run", "POST", "/runs", raw('{"assistant_id": "simple", "input": ' + NESTED + "}"), 422, ["input", "nested deeper"]),
    ("deep-command", "POST", "/threads/{thread_id}/commands", raw(DEEP), 400, ["json"]),
    ("array-body", "POST", "/threads", raw("[]"), 422, ["body"]),
    ("string-body", "POST", "/assistants/search", raw('"x"'), 422, ["body"]),
    ("null-run-body", "POST", "/runs/wait", raw("null"), 422, ["body"]),
    ("object-for-batch", "POST", "/runs/batch", raw("{}"), 422, ["list"]),
    ("nul-in-batch", "POST", "/runs/batch", {"json": [{"assistant_id": "simple"}, {"assistant_id": "simple", "input": {"a": "\x00"}}]}, 422, ["1: input.a", "nul"]),
    ("junk-batch-items", "POST", "/runs/batch", raw('[1, null, "x"]'), 422, ["0"]),
    ("unknown-field", "POST", "/threads", {"json": {"metdata": {}}}, 422, ["metdata"]),
    # integers and durations that reach storage or a clock
    ("negative-limit", "POST", "/assistants/search", {"json": {"limit": -1}}, 422, ["limit"]),
    ("huge-limit", "POST", "/assistants/search", {"json": {"limit": 10**30}}, 422, ["limit"]),
    ("huge-offset-assistants", "POST", "/assistants/search", {"json": {"offset": 10**20}}, 422, ["offset"]),
    ("huge-offset-threads", "POST", "/threads/search", {"json": {"offset": 2**63}}, 422, ["offset"]),
    ("offset-int32-threads", "POST", "/threads/search", {"json": {"offset": 2**31}}, 422, ["offset"]),
    ("huge-offset-crons", "POST", "/runs/crons/search", {"json": {"offset": 2**40}}, 422, ["offset"]),
    ("huge-offset-items", "POST", "/store/items/search", {"json": {"offset": BIG_INT}}, 422, ["offset"]),
    ("huge-offset-namespaces", "POST", "/store/namespaces", {"json": {"offset": 2**62}}, 422, ["offset"]),
    ("huge-max-depth", "POST", "/store/namespaces", {"json": {"max_depth": 2**62}}, 422, ["max_depth"]),
    ("huge-offset-runs-query", "GET", "/threads/{thread_id}/runs?offset=99999999999999999999999", {}, 422, ["offset"]),
    ("limit-not-a-number", "GET", "/threads/{thread_id}/runs?limit=abc", {}, 422, ["limit"]),
    ("repeated-params", "GET", "/threads/{thread_id}/runs?limit=1&limit=2&offset=-5", {}, 422, ["offset"]),
    ("huge-history-limit", "GET", "/threads/{thread_id}/history?limit=99999999999999999999", {}, 422, ["limit"]),
    ("huge-version", "POST", f"/assistants/{OTHER}/latest", {"json": {"version": 2**40}}, 422, ["version"]),
    ("huge-ttl", "POST", "/threads", {"json": {"ttl": {"ttl": 1e308}}}, 422, ["ttl"]),
    ("huge-item-ttl", "PUT", "/store/items", {"json": {"namespace": ["a"], "key": "k", "value": {}, "ttl": 1e308}}, 422, ["ttl"]),
    ("tiny-item-ttl", "PUT", "/store/items", {"json": {"namespace": ["a"], "key": "k", "value": {}, "ttl": 2.2e-16}}, 422, ["ttl"]),
    ("huge-after-seconds", "POST", "/runs", {"json": {"assistant_id": "simple", "after_seconds": 1e308}}, 422, ["after_seconds"]),
    ("huge-recursion-limit", "POST", "/runs", {"json": {"assistant_id": "simple", "config": {"recursion_limit": 2**40}}}, 422, ["recursion_limit"]),
    ("negative-recursion-limit", "POST", "/runs", {"json": {"assistant_id": "simple", "config": {"recursion_limit": -1}}}, 422, ["recursion_limit"]),
    ("huge-since", "POST", "/threads/{thread_id}/stream/events", {"json": {"channels": ["values"], "since": BIG_INT}}, 422, ["since"]),
    ("huge-command-id", "POST", "/threads/{thread_id}/commands", {"json": {"id": BIG_INT, "method": "run.start"}}, 400, ["64 bits"]),
    # NUL characters (PostgreSQL text and jsonb cannot hold them: refused on every backend)
    ("nul-metadata-key", "POST", "/threads", {"json": {"metadata": {"a\x00": 1}}}, 422, ["metadata", "nul"]),
    ("nul-metadata-value", "PATCH", "/threads/{thread_id}", {"json": {"metadata": {"a": "\x00"}}}, 422, ["metadata.a", "nul"]),
    ("nul-thread-id", "POST", "/threads", {"json": {"thread_id": "\x00"}}, 422, ["thread_id", "nul"]),
    ("nul-search", "POST", "/threads/search", {"json": {"metadata": {"k": "\x00"}}}, 422, ["metadata.k", "nul"]),
    ("nul-values-search", "POST", "/threads/search", {"json": {"values": {"k": ["\x00"]}}}, 422, ["values.k[0]", "nul"]),
    ("nul-assistant-name", "POST", "/assistants", {"json": {"graph_id": "simple", "name": "\x00"}}, 422, ["name", "nul"]),
    ("nul-run-input", "POST", "/runs/wait", {"json": {"assistant_id": "simple", "input": {"a": "x\x00"}}}, 422, ["input.a", "nul"]),
    ("nul-thread-run", "POST", "/threads/{thread_id}/runs", {"json": {"assistant_id": "simple", "metadata": {"\x00": 1}}}, 422, ["metadata", "nul"]),
    ("nul-assistant-id", "POST", "/runs", {"json": {"assistant_id": "\x00"}}, 422, ["assistant_id", "nul"]),
    ("nul-webhook", "POST", "/runs", {"json": {"assistant_id": "simple", "webhook": "\x00"}}, 422, ["webhook", "nul"]),
    ("never-firing-cron", "POST", "/runs/crons", {"json": {"assistant_id": "simple", "schedule": "0 0 31 2 *"}}, 422, ["never fires"]),
    ("nul-cron-schedule", "POST", "/runs/crons", {"json": {"assistant_id": "simple", "schedule": "\x00"}}, 422, ["schedule", "nul"]),
    ("nul-state-update", "POST", "/threads/{thread_id}/state", {"json": {"values": {"a": 1}, "as_node": "\x00"}}, 422, ["as_node", "nul"]),
    ("nul-checkpoint", "POST", "/threads/{thread_id}/state/checkpoint", {"json": {"checkpoint": {"checkpoint_id": "\x00"}}}, 422, ["checkpoint.checkpoint_id", "nul"]),
    ("nul-history-before", "POST", "/threads/{thread_id}/history", {"json": {"before": "\x00"}}, 422, ["before", "nul"]),
    ("nul-item-key", "PUT", "/store/items", {"json": {"namespace": ["a"], "key": "k\x00", "value": {}}}, 422, ["key", "nul"]),
    ("nul-item-value", "PUT", "/store/items", {"json": {"namespace": ["a"], "key": "k", "value": {"v": "\x00"}}}, 422, ["value.v", "nul"]),
    ("nul-item-query", "POST", "/store/items/search", {"json": {"query": "\x00"}}, 422, ["query", "nul"]),
    ("nul-checkpoint-path", "GET", "/threads/{thread_id}/state/%00", {}, 422, ["checkpoint_id", "nul"]),
    ("nul-history-query", "GET", "/threads/{thread_id}/history?before=%00", {}, 422, ["before", "nul"]),
    ("nul-get-item-key", "GET", "/store/items?namespace=a&key=%00", {}, 422, ["key", "nul"]),
    ("nul-get-item-namespace", "GET", "/store/items?namespace=a%00&key=k", {}, 422, ["nul"]),
    ("nul-delete-item", "DELETE", "/store/items", {"json": {"namespace": ["\x00"], "key": "k"}}, 422, ["nul"]),
    ("nul-command-method", "POST", "/threads/{thread_id}/commands", {"json": {"id": 1, "method": "\x00"}}, 400, ["method", "nul"]),
    ("nul-prune", "POST", "/threads/prune", {"json": {"thread_ids": ["\x00"]}}, 422, ["thread_ids[0]", "nul"]),
    # ids that are not UUIDs, long and odd path segments
    ("thread-not-uuid", "GET", "/threads/not-a-uuid", {}, 422, ["thread id"]),
    ("thread-long-id", "GET", "/threads/" + "a" * 10_000, {}, 422, ["thread id"]),
    ("thread-nul-id", "GET", "/threads/%00", {}, 422, ["thread id"]),
    ("run-not-uuid", "GET", "/threads/{thread_id}/runs/xyz", {}, 422, ["run id"]),
    ("assistant-not-uuid", "GET", "/assistants/xyz", {}, 422, ["assistant id"]),
    ("graph-unknown", "GET", "/assistants/" + "x" * 5000 + "/graph", {}, 422, ["assistant"]),
    ("cron-not-uuid", "GET", "/runs/crons/abc%00", {}, 422, ["cron id"]),
    ("checkpoint-long-id", "GET", "/threads/{thread_id}/state/" + "x" * 5000, {}, None, []),
    ("cancel-run-ids", "POST", "/runs/cancel", {"json": {"run_ids": ["x"]}}, 422, ["run id"]),
    ("search-ids", "POST", "/threads/search", {"json": {"ids": ["not-a-uuid"]}}, 422, ["thread id"]),
    ("long-item-key", "GET", "/store/items?namespace=a.b&key=" + "k" * 20_000, {}, 200, []),
    # headers
    ("huge-last-event-id", "GET", "/threads/{thread_id}/stream", {"headers": {"last-event-id": "9" * 100 + "-1"}}, 422, ["last-event-id"]),
    ("junk-last-event-id", "GET", "/threads/{thread_id}/runs/" + OTHER + "/stream", {"headers": {"last-event-id": "x-y"}}, 422, ["last-event-id"]),
    ("long-request-id", "POST", "/threads", {"json": {}, "headers": {"x-request-id": "x" * 8000}}, None, []),
    # methods a route does not take
    ("options", "OPTIONS", "/threads", {}, 405, ["method not allowed"]),
    ("trace", "TRACE", "/threads", {}, 405, ["method not allowed"]),
    ("patch-ok", "PATCH", "/ok", {}, 405, ["method not allowed"]),
]


@pytest.fixture(scope="module")
def thread_id(url: str) -> str:
    """A thread with a run behind it: its checkpoints are in storage."""
    thread = httpx.post(f"{url}/threads", json={}, timeout=30).json()["thread_id"]
    run = httpx.post(
        f"{url}/threads/{thread}/runs/wait", json={"assistant_id": "simple", "input": {"items": []}}, timeout=60
    )
    assert run.status_code == 200, run.text
    return thread


def error_text(response: httpx.Response) -> str:
    """The message of a JSON error body (``detail``, or a protocol error's ``message``)."""
    body = response.json()
    assert isinstance(body, dict), body
    text = body.get("detail", body.get("message"))
    assert isinstance(text, str) and text, body
    return text


@pytest.mark.parametrize(
    "method,path,kwargs,status,words", [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_hostile_request(
    http: httpx.Client, thread_id: str, method: str, path: str, kwargs: dict[str, Any], status: int | None, words: list[str]
) -> None:
    with http.stream(method, path.replace("{thread_id}", thread_id), **kwargs) as response:
        assert response.status_code < 500, response.read()
        if status is not None:
            assert response.status_code == status, response.read()
        if response.status_code >= 400:
            response.read()
            text = error_text(response).lower()
            for word in words:
                assert word.lower() in text, text


def _paths(url: str) -> Iterator[tuple[str, str]]:
    document = httpx.get(f"{url}/openapi.json", timeout=30).json()
    for path, operations in document["paths"].items():
        concrete = path.replace("{assistant_id}", "simple").replace("{namespace}", "x")
        for name in ("thread_id", "run_id", "cron_id", "checkpoint_id"):
            concrete = concrete.replace("{" + name + "}", OTHER)
        yield path, concrete


def test_head_and_options_on_every_route(url: str) -> None:
    """HEAD and OPTIONS (plain, and as a CORS preflight) on every documented path."""
    with httpx.Client(base_url=url, timeout=30) as http:
        for path, concrete in _paths(url):
            for method, headers in (
                ("HEAD", {}),
                ("OPTIONS", {}),
                ("OPTIONS", {"origin": "http://example.com", "access-control-request-method": "POST"}),
            ):
                response = http.request(method, concrete, headers=headers)
                assert response.status_code < 500, (method, path, response.text)


def _send_raw(url: str, request: bytes) -> bytes:
    """``request`` written to the server as it is; the answer's bytes until it closes or
    the headers and some body have arrived."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


@pytest.mark.parametrize("path", ["/threads", "/runs/wait", "/assistants/search"])
def test_declared_body_over_the_default_limit(url: str, path: str) -> None:
    """A Content-Length over the default 32 MiB is a 413 before any of it is read."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {40 * 1024 * 1024}\r\n\r\n"
    ).encode()
    answer = _send_raw(url, head + b'{"metadata": {}')
    status_line = answer.split(b"\r\n", 1)[0]
    assert b" 413 " in status_line, answer[:500]
    assert b"33554432 bytes" in answer and b"--max-body-size" in answer, answer[:500]


@pytest.fixture(scope="module")
def small_limit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("limit"), args=["--max-body-size", "2KiB"]).start()
    yield proc
    proc.stop()


@pytest.mark.parametrize("path", ["/threads", "/runs/wait", "/threads/search"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_size_limit_flag(small_limit: ServerProcess, path: str, chunked: bool) -> None:
    body = b'{"metadata": {"pad": "' + b"x" * 4096 + b'"}}'
    content: Any = iter([body[:1000], body[1000:]]) if chunked else body
    response = httpx.post(f"{small_limit.url}{path}", content=content, headers=JSON, timeout=30)
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == (
        "Request body too large: the limit is 2048 bytes (2KiB, --max-body-size)"
    )
    # under the limit, the same route answers as usual
    small = httpx.post(f"{small_limit.url}/threads", json={"metadata": {"pad": "x" * 100}}, timeout=30)
    assert small.status_code == 200, small.text


def test_body_under_the_limit_on_the_fast_path(small_limit: ServerProcess) -> None:
    response = httpx.post(
        f"{small_limit.url}/runs/wait", json={"assistant_id": "simple", "input": {"messages": []}}, timeout=60
    )
    assert response.status_code == 200, response.text


def test_bad_max_body_size_stops_start_up(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path, args=["--max-body-size", "lots"])
    with pytest.raises(RuntimeError, match="max-body-size"):
        proc.start(timeout=30)
