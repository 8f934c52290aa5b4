"""graphdock benchmark harness.

    .venv/bin/python bench/run.py [--runs 300] [--clients 16] [--official-venv PATH] [--client raw|httpx] [--quick]
    .venv/bin/python bench/run.py --backend postgres [--aegra-venv PATH] [--workers 1,2]

Starts graphdock and the servers it is compared with on the graphs of
``bench/graphs/langgraph.json``, drives the same workloads against each, alternating
the order per workload and round, measures the same graphs run in-process, prints
tables and writes JSON. ``--backend sqlite`` (the default): graphdock embedded (fresh
data directory) and, when a virtualenv with the official ``langgraph`` CLI is given,
``langgraph dev``. ``--backend postgres``: graphdock scaled out (one API process and N
workers per deployment shape) on PostgreSQL + Redis, and Aegra when a virtualenv with it
is given, each on a database of its own that the harness creates and drops. See
``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop

from bench import postgres, procs
from bench.environment import cpu_speed_ms, git_revision, loadavg, machine
from bench.report import (
    AEGRA, GRAPHDOCK, INPROC, INPROC_PG, INPROC_SQLITE, OFFICIAL, deployment_name, is_graphdock, percentiles,
    ratios, report, targets,
)
from graphdock.process import tune_gc
from bench.workloads import (
    BY_KEY, CLIENTS, DEFAULT_WORKLOADS, WORKLOADS, HTTP_RUNS, Batch, InProcess, NotServed, Sample, drive,
    load_graphs, sqlite_saver,
)


@dataclass
class Tally:
    """Everything measured for one (workload, target) pair, over all rounds."""

    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    services_cpu_s: dict[str, float] = field(default_factory=dict)  # PostgreSQL, Redis, when measured
    windows: list[tuple[float, float]] = field(default_factory=list)

    def add(
        self, batch: Batch, cpu_s: float, client_cpu_s: float, services_cpu_s: dict[str, float] | None = None
    ) -> None:
        self.samples += batch.samples
        self.errors += batch.errors
        self.wall_s += batch.wall_s
        self.cpu_s += cpu_s
        self.client_cpu_s += client_cpu_s
        for name, seconds in (services_cpu_s or {}).items():
            self.services_cpu_s[name] = self.services_cpu_s.get(name, 0.0) + seconds
        self.windows.append(batch.window)


# -- the run -------------------------------------------------------------------


@dataclass
class Setup:
    """What :func:`bench` runs against, besides the arguments."""

    servers: dict[str, procs.Target]
    saver: contextlib.AbstractAsyncContextManager[Any]  # the in-process runs' checkpointer
    checkpointed: str  # INPROC_SQLITE or INPROC_PG
    services: dict[str, list[int]] | None = None  # PostgreSQL + Redis processes, when measured


async def bench(args: argparse.Namespace, setup: Setup) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Measure every workload on every target: (rows, not served)."""
    async with setup.saver as saver:
        return await _bench(args, setup, saver)


async def _bench(
    args: argparse.Namespace, setup: Setup, saver: Any
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    servers, checkpointed = setup.servers, setup.checkpointed
    workloads = [BY_KEY[k] for k in args.workloads]
    make_client = CLIENTS[args.client]
    http_clients = {name: [make_client(srv.url, args.timeout) for _ in range(args.clients)] for name, srv in servers.items()}
    inproc = InProcess(load_graphs(), saver)
    inproc_runs = inproc.runs()
    tallies: dict[tuple[str, str], Tally] = {}
    not_served: list[dict[str, str]] = []
    # this process runs the in-process graphs and the load generator: the same garbage
    # collector settings as the server's, so that neither measures collection pauses
    # over the harness's own start-up objects
    tune_gc()

    def runner(target: str, key: str):
        if target in servers:
            fn, clients = HTTP_RUNS[key], http_clients[target]
            return lambda i: fn(clients[i])
        if target == checkpointed:
            with_saver = inproc.stream_checkpointed if key == "c" else inproc.stateless_checkpointed
            return lambda i: with_saver()
        run = inproc_runs[key]
        return lambda i: run()

    def cpu_now(target: str) -> float:
        if target in servers:
            return procs.tree_cpu_seconds(servers[target].pids)
        return time.process_time()

    def services_now() -> dict[str, float]:
        return postgres.services_cpu_seconds(setup.services) if setup.services is not None else {}

    async def measure(target: str, key: str, **kwargs: Any) -> Batch:
        """Drive ``target``; with isolation, the other servers are paused meanwhile, so that
        their background work (the official dev server persists its in-memory state after
        a load) cannot land in this target's measurement."""
        others = [pid for name, srv in servers.items() if name != target for pid in srv.pids] if args.isolate else []
        for name, srv in servers.items():
            if srv.sampler is not None:
                srv.sampler.active(name == target or not args.isolate)
        paused = procs.pause(others)
        try:
            return await drive(runner(target, key), clients=args.clients, **kwargs)
        finally:
            procs.resume(paused)

    async def probe(target: str, key: str) -> str | None:
        """Why ``target`` cannot serve workload ``key`` (its route answers 404/405), or
        None: one untimed run; any other failure is left to the measurement to count."""
        try:
            await HTTP_RUNS[key](http_clients[target][0])
        except NotServed as exc:
            return str(exc).split(":", 1)[0]
        except Exception:
            pass
        return None

    try:
        for wi, workload in enumerate(workloads):
            print(f"[{workload.key}] {workload.name}: {workload.description}", flush=True)
            targets = []
            for name in servers:
                reason = None if is_graphdock(name) else await probe(name, workload.key)
                if reason is None:
                    targets.append(name)
                else:
                    print(f"    {name}: not served ({reason})", flush=True)
                    not_served.append({"workload": workload.key, "name": workload.name, "target": name, "reason": reason})
            local = [INPROC] + ([checkpointed] if workload.key in ("a", "c") else [])
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
                    cpu0, own0, services0 = cpu_now(target), time.process_time(), services_now()
                    batch = await measure(
                        target, workload.key, runs=n, lead_in=args.clients, min_seconds=round_seconds
                    )
                    own = time.process_time() - own0 if target in servers else 0.0
                    services1 = services_now()
                    tally.add(
                        batch, cpu_now(target) - cpu0, own, {k: services1[k] - services0[k] for k in services1}
                    )
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

    rows = []
    for workload in workloads:
        for target in list(servers) + [INPROC, checkpointed]:
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
                "services_cpu_ms_per_run": (
                    sum(tally.services_cpu_s.values()) * 1000.0 / ok if ok and setup.services is not None else None
                ),
                "services_cpu_ms_per_run_by_service": (
                    {k: v * 1000.0 / ok for k, v in tally.services_cpu_s.items()} if ok and setup.services is not None else None
                ),
                "peak_rss_mb": None,
            }
            if target in servers and servers[target].sampler is not None:
                row["peak_rss_mb"] = servers[target].sampler.peak_kb(tally.windows) / 1024.0
            rows.append(row)
    return rows, not_served


# -- main ------------------------------------------------------------------------


def _workers(value: str) -> list[int]:
    try:
        counts = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected worker counts like 1,2; got {value!r}") from None
    if not counts or any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError("worker counts must be whole numbers of at least 1")
    return list(dict.fromkeys(counts))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="graphdock benchmarks (see bench/README.md)")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgres"), default="sqlite",
        help="sqlite: graphdock embedded (default); postgres: graphdock on PostgreSQL + Redis, one API"
             " process and N workers per --workers shape",
    )
    parser.add_argument("--runs", type=int, default=300, help="timed runs per workload and target (default 300)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs per workload and target first (default 10 per client)")
    parser.add_argument(
        "--min-seconds", type=float, default=6.0,
        help="timed seconds per workload and target at least: a target faster than --runs in that"
             " time runs more (default 6, split over the rounds)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="split the runs into this many rounds, alternating the server order (default 3)")
    parser.add_argument("--n-jobs", type=int, default=10, help="graphdock's --n-jobs-per-worker (default 10, graphdock's default; with --backend postgres, per worker)")
    parser.add_argument(
        "--graphdock-args", default="",
        help="more arguments for 'graphdock serve' (and 'graphdock worker'), e.g. '--run-processes 0'"
             " (default: none, graphdock's defaults)",
    )
    parser.add_argument(
        "--official-n-jobs", type=int, default=None,
        help="the official server's --n-jobs-per-worker (default: not given, so its own default applies)",
    )
    parser.add_argument(
        "--workloads", default=None,
        help=f"which workloads, e.g. 'ab' (default {DEFAULT_WORKLOADS}; {DEFAULT_WORKLOADS}f with --backend postgres)",
    )
    parser.add_argument("--official-venv", default=None, help=f"virtualenv with langgraph-cli[inmem] (or ${procs.OFFICIAL_VENV_ENV})")
    parser.add_argument("--no-official", action="store_true", help="do not run the official server even if one is configured")
    parser.add_argument(
        "--workers", type=_workers, default=[1, 2],
        help="--backend postgres: the deployment shapes, workers per API process (default 1,2: 1 API + 1 worker,"
             " 1 API + 2 workers)",
    )
    parser.add_argument("--postgres-uri", default=postgres.ADMIN_URI,
                        help=f"--backend postgres: where the harness creates (and drops) its databases (default {postgres.ADMIN_URI})")
    parser.add_argument("--redis-uri", default=postgres.REDIS_URI, help=f"--backend postgres: Redis (default {postgres.REDIS_URI})")
    parser.add_argument("--aegra-venv", default=None,
                        help=f"--backend postgres: virtualenv with aegra-cli (or ${postgres.AEGRA_VENV_ENV})")
    parser.add_argument("--no-aegra", action="store_true", help="do not run Aegra even if one is configured")
    parser.add_argument("--aegra-env", default="", help="more environment for Aegra, e.g. 'SQLALCHEMY_POOL_SIZE=16' (default: its defaults)")
    parser.add_argument(
        "--inprocess-saver", choices=("langgraph", "graphdock"), default="langgraph",
        help="--backend postgres: the in-process targets' checkpointer: langgraph's"
        " AsyncPostgresSaver as it is (default) or graphdock's subclass of it",
    )
    parser.add_argument(
        "--no-isolate", dest="isolate", action="store_false",
        help="do not pause (SIGSTOP) the other servers while one target is measured",
    )
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw",
                        help="load generator: raw (bench/http1.py, default) or httpx, for comparison")
    parser.add_argument("--timeout", type=float, default=120.0, help="per-request timeout in seconds")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "latest.json"), help="where to write the JSON results")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (server logs, SQLite files; never the PostgreSQL databases)")
    parser.add_argument("--quick", action="store_true", help="tiny N, for smoke tests: 12 runs, 4 clients, 4 warm-up, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.clients, args.rounds, args.min_seconds = 12, 4, 1, 0.0
        if args.warmup is None:
            args.warmup = 4
    if args.warmup is None:
        args.warmup = 10 * args.clients
    args.rounds = max(1, min(args.rounds, args.runs))
    if args.workloads is None:
        args.workloads = DEFAULT_WORKLOADS + ("f" if args.backend == "postgres" else "")
    bad = [k for k in args.workloads if k not in BY_KEY]
    if bad or not args.workloads:
        parser.error(f"unknown workloads {bad}; choose from {''.join(BY_KEY)}")
    args.workloads = list(dict.fromkeys(args.workloads))
    try:
        args.aegra_env = dict(item.split("=", 1) for item in shlex.split(args.aegra_env))
    except ValueError:
        parser.error("--aegra-env: expected NAME=VALUE items")
    return args


def _official_venv(args: argparse.Namespace) -> Path | None:
    if args.no_official:
        print("official server: skipped (--no-official)")
        return None
    venv = procs.find_official_venv(args.official_venv)
    if venv is None:
        given = args.official_venv or os.environ.get(procs.OFFICIAL_VENV_ENV)
        why = f"{given}/bin/langgraph not found" if given else f"no virtualenv given (--official-venv PATH or ${procs.OFFICIAL_VENV_ENV})"
        print(f"official server: skipped: {why}; see bench/README.md to install it")
    return venv


def _aegra_venv(args: argparse.Namespace, skipped: dict[str, str]) -> Path | None:
    if args.no_aegra:
        skipped[AEGRA] = "--no-aegra"
        print("aegra: skipped (--no-aegra)")
        return None
    venv = postgres.find_aegra_venv(args.aegra_venv)
    if venv is not None:
        return venv
    given = args.aegra_venv or os.environ.get(postgres.AEGRA_VENV_ENV)
    skipped[AEGRA] = (
        f"{given}/bin/aegra not found" if given else f"no virtualenv given (--aegra-venv PATH or ${postgres.AEGRA_VENV_ENV})"
    )
    print(f"aegra: skipped: {skipped[AEGRA]}; see bench/README.md to install it")
    return None


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if sys.platform != "linux":
        print("bench/run.py measures memory and CPU through /proc: Linux only", file=sys.stderr)
        return 2
    if args.backend == "postgres" and (why := postgres.unreachable(args.postgres_uri, args.redis_uri)):
        print(f"--backend postgres: {why}", file=sys.stderr)
        return 2
    # SIGTERM unwinds like Ctrl-C: the servers are stopped and the databases dropped
    signal.signal(signal.SIGTERM, _raise_interrupt)
    workdir = procs.scratch_dir()
    started_at = dt.datetime.now(dt.timezone.utc)
    load_before = loadavg()
    speed_before = cpu_speed_ms()
    servers: dict[str, procs.Target] = {}
    skipped: dict[str, str] = {}
    official_venv = _official_venv(args)
    aegra_venv = _aegra_venv(args, skipped) if args.backend == "postgres" else None
    extra = shlex.split(args.graphdock_args)
    scratch: postgres.Scratch | None = None
    made: dict[str, list[str]] = {}
    try:
        if args.backend == "postgres":
            scratch = postgres.Scratch(args.postgres_uri, args.redis_uri)
            for n in args.workers:
                name = deployment_name(n)
                servers[name] = postgres.Deployment(
                    name, workdir, database_uri=scratch.database(), redis_uri=args.redis_uri,
                    redis_prefix=scratch.prefix(), workers=n, n_jobs=args.n_jobs, extra=extra,
                )
            if aegra_venv is not None:
                servers[AEGRA] = postgres.aegra_server(
                    workdir, aegra_venv, database_uri=scratch.database(), env=args.aegra_env
                )
            setup = Setup(
                servers, postgres.inprocess_saver(
                    scratch.database(), concurrency=args.clients, kind=args.inprocess_saver
                ),
                INPROC_PG,
                postgres.service_roots(),
            )
            made = {"databases": list(scratch.databases), "redis_prefixes": list(scratch.prefixes)}
            print(f"created databases {', '.join(scratch.databases)} and Redis prefixes {', '.join(scratch.prefixes)}")
        else:
            servers[GRAPHDOCK] = procs.graphdock_server(workdir, n_jobs=args.n_jobs, extra=extra)
            setup = Setup(servers, sqlite_saver(workdir / "inprocess.sqlite"), INPROC_SQLITE)
        if official_venv is not None:
            servers[OFFICIAL] = procs.official_server(workdir, official_venv, n_jobs=args.official_n_jobs)
        for name, srv in list(servers.items()):
            try:
                srv.start()
            except RuntimeError as exc:
                if is_graphdock(name):
                    print(f"{name} did not start: {exc}", file=sys.stderr)
                    return 1
                print(f"{name}: skipped: it did not start: {exc}")
                skipped[name] = f"did not start: {str(exc).splitlines()[0]}"
                del servers[name]
                continue
            pids = f"pid {srv.pid}" if len(srv.pids) == 1 else f"pids {', '.join(map(str, srv.pids))}"
            print(f"{name}: {srv.url} {pids}, up in {srv.startup_s:.2f}s, idle RSS {srv.idle_rss_kb / 1024:.0f} MB")
        print(
            f"backend {args.backend}: {args.runs}+ runs and {args.min_seconds:g}+ s per workload and target,"
            f" {args.clients} clients, {args.warmup} warm-up runs,"
            f" {args.rounds} round(s), n-jobs-per-worker {args.n_jobs}"
            f"{' ' + args.graphdock_args if args.graphdock_args else ''}"
            f" (official: {args.official_n_jobs if args.official_n_jobs is not None else 'its default'}),"
            f" client {args.client}",
            flush=True,
        )
        # uvloop, as in the server: the load generator and the in-process runs get the same
        # event loop as the server they are compared with
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            rows, not_served = runner.run(bench(args, setup))
        server_info = {}
        for name, srv in servers.items():
            assert srv.sampler is not None
            srv.sampler.stop()
            server_info[name] = {
                "url": srv.url,
                "processes": len(srv.pids),
                "startup_s": srv.startup_s,
                "idle_rss_mb": srv.idle_rss_kb / 1024.0,
                "peak_rss_mb": max((kb for _, kb in srv.sampler.samples), default=0) / 1024.0,
                "hwm_mb": procs.tree_hwm_kb(srv.pids) / 1024.0,
                "alive_at_end": srv.alive(),
            }
    finally:
        for srv in servers.values():
            srv.stop()
        if scratch is not None:
            scratch.close()
            if made:
                print(f"dropped databases {', '.join(made['databases'])}; deleted Redis keys under"
                      f" {', '.join(made['redis_prefixes'])}")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    packages = ["graphdock", "langgraph", "langgraph-sdk", "langgraph-checkpoint-sqlite", "aiosqlite", "fastapi",
                "starlette", "uvicorn", "uvloop", "httptools", "httpx"]
    if args.backend == "postgres":
        packages += ["langgraph-checkpoint-postgres", "psycopg", "psycopg-pool", "redis"]
    versions: dict[str, Any] = {GRAPHDOCK: procs.venv_versions(sys.executable, packages)}
    if official_venv is not None:
        versions[OFFICIAL] = procs.venv_versions(
            official_venv / "bin" / "python",
            ["langgraph-cli", "langgraph-api", "langgraph-runtime-inmem", "langgraph", "starlette", "uvicorn",
             "uvloop", "httptools"],
        )
    if aegra_venv is not None:
        versions[AEGRA] = postgres.versions(aegra_venv)
    if args.backend == "postgres":
        versions["services"] = postgres.server_versions(args.postgres_uri, args.redis_uri)
    ratio_rows = ratios(rows, setup.checkpointed)
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
            "backend": args.backend,
            "runs": args.runs, "clients": args.clients, "warmup": args.warmup, "rounds": args.rounds,
            "min_seconds": args.min_seconds, "isolate": args.isolate,
            "n_jobs_per_worker": args.n_jobs, "graphdock_args": args.graphdock_args,
            "official_n_jobs_per_worker": args.official_n_jobs, "workloads": "".join(args.workloads),
            "quick": args.quick, "client": args.client,
            **({"workers": args.workers, "aegra_env": args.aegra_env, "inprocess_saver": args.inprocess_saver, "scratch": made} if args.backend == "postgres" else {}),
        },
        "workloads": {w.key: {"name": w.name, "description": w.description} for w in WORKLOADS if w.key in args.workloads},
        "servers": server_info,
        "skipped": skipped,
        "results": rows,
        "not_served": not_served,
        "ratios": ratio_rows,
        "targets": targets(rows, ratio_rows, args.clients) if args.backend == "postgres" else [],
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
