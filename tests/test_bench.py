"""The benchmark harness runs end to end (``bench/run.py --quick``, on the embedded backend and,
when PostgreSQL and Redis are reachable, ``--backend postgres``) and reports sane numbers, cleans
up what it created, and its load generator (``bench/http1.py``) speaks HTTP/1.1 correctly.

Only the shape and sanity of the output are checked; speed is never asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = "abcde"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import http1  # noqa: E402
from services import ADMIN_URI, REDIS_HOST, REDIS_PORT, delete_redis_prefix, drop_database, require_services  # noqa: E402


def quick_run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHDOCK_BENCH_")}
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
    assert "graphdock / in-process (throughput" in proc.stdout

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
        assert q["target"] == "graphdock"
        assert q["throughput_vs_inprocess"] > 0
        assert "throughput_vs_official" not in q
    assert result["settings"]["backend"] == "sqlite"
    assert result["targets"] == [] and result["not_served"] == []
    assert all(r["services_cpu_ms_per_run"] is None for r in result["results"])


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



def _leftovers(pid: int) -> tuple[list[str], list[str]]:
    """The databases and Redis prefixes a harness process ``pid`` made and left behind."""
    import psycopg
    import redis

    with psycopg.connect(ADMIN_URI, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"gdbench\\_{pid}\\_%",)
        ).fetchall()
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        prefixes = {key.decode().split(":", 1)[0] for key in client.scan_iter(match=f"gdbench-{pid}-*", count=500)}
    finally:
        client.close()
    return [r[0] for r in rows], sorted(prefixes)


def test_quick_postgres_run_measures_both_deployments_and_drops_what_it_made(tmp_path: Path) -> None:
    """``--backend postgres``: 1 API + 1 worker and 1 API + 2 workers on databases and Redis
    prefixes of their own, the in-process runs on graphdock's PostgreSQL checkpointer; every
    database and key it created is gone afterwards."""
    require_services()
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHDOCK_BENCH_")}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--backend", "postgres", "--quick", "--no-official",
         "--no-aegra", "--out", str(out)],
        cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        stdout, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        databases, prefixes = _leftovers(proc.pid)
        for name in databases:  # never leave them, even when the harness failed
            drop_database(name)
        for prefix in prefixes:
            delete_redis_prefix(prefix)
    assert proc.returncode == 0, stdout
    assert (databases, prefixes) == ([], []), "the harness left databases or Redis keys behind"
    assert "aegra: skipped (--no-aegra)" in stdout
    result = json.loads(out.read_text())

    settings = result["settings"]
    assert settings["backend"] == "postgres" and settings["workers"] == [1, 2]
    assert len(settings["scratch"]["databases"]) == 3  # two deployments + the in-process runs
    assert all(name.startswith(f"gdbench_{proc.pid}_") for name in settings["scratch"]["databases"])
    assert all(p.startswith(f"gdbench-{proc.pid}-") for p in settings["scratch"]["redis_prefixes"])
    assert set(result["servers"]) == {"graphdock-pg-1w", "graphdock-pg-2w"}
    assert result["servers"]["graphdock-pg-1w"]["processes"] == 2
    assert result["servers"]["graphdock-pg-2w"]["processes"] == 3
    assert all(s["alive_at_end"] for s in result["servers"].values())
    assert result["skipped"]["aegra"] == "--no-aegra"
    assert result["versions"]["services"]["postgresql"]

    runs = settings["runs"]
    rows = {(r["workload"], r["target"]): r for r in result["results"]}
    for key in WORKLOADS + "f":
        for target in ("graphdock-pg-1w", "graphdock-pg-2w", "in-process"):
            row = rows[(key, target)]
            assert row["errors"] == 0, row["error_examples"]
            assert row["ok"] == runs and row["throughput_rps"] > 0
            assert row["services_cpu_ms_per_run"] is not None
            assert set(row["services_cpu_ms_per_run_by_service"]) == {"postgres", "redis"}
        assert rows[(key, "graphdock-pg-2w")]["peak_rss_mb"] > rows[(key, "graphdock-pg-1w")]["peak_rss_mb"] * 0.5
    for key in "ac":
        assert rows[(key, "in-process+postgres")]["ok"] == runs
    assert not any(target == "in-process+sqlite" for _, target in rows)

    ratios = {(q["workload"], q["target"]): q for q in result["ratios"]}
    assert ratios[("b", "graphdock-pg-2w")]["throughput_vs_inprocess_durable"] > 0
    per_target = Counter(t["target"] for t in result["targets"])
    assert per_target == {"graphdock-pg-1w": 3, "graphdock-pg-2w": 3}
    vs_aegra = [t for t in result["targets"] if "aegra" in t["check"]]
    assert all(t["met"] is None and t["values"] == {} for t in vs_aegra)  # no Aegra, nothing compared


def test_harness_refuses_to_drop_what_it_did_not_make() -> None:
    from bench import postgres

    with pytest.raises(ValueError):
        postgres.drop_database(postgres.ADMIN_URI, "postgres")
    with pytest.raises(ValueError):
        postgres.drop_database(postgres.ADMIN_URI, "gdtest_1_0123abcd")
    with pytest.raises(ValueError):
        postgres.delete_prefix(postgres.REDIS_URI, "graphdock")
    assert postgres.database_uri("postgresql://u:p@h:5432/postgres?sslmode=disable", "gdbench_1_0123abcd") == (
        "postgresql://u:p@h:5432/gdbench_1_0123abcd?sslmode=disable"
    )


def test_aegra_target_is_its_uvicorn_app_on_its_own_database(tmp_path: Path) -> None:
    """What ``aegra serve`` starts, on the bench graphs' langgraph.json; health on /health."""
    from bench import postgres

    srv = postgres.aegra_server(
        tmp_path, tmp_path / "venv", database_uri="postgresql://postgres@127.0.0.1:5432/gdbench_1_0123abcd",
        env={"SQLALCHEMY_POOL_SIZE": "16"},
    )
    assert srv.argv[:4] == [str(tmp_path / "venv" / "bin" / "python"), "-m", "uvicorn", "aegra_api.main:app"]
    assert srv.argv[srv.argv.index("--port") + 1] == str(srv.port)
    assert srv.env["DATABASE_URL"].endswith("/gdbench_1_0123abcd")
    assert Path(srv.env["AEGRA_CONFIG"]).name == "langgraph.json" and Path(srv.env["AEGRA_CONFIG"]).exists()
    assert srv.env["SQLALCHEMY_POOL_SIZE"] == "16" and srv.health == "/health"


def test_targets_compare_each_deployment_with_aegra_where_it_serves() -> None:
    from bench.report import ratios, targets

    def row(key: str, target: str, rps: float, p99: float) -> dict[str, Any]:
        return {"workload": key, "name": key, "target": target, "throughput_rps": rps,
                "latency_ms": {"p50": p99 / 2, "p99": p99}, "custom_event_ms": None, "cpu_ms_per_run": 1.0,
                "services_cpu_ms_per_run": 1.0, "peak_rss_mb": 100.0}

    rows = [
        row("a", "graphdock-pg-1w", 400, 40), row("a", "in-process", 2000, 5),
        row("b", "graphdock-pg-1w", 300, 45), row("b", "aegra", 90, 300), row("b", "in-process", 500, 30),
    ]
    q = ratios(rows, "in-process+postgres")
    checks = {t["check"].split()[1]: t for t in targets(rows, q, 16)}
    assert checks["3x"]["values"] == {"b": pytest.approx(300 / 90)} and checks["3x"]["met"] is True
    assert checks["<"]["met"] is True and checks["<"]["values"] == {"a": 40, "b": 45}
    assert checks["0.5x"]["values"] == {"b": 0.6} and checks["0.5x"]["met"] is True
    rows[3]["throughput_rps"] = 110  # 2.7x
    assert targets(rows, ratios(rows, "in-process+postgres"), 16)[0]["met"] is False


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
