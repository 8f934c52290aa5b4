"""The embedding model of ``store.index``: what ``embed`` names, as a langchain ``Embeddings``.

``embed`` is one of

- ``"./file.py:attr"`` (a path relative to ``langgraph.json``) or ``"package.module:attr"``
  naming an ``Embeddings`` object or a function ``list[str] -> list[list[float]]`` (sync
  or async);
- ``"provider:model"`` (``"openai:text-embedding-3-small"``), loaded by langchain's
  ``init_embeddings``; this needs the ``langchain`` package and the provider's package
  (``langchain-openai``, ...), which graphdock does not install.

A dotted ``package.module:attr`` is always a module; an undotted ``name:attr`` is a module
when ``attr`` is a Python name and the module can be found, else a provider model.
Whatever is named, the result checks that every vector has ``store.index.dims`` numbers.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import math
from pathlib import Path
from typing import Any, Sequence

from langchain_core.embeddings import Embeddings
from langgraph.store.base.embed import ensure_embeddings

from graphdock.config import Config, ConfigError
from graphdock.hosting.loader import import_file

__all__ = ["CheckedEmbeddings", "EmbeddingError", "load_embeddings", "resolve_store_index"]

_resolved: dict[tuple[str, str, int], Embeddings] = {}


class EmbeddingError(ValueError):
    """The embedding model failed, or returned something that is not ``dims`` numbers
    per text; the message says which."""


class CheckedEmbeddings(Embeddings):
    """An ``Embeddings`` that checks what the wrapped model returns: one vector of
    ``dims`` finite numbers per text. An async-only function also serves the synchronous
    methods (outside an event loop's thread)."""

    def __init__(self, inner: Embeddings, dims: int, *, source: str) -> None:
        self.inner = inner
        self.dims = dims
        self.source = source

    def _checked(self, texts: Sequence[str], vectors: Any) -> list[list[float]]:
        try:
            vectors = [list(v) for v in vectors]
        except TypeError:
            raise EmbeddingError(
                f"store.index.embed ({self.source}) returned {type(vectors).__name__},"
                " not a list of vectors"
            ) from None
        if len(vectors) != len(texts):
            raise EmbeddingError(
                f"store.index.embed ({self.source}) returned {len(vectors)} vectors for {len(texts)} texts"
            )
        out: list[list[float]] = []
        for vector in vectors:
            if len(vector) != self.dims:
                raise EmbeddingError(
                    f"store.index.embed ({self.source}) returned a vector of {len(vector)} numbers;"
                    f" store.index.dims is {self.dims}"
                )
            try:
                floats = [float(x) for x in vector]
            except (TypeError, ValueError):
                raise EmbeddingError(f"store.index.embed ({self.source}) returned a vector that is not numbers") from None
            if not all(math.isfinite(x) for x in floats):
                raise EmbeddingError(f"store.index.embed ({self.source}) returned a vector with NaN or infinity")
            out.append(floats)
        return out

    def _failed(self, exc: Exception) -> EmbeddingError:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return EmbeddingError(f"store.index.embed ({self.source}) failed: {type(exc).__name__}: {detail}")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        afunc = getattr(self.inner, "afunc", None)
        try:
            if afunc is not None and not hasattr(self.inner, "func"):
                try:
                    asyncio.get_running_loop()
                except RuntimeError:
                    vectors = asyncio.run(afunc(texts))
                else:
                    raise EmbeddingError(
                        f"store.index.embed ({self.source}) is an async function: use the store's"
                        " async methods (aput, asearch) on the event loop"
                    )
            else:
                vectors = self.inner.embed_documents(texts)
        except EmbeddingError:
            raise
        except Exception as exc:
            raise self._failed(exc) from exc
        return self._checked(texts, vectors)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        try:
            vectors = await self.inner.aembed_documents(texts)
        except Exception as exc:
            raise self._failed(exc) from exc
        return self._checked(texts, vectors)

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]


def _from_file(base_dir: Path, path: str, attr: str, embed: str) -> Any:
    file_path = (base_dir / path).resolve()
    if not file_path.is_file():
        raise ConfigError(f"store.index.embed: file {file_path} does not exist ({embed})")
    stem = "".join(c if c.isalnum() else "_" for c in str(file_path.with_suffix(""))).strip("_")
    module = import_file(file_path, f"graphdock_user_embeddings.{stem}", "store.index.embed")
    if not hasattr(module, attr):
        raise ConfigError(f"store.index.embed: {path} has no attribute '{attr}'")
    return getattr(module, attr)


_NOT_A_MODULE = object()


def _from_module(module_name: str, attr: str, embed: str) -> Any:
    """The attribute, or ``_NOT_A_MODULE`` when ``embed`` is not a module form."""
    if not attr.isidentifier() or not all(part.isidentifier() for part in module_name.split(".")):
        return _NOT_A_MODULE
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        found = None
    if found is None:
        return _NOT_A_MODULE
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"store.index.embed: importing module '{module_name}' failed: {type(exc).__name__}: {exc}"
        ) from exc
    return getattr(module, attr, _NOT_A_MODULE)


def _from_provider(embed: str, *, module_hint: str | None) -> Embeddings:
    try:
        from langchain.embeddings import init_embeddings  # type: ignore[import-not-found]
    except ImportError:
        hint = f" ({module_hint})" if module_hint else ""
        raise ConfigError(
            f"store.index.embed: {embed!r} is read as a provider model{hint}, which needs the"
            " langchain package (not installed): pip install 'langchain>=0.3.9' and the provider's"
            ' package, or name an embedding function as "./file.py:fn" or "module:fn"'
        ) from None
    try:
        return init_embeddings(embed)
    except Exception as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(
            f"store.index.embed: langchain's init_embeddings({embed!r}) failed: {type(exc).__name__}: {detail}"
        ) from exc


def _as_embeddings(value: Any, embed: str) -> Embeddings:
    if isinstance(value, Embeddings):
        return value
    if isinstance(value, type):
        raise ConfigError(
            f"store.index.embed: {embed} is the class {value.__name__}; export an instance or a function"
        )
    if not callable(value):
        raise ConfigError(
            f"store.index.embed: {embed} is a {type(value).__name__}, not an Embeddings object"
            " or a function of a list of texts"
        )
    return ensure_embeddings(value)


def load_embeddings(embed: str, dims: int, base_dir: Path) -> CheckedEmbeddings:
    """The model ``embed`` names (see the module docstring); ConfigError naming
    ``store.index.embed`` when it cannot be loaded."""
    key = (str(base_dir), embed, dims)
    if key in _resolved:
        return _resolved[key]  # type: ignore[return-value]
    path, attr = embed.rsplit(":", 1)
    if "/" in path or path.endswith(".py"):
        model = _as_embeddings(_from_file(base_dir, path, attr, embed), embed)
    elif "." in path:  # a dotted module path (provider names have no dots)
        try:
            module = importlib.import_module(path)
        except Exception as exc:
            raise ConfigError(
                f"store.index.embed: importing module '{path}' failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not hasattr(module, attr):
            raise ConfigError(f"store.index.embed: module '{path}' has no attribute '{attr}'")
        model = _as_embeddings(getattr(module, attr), embed)
    else:
        value = _from_module(path, attr, embed)
        if value is _NOT_A_MODULE:
            hint = None
            if attr.isidentifier() and importlib.util.find_spec(path.split(".")[0]) is not None:
                hint = f"module '{path}' has no attribute '{attr}'"
            model = _from_provider(embed, module_hint=hint)
        else:
            model = _as_embeddings(value, embed)
    checked = CheckedEmbeddings(model, dims, source=embed)
    _resolved[key] = checked
    return checked


def resolve_store_index(config: Config) -> dict[str, Any] | None:
    """``store.index`` as langgraph's stores take it (``{"dims", "embed", "fields"}``,
    ``embed`` an ``Embeddings``), or None without an index. Call it after the config's
    ``env`` is applied and its folder is on ``sys.path``."""
    index = (config.store or {}).get("index")
    if not index:
        return None
    from graphdock.hosting.loader import prepare_import_path

    prepare_import_path(config)
    embeddings = load_embeddings(index["embed"], index["dims"], config.base_dir)
    return {"dims": index["dims"], "embed": embeddings, "fields": list(index["fields"])}
