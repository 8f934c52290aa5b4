"""graphdock benchmark harness.

    .venv/bin/python bench/run.py [--runs 300] [--clients 16] [--official-venv PATH] [--client raw|httpx] [--quick]

Starts graphdock (embedded SQLite, fresh data directory) and, when a virtualenv
with the official ``langgraph`` CLI is given, ``langgraph dev`` on the graphs of
``bench/graphs/langgraph.json``; drives the same workloads against both,
alternating the order per workload and round; measures the same graphs run
in-process; prints tables and writes JSON. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shlex
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop

from bench import procs
from graphdock.process import tune_gc
from bench.workloads import (
    BY_KEY, CLIENTS, WORKLOADS, HTTP_RUNS, Batch, InProcess, Sample, drive, load_graphs, open_saver,
)

GRAPHDOCK = "graphdock"
OFFICIAL = "official"
INPROC = "in-process"
INPROC_SQLITE = "in-process+sqlite"  # stateless shapes (a, c), but checkpointed like a threaded run
DURABLE_BASELINE = {"a": INPROC_SQLITE, "b": INPROC, "c": INPROC_SQLITE}  # b's in-process runs are checkpointed


@dataclass
class Tally:
    """Everything measured for one (workload, target) pair, over all rounds."""

    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    windows: list[tuple[float, float]] = field(default_factory=list)

    def add(self, batch: Batch, cpu_s: float, client_cpu_s: float) -> None:
        self.samples += batch.samples
        self.errors += batch.errors
        self.wall_s += batch.wall_s
        self.cpu_s += cpu_s
        self.client_cpu_s += client_cpu_s
        self.windows.append(batch.window)


def percentiles(values: list[float]) -> dict[str, float] | None:
    """p50/p90/p99/mean/max in milliseconds (nearest rank), None when empty."""
    if not values:
        return None
    ordered = sorted(v * 1000.0 for v in values)

    def rank(p: float) -> float:
        index = max(0, min(len(ordered) - 1, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
        return ordered[index]

    return {
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "mean": sum(ordered) / len(ordered),
        "max": ordered[-1],
    }


# -- the run -------------------------------------------------------------------


async def bench(args: argparse.Namespace, servers: dict[str, procs.Server], workdir: Path) -> list[dict[str, Any]]:
    workloads = [BY_KEY[k] for k in args.workloads]
    make_client = CLIENTS[args.client]
    http_clients = {name: [make_client(srv.url, args.timeout) for _ in range(args.clients)] for name, srv in servers.items()}
    saver, database = await open_saver(workdir / "inprocess.sqlite")
    inproc = InProcess(load_graphs(), saver)
    inproc_runs = inproc.runs()
    tallies: dict[tuple[str, str], Tally] = {}
    # this process runs the in-process graphs and the load generator: the same garbage
    # collector settings as the server's, so that neither measures collection pauses
    # over the harness's own start-up objects
    tune_gc()

    def runner(target: str, key: str):
        if target in servers:
            fn, clients = HTTP_RUNS[key], http_clients[target]
            return lambda i: fn(clients[i])
        if target == INPROC_SQLITE:
            checkpointed = inproc.stream_checkpointed if key == "c" else inproc.stateless_checkpointed
            return lambda i: checkpointed()
        run = inproc_runs[key]
        return lambda i: run()

    def cpu_now(target: str) -> float:
        if target in servers:
            return procs.tree_cpu_seconds(servers[target].pid)
        return time.process_time()

    async def measure(target: str, key: str, **kwargs: Any) -> Batch:
        """Drive ``target``; with isolation, the other servers are paused meanwhile, so that
        their background work (the official dev server persists its in-memory state after
        a load) cannot land in this target's measurement."""
        others = [srv.pid for name, srv in servers.items() if name != target] if args.isolate else []
        paused = procs.pause(others)
        try:
            return await drive(runner(target, key), clients=args.clients, **kwargs)
        finally:
            procs.resume(paused)

    try:
        for wi, workload in enumerate(workloads):
            targets = list(servers)
            local = [INPROC] + ([INPROC_SQLITE] if workload.key in ("a", "c") else [])
            print(f"[{workload.key}] {workload.name}: {workload.description}", flush=True)
            for target in targets + local:
                await measure(target, workload.key, runs=args.warmup)
            per_round = [args.runs // args.rounds + (1 if r < args.runs % args.rounds else 0) for r in range(args.rounds)]
            round_seconds = args.min_seconds / args.rounds
            for r, n in enumerate(per_round):
                order = targets if (wi + r) % 2 == 0 else targets[::-1]
                for target in order + local:
                    tally = tallies.setdefault((workload.key, target), Tally())
                    # one closed loop per round: a lead-in of one run per client (untimed, so
                    # that the clients are no longer in step), then at least n timed runs and
                    # at least round_seconds
                    cpu0, own0 = cpu_now(target), time.process_time()
                    batch = await measure(
                        target, workload.key, runs=n, lead_in=args.clients, min_seconds=round_seconds
                    )
                    own = time.process_time() - own0 if target in servers else 0.0
                    tally.add(batch, cpu_now(target) - cpu0, own)
                    ok = len(batch.samples)
                    print(
                        f"    round {r + 1}/{args.rounds} {target:<18} {ok:>5} ok {len(batch.errors):>4} err"
                        f" {ok / batch.wall_s if batch.wall_s else 0:8.1f} runs/s",
                        flush=True,
                    )
    finally:
        for clients in http_clients.values():
            for client in clients:
                await client.aclose()
        database.close()

    rows = []
    for workload in workloads:
        for target in list(servers) + [INPROC, INPROC_SQLITE]:
            tally = tallies.get((workload.key, target))
            if tally is None:
                continue
            ok = len(tally.samples)
            row: dict[str, Any] = {
                "workload": workload.key,
                "name": workload.name,
                "target": target,
                "runs": ok + len(tally.errors),
                "ok": ok,
                "errors": len(tally.errors),
                "error_examples": sorted(set(tally.errors))[:3],
                "wall_s": round(tally.wall_s, 3),
                "throughput_rps": ok / tally.wall_s if tally.wall_s else 0.0,
                "latency_ms": percentiles([s.latency_s for s in tally.samples]),
                "first_event_ms": percentiles([s.first_event_s for s in tally.samples if s.first_event_s is not None]),
                "custom_event_ms": percentiles([s.custom_event_s for s in tally.samples if s.custom_event_s is not None]),
                "cpu_ms_per_run": (tally.cpu_s * 1000.0 / ok) if ok else None,
                "client_cpu_ms_per_run": (tally.client_cpu_s * 1000.0 / ok) if ok and target in servers else None,
                "peak_rss_mb": None,
            }
            if target in servers and servers[target].sampler is not None:
                row["peak_rss_mb"] = servers[target].sampler.peak_kb(tally.windows) / 1024.0
            rows.append(row)
    return rows


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """graphdock / official and graphdock / in-process, per workload."""
    by = {(r["workload"], r["target"]): r for r in rows}
    out = []
    for key in dict.fromkeys(r["workload"] for r in rows):
        gd = by.get((key, GRAPHDOCK))
        if gd is None:
            continue
        entry: dict[str, Any] = {"workload": key, "name": gd["name"]}
        for other, label in ((OFFICIAL, "official"), (INPROC, "inprocess")):
            ref = by.get((key, other))
            if ref is None:
                continue
            entry[f"throughput_vs_{label}"] = _div(gd["throughput_rps"], ref["throughput_rps"])
            entry[f"p50_vs_{label}"] = _div(_get(gd, "latency_ms", "p50"), _get(ref, "latency_ms", "p50"))
            entry[f"p99_vs_{label}"] = _div(_get(gd, "latency_ms", "p99"), _get(ref, "latency_ms", "p99"))
            if key == "d":
                entry[f"custom_p50_vs_{label}"] = _div(
                    _get(gd, "custom_event_ms", "p50"), _get(ref, "custom_event_ms", "p50")
                )
            if other == OFFICIAL:
                entry["cpu_per_run_vs_official"] = _div(gd["cpu_ms_per_run"], ref["cpu_ms_per_run"])
                entry["peak_rss_vs_official"] = _div(gd["peak_rss_mb"], ref["peak_rss_mb"])
        durable = by.get((key, DURABLE_BASELINE.get(key, "")))
        if durable is not None:
            entry["throughput_vs_inprocess_durable"] = _div(gd["throughput_rps"], durable["throughput_rps"])
        out.append(entry)
    return out


def _get(row: dict[str, Any], metric: str, key: str) -> float | None:
    value = row.get(metric)
    return None if value is None else value.get(key)


def _div(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


# -- report --------------------------------------------------------------------


def _fmt(value: Any, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def table(headers: list[str], body: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in body:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    return "\n".join(lines)


def report(result: dict[str, Any]) -> str:
    rows = result["results"]
    out = []
    body = []
    for r in rows:
        lat = r["latency_ms"] or {}
        extra = ""
        if r["custom_event_ms"]:
            extra = f"custom p50 {r['custom_event_ms']['p50']:.1f} / p99 {r['custom_event_ms']['p99']:.1f}"
        body.append([
            f"{r['workload']} {r['name']}", r["target"], _fmt(r["throughput_rps"]),
            _fmt(lat.get("p50")), _fmt(lat.get("p99")), str(r["errors"]),
            _fmt(r["cpu_ms_per_run"], ".2f"), _fmt(r["client_cpu_ms_per_run"], ".2f"), _fmt(r["peak_rss_mb"], ".0f"), extra,
        ])
    out.append(table(
        ["workload", "target", "runs/s", "p50 ms", "p99 ms", "errors", "cpu ms/run", "client cpu ms/run", "peak RSS MB",
         "custom event (ms)"],
        body,
    ))
    body = []
    for name, srv in result["servers"].items():
        body.append([
            name, _fmt(srv["startup_s"], ".2f"), _fmt(srv["idle_rss_mb"], ".0f"),
            _fmt(srv["peak_rss_mb"], ".0f"), _fmt(srv["hwm_mb"], ".0f"),
        ])
    out.append(table(["server", "start-up s", "idle RSS MB", "peak RSS MB (sampled)", "VmHWM MB"], body))
    body = []
    for q in result["ratios"]:
        body.append([
            f"{q['workload']} {q['name']}",
            _fmt(q.get("throughput_vs_official"), ".2f"), _fmt(q.get("p50_vs_official"), ".2f"),
            _fmt(q.get("p99_vs_official"), ".2f"), _fmt(q.get("cpu_per_run_vs_official"), ".2f"),
            _fmt(q.get("peak_rss_vs_official"), ".2f"),
            _fmt(q.get("throughput_vs_inprocess"), ".3f"), _fmt(q.get("p50_vs_inprocess"), ".1f"),
            _fmt(q.get("throughput_vs_inprocess_durable"), ".3f"),
        ])
    out.append(
        "graphdock / official and graphdock / in-process (throughput: >1 is faster; latency, CPU, RSS: <1 is"
        " better; durable in-process: the same graph with graphdock's SQLite checkpointer)"
    )
    out.append(table(
        ["workload", "runs/s vs off.", "p50 vs off.", "p99 vs off.", "cpu/run vs off.", "RSS vs off.",
         "runs/s vs in-proc", "p50 vs in-proc", "runs/s vs durable in-proc"],
        body,
    ))
    return "\n\n".join(out)


# -- environment -----------------------------------------------------------------


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"nproc": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    info["mem_total_mb"] = int(line.split()[1]) // 1024
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def loadavg() -> list[float] | None:
    try:
        with open("/proc/loadavg") as fh:
            return [float(x) for x in fh.read().split()[:3]]
    except OSError:
        return None


def cpu_speed_ms() -> float:
    """Milliseconds this machine takes for a fixed piece of pure-Python work (best of 5).

    The VM's speed drifts by a tenth or more within minutes. Recorded before and after a
    run, this is a rough indication of how fast the machine was; it measures the
    interpreter's arithmetic only, not memory or system calls, and has been seen steady
    while the server's CPU per run moved by a tenth.
    """
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += i * i % 7
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000.0, 2)


def git_revision() -> dict[str, Any]:
    def git(*argv: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *argv], cwd=procs.ROOT, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (subprocess.SubprocessError, OSError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(status) if status is not None else None}


# -- main ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="graphdock benchmarks (see bench/README.md)")
    parser.add_argument("--runs", type=int, default=300, help="timed runs per workload and target (default 300)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs per workload and target first (default 10 per client)")
    parser.add_argument(
        "--min-seconds", type=float, default=6.0,
        help="timed seconds per workload and target at least: a target faster than --runs in that"
             " time runs more (default 6, split over the rounds)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="split the runs into this many rounds, alternating the server order (default 3)")
    parser.add_argument("--n-jobs", type=int, default=10, help="graphdock's --n-jobs-per-worker (default 10, graphdock's default)")
    parser.add_argument(
        "--graphdock-args", default="",
        help="more arguments for 'graphdock serve', e.g. '--run-processes 0' (default: none, graphdock's defaults)",
    )
    parser.add_argument(
        "--official-n-jobs", type=int, default=None,
        help="the official server's --n-jobs-per-worker (default: not given, so its own default applies)",
    )
    parser.add_argument("--workloads", default="abcde", help="which workloads, e.g. 'ab' (default abcde)")
    parser.add_argument("--official-venv", default=None, help=f"virtualenv with langgraph-cli[inmem] (or ${procs.OFFICIAL_VENV_ENV})")
    parser.add_argument("--no-official", action="store_true", help="do not run the official server even if one is configured")
    parser.add_argument(
        "--no-isolate", dest="isolate", action="store_false",
        help="do not pause (SIGSTOP) the other server while one target is measured",
    )
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw",
                        help="load generator: raw (bench/http1.py, default) or httpx, for comparison")
    parser.add_argument("--timeout", type=float, default=120.0, help="per-request timeout in seconds")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "latest.json"), help="where to write the JSON results")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (server logs, databases)")
    parser.add_argument("--quick", action="store_true", help="tiny N, for smoke tests: 12 runs, 4 clients, 4 warm-up, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.clients, args.rounds, args.min_seconds = 12, 4, 1, 0.0
        if args.warmup is None:
            args.warmup = 4
    if args.warmup is None:
        args.warmup = 10 * args.clients
    args.rounds = max(1, min(args.rounds, args.runs))
    bad = [k for k in args.workloads if k not in BY_KEY]
    if bad or not args.workloads:
        parser.error(f"unknown workloads {bad}; choose from {''.join(BY_KEY)}")
    args.workloads = list(dict.fromkeys(args.workloads))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if sys.platform != "linux":
        print("bench/run.py measures memory and CPU through /proc: Linux only", file=sys.stderr)
        return 2
    workdir = procs.scratch_dir()
    started_at = dt.datetime.now(dt.timezone.utc)
    load_before = loadavg()
    speed_before = cpu_speed_ms()
    servers: dict[str, procs.Server] = {}
    official_venv = None
    if args.no_official:
        print("official server: skipped (--no-official)")
    else:
        official_venv = procs.find_official_venv(args.official_venv)
        if official_venv is None:
            given = args.official_venv or os.environ.get(procs.OFFICIAL_VENV_ENV)
            why = (
                f"{given}/bin/langgraph not found"
                if given
                else f"no virtualenv given (--official-venv PATH or ${procs.OFFICIAL_VENV_ENV})"
            )
            print(f"official server: skipped: {why}; see bench/README.md to install it")
    try:
        servers[GRAPHDOCK] = procs.graphdock_server(workdir, n_jobs=args.n_jobs, extra=shlex.split(args.graphdock_args))
        if official_venv is not None:
            servers[OFFICIAL] = procs.official_server(workdir, official_venv, n_jobs=args.official_n_jobs)
        for name, srv in list(servers.items()):
            try:
                srv.start()
            except RuntimeError as exc:
                if name == GRAPHDOCK:
                    print(f"graphdock did not start: {exc}", file=sys.stderr)
                    return 1
                print(f"official server: skipped: it did not start: {exc}")
                del servers[name]
                continue
            print(f"{name}: {srv.url} pid {srv.pid}, up in {srv.startup_s:.2f}s, idle RSS {srv.idle_rss_kb / 1024:.0f} MB")
        print(
            f"{args.runs}+ runs and {args.min_seconds:g}+ s per workload and target, {args.clients} clients,"
            f" {args.warmup} warm-up runs,"
            f" {args.rounds} round(s), n-jobs-per-worker {args.n_jobs}"
            f"{' ' + args.graphdock_args if args.graphdock_args else ''}"
            f" (official: {args.official_n_jobs if args.official_n_jobs is not None else 'its default'}),"
            f" client {args.client}",
            flush=True,
        )
        # uvloop, as in the server: the load generator and the in-process runs get the same
        # event loop as the server they are compared with
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            rows = runner.run(bench(args, servers, workdir))
        server_info = {}
        for name, srv in servers.items():
            assert srv.sampler is not None
            srv.sampler.stop()
            server_info[name] = {
                "url": srv.url,
                "startup_s": srv.startup_s,
                "idle_rss_mb": srv.idle_rss_kb / 1024.0,
                "peak_rss_mb": max((kb for _, kb in srv.sampler.samples), default=0) / 1024.0,
                "hwm_mb": procs.tree_hwm_kb(srv.pid) / 1024.0,
                "alive_at_end": srv.proc is not None and srv.proc.poll() is None,
            }
    finally:
        for srv in servers.values():
            srv.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    versions = {
        GRAPHDOCK: procs.venv_versions(
            sys.executable,
            ["graphdock", "langgraph", "langgraph-sdk", "langgraph-checkpoint-sqlite", "aiosqlite", "fastapi",
             "starlette", "uvicorn", "uvloop", "httptools", "httpx"],
        ),
    }
    if official_venv is not None:
        versions[OFFICIAL] = procs.venv_versions(
            official_venv / "bin" / "python",
            ["langgraph-cli", "langgraph-api", "langgraph-runtime-inmem", "langgraph", "starlette", "uvicorn",
             "uvloop", "httptools"],
        )
    result = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "cpu_speed_ms": {"before": speed_before, "after": cpu_speed_ms()},
        "graphdock_git": git_revision(),
        "versions": versions,
        "settings": {
            "runs": args.runs, "clients": args.clients, "warmup": args.warmup, "rounds": args.rounds,
            "min_seconds": args.min_seconds, "isolate": args.isolate,
            "n_jobs_per_worker": args.n_jobs, "graphdock_args": args.graphdock_args, "official_n_jobs_per_worker": args.official_n_jobs, "workloads": "".join(args.workloads), "quick": args.quick,
            "client": args.client,
        },
        "workloads": {w.key: {"name": w.name, "description": w.description} for w in WORKLOADS if w.key in args.workloads},
        "servers": server_info,
        "results": rows,
        "ratios": ratios(rows),
    }
    print()
    print(report(result))
    if args.keep:
        print(f"\nscratch directory kept: {workdir}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\ncpu speed (a fixed Python loop; lower is faster): {result['cpu_speed_ms']['before']} ms before, {result['cpu_speed_ms']['after']} ms after")
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
