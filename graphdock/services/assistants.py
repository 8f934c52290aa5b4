"""Assistants: versioned configurations of a registered graph."""

from __future__ import annotations

from typing import Any

from graphdock import serde
from graphdock import models
from graphdock.auth import ANONYMOUS, AuthContext
from graphdock.auth.handlers import Authorizer
from graphdock.backends.base import Page, Row, Storage
from graphdock.errors import NotFound, Unprocessable
from graphdock.hosting import Hosting, system_assistant_id
from graphdock.hosting.state import drawable_graph, graph_schemas
from graphdock.services.common import (
    check_storable,
    clean_metadata,
    mirror_context,
    normalise_config,
    parse_uuid,
)


def patched_config(
    current: Row, config: dict[str, Any], context: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (config, context) of a PATCH, keeping ``config.configurable`` and ``context`` equal.

    - a non-empty ``config`` replaces the config; ``context`` replaces the context when present;
    - a new non-empty ``config.configurable`` becomes the context too;
    - a new context without a new configurable becomes the configurable of the (old or new)
      config; a new config without either keeps the current context, mirrored into it;
    - a non-empty configurable together with a non-empty context is a 400.
    """
    if context is None:
        if config.get("configurable"):
            return mirror_context(config, None)
        context = current["context"]
    elif config.get("configurable"):
        return mirror_context(config, context)
    base = config if config else current["config"]
    return mirror_context({k: v for k, v in base.items() if k != "configurable"}, context)


def _check_row(row: Row) -> None:
    for field in ("config", "context", "metadata", "name", "description"):
        if field in row:
            check_storable(row[field], field)


class AssistantsService:
    """Assistant rows and the introspection of their graphs (access context ``assistants.read``).

    Assistants whose graph is not registered in this server are treated as absent.
    """

    def __init__(self, storage: Storage, hosting: Hosting, authorizer: Authorizer) -> None:
        self.storage = storage
        self.hosting = hosting
        self.authorizer = authorizer

    async def register_system_assistants(self) -> None:
        for graph_id, loaded in self.hosting.graphs.items():
            await self.storage.ensure_system_assistant(
                system_assistant_id(graph_id),
                graph_id,
                self.hosting.system_assistant_name(graph_id),
                loaded.spec.description,
            )

    def resolve_id(self, assistant_id: str) -> str:
        """An assistant UUID, or a registered graph id mapped to its system assistant."""
        if assistant_id in self.hosting:
            return system_assistant_id(assistant_id)
        try:
            return parse_uuid(assistant_id, "assistant")
        except Unprocessable:
            raise Unprocessable(
                f"Invalid assistant: '{assistant_id}'. Must be either:\n"
                "- A valid assistant UUID, or\n"
                f"- One of the registered graphs: {', '.join(sorted(self.hosting.graphs))}"
            ) from None

    async def get(self, assistant_id: str, auth: AuthContext = ANONYMOUS, *, action: str = "read") -> Row:
        """The assistant, if it exists, its graph is registered and ``auth`` may see it."""
        value: dict[str, Any] = {"assistant_id": assistant_id}
        flt = await self.authorizer.authorize(auth, "assistants", action, value)
        return await self._get(assistant_id, flt)

    async def _get(self, assistant_id: str, flt: Row | None) -> Row:
        row = await self.storage.get_assistant(assistant_id, auth_filter=flt)
        if row is None or row["graph_id"] not in self.hosting:
            raise NotFound(f"Assistant {assistant_id} not found")
        return row

    async def create(self, body: models.AssistantCreate, auth: AuthContext = ANONYMOUS) -> Row:
        """Insert version 1 of a new assistant; ``if_exists`` decides what an existing id gets.

        Everything is validated before the single write, so a rejected request stores nothing.
        """
        self.hosting.get(body.graph_id)
        assistant_id = (
            parse_uuid(body.assistant_id, "assistant") if body.assistant_id else serde.uuid7()
        )
        config, context = mirror_context(
            normalise_config(body.config.model_dump(exclude_none=True) if body.config else {}),
            body.context,
        )
        now = serde.now_iso()
        row = {
            "assistant_id": assistant_id,
            "graph_id": body.graph_id,
            "config": config,
            "context": context,
            "metadata": clean_metadata(body.metadata),
            "name": body.name if body.name is not None else "Untitled",
            "description": body.description,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        value = {k: row[k] for k in ("assistant_id", "graph_id", "config", "context", "metadata", "name")}
        flt = await self.authorizer.authorize(auth, "assistants", "create", value)
        row["metadata"] = value.get("metadata") or {}
        _check_row(row)
        created, _ = await self.storage.put_assistant(row, if_exists=body.if_exists, auth_filter=flt)
        return created

    async def patch(self, assistant_id: str, body: models.AssistantPatch, auth: AuthContext = ANONYMOUS) -> Row:
        """Store a new version (max + 1) built from the current one and make it current.

        ``metadata`` is merged shallowly; ``name``/``description``/``graph_id`` replace when
        given; config and context follow :func:`patched_config`.
        """
        value: dict[str, Any] = {
            "assistant_id": assistant_id,
            "graph_id": body.graph_id,
            "config": body.config.model_dump(exclude_none=True) if body.config else None,
            "context": body.context,
            "metadata": dict(body.metadata) if body.metadata is not None else None,
            "name": body.name,
        }
        flt = await self.authorizer.authorize(auth, "assistants", "update", value)
        current = await self._get(assistant_id, flt)
        if value.get("metadata") is not None:
            body = body.model_copy(update={"metadata": value["metadata"]})
        changes: dict[str, Any] = {}
        if body.graph_id is not None:
            self.hosting.get(body.graph_id)
            changes["graph_id"] = body.graph_id
        config = normalise_config(body.config.model_dump(exclude_none=True)) if body.config else {}
        if config or body.context is not None:
            changes["config"], changes["context"] = patched_config(current, config, body.context)
        if body.metadata is not None:
            changes["metadata"] = {**current["metadata"], **clean_metadata(body.metadata)}
        if body.name is not None:
            changes["name"] = body.name
        if "description" in body.model_fields_set:
            changes["description"] = body.description
        _check_row(changes)
        row = await self.storage.patch_assistant(assistant_id, changes, auth_filter=flt)
        if row is None:
            raise NotFound(f"Assistant {assistant_id} not found")
        return row

    async def delete(self, assistant_id: str, flt: Row | None = None) -> None:
        if not await self.storage.delete_assistant(assistant_id, auth_filter=flt):
            raise NotFound(f"Assistant {assistant_id} not found")

    async def _search_filter(self, auth: AuthContext, body: Any) -> Row | None:
        value: dict[str, Any] = {
            "graph_id": body.graph_id,
            "metadata": body.metadata,
            "limit": getattr(body, "limit", None),
            "offset": getattr(body, "offset", None),
        }
        return await self.authorizer.authorize(auth, "assistants", "search", value)

    async def search(self, body: models.AssistantSearch, auth: AuthContext = ANONYMOUS) -> Page:
        if body.graph_id is not None:
            self.hosting.get(body.graph_id)
        flt = await self._search_filter(auth, body)
        page = await self.storage.search_assistants(
            graph_ids=sorted(self.hosting.graphs),
            auth_filter=flt,
            graph_id=body.graph_id,
            name=body.name,
            metadata=body.metadata,
            limit=body.limit,
            offset=body.offset,
            sort_by=body.sort_by or "created_at",
            sort_order=body.sort_order or "desc",
        )
        return page

    async def count(self, body: models.AssistantCount, auth: AuthContext = ANONYMOUS) -> int:
        if body.graph_id is not None:
            self.hosting.get(body.graph_id)
        flt = await self._search_filter(auth, body)
        return await self.storage.count_assistants(
            graph_id=body.graph_id,
            name=body.name,
            metadata=body.metadata,
            graph_ids=sorted(self.hosting.graphs),
            auth_filter=flt,
        )

    async def versions(
        self, assistant_id: str, body: models.AssistantVersionsSearch, auth: AuthContext = ANONYMOUS
    ) -> list[Row]:
        """The assistant's versions, newest first; 404 when the assistant is absent."""
        await self.get(assistant_id, auth)
        return await self.storage.assistant_versions(
            assistant_id, metadata=body.metadata, limit=body.limit, offset=body.offset
        )

    async def set_latest(self, assistant_id: str, version: int, auth: AuthContext = ANONYMOUS) -> Row:
        """Copy ``version`` (config, context, metadata, name, description, graph) into the
        assistant and make it current, without creating a version."""
        flt = await self.authorizer.authorize(
            auth, "assistants", "update", {"assistant_id": assistant_id, "version": version}
        )
        await self._get(assistant_id, flt)
        row = await self.storage.set_assistant_version(assistant_id, version, auth_filter=flt)
        if row is None:
            raise NotFound(f"Version {version} not found for assistant {assistant_id}")
        return row

    # -- introspection (access context assistants.read) -------------------------

    async def graph(self, assistant_id: str, xray: bool | int, auth: AuthContext = ANONYMOUS) -> dict[str, Any]:
        row = await self.get(assistant_id, auth)
        async with self.hosting.open_graph(
            row["graph_id"], "introspect", config=row["config"], user=auth.user
        ) as graph:
            try:
                return drawable_graph(graph, xray)
            except Exception:
                raise Unprocessable("The graph does not support visualization") from None

    async def schemas(self, assistant_id: str, auth: AuthContext = ANONYMOUS) -> dict[str, Any]:
        row = await self.get(assistant_id, auth)
        async with self.hosting.open_graph(
            row["graph_id"], "introspect", config=row["config"], user=auth.user
        ) as graph:
            return {"graph_id": row["graph_id"], **graph_schemas(graph)}

    async def subgraphs(
        self, assistant_id: str, namespace: str | None, recurse: bool, auth: AuthContext = ANONYMOUS
    ) -> dict[str, Any]:
        row = await self.get(assistant_id, auth)
        async with self.hosting.open_graph(
            row["graph_id"], "introspect", config=row["config"], user=auth.user
        ) as graph:
            try:
                return {
                    ns: graph_schemas(sub)
                    async for ns, sub in graph.aget_subgraphs(namespace=namespace, recurse=recurse)
                }
            except NotImplementedError:
                raise Unprocessable("The graph does not support subgraph introspection") from None
