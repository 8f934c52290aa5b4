"""Importing the graphs named in ``langgraph.json``.

A graph entry resolves to one of: a compiled graph (``Pregel``), a ``StateGraph``
builder (compiled once here), or a callable, which is a graph factory called on
every access by :func:`graphdock.hosting.graph.open_graph`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from graphdock.config import Config, ConfigError, GraphSpec
from graphdock.hosting.factory import FactorySignature, classify_factory


@dataclass
class LoadedGraph:
    """A registered graph: either a compiled graph or a factory with its signature."""

    spec: GraphSpec
    graph: Pregel | None = None
    factory: Callable[..., Any] | None = None
    signature: FactorySignature | None = None
    notices: tuple[str, ...] = ()

    @property
    def graph_id(self) -> str:
        return self.spec.graph_id

    @property
    def is_factory(self) -> bool:
        return self.factory is not None


def _module_name_for(path: Path) -> str:
    stem = "".join(c if c.isalnum() else "_" for c in str(path.with_suffix("")))
    return f"graphdock_user_graphs.{stem.strip('_')}"


def import_file(file_path: Path, name: str, what: str) -> ModuleType:
    """The Python file ``file_path`` imported as module ``name`` (once: a module already
    imported under that name is returned; a failed import is not kept). A file that cannot
    be imported is a :class:`ConfigError` starting with ``what`` (the configuration key)."""
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, file_path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"{what}: cannot import {file_path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ConfigError(f"{what}: importing {file_path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _import_module(spec: GraphSpec, base_dir: Path) -> ModuleType:
    if spec.is_file:
        file_path = (base_dir / spec.path).resolve()
        if not file_path.is_file():
            raise ConfigError(f"graph '{spec.graph_id}': file {file_path} does not exist")
        name = _module_name_for(file_path.relative_to(file_path.anchor))
        return import_file(file_path, name, f"graph '{spec.graph_id}'")
    try:
        return importlib.import_module(spec.path)
    except Exception as exc:
        raise ConfigError(
            f"graph '{spec.graph_id}': importing module '{spec.path}' failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _graph_like_exports(module: ModuleType) -> list[str]:
    names = []
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (Pregel, StateGraph)):
            names.append(name)
        elif inspect.isfunction(value) and value.__module__ == module.__name__:
            names.append(name)
    return names


def _compiled_has_own_persistence(graph: Pregel) -> list[str]:
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.store.base import BaseStore

    own = []
    if isinstance(graph.checkpointer, BaseCheckpointSaver):
        own.append("checkpointer")
    if isinstance(graph.store, BaseStore):
        own.append("store")
    return own


def load_graph(spec: GraphSpec, base_dir: Path) -> LoadedGraph:
    """Import and classify one graph; raise ConfigError with a one-line reason."""
    module = _import_module(spec, base_dir)
    location = spec.source
    if spec.attr is None:
        candidates = [v for v in vars(module).values() if isinstance(v, Pregel)] or [
            v for v in vars(module).values() if isinstance(v, StateGraph)
        ]
        if not candidates:
            raise ConfigError(
                f"graph '{spec.graph_id}': {spec.path} exports no graph; name one as "
                f"\"{spec.path}:<attr>\""
            )
        value = candidates[0]
    else:
        if not hasattr(module, spec.attr):
            exports = _graph_like_exports(module)
            hint = f" Graph-like exports: {', '.join(exports)}." if exports else " It exports no graph-like objects."
            raise ConfigError(
                f"graph '{spec.graph_id}': {spec.path} has no attribute '{spec.attr}'.{hint}"
            )
        value = getattr(module, spec.attr)
    if isinstance(value, StateGraph):
        try:
            value = value.compile()
        except Exception as exc:
            raise ConfigError(
                f"graph '{spec.graph_id}': compiling the StateGraph {location} failed: {exc}"
            ) from exc
    if isinstance(value, Pregel):
        notices: list[str] = []
        own = _compiled_has_own_persistence(value)
        if own:
            notices.append(
                f"graph '{spec.graph_id}' ({location}) was compiled with its own "
                f"{' and '.join(own)}; graphdock replaces {'them' if len(own) > 1 else 'it'} "
                "with the server's on every access, so its data lives in the server's database."
            )
        return LoadedGraph(spec=spec, graph=value, notices=tuple(notices))
    if callable(value):
        signature = classify_factory(value, graph_id=spec.graph_id, location=location)
        return LoadedGraph(spec=spec, factory=value, signature=signature)
    raise ConfigError(
        f"graph '{spec.graph_id}': {location} is a {type(value).__name__}, "
        "not a graph, a StateGraph or a graph factory"
    )


def prepare_import_path(config: Config) -> None:
    """Put the config folder and every local dependency directory on ``sys.path``."""
    base = config.base_dir
    entries = [str(base)]
    for dep in config.dependencies:
        candidate = (base / dep).resolve()
        if candidate.is_dir():
            entries.append(str(candidate))
            src = candidate / "src"
            if src.is_dir():
                entries.append(str(src))
    for entry in reversed(entries):
        if entry not in sys.path:
            sys.path.insert(0, entry)


def load_graphs(config: Config) -> dict[str, LoadedGraph]:
    """Load every graph, failing on the first one that cannot be served."""
    prepare_import_path(config)
    return {gid: load_graph(spec, config.base_dir) for gid, spec in config.graphs.items()}


def check_graphs(config: Config) -> list[str]:
    """Load every graph and return one line per problem (empty when all load)."""
    prepare_import_path(config)
    problems = []
    for spec in config.graphs.values():
        try:
            load_graph(spec, config.base_dir)
        except ConfigError as exc:
            problems.append(str(exc))
    return problems
