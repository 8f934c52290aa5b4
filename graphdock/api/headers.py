"""Request headers copied into the configurable of the runs a request creates.

``http.configurable_headers`` in ``langgraph.json`` names them: ``includes`` and
``excludes`` are lists of header name patterns where ``*`` matches any run of
characters, compared case-insensitively. A header is copied when it matches an
``includes`` pattern and no ``excludes`` pattern. Without ``includes`` no header is
copied. Credentials (``authorization``, ``cookie``, ``x-api-key``, ``x-service-key``,
``x-tenant-id``) are never copied, whatever the patterns say.

Copied headers become ``config["configurable"][<lower-cased name>]`` of the run; they
are stored with the run, so every process that executes it sees them.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from starlette.requests import HTTPConnection

NEVER_COPIED = frozenset({"authorization", "cookie", "x-api-key", "x-service-key", "x-tenant-id"})


def _compile(patterns: Iterable[str]) -> re.Pattern[str] | None:
    parts = [".*".join(re.escape(part) for part in p.lower().split("*")) for p in patterns]
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


class HeaderPolicy:
    """Which request headers go into a run's configurable."""

    def __init__(self, includes: Iterable[str] = (), excludes: Iterable[str] = ()) -> None:
        self._includes = _compile(includes)
        self._excludes = _compile(excludes)

    @classmethod
    def from_config(cls, http: Mapping[str, Any], key: str = "configurable_headers") -> "HeaderPolicy":
        """The policy of ``http.<key>`` (``configurable_headers`` or ``logging_headers``)."""
        section = http.get(key) or {}
        return cls(section.get("includes") or (), section.get("excludes") or ())

    @property
    def empty(self) -> bool:
        return self._includes is None

    def copies(self, name: str) -> bool:
        name = name.lower()
        if self._includes is None or name in NEVER_COPIED or not self._includes.fullmatch(name):
            return False
        return self._excludes is None or not self._excludes.fullmatch(name)

    def select(self, headers: Iterable[tuple[str, str]]) -> dict[str, str]:
        """The copied headers of ``headers`` (name, value pairs), names lower-cased; of a
        repeated header the last value."""
        if self._includes is None:
            return {}
        return {name.lower(): value for name, value in headers if self.copies(name)}


_POLICY_KEY = "graphdock_header_policy"


def configurable_headers(conn: HTTPConnection) -> dict[str, str]:
    """The headers of ``conn`` that go into the configurable of the runs it creates."""
    state = conn.app.state
    policy = getattr(state, _POLICY_KEY, None)
    if policy is None:
        policy = HeaderPolicy.from_config(state.server.settings.config.http)
        setattr(state, _POLICY_KEY, policy)
    if policy.empty:
        return {}
    return policy.select(conn.headers.items())
