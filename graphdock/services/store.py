"""The store API over langgraph's BaseStore (the same store graphs see)."""

from __future__ import annotations

from typing import Any

from langgraph.store.base import BaseStore

from graphdock import serde
from graphdock.api import models
from graphdock.errors import BadRequest, Unprocessable
from graphdock.services.common import check_storable


def _item(item: Any) -> dict[str, Any] | None:
    if item is None:
        return None
    out = {
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        "created_at": serde.iso(item.created_at),
        "updated_at": serde.iso(item.updated_at),
    }
    if hasattr(item, "score"):
        out["score"] = item.score
    return out


def _namespace(labels: list[str], *, allow_empty: bool = False) -> tuple[str, ...]:
    """The namespace tuple; 400 when empty (unless allowed), 422 naming a bad label.

    Labels are non-empty strings without ``.`` (the GET form joins them with dots) or NUL.
    """
    if not labels and not allow_empty:
        raise BadRequest("Namespace cannot be empty.")
    for label in labels:
        if not isinstance(label, str) or not label or "." in label or "\x00" in label:
            raise Unprocessable(
                f"Namespace label {label!r} must be a non-empty string without periods or NUL characters"
            )
        check_storable(label, "namespace")
    return tuple(labels)


class StoreService:
    def __init__(self, store: BaseStore, *, has_index: bool = False) -> None:
        self.store = store
        self.has_index = has_index

    async def put(self, body: models.StorePut) -> None:
        namespace = _namespace(body.namespace)
        check_storable(body.key, "key")
        check_storable(body.value, "value")
        if isinstance(body.index, list) and not self.has_index:
            raise Unprocessable(
                "index: this server has no vector index configured (store.index in langgraph.json);"
                " send index false or omit it"
            )
        kwargs: dict[str, Any] = {}
        if body.ttl is not None:
            kwargs["ttl"] = body.ttl
        await self.store.aput(namespace, body.key, body.value, index=body.index, **kwargs)

    async def get(self, namespace: str | None, key: str, *, refresh_ttl: bool | None) -> dict[str, Any] | None:
        if not namespace:
            raise Unprocessable("namespace: required, the labels joined with '.'")
        ns = _namespace(namespace.split("."))
        return _item(await self.store.aget(ns, key, refresh_ttl=refresh_ttl))

    async def delete(self, body: models.StoreDelete) -> None:
        await self.store.adelete(_namespace(body.namespace), body.key)

    async def search(self, body: models.StoreSearch) -> list[dict[str, Any]]:
        prefix = _namespace(body.namespace_prefix, allow_empty=True)
        items = await self.store.asearch(
            prefix,
            query=body.query if self.has_index else None,
            filter=body.filter,
            limit=body.limit,
            offset=body.offset,
            refresh_ttl=body.refresh_ttl,
        )
        return [_item(i) for i in items]  # type: ignore[misc]

    async def list_namespaces(self, body: models.StoreListNamespaces) -> list[list[str]]:
        namespaces = await self.store.alist_namespaces(
            prefix=tuple(body.prefix) if body.prefix else None,
            suffix=tuple(body.suffix) if body.suffix else None,
            max_depth=body.max_depth,
            limit=body.limit,
            offset=body.offset,
        )
        return [list(ns) for ns in namespaces]
