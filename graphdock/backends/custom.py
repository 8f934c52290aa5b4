"""A custom checkpointer (``checkpointer.path``) and store (``store.path``) in place of
graphdock's own, and the serializer settings of ``checkpointer.serde``.

``checkpointer.path`` / ``store.path`` name user code, ``"./file.py:attr"`` (relative to
``langgraph.json``) or ``"module:attr"``: a langgraph ``BaseCheckpointSaver`` / ``BaseStore``
instance, an (async) context manager yielding one, or a function (or class) returning any
of these; a context manager is entered when the process opens its backend and exited when
it closes it.

A custom saver is a plain ``BaseCheckpointSaver``: :class:`CustomSaver` gives it the
checkpoint housekeeping graphdock's services need (:class:`~graphdock.backends.base.Housekeeping`)
through the saver's own API. ``adelete_for_runs`` and ``aprune`` are the saver's when it
implements them; otherwise, and for ``ahead_writes`` / ``arestore_writes`` (a rollback's
pending writes), the thread is rewritten: its checkpoints are listed (``alist``), the thread
deleted (``adelete_thread``) and the checkpoints kept put back (``aput``, ``aput_writes``),
with their ids and parents. That rewrite is not atomic (a reader in between sees fewer
checkpoints, a crash in between loses them), and it keeps the pending writes of the root
namespace only; it happens on rollbacks, prunes and ``keep_latest`` TTL sweeps, never on
a run's hot path. With a saver without ``adelete_thread`` a deleted thread's checkpoints
stay in the saver (a warning says so, once); the thread itself is deleted.
"""

from __future__ import annotations

import inspect
import logging
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator, Mapping, Sequence

from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.store.base import BaseStore

from graphdock.backends.base import Housekeeping

if TYPE_CHECKING:
    from graphdock.config import Config

logger = logging.getLogger("graphdock.backends")


# -- loading --------------------------------------------------------------------


async def open_custom(key: str, ref: str, config: "Config", kind: type, stack: AsyncExitStack) -> Any:
    """The ``kind`` instance ``ref`` names (``key``: the configuration key, for errors);
    a context manager it gives is exited with ``stack``."""
    from graphdock.config import ConfigError, GraphSpec
    from graphdock.hosting.loader import _import_module  # the one way user code is imported

    module_path, attr = ref.rsplit(":", 1)
    module = _import_module(GraphSpec(graph_id=key, path=module_path, attr=attr), config.base_dir)
    if not hasattr(module, attr):
        raise ConfigError(f"{key}: {module_path} has no attribute {attr!r}")
    value = getattr(module, attr)
    try:
        for _ in range(4):
            if isinstance(value, kind):
                return value
            if hasattr(value, "__aenter__"):
                value = await stack.enter_async_context(value)
            elif hasattr(value, "__enter__"):
                value = stack.enter_context(value)
            elif inspect.isawaitable(value):
                value = await value
            elif callable(value):
                value = value()
            else:
                break
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{key}: opening {ref} failed: {type(exc).__name__}: {exc}") from exc
    raise ConfigError(f"{key}: {ref} gave {type(value).__name__}, not a langgraph {kind.__name__}")


# -- checkpointer.serde ---------------------------------------------------------


def serializer(options: Mapping[str, Any]) -> JsonPlusSerializer:
    """langgraph's ``JsonPlusSerializer`` with the ``checkpointer.serde`` options."""
    kwargs: dict[str, Any] = {"pickle_fallback": bool(options.get("pickle_fallback", False))}
    for key in ("allowed_json_modules", "allowed_msgpack_modules"):
        value = options.get(key)
        if value is not None:
            kwargs[key] = True if value is True else [tuple(m) for m in value]
    return JsonPlusSerializer(**kwargs)


def apply_serde(saver: BaseCheckpointSaver, options: Mapping[str, Any]) -> None:
    """Give ``saver`` (graphdock's or a custom one) the ``checkpointer.serde`` serializer; an
    ``EncryptedSerializer`` keeps its cipher around the new one."""
    from graphdock.config import ConfigError

    current = saver.serde
    if isinstance(current, EncryptedSerializer):
        saver.serde = EncryptedSerializer(current.cipher, serializer(options))
    elif isinstance(current, JsonPlusSerializer):
        saver.serde = serializer(options)
    else:
        raise ConfigError(
            f"checkpointer.serde: the checkpointer's serializer is a {type(current).__name__}, not"
            " langgraph's JsonPlusSerializer; configure it in the checkpointer itself"
        )


# -- the custom saver -----------------------------------------------------------


def _implements(saver: Any, name: str) -> bool:
    return getattr(type(saver), name, None) is not getattr(BaseCheckpointSaver, name)


def _id(tup: CheckpointTuple) -> tuple[str, str]:
    conf = tup.config["configurable"]
    return conf.get("checkpoint_ns", ""), conf["checkpoint_id"]


class CustomSaver(BaseCheckpointSaver, Housekeeping):  # type: ignore[misc]
    """A user's ``BaseCheckpointSaver`` as graphdock's checkpointer: every saver call goes
    to it unchanged; graphdock's housekeeping is done through its API (see the module)."""

    def __init__(self, saver: BaseCheckpointSaver) -> None:
        self.saver = saver
        self._said_cannot_delete = False

    @property  # type: ignore[override]
    def serde(self) -> Any:
        return self.saver.serde

    @serde.setter
    def serde(self, value: Any) -> None:
        self.saver.serde = value

    @property
    def config_specs(self) -> list:  # type: ignore[type-arg]
        return self.saver.config_specs

    def get_next_version(self, current: Any, channel: None) -> Any:
        return self.saver.get_next_version(current, channel)

    def with_allowlist(self, extra_allowlist: Any) -> BaseCheckpointSaver:
        inner = self.saver.with_allowlist(extra_allowlist)
        return self if inner is self.saver else CustomSaver(inner)

    # the saver's API, delegated
    def get_tuple(self, config: Any) -> CheckpointTuple | None:
        return self.saver.get_tuple(config)

    def list(self, config: Any, **kwargs: Any) -> Iterator[CheckpointTuple]:
        return self.saver.list(config, **kwargs)

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        return self.saver.put(config, checkpoint, metadata, new_versions)

    def put_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        self.saver.put_writes(config, writes, task_id, task_path)

    def delete_thread(self, thread_id: str) -> None:
        self.saver.delete_thread(thread_id)

    def get_delta_channel_history(self, *, config: Any, channels: Sequence[str]) -> Any:
        return self.saver.get_delta_channel_history(config=config, channels=channels)

    async def aget_tuple(self, config: Any) -> CheckpointTuple | None:
        return await self.saver.aget_tuple(config)

    async def alist(self, config: Any, **kwargs: Any) -> AsyncIterator[CheckpointTuple]:
        async for item in self.saver.alist(config, **kwargs):
            yield item

    async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        return await self.saver.aput(config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        await self.saver.aput_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        try:
            await self.saver.adelete_thread(thread_id)
        except NotImplementedError:
            # the thread is gone from graphdock (its row was deleted first); its checkpoints
            # stay in a saver that cannot delete them, which is said once
            if not self._said_cannot_delete:
                self._said_cannot_delete = True
                logger.warning(
                    "checkpointer.path: %s does not implement adelete_thread; the checkpoints of "
                    "deleted threads stay in it", type(self.saver).__name__,
                )

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self.saver.acopy_thread(source_thread_id, target_thread_id)

    async def aget_delta_channel_history(self, *, config: Any, channels: Sequence[str]) -> Any:
        return await self.saver.aget_delta_channel_history(config=config, channels=channels)

    # -- housekeeping ------------------------------------------------------------

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        if _implements(self.saver, "adelete_for_runs"):
            await self.saver.adelete_for_runs(run_ids)
            return
        ids = {str(r) for r in run_ids}
        threads: set[str] = set()
        for run_id in ids:
            async for tup in self.saver.alist(None, filter={"run_id": run_id}):
                threads.add(tup.config["configurable"]["thread_id"])
        for thread_id in threads:
            await self._rewrite(thread_id, keep=lambda tup: str((tup.metadata or {}).get("run_id")) not in ids)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if _implements(self.saver, "aprune"):
            await self.saver.aprune(thread_ids, strategy=strategy)
            return
        if strategy == "delete":
            for thread_id in thread_ids:
                await self.saver.adelete_thread(thread_id)
            return
        if strategy != "keep_latest":
            raise ValueError(f"unknown prune strategy {strategy!r}")
        for thread_id in thread_ids:
            tuples = [t async for t in self.saver.alist({"configurable": {"thread_id": thread_id}})]
            latest: dict[str, str] = {}
            for tup in tuples:
                ns, cid = _id(tup)
                latest[ns] = max(latest.get(ns, cid), cid)
            if len(latest) < len(tuples):
                await self._rewrite(
                    thread_id, keep=lambda tup: latest[_id(tup)[0]] == _id(tup)[1], tuples=tuples, parents=False
                )

    async def ahead_writes(self, thread_id: str, checkpoint_id: str | None = None) -> Any:
        heads: dict[tuple[str, str], list[tuple[str, str, Any]]] = {}
        configs = [{"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}]
        if checkpoint_id is not None:
            configs.append({"configurable": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}})
        for config in configs:
            tup = await self.saver.aget_tuple(config)
            if tup is not None:
                heads[_id(tup)] = list(tup.pending_writes or ())
        return {"thread_id": thread_id, "heads": heads}

    async def arestore_writes(self, thread_id: str, snapshot: Any) -> None:
        heads: dict[tuple[str, str], list[tuple[str, str, Any]]] = snapshot["heads"]
        tuples = [t async for t in self.saver.alist({"configurable": {"thread_id": thread_id}})]
        if all(list(t.pending_writes or ()) == heads[_id(t)] for t in tuples if _id(t) in heads):
            return  # nothing to put back
        await self._rewrite(thread_id, keep=lambda tup: True, tuples=tuples, writes=heads)

    async def _rewrite(
        self,
        thread_id: str,
        *,
        keep: Callable[[CheckpointTuple], bool],
        tuples: list[CheckpointTuple] | None = None,
        parents: bool = True,
        writes: Mapping[tuple[str, str], list[tuple[str, str, Any]]] | None = None,
    ) -> None:
        """Put back the thread's checkpoints that ``keep`` keeps (oldest first, with their
        ids; their parents unless ``parents`` is False), each with its pending writes, or
        those ``writes`` gives for it."""
        if tuples is None:
            tuples = [t async for t in self.saver.alist({"configurable": {"thread_id": thread_id}})]
        kept = [t for t in reversed(tuples) if keep(t)]
        kept_ids = {_id(t) for t in kept}
        await self.saver.adelete_thread(thread_id)
        for tup in kept:
            ns, _ = _id(tup)
            target: dict[str, Any] = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}
            parent = ((tup.parent_config or {}).get("configurable") or {}).get("checkpoint_id")
            if parents and parent and (ns, parent) in kept_ids:
                target["configurable"]["checkpoint_id"] = parent
            saved = await self.saver.aput(
                target, tup.checkpoint, tup.metadata, dict(tup.checkpoint.get("channel_versions", {}))
            )
            pending = writes[_id(tup)] if writes is not None and _id(tup) in writes else tup.pending_writes or ()
            by_task: dict[str, list[tuple[str, Any]]] = {}
            for task_id, channel, value in pending:
                by_task.setdefault(task_id, []).append((channel, value))
            for task_id, task_writes in by_task.items():
                await self.saver.aput_writes(saved, task_writes, task_id)


async def open_custom_persistence(config: "Config", saver: Any, store: Any, stack: AsyncExitStack) -> tuple[Any, Any]:
    """The checkpointer and store of a process whose configuration names custom ones
    (``saver``/``store``: graphdock's own, kept where nothing custom is named)."""
    if config.checkpointer_path:
        custom = await open_custom("checkpointer.path", config.checkpointer_path, config, BaseCheckpointSaver, stack)
        saver = CustomSaver(custom)
    if config.store.get("path"):
        store = await open_custom("store.path", config.store["path"], config, BaseStore, stack)
    return saver, store
