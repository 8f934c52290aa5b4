"""Classifying graph factories by signature and calling them.

A factory takes no parameter, one (the config, or a ``ServerRuntime`` when
annotated so), or two (config and runtime, passed by keyword). Which parameter is
the runtime is decided by its resolved annotation, never by its name.
"""

from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable

from langchain_core.runnables import RunnableConfig
from langgraph_sdk.runtime import ServerRuntime, _ExecutionRuntime, _ReadRuntime

from graphdock.config import ConfigError


@dataclass(frozen=True)
class FactorySignature:
    """How to call a factory: the keyword names for the config and the runtime."""

    config_param: str | None
    runtime_param: str | None
    context_type: Any = None

    def arguments(self, config: Any, runtime: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.config_param:
            kwargs[self.config_param] = config
        if self.runtime_param:
            kwargs[self.runtime_param] = runtime
        return kwargs


def _is_runtime_annotation(annotation: Any) -> bool:
    if annotation is ServerRuntime:
        return True
    origin = typing.get_origin(annotation)
    if origin is ServerRuntime:
        return True
    if origin is typing.Annotated:
        return _is_runtime_annotation(typing.get_args(annotation)[0])
    if isinstance(annotation, type):
        try:
            return issubclass(annotation, (_ExecutionRuntime, _ReadRuntime))
        except TypeError:
            return False
    if origin is not None and isinstance(origin, type):
        try:
            return issubclass(origin, (_ExecutionRuntime, _ReadRuntime))
        except TypeError:
            return False
    # unions of the concrete runtime classes
    args = typing.get_args(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        return all(_is_runtime_annotation(a) for a in args)
    return False


def runtime_context_type(annotation: Any) -> Any:
    """The ``Ctx`` of a ``ServerRuntime[Ctx]`` (or runtime class) annotation, else None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return runtime_context_type(typing.get_args(annotation)[0])
    args = typing.get_args(annotation)
    if args and (origin is ServerRuntime or (isinstance(origin, type) and issubclass(origin, (_ExecutionRuntime, _ReadRuntime)))):
        candidate = args[0]
        if isinstance(candidate, type) and candidate is not type(None):
            return candidate
    return None


def _target(fn: Callable[..., Any]) -> Callable[..., Any]:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        return fn
    call = getattr(type(fn), "__call__", None)
    return call if call is not None else fn


def _resolved_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    target = _target(fn)
    target = inspect.unwrap(target)
    globalns = getattr(target, "__globals__", {})
    localns = {
        "ServerRuntime": ServerRuntime,
        "RunnableConfig": RunnableConfig,
        "Config": RunnableConfig,
    }
    try:
        return typing.get_type_hints(target, globalns=globalns, localns=localns, include_extras=True)
    except Exception:
        hints: dict[str, Any] = {}
        for name, param in inspect.signature(target).parameters.items():
            ann = param.annotation
            if isinstance(ann, str):
                try:
                    ann = eval(ann, dict(globalns), localns)  # noqa: S307 - annotation text
                except Exception:
                    continue
            hints[name] = ann
        return hints


def classify_factory(fn: Callable[..., Any], *, graph_id: str, location: str) -> FactorySignature:
    """Decide how ``fn`` is called; raise ConfigError for a signature that cannot be served."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"graph '{graph_id}': cannot read the signature of factory {location}: {exc}") from exc
    hints = _resolved_hints(fn)
    names = [p.name for p in params]
    name = getattr(_target(fn), "__qualname__", repr(fn))
    if len(params) == 0:
        return FactorySignature(None, None)
    if len(params) > 2:
        raise ConfigError(
            f"graph '{graph_id}': factory {name} ({location}) takes {len(params)} parameters "
            f"({', '.join(names)}); a graph factory takes 0, 1 (config or ServerRuntime) or 2 "
            "(config and ServerRuntime)"
        )
    for p in params:
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ConfigError(
                f"graph '{graph_id}': factory {name} ({location}) has parameter "
                f"'{'*' if p.kind is inspect.Parameter.VAR_POSITIONAL else '**'}{p.name}'; "
                "name the config and/or ServerRuntime parameters explicitly"
            )
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ConfigError(
                f"graph '{graph_id}': factory {name} ({location}) has positional-only parameter "
                f"'{p.name}'; graphdock passes arguments by keyword"
            )
    runtime = [p.name for p in params if _is_runtime_annotation(hints.get(p.name))]
    if len(params) == 1:
        if runtime:
            return FactorySignature(None, params[0].name, runtime_context_type(hints.get(params[0].name)))
        return FactorySignature(params[0].name, None)
    if len(runtime) != 1:
        raise ConfigError(
            f"graph '{graph_id}': factory {name} ({location}) takes two parameters "
            f"({', '.join(names)}) but {'none' if not runtime else 'both'} "
            "annotated as ServerRuntime; exactly one must be ServerRuntime and the other the config"
        )
    config_param = next(p.name for p in params if p.name != runtime[0])
    return FactorySignature(config_param, runtime[0], runtime_context_type(hints.get(runtime[0])))
