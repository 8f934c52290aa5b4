"""The store API over langgraph's BaseStore (the same store graphs see)."""

from __future__ import annotations

from typing import Any

from langgraph.store.base import BaseStore

from graphdock.auth import ANONYMOUS, AuthContext
from graphdock.auth.handlers import Authorizer

from graphdock import serde
from graphdock import models
from graphdock.errors import BadRequest, FailedDependency, Unprocessable
from graphdock.hosting.embeddings import EmbeddingError
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
    """The store API. With custom auth, ``@auth.on.store`` handlers see (and may rewrite)
    each operation's value; a dict returned by the ``search`` handler is ANDed with the
    request's filter.

    With a vector index (``store.index``; ``has_index`` defaults to whether the store has
    one) items are embedded on put (the configured fields, or the put's ``index`` paths;
    none with ``index=False``) and a search with ``query`` is ranked by similarity, each
    item with its ``score``. Without one, ``query`` is ignored (``score`` null) and a put
    with ``index`` paths is a 422. An embedding model that fails is a 424 naming it, and
    nothing is written."""

    def __init__(self, store: BaseStore, authorizer: Authorizer, *, has_index: bool | None = None) -> None:
        self.store = store
        self.authorizer = authorizer
        self.has_index = bool(getattr(store, "index_config", None)) if has_index is None else has_index

    async def _authorize(self, auth: AuthContext, action: str, value: dict[str, Any]) -> Any:
        return await self.authorizer.authorize(auth, "store", action, value)

    async def put(self, body: models.StorePut, auth: AuthContext = ANONYMOUS) -> None:
        namespace = _namespace(body.namespace)
        check_storable(body.key, "key")
        check_storable(body.value, "value")
        if isinstance(body.index, list) and not self.has_index:
            raise Unprocessable(
                "index: this server has no vector index configured (store.index in langgraph.json);"
                " send index false or omit it"
            )
        value: dict[str, Any] = {
            "namespace": namespace, "key": body.key, "value": body.value, "index": body.index, "ttl": body.ttl
        }
        await self._authorize(auth, "put", value)
        namespace = _namespace(list(value["namespace"]))
        kwargs: dict[str, Any] = {}
        if value.get("ttl") is not None:
            kwargs["ttl"] = value["ttl"]
        try:
            await self.store.aput(namespace, value["key"], value["value"], index=value.get("index"), **kwargs)
        except EmbeddingError as exc:
            raise FailedDependency(str(exc)) from exc

    async def get(
        self, namespace: str | None, key: str, *, refresh_ttl: bool | None, auth: AuthContext = ANONYMOUS
    ) -> dict[str, Any] | None:
        if not namespace:
            raise Unprocessable("namespace: required, the labels joined with '.'")
        ns = _namespace(namespace.split("."))
        value: dict[str, Any] = {"namespace": ns, "key": key, "refresh_ttl": refresh_ttl}
        await self._authorize(auth, "get", value)
        ns = _namespace(list(value["namespace"]))
        return _item(await self.store.aget(ns, value["key"], refresh_ttl=value.get("refresh_ttl")))

    async def delete(self, body: models.StoreDelete, auth: AuthContext = ANONYMOUS) -> None:
        value: dict[str, Any] = {"namespace": _namespace(body.namespace), "key": body.key}
        await self._authorize(auth, "delete", value)
        await self.store.adelete(_namespace(list(value["namespace"])), value["key"])

    async def search(self, body: models.StoreSearch, auth: AuthContext = ANONYMOUS) -> list[dict[str, Any]]:
        value: dict[str, Any] = {
            "namespace": _namespace(body.namespace_prefix, allow_empty=True),
            "filter": body.filter,
            "limit": body.limit,
            "offset": body.offset,
            "query": body.query,
            "refresh_ttl": body.refresh_ttl,
        }
        extra = await self._authorize(auth, "search", value)
        flt = dict(value.get("filter") or {})
        for key, cond in (extra or {}).items():
            if key in flt and flt[key] != cond:
                return []  # both conditions must hold and cannot
            flt[key] = cond
        try:
            items = await self.store.asearch(
                _namespace(list(value["namespace"]), allow_empty=True),
                query=(value.get("query") or None) if self.has_index else None,
                filter=flt or None,
                limit=value["limit"],
                offset=value["offset"],
                refresh_ttl=value.get("refresh_ttl"),
            )
        except EmbeddingError as exc:
            raise FailedDependency(str(exc)) from exc
        return [_item(i) for i in items]  # type: ignore[misc]

    async def list_namespaces(
        self, body: models.StoreListNamespaces, auth: AuthContext = ANONYMOUS
    ) -> list[list[str]]:
        value: dict[str, Any] = {
            "namespace": tuple(body.prefix) if body.prefix else None,
            "suffix": tuple(body.suffix) if body.suffix else None,
            "max_depth": body.max_depth,
            "limit": body.limit,
            "offset": body.offset,
        }
        await self._authorize(auth, "list_namespaces", value)
        prefix = value.get("namespace")
        namespaces = await self.store.alist_namespaces(
            prefix=tuple(prefix) if prefix else None,
            suffix=tuple(value["suffix"]) if value.get("suffix") else None,
            max_depth=value.get("max_depth"),
            limit=value["limit"],
            offset=value["offset"],
        )
        return [list(ns) for ns in namespaces]
