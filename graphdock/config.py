"""Reading ``langgraph.json`` and the server settings derived from it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from graphdock.webhooks.policy import WebhookPolicy


class ConfigError(Exception):
    """The configuration file cannot be served; the message says what and where."""


@dataclass(frozen=True)
class GraphSpec:
    """One entry of ``graphs``: where the graph lives and how it is described."""

    graph_id: str
    path: str  # "./file.py" or "pkg.module"
    attr: str | None
    description: str | None = None

    @property
    def is_file(self) -> bool:
        return "/" in self.path or self.path.endswith(".py")

    @property
    def source(self) -> str:
        return f"{self.path}:{self.attr}" if self.attr else self.path


@dataclass
class Config:
    """The parts of ``langgraph.json`` graphdock serves."""

    path: Path
    graphs: dict[str, GraphSpec]
    dependencies: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    http: dict[str, Any] = field(default_factory=dict)
    store: dict[str, Any] = field(default_factory=dict)
    auth: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    webhooks: WebhookPolicy = field(default_factory=WebhookPolicy)
    thread_ttl: "ThreadTTLConfig | None" = None
    checkpointer_path: str | None = None  # checkpointer.path: a custom BaseCheckpointSaver
    checkpointer_serde: dict[str, Any] | None = None  # checkpointer.serde: JsonPlusSerializer options

    @property
    def custom_persistence(self) -> bool:
        """A custom checkpointer or store replaces graphdock's own (checkpointer.path, store.path)."""
        return bool(self.checkpointer_path or self.store.get("path"))

    def apply_env(self) -> None:
        """Export ``env`` to the process; variables that are already set win."""
        for key, value in self.env.items():
            os.environ.setdefault(key, value)

    def unsupported(self) -> list[str]:
        """Configuration keys graphdock does not act upon (reported at start-up)."""
        keys = [k for k in ("ui", "ui_config", "encryption", "priority") if self.raw.get(k)]
        keys += [f"checkpointer.{k}" for k in (self.raw.get("checkpointer") or {}) if k not in CHECKPOINTER_KEYS]
        keys += [f"http.{k}" for k in self.http if k not in HTTP_SUPPORTED]
        return keys

    def http_disabled(self, group: str) -> bool:
        """Whether ``http.disable_<group>`` turns off a route group (``assistants``,
        ``threads``, ``runs``, ``store``, ``meta``, ``mcp``, ``a2a``, ``webhooks``, ``ui``,
        ``event_streaming``: the thread streaming protocol's routes)."""
        return bool(self.http.get(f"disable_{group}", False))

    @property
    def base_dir(self) -> Path:
        return self.path.parent


@dataclass(frozen=True)
class ThreadTTLConfig:
    """``checkpointer.ttl``: threads are swept ``default_ttl`` minutes after their last
    update (``delete``: the thread and its checkpoints; ``keep_latest``: all but the latest
    checkpoint), by a sweep every ``sweep_interval_minutes`` of at most ``sweep_limit``."""

    strategy: str = "delete"
    default_ttl: float | None = None
    sweep_interval_minutes: float = 5.0
    sweep_limit: int = 10_000


def _parse_thread_ttl(checkpointer: Any) -> ThreadTTLConfig | None:
    if checkpointer is None:
        return None
    if not isinstance(checkpointer, dict):
        raise ConfigError("checkpointer: expected an object")
    ttl = checkpointer.get("ttl")
    if ttl is None:
        return None
    if not isinstance(ttl, dict):
        raise ConfigError("checkpointer.ttl: expected an object")
    known = {"strategy", "default_ttl", "sweep_interval_minutes", "sweep_limit"}
    unknown = set(ttl) - known
    if unknown:
        raise ConfigError(f"checkpointer.ttl.{sorted(unknown)[0]}: unknown key (expected {', '.join(sorted(known))})")
    strategy = ttl.get("strategy", "delete")
    if strategy not in ("delete", "keep_latest"):
        raise ConfigError(f"checkpointer.ttl.strategy: expected 'delete' or 'keep_latest', got {strategy!r}")
    numbers: dict[str, Any] = {}
    for key in ("default_ttl", "sweep_interval_minutes"):
        value = ttl.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ConfigError(f"checkpointer.ttl.{key}: expected a positive number of minutes, got {value!r}")
        if value is not None:
            numbers[key] = float(value)
    limit = ttl.get("sweep_limit", 10_000)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise ConfigError(f"checkpointer.ttl.sweep_limit: expected a positive integer, got {limit!r}")
    return ThreadTTLConfig(strategy=strategy, sweep_limit=limit, **numbers)


HTTP_GROUPS = (
    "assistants", "threads", "runs", "store", "meta", "mcp", "a2a", "webhooks", "ui", "event_streaming",
)
# the http.* keys graphdock acts upon; any other key is reported at start-up (Config.unsupported)
HTTP_SUPPORTED = {
    "app", "cors", "mount_prefix", "configurable_headers", "logging_headers", "enable_custom_route_auth",
    "middleware_order", *(f"disable_{group}" for group in HTTP_GROUPS),
}


def _parse_http(http: Any) -> dict[str, Any]:
    """Validate the ``http`` section; ``mount_prefix`` comes back without its trailing ``/``."""
    if not isinstance(http, dict):
        raise ConfigError("http: expected an object")
    http = dict(http)
    for key in ("enable_custom_route_auth", *(f"disable_{group}" for group in HTTP_GROUPS)):
        if not isinstance(http.get(key, False), bool):
            raise ConfigError(f"http.{key}: expected true or false, got {http[key]!r}")
    app = http.get("app")
    if app is not None and (not isinstance(app, str) or ":" not in app or not app.rsplit(":", 1)[1]):
        raise ConfigError(f'http.app: expected "./file.py:attr" or "module:attr", got {app!r}')
    order = http.get("middleware_order", "middleware_first")
    if order not in ("middleware_first", "auth_first"):
        raise ConfigError(f"http.middleware_order: expected 'middleware_first' or 'auth_first', got {order!r}")
    prefix = http.get("mount_prefix")
    if prefix is not None:
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise ConfigError(f"http.mount_prefix: expected a path starting with '/', got {prefix!r}")
        prefix = prefix.rstrip("/")
        if prefix == "/noauth" or prefix.startswith("/noauth/") or any(not part or part in (".", "..") for part in prefix.split("/")[1:]):
            raise ConfigError(f"http.mount_prefix: {http['mount_prefix']!r} cannot be used as a prefix")
        http["mount_prefix"] = prefix or None
    for section in ("configurable_headers", "logging_headers"):
        headers = http.get(section)
        if headers is None:
            continue
        if not isinstance(headers, dict) or set(headers) - {"includes", "excludes"}:
            raise ConfigError(f"http.{section}: expected an object with 'includes' and/or 'excludes'")
        for key, patterns in headers.items():
            if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
                raise ConfigError(f"http.{section}.{key}: expected a list of header name patterns")
    return http


CHECKPOINTER_KEYS = ("ttl", "backend", "path", "serde")
SERDE_KEYS = ("allowed_json_modules", "allowed_msgpack_modules", "pickle_fallback")


def _parse_code_path(key: str, value: Any) -> str | None:
    """A ``"./file.py:attr"`` / ``"module:attr"`` reference to user code, or None."""
    if value is None:
        return None
    if not isinstance(value, str) or ":" not in value or not all(p.strip() for p in value.rsplit(":", 1)):
        raise ConfigError(f'{key}: expected "./file.py:attr" or "module:attr", got {value!r}')
    return value


def _parse_checkpointer(checkpointer: Any) -> tuple[str | None, dict[str, Any] | None]:
    """``checkpointer.path`` and ``checkpointer.serde`` (``backend`` is inferred from ``path``)."""
    if not checkpointer:
        return None, None
    if not isinstance(checkpointer, dict):
        raise ConfigError("checkpointer: expected an object")
    path = _parse_code_path("checkpointer.path", checkpointer.get("path"))
    backend = checkpointer.get("backend", "custom" if path else "default")
    if backend not in ("default", "custom"):
        raise ConfigError(f"checkpointer.backend: expected 'default' or 'custom' (with checkpointer.path), got {backend!r}")
    if (backend == "custom") != bool(path):
        raise ConfigError("checkpointer.backend: 'custom' goes with checkpointer.path, 'default' without it")
    serde = checkpointer.get("serde")
    if serde is None:
        return path, None
    if not isinstance(serde, dict):
        raise ConfigError(f"checkpointer.serde: expected an object with {', '.join(SERDE_KEYS)}")
    unknown = sorted(set(serde) - set(SERDE_KEYS))
    if unknown:
        raise ConfigError(f"checkpointer.serde.{unknown[0]}: unknown key (expected {', '.join(SERDE_KEYS)})")
    if not isinstance(serde.get("pickle_fallback", False), bool):
        raise ConfigError("checkpointer.serde.pickle_fallback: expected true or false")
    for key in ("allowed_json_modules", "allowed_msgpack_modules"):
        value = serde.get(key)
        if value is None or value is True:
            continue
        if not isinstance(value, list) or not all(
            isinstance(m, list) and m and all(isinstance(p, str) and p for p in m) for m in value
        ):
            raise ConfigError(f'checkpointer.serde.{key}: expected true or a list of ["module", ..., "Type"] lists')
    return path, dict(serde)


def _parse_graph(graph_id: str, value: Any) -> GraphSpec:
    description = None
    if isinstance(value, dict):
        if "path" not in value or not isinstance(value["path"], str):
            raise ConfigError(f"graphs.{graph_id}: the dict form needs a 'path' string")
        description = value.get("description")
        value = value["path"]
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"graphs.{graph_id}: expected \"./file.py:attr\" or \"package.module:attr\", got {value!r}"
        )
    if ":" in value:
        path, attr = value.rsplit(":", 1)
        attr = attr or None
    else:
        path, attr = value, None
    if path.endswith((".ts", ".js", ".mts", ".cts", ".mjs", ".tsx", ".jsx")):
        raise ConfigError(f"graphs.{graph_id}: JavaScript graphs are not supported ({value})")
    return GraphSpec(graph_id=graph_id, path=path, attr=attr, description=description)


def _read_env(base: Path, env: Any) -> dict[str, str]:
    if env is None:
        return {}
    if isinstance(env, dict):
        return {str(k): str(v) for k, v in env.items()}
    if isinstance(env, str):
        from dotenv import dotenv_values

        env_path = (base / env).resolve()
        if not env_path.is_file():
            raise ConfigError(f"env: file {env_path} does not exist")
        return {k: v for k, v in dotenv_values(env_path).items() if v is not None}
    raise ConfigError("env: expected an object or the path of a .env file")


STORE_INDEX_KEYS = ("dims", "embed", "fields")


def _parse_store_index(index: Any) -> dict[str, Any]:
    """Validate ``store.index``: ``{"dims": N, "embed": "...", "fields": [...]}`` with
    ``fields`` defaulting to ``["$"]`` (the whole value). ``embed`` is only checked for
    its form here; graphdock.hosting.embeddings imports it."""
    if not isinstance(index, dict):
        raise ConfigError('store.index: expected an object like {"dims": 1536, "embed": "openai:text-embedding-3-small"}')
    for key in index:
        if key not in STORE_INDEX_KEYS:
            raise ConfigError(f"store.index.{key}: unknown key (expected {', '.join(STORE_INDEX_KEYS)})")
    dims = index.get("dims")
    if dims is None:
        raise ConfigError("store.index.dims: required (the number of dimensions of the embedding vectors)")
    if isinstance(dims, bool) or not isinstance(dims, int) or dims <= 0:
        raise ConfigError(f"store.index.dims: expected a positive whole number, got {dims!r}")
    embed = index.get("embed")
    if embed is None:
        raise ConfigError('store.index.embed: required ("provider:model", "./file.py:attr" or "module:attr")')
    if not isinstance(embed, str) or ":" not in embed or not all(part.strip() for part in embed.rsplit(":", 1)):
        raise ConfigError(
            f'store.index.embed: expected "provider:model", "./file.py:attr" or "module:attr", got {embed!r}'
        )
    fields = index.get("fields", ["$"])
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f.strip() for f in fields):
        raise ConfigError(f'store.index.fields: expected a non-empty list of JSON paths like ["$"] or ["text"], got {fields!r}')
    return {"dims": dims, "embed": embed, "fields": list(fields)}


def load_config(path: str | os.PathLike[str]) -> Config:
    """Parse a ``langgraph.json`` file; raise ConfigError naming what is wrong."""
    cfg_path = Path(path).resolve()
    if not cfg_path.is_file():
        raise ConfigError(f"config file {cfg_path} does not exist")
    try:
        raw = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{cfg_path}: invalid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{cfg_path}: expected a JSON object")
    graphs_raw = raw.get("graphs")
    if not isinstance(graphs_raw, dict) or not graphs_raw:
        raise ConfigError(f"{cfg_path}: 'graphs' must be a non-empty object")
    graphs = {gid: _parse_graph(gid, val) for gid, val in graphs_raw.items()}
    deps = raw.get("dependencies") or []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise ConfigError("dependencies: expected a list of paths or package names")
    http = _parse_http(raw.get("http") or {})
    store = raw.get("store") or {}
    if not isinstance(store, dict):
        raise ConfigError("store: expected an object")
    if store.get("index") is not None:
        store = {**store, "index": _parse_store_index(store["index"])}
    _parse_code_path("store.path", store.get("path"))
    ttl = store.get("ttl")
    if ttl is not None:
        if not isinstance(ttl, dict) or set(ttl) - {"default_ttl", "refresh_on_read", "sweep_interval_minutes"}:
            raise ConfigError(
                "store.ttl: expected an object with default_ttl, refresh_on_read and/or sweep_interval_minutes"
            )
    auth = raw.get("auth")
    if auth is not None and not isinstance(auth, dict):
        raise ConfigError("auth: expected an object")
    env = _read_env(cfg_path.parent, raw.get("env"))
    disable_webhooks = http.get("disable_webhooks", False)
    if not isinstance(disable_webhooks, bool):
        raise ConfigError("http.disable_webhooks: expected true or false")
    try:
        webhooks = WebhookPolicy.from_config(
            raw.get("webhooks"), disabled=disable_webhooks, env={**env, **os.environ}
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    checkpointer_path, checkpointer_serde = _parse_checkpointer(raw.get("checkpointer"))
    return Config(
        path=cfg_path,
        graphs=graphs,
        dependencies=deps,
        env=env,
        http=http,
        store=store,
        auth=auth,
        raw=raw,
        webhooks=webhooks,
        thread_ttl=_parse_thread_ttl(raw.get("checkpointer")),
        checkpointer_path=checkpointer_path,
        checkpointer_serde=checkpointer_serde,
    )


@dataclass
class Settings:
    """Everything a server process needs to start."""

    config: Config
    data_dir: Path
    n_jobs_per_worker: int = 10
    host: str = "127.0.0.1"
    port: int = 2024
    dev: bool = False
    resumable_stream_ttl: float = 120.0
    run_timeout: float = 86400.0
    topology_check: str = "warn"
    run_processes: int = 1
    run_process_policy: str = "saturated"
    # scale-out: PostgreSQL (rows, checkpoints, store, queue) and Redis (run events, cancels)
    database_uri: str | None = None
    redis_uri: str | None = None
    redis_prefix: str = "graphdock"  # every Redis key and channel starts with "<prefix>:"
    lease_seconds: float = 30.0  # a run's lease; a worker renews it every third of this
    max_attempts: int = 3  # a run whose worker was lost this many times ends in error
    shutdown_timeout: float = 0.0  # on stop: seconds running runs get to end before handed back
    max_body_size: int = 32 * 1024 * 1024  # bytes of a request body (413 above); 0: no limit

    @property
    def database_path(self) -> Path:
        return self.data_dir / "graphdock.sqlite"

    def to_json(self) -> str:
        """The settings as JSON, for another process of the same server (the config is
        read again from its path)."""
        raw = {f.name: getattr(self, f.name) for f in fields(self)}
        raw["config"], raw["data_dir"] = str(self.config.path), str(self.data_dir)
        return json.dumps(raw)

    @classmethod
    def from_json(cls, text: str) -> "Settings":
        raw = json.loads(text)
        raw["config"] = load_config(raw["config"])
        raw["data_dir"] = Path(raw["data_dir"])
        return cls(**raw)


def default_run_processes() -> int:
    """Run processes a server starts when saturated: one when the machine has a second core."""
    return 1 if (os.cpu_count() or 1) > 1 else 0
