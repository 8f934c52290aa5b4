"""The ``graphdock`` command: ``dev``, ``serve``, ``worker`` and ``config check``."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from graphdock.config import ConfigError, Settings, default_run_processes, load_config

_SETTINGS_ENV = "GRAPHDOCK_SETTINGS"
_LOG_LEVEL_ENV = "GRAPHDOCK_LOG_LEVEL"


def _settings_from(args: argparse.Namespace, *, dev: bool) -> Settings:
    config = load_config(args.config)
    data_dir = Path(args.data_dir) if args.data_dir else config.base_dir / ".graphdock"
    database_uri = args.database_uri or None
    if args.n_jobs_per_worker == 0 and not database_uri:
        raise ConfigError(
            "--n-jobs-per-worker 0 (an API process that executes no runs) needs --database-uri:"
            " only a PostgreSQL deployment has workers to execute them"
        )
    if args.command == "worker" and not database_uri:
        raise ConfigError("graphdock worker needs --database-uri (or DATABASE_URI) and --redis-uri (or REDIS_URI)")
    if database_uri and not database_uri.startswith(("postgres://", "postgresql://")):
        raise ConfigError(f"--database-uri: expected a postgresql:// URI, got {redact_uri(database_uri)!r}")
    if database_uri and not args.redis_uri:
        raise ConfigError(
            "--redis-uri (or REDIS_URI) is required with --database-uri: run events and cancel signals live in Redis"
        )
    return Settings(
        config=config,
        data_dir=data_dir.resolve(),
        n_jobs_per_worker=args.n_jobs_per_worker,
        host=args.host,
        port=args.port,
        dev=dev,
        topology_check=args.topology_check,
        run_timeout=args.run_timeout,
        # run processes share one SQLite file: the embedded default only
        run_processes=0 if database_uri else (default_run_processes() if args.run_processes is None else args.run_processes),
        run_process_policy=args.run_process_policy,
        database_uri=database_uri,
        redis_uri=args.redis_uri or None,
        redis_prefix=args.redis_prefix,
        lease_seconds=args.run_lease_seconds,
        max_attempts=args.max_run_attempts,
        shutdown_timeout=args.shutdown_timeout,
        max_body_size=getattr(args, "max_body_size", Settings.max_body_size),
    )


def redact_uri(uri: str) -> str:
    """``uri`` without its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def app_from_env() -> Any:
    """ASGI app factory for uvicorn's reloader: settings come from the environment."""
    from graphdock.app import create_app
    from graphdock.observability import logs

    logs.configure(os.environ.get(_LOG_LEVEL_ENV))  # what main() set up, again in the reloader's child process
    return create_app(Settings.from_json(os.environ[_SETTINGS_ENV]))


def worker_app_from_env() -> Any:
    """ASGI app factory of ``graphdock worker``: its health endpoint."""
    from graphdock.app import create_worker_app
    from graphdock.observability import logs

    logs.configure(os.environ.get(_LOG_LEVEL_ENV))
    return create_worker_app(Settings.from_json(os.environ[_SETTINGS_ENV]))


def _check_backend(settings: Settings) -> str | None:
    """Open the deployment's backend once (creating or migrating its schema); the one-line
    problem when it cannot be opened."""
    import asyncio

    from graphdock.backends import open_backend
    from graphdock.hosting.embeddings import resolve_store_index

    async def check() -> None:
        async with open_backend(settings, "server", store_index=resolve_store_index(settings.config)):
            pass

    try:
        asyncio.run(check())
    except ConfigError as exc:
        return str(exc)
    return None


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _banner(settings: Settings, *, worker: bool = False) -> None:
    base = f"http://{settings.host}:{settings.port}"
    graphs = ", ".join(sorted(settings.config.graphs))
    if settings.database_uri:
        data = f"{redact_uri(settings.database_uri)} + {redact_uri(settings.redis_uri or '')}"
    else:
        data = str(settings.database_path)
    kind = "dev" if settings.dev else "serve"
    if worker:
        lines = [f"graphdock worker ({settings.n_jobs_per_worker} runs at once)", f"  Health: {base}/ok (metrics: {base}/metrics)"]
    else:
        lines = [f"graphdock {kind}", f"  API:    {base}", f"  Docs:   {base}/docs"]
        if settings.n_jobs_per_worker == 0:
            lines[0] += " (API only: workers execute the runs)"
    lines += [f"  Data:   {data}", f"  Graphs: {graphs}", f"  Config: {settings.config.path}"]
    from graphdock.observability import logs

    if logs.json_enabled():  # one JSON line, its parts as fields
        fields = {k.strip().rstrip(":").lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        logging.getLogger("graphdock").info(lines[0], extra={"banner": fields})
        return
    print("\n".join(lines), flush=True)


def _run(settings: Settings, *, reload: bool, log_level: str, worker: bool = False) -> int:
    import uvicorn

    from graphdock.api.custom_app import check_custom_app
    from graphdock.hosting import check_graphs

    settings.config.apply_env()
    from graphdock.hosting import loopback

    loopback.prepare()  # the graphs imported here are served by this process
    problems = check_graphs(settings.config)
    # http.app (a worker's loopback app serves it too)
    problems += [p for p in [check_custom_app(settings.config)] if p]
    if problems:
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        return 1
    problem = _check_backend(settings)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    from graphdock.observability import tracing

    problem = tracing.check()  # the OTEL_* variables of traces (None when traces are off)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    _banner(settings, worker=worker)
    os.environ[_SETTINGS_ENV] = settings.to_json()
    uvicorn.run(
        "graphdock.cli:worker_app_from_env" if worker else "graphdock.cli:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        reload=reload,
        reload_dirs=[str(settings.config.base_dir)] if reload else None,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
        **_uvicorn_logging(),
    )
    return 0


def _uvicorn_logging() -> dict[str, Any]:
    """JSON logs: uvicorn configures no handler of its own, its lines go to the root
    logger's JSON formatter (graphdock's middleware writes the access log)."""
    from graphdock.observability import logs

    return {"log_config": None} if logs.json_enabled() else {}


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return number

    return parse


def _seconds(*, zero: bool) -> Callable[[str], float]:
    """An argparse type: a number of seconds, positive (``zero``: or 0)."""

    def parse(value: str) -> float:
        try:
            seconds = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
        if not (seconds >= 0 if zero else seconds > 0):
            raise argparse.ArgumentTypeError(
                "must be a number of seconds, 0 or more" if zero else "must be a positive number of seconds"
            )
        return seconds

    return parse


def _byte_size(value: str) -> int:
    """An argparse type: a number of bytes, with an optional KiB/MiB/GiB (or K/M/G) unit."""
    text = value.strip().lower().removesuffix("b").removesuffix("i")
    factor = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:], 1)
    digits = text[:-1] if factor > 1 else text
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of bytes such as 1048576, 512KiB or 32MiB, got {value!r}")
    return int(digits) * factor


def _common(parser: argparse.ArgumentParser, *, dev: bool, worker: bool = False) -> None:
    parser.add_argument("--config", default="langgraph.json", help="path to langgraph.json")
    parser.add_argument("--host", default="127.0.0.1" if dev else "0.0.0.0")
    parser.add_argument("--port", type=int, default=2024 if dev else (8001 if worker else 8000))
    parser.add_argument(
        "--n-jobs-per-worker",
        type=_whole_number(1 if dev or worker else 0),
        default=10,
        help="runs executed at once per process executing runs (default 10)"
        + ("" if dev or worker else "; 0: an API process that executes no runs (PostgreSQL deployments)"),
    )
    parser.add_argument(
        "--database-uri",
        default=os.environ.get("DATABASE_URI"),
        help="PostgreSQL URI (default: $DATABASE_URI): rows, checkpoints, store and queue in PostgreSQL "
        "instead of the embedded SQLite file; needs --redis-uri",
    )
    parser.add_argument(
        "--redis-uri", default=os.environ.get("REDIS_URI"), help="Redis URI (default: $REDIS_URI): run events and cancel signals"
    )
    parser.add_argument(
        "--redis-prefix",
        default=os.environ.get("GRAPHDOCK_REDIS_PREFIX", "graphdock"),
        help="the start of every Redis key and channel graphdock uses (default: $GRAPHDOCK_REDIS_PREFIX or graphdock)",
    )
    parser.add_argument(
        "--run-lease-seconds",
        type=_seconds(zero=False),
        default=30.0,
        help="PostgreSQL deployments: how long a run stays claimed by a worker that stopped renewing "
        "it (died) before another worker takes it over (default 30)",
    )
    parser.add_argument(
        "--max-run-attempts",
        type=_whole_number(1),
        default=3,
        help="a run whose process was lost this many times ends in error (default 3)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=_seconds(zero=True),
        default=30.0 if worker else 0.0,
        help="on SIGTERM, seconds the runs executing get to finish before they are handed back "
        f"to be executed again (default {30 if worker else 0})",
    )
    parser.add_argument(
        "--data-dir", default=None, help="where the SQLite database lives (default: .graphdock next to the config)"
    )
    parser.add_argument(
        "--log-level", "--server-log-level", dest="log_level", type=str.lower,
        choices=("critical", "error", "warning", "info", "debug"), default="warning" if dev else "info",
    )
    parser.add_argument(
        "--log-format",
        choices=("plain", "json"),
        default=None,
        help="plain lines, or one JSON object per line with request and run ids"
        " (default: json when LOG_JSON=true, else plain)",
    )
    parser.add_argument(
        "--run-timeout",
        type=_seconds(zero=False),
        default=86400.0,
        help="seconds a run may take before it ends with status timeout (default 86400)",
    )
    parser.add_argument(
        "--run-processes",
        type=_whole_number(0),
        default=None,
        help="processes that execute runs next to the server process when it is saturated "
        "(default 1 on a machine with more than one core, else 0)",
    )
    parser.add_argument(
        "--run-process-policy",
        choices=("saturated", "always"),
        default="saturated",
        help="saturated: start run processes when the server process is saturated and stop "
        "them when idle; always: start them with the server and execute every run in them",
    )
    parser.add_argument(
        "--topology-check",
        choices=("off", "warn", "error"),
        default="warn",
        help="compare the graph a factory builds in each access context (default warn)",
    )
    if not worker:
        parser.add_argument(
            "--max-body-size",
            type=_byte_size,
            default=Settings.max_body_size,
            help="the largest request body accepted, in bytes or with a KiB/MiB/GiB unit; a larger "
            "one is answered 413 (default 32MiB; 0: no limit)",
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="graphdock", description="An open-source Agent Server for LangGraph graphs.")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run a development server (auto-reload on file changes)")
    _common(dev, dev=True)
    dev.add_argument("--no-reload", action="store_true", help="do not restart when files change")
    dev.add_argument("--no-browser", action="store_true", help="graphdock never opens a browser")
    dev.add_argument(
        "--allow-blocking", action="store_true", help="graphdock never refuses blocking calls in graph code"
    )

    serve = sub.add_parser("serve", help="run the server for production (no reload)")
    _common(serve, dev=False)

    worker = sub.add_parser(
        "worker", help="execute runs of a PostgreSQL deployment (no API; a health endpoint at /ok)"
    )
    _common(worker, dev=False, worker=True)

    config_cmd = sub.add_parser("config", help="configuration tools")
    config_sub = config_cmd.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="import every graph and report problems")
    check.add_argument("--config", default="langgraph.json")

    args = parser.parse_args(argv)
    from graphdock.observability import logs

    if getattr(args, "log_format", None):  # children (run processes, the reloader's) inherit it
        os.environ[logs.ENV] = "true" if args.log_format == "json" else "false"
    logs.configure(logging.INFO)
    try:
        if args.command == "config":
            from graphdock.hosting import check_graphs

            config = load_config(args.config)
            config.apply_env()
            problems = check_graphs(config)
            for line in problems:
                print(f"error: {line}")
            if not problems:
                from graphdock.hosting.embeddings import resolve_store_index

                resolve_store_index(config)  # store.index.embed imports (ConfigError otherwise)
                print(f"ok: {len(config.graphs)} graph(s) load: {', '.join(sorted(config.graphs))}")
            return 1 if problems else 0
        is_dev = args.command == "dev"
        settings = _settings_from(args, dev=is_dev)
        if is_dev and not _port_free(settings.host, settings.port):
            print(f"error: port {settings.port} on {settings.host} is in use; choose another with --port", file=sys.stderr)
            return 1
        logging.getLogger().setLevel(args.log_level.upper())
        os.environ[_LOG_LEVEL_ENV] = args.log_level.upper()  # for the reloader's child process
        return _run(
            settings,
            reload=is_dev and not args.no_reload,
            log_level=args.log_level,
            worker=args.command == "worker",
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
