"""The ``graphdock`` command: ``dev``, ``serve`` and ``config check``."""

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


def _settings_from(args: argparse.Namespace, *, dev: bool) -> Settings:
    config = load_config(args.config)
    data_dir = Path(args.data_dir) if args.data_dir else config.base_dir / ".graphdock"
    return Settings(
        config=config,
        data_dir=data_dir.resolve(),
        n_jobs_per_worker=args.n_jobs_per_worker,
        host=args.host,
        port=args.port,
        dev=dev,
        topology_check=args.topology_check,
        run_timeout=args.run_timeout,
        run_processes=default_run_processes() if args.run_processes is None else args.run_processes,
        run_process_policy=args.run_process_policy,
    )


def app_from_env() -> Any:
    """ASGI app factory for uvicorn's reloader: settings come from the environment."""
    from graphdock.app import create_app

    return create_app(Settings.from_json(os.environ[_SETTINGS_ENV]))


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _banner(settings: Settings) -> None:
    base = f"http://{settings.host}:{settings.port}"
    graphs = ", ".join(sorted(settings.config.graphs))
    print(
        f"graphdock {'dev' if settings.dev else 'serve'}\n"
        f"  API:    {base}\n"
        f"  Docs:   {base}/docs\n"
        f"  Data:   {settings.database_path}\n"
        f"  Graphs: {graphs}\n"
        f"  Config: {settings.config.path}",
        flush=True,
    )


def _run(settings: Settings, *, reload: bool, log_level: str) -> int:
    import uvicorn

    from graphdock.hosting import check_graphs

    settings.config.apply_env()
    problems = check_graphs(settings.config)
    if problems:
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        return 1
    _banner(settings)
    os.environ[_SETTINGS_ENV] = settings.to_json()
    uvicorn.run(
        "graphdock.cli:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        reload=reload,
        reload_dirs=[str(settings.config.base_dir)] if reload else None,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0


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


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return seconds


def _common(parser: argparse.ArgumentParser, *, dev: bool) -> None:
    parser.add_argument("--config", default="langgraph.json", help="path to langgraph.json")
    parser.add_argument("--host", default="127.0.0.1" if dev else "0.0.0.0")
    parser.add_argument("--port", type=int, default=2024 if dev else 8000)
    parser.add_argument(
        "--n-jobs-per-worker", type=_whole_number(1), default=10, help="runs executed at once per process executing runs (default 10)"
    )
    parser.add_argument(
        "--data-dir", default=None, help="where the SQLite database lives (default: .graphdock next to the config)"
    )
    parser.add_argument(
        "--log-level", "--server-log-level", dest="log_level", type=str.lower,
        choices=("critical", "error", "warning", "info", "debug"), default="warning" if dev else "info",
    )
    parser.add_argument(
        "--run-timeout",
        type=_positive_seconds,
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

    config_cmd = sub.add_parser("config", help="configuration tools")
    config_sub = config_cmd.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="import every graph and report problems")
    check.add_argument("--config", default="langgraph.json")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "config":
            from graphdock.hosting import check_graphs

            config = load_config(args.config)
            config.apply_env()
            problems = check_graphs(config)
            for line in problems:
                print(f"error: {line}")
            if not problems:
                print(f"ok: {len(config.graphs)} graph(s) load: {', '.join(sorted(config.graphs))}")
            return 1 if problems else 0
        is_dev = args.command == "dev"
        settings = _settings_from(args, dev=is_dev)
        if is_dev and not _port_free(settings.host, settings.port):
            print(f"error: port {settings.port} on {settings.host} is in use; choose another with --port", file=sys.stderr)
            return 1
        logging.getLogger().setLevel(args.log_level.upper())
        return _run(settings, reload=is_dev and not args.no_reload, log_level=args.log_level)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
