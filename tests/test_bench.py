"""The benchmark harness runs end to end (``bench/run.py --quick``) and reports sane numbers,
and its load generator (``bench/http1.py``) speaks HTTP/1.1 correctly.

Only the shape and sanity of the output are checked; speed is never asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = "abcde"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import http1  # noqa: E402


def quick_run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if k != "GRAPHDOCK_BENCH_OFFICIAL_VENV"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--no-official", "--out", str(out), *args],
        cwd=str(ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, json.loads(out.read_text())


def test_quick_run_reports_every_workload(tmp_path: Path) -> None:
    proc, result = quick_run(tmp_path)
    assert "official server: skipped" in proc.stdout
    assert "client raw" in proc.stdout
    assert "graphdock / official and graphdock / in-process" in proc.stdout

    assert result["settings"]["quick"] is True
    assert result["settings"]["client"] == "raw"
    runs = result["settings"]["runs"]
    assert runs > 0
    assert set(result["servers"]) == {"graphdock"}
    server = result["servers"]["graphdock"]
    assert server["idle_rss_mb"] > 0 and server["peak_rss_mb"] >= server["idle_rss_mb"] * 0.5
    assert server["startup_s"] > 0 and server["alive_at_end"] is True
    assert result["machine"]["nproc"] >= 1
    assert result["versions"]["graphdock"]["langgraph"]

    rows = {(r["workload"], r["target"]): r for r in result["results"]}
    assert not any(target == "official" for _, target in rows)
    for key in WORKLOADS:
        for target in ("graphdock", "in-process"):
            row = rows[(key, target)]
            assert row["errors"] == 0, row["error_examples"]
            assert row["ok"] == row["runs"] == runs
            assert row["throughput_rps"] > 0
            lat = row["latency_ms"]
            assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]
            assert row["cpu_ms_per_run"] is not None and row["cpu_ms_per_run"] >= 0
        assert rows[(key, "graphdock")]["peak_rss_mb"] > 0
        assert rows[(key, "graphdock")]["client_cpu_ms_per_run"] is not None
    assert rows[("a", "in-process+sqlite")]["ok"] == runs
    for key in "cd":
        for target in ("graphdock", "in-process"):
            custom = rows[(key, target)]["custom_event_ms"]
            assert custom is not None and custom["p50"] is not None

    ratios = {q["workload"]: q for q in result["ratios"]}
    assert set(ratios) == set(WORKLOADS)
    for q in ratios.values():
        assert q["throughput_vs_inprocess"] > 0
        assert "throughput_vs_official" not in q


def test_quick_run_with_httpx_client(tmp_path: Path) -> None:
    """``--client httpx`` drives the same workloads (a JSON answer and an SSE stream suffice)."""
    proc, result = quick_run(tmp_path, "--client", "httpx", "--workloads", "ac")
    assert "client httpx" in proc.stdout
    assert result["settings"]["client"] == "httpx"
    rows = {(r["workload"], r["target"]): r for r in result["results"]}
    for key in "ac":
        row = rows[(key, "graphdock")]
        assert row["errors"] == 0, row["error_examples"]
        assert row["ok"] == result["settings"]["runs"]
    assert rows[("c", "graphdock")]["custom_event_ms"] is not None

def test_official_server_runs_at_its_own_default_unless_told(tmp_path: Path) -> None:
    """The official server gets ``--n-jobs-per-worker`` only from ``--official-n-jobs``:
    its own default is what its users run (graphdock's ``--n-jobs`` is not passed on)."""
    from bench import procs

    default = procs.official_server(tmp_path / "one", tmp_path, n_jobs=None)
    assert "--n-jobs-per-worker" not in default.argv
    told = procs.official_server(tmp_path / "two", tmp_path, n_jobs=4)
    flag = told.argv.index("--n-jobs-per-worker")
    assert told.argv[flag + 1] == "4"



# -- bench/http1.py against a scripted local server ------------------------------------


Respond = Callable[[int, asyncio.StreamWriter], Awaitable[bool]]


class ScriptedServer:
    """A tiny HTTP/1.1 server: records each request, answers with ``respond(index, writer)``.

    ``respond`` returns False to close the connection after answering.
    """

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.requests: list[tuple[int, bytes, bytes]] = []  # (connection number, head, body)
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> "ScriptedServer":
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                self.requests.append((conn, head, body))
                keep = await self.respond(len(self.requests) - 1, writer)
                await writer.drain()
                if not keep:
                    return
        finally:
            writer.close()


def header_lines(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}


async def test_http1_content_length_body_and_keep_alive() -> None:
    async def respond(i: int, w: asyncio.StreamWriter) -> bool:
        body = json.dumps({"i": i}).encode()
        w.write(b"HTTP/1.1 201 Created\r\nX-Thing: A\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        return True

    async with ScriptedServer(respond) as srv:
        async with http1.Client(srv.url, timeout=10) as client:
            first = await client.request("POST", "/runs/wait", b'{"a": 1}', {"Accept": "application/json"})
            second = await client.request("GET", "/ok")
            assert client.connections == 1
    assert first.status == 201 and first.json() == {"i": 0}
    assert first.headers["x-thing"] == "A" and first.headers["content-length"] == "8"
    assert second.status == 201 and second.json() == {"i": 1}
    assert [conn for conn, _, _ in srv.requests] == [1, 1]

    head, body = srv.requests[0][1], srv.requests[0][2]
    assert head.startswith(b"POST /runs/wait HTTP/1.1\r\n")
    headers = header_lines(head)
    assert headers["host"] == srv.url.removeprefix("http://")
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == "8" and body == b'{"a": 1}'
    assert headers["accept"] == "application/json"
    head = srv.requests[1][1]
    assert head.startswith(b"GET /ok HTTP/1.1\r\n")
    assert "content-length" not in header_lines(head) and "content-type" not in header_lines(head)


async def test_http1_chunked_and_close_delimited_bodies() -> None:
    async def respond(i: int, w: asyncio.StreamWriter) -> bool:
        if i == 0:
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n")
            return True
        w.write(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")  # neither length nor chunked
        return False

    async with ScriptedServer(respond) as srv:
        async with http1.Client(srv.url, timeout=10) as client:
            chunked = await client.request("POST", "/a", b"{}")
            closed = await client.request("POST", "/b", b"{}")
            assert client.connections == 1
            again = await client.request("POST", "/c")  # the close-delimited answer ended the connection
            assert client.connections == 2
    assert chunked.body == b"hello 0123456789"
    assert closed.body == b"until the end"
    assert again.status == 200
    assert header_lines(srv.requests[2][1])["content-length"] == "0"


async def test_http1_stream_yields_chunks_as_they_arrive() -> None:
    release = asyncio.Event()

    async def respond(i: int, w: asyncio.StreamWriter) -> bool:
        if i == 0:
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            w.write(b"c\r\nevent: a\r\n\r\n\r\n")
            await w.drain()
            await release.wait()  # the second chunk only once the client has the first
            w.write(b"e\r\nevent: b\n\ndata\r\n0\r\n\r\n")
        else:
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    async with ScriptedServer(respond) as srv:
        async with http1.Client(srv.url, timeout=10) as client:
            chunks = []
            async with client.stream("POST", "/runs/stream", b"{}", {"Accept": "text/event-stream"}) as resp:
                assert resp.status == 200
                assert resp.headers["content-type"] == "text/event-stream"
                async for chunk in resp.aiter_bytes():
                    chunks.append(chunk)
                    release.set()
            after = await client.request("GET", "/ok")
            assert client.connections == 1  # the stream was read to its end: connection reused
            # a stream left early closes the connection; the next request opens a new one
            release.clear()
            async with client.stream("POST", "/runs/stream", b"{}") as resp:
                assert await resp.aread() == b"ok"
    assert chunks == [b"event: a\r\n\r\n", b"event: b\n\ndata"]
    assert after.body == b"ok"
    assert header_lines(srv.requests[0][1])["accept"] == "text/event-stream"


async def test_http1_stream_left_early_drops_the_connection() -> None:
    async def respond(i: int, w: asyncio.StreamWriter) -> bool:
        if i == 0:
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n")
            return True  # never finishes this body
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    async with ScriptedServer(respond) as srv:
        async with http1.Client(srv.url, timeout=10) as client:
            async with client.stream("GET", "/s") as resp:
                async for chunk in resp.aiter_bytes():
                    assert chunk == b"one"
                    break
            assert (await client.request("GET", "/ok")).body == b"ok"
            assert client.connections == 2


async def test_http1_reconnects_after_idle_close() -> None:
    """The server closed the idle keep-alive connection (as uvicorn does after 5 s)."""

    async def respond(i: int, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % i)
        return False  # close after answering, without saying so

    async with ScriptedServer(respond) as srv:
        async with http1.Client(srv.url, timeout=10) as client:
            assert (await client.request("POST", "/x", b"{}")).body == b"0"
            for _ in range(500):  # until the client's side has seen the close
                if client._reader is not None and client._reader.at_eof():
                    break
                await asyncio.sleep(0.01)
            assert (await client.request("POST", "/x", b"{}")).body == b"1"
            assert client.connections == 2
    assert [conn for conn, _, _ in srv.requests] == [1, 2]  # sent once each


async def test_http1_resends_once_when_a_reused_connection_closes_unanswered() -> None:
    """The close races the request: EOF before any byte of the answer -> resend on a new connection."""

    async def respond(i: int, w: asyncio.StreamWriter) -> bool:
        if i == 1:
            return False  # read the request, close without a byte
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % i)
        return True

    async with ScriptedServer(respond) as srv:
        async with http1.Client(srv.url, timeout=10) as client:
            assert (await client.request("POST", "/x", b"{}")).body == b"0"
            assert (await client.request("POST", "/x", b"{}")).body == b"2"
            assert client.connections == 2
    assert [conn for conn, _, _ in srv.requests] == [1, 1, 2]


async def test_http1_never_resends_after_part_of_an_answer() -> None:
    async def respond(i: int, w: asyncio.StreamWriter) -> bool:
        if i == 0:
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n0")
            return True
        w.write(b"HTTP/1.1 200 OK\r\nContent-Le")  # cut short
        return False

    async with ScriptedServer(respond) as srv:
        async with http1.Client(srv.url, timeout=10) as client:
            await client.request("POST", "/x", b"{}")
            with pytest.raises(http1.ProtocolError):
                await client.request("POST", "/x", b"{}")
    assert len(srv.requests) == 2


async def test_http1_no_resend_on_a_fresh_connection_and_connection_close_honoured() -> None:
    async def respond(i: int, w: asyncio.StreamWriter) -> bool:
        if i == 0:
            return False  # a fresh connection closed unanswered: an error, not a resend
        w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        return True  # the server keeps its end open: the client must still not reuse it

    async with ScriptedServer(respond) as srv:
        async with http1.Client(srv.url, timeout=10) as client:
            with pytest.raises(http1.ServerDisconnected):
                await client.request("POST", "/x", b"{}")
            assert len(srv.requests) == 1
            assert (await client.request("POST", "/x", b"{}")).body == b"ok"
            assert (await client.request("POST", "/x", b"{}")).body == b"ok"
            assert client.connections == 3
    assert [conn for conn, _, _ in srv.requests] == [1, 2, 3]
