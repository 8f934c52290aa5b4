"""Custom auth: a ``langgraph_sdk.Auth`` object loaded from ``auth.path``.

:class:`Authorizer` authenticates requests (``@auth.authenticate``, parameters
injected by name) and authorizes actions on resources (``@auth.on...``: exactly
one handler per event, the most specific registered). A handler's result is
allow (``None``/``True``), deny (``False`` → 403) or a metadata filter that the
services push into their storage queries.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Callable, Mapping

from langgraph_sdk import Auth
from langgraph_sdk.auth import exceptions as auth_exceptions
from langgraph_sdk.auth.types import AuthContext as SDKAuthContext
from langgraph_sdk.auth.types import StudioUser
from starlette.requests import HTTPConnection, Request

from graphdock.auth.context import ANONYMOUS, AuthContext
from graphdock.auth.user import normalise_user
from graphdock.config import Config, ConfigError
from graphdock.errors import APIError, Forbidden
from graphdock.filters import validate_auth_filter

logger = logging.getLogger("graphdock.auth")

_INJECTABLE = {
    "request", "headers", "authorization", "path", "method", "scopes",
    "path_params", "query_params", "user", "scope", "body",
}

STUDIO_USER_ID = "langgraph-studio-user"


def load_auth(config: Config) -> Auth | None:
    """The ``Auth`` object named by ``auth.path``, or None when none is configured."""
    section = config.auth or {}
    path = section.get("path")
    if not path:
        return None
    from graphdock.config import GraphSpec
    from graphdock.hosting.loader import _import_module

    if ":" not in path:
        raise ConfigError(f"auth.path: expected \"./file.py:attr\" or \"module:attr\", got {path!r}")
    module_path, attr = path.rsplit(":", 1)
    module = _import_module(GraphSpec(graph_id="auth", path=module_path, attr=attr), config.base_dir)
    auth = getattr(module, attr, None)
    if not isinstance(auth, Auth):
        raise ConfigError(f"auth.path: {path} is {type(auth).__name__}, not a langgraph_sdk.Auth instance")
    if getattr(auth, "_authenticate_handler", None) is None:
        raise ConfigError(f"auth.path: {path} has no @auth.authenticate handler")
    _check_authenticate_signature(auth._authenticate_handler, path)
    return auth


def _check_authenticate_signature(fn: Callable[..., Any], path: str) -> None:
    for name, param in inspect.signature(fn).parameters.items():
        if name not in _INJECTABLE and param.default is inspect.Parameter.empty:
            raise ConfigError(
                f"auth.path: {path}: authenticate parameter '{name}' cannot be provided; "
                f"supported names: {', '.join(sorted(_INJECTABLE))}"
            )


class Authorizer:
    """Authentication and authorization for every API route."""

    def __init__(self, auth: Auth | None, *, dev: bool = False, disable_studio_auth: bool = False) -> None:
        self.auth = auth
        self.dev = dev
        self.disable_studio_auth = disable_studio_auth

    @property
    def enabled(self) -> bool:
        return self.auth is not None

    # -- authentication -------------------------------------------------------

    async def authenticate(self, conn: HTTPConnection) -> AuthContext:
        if self.auth is None:
            return ANONYMOUS
        if (
            self.dev
            and not self.disable_studio_auth
            and conn.headers.get("x-auth-scheme", "").lower() == "langsmith"
        ):
            return AuthContext(user=StudioUser(STUDIO_USER_ID), permissions=[])
        fn = self.auth._authenticate_handler
        kwargs = self._inject(fn, conn)
        try:
            result = fn(**kwargs)
            if inspect.isawaitable(result):
                result = await result
        except auth_exceptions.HTTPException as exc:
            if exc.status_code in (401, 403):
                raise APIError(exc.detail, exc.status_code) from None
            logger.error("authenticate raised HTTPException with status %s", exc.status_code)
            raise APIError("Internal Server Error", 500) from None
        except APIError:
            raise
        except Exception:
            logger.exception("authenticate failed")
            raise APIError("Internal Server Error", 500) from None
        user, permissions = normalise_user(result)
        return AuthContext(user=user, permissions=permissions)

    @staticmethod
    def _inject(fn: Callable[..., Any], conn: HTTPConnection) -> dict[str, Any]:
        available: dict[str, Callable[[], Any]] = {
            "request": lambda: conn if isinstance(conn, Request) else None,
            "headers": lambda: {k: v for k, v in conn.scope.get("headers", [])},
            "authorization": lambda: conn.headers.get("authorization"),
            "path": lambda: conn.url.path,
            "method": lambda: conn.scope.get("method", "GET"),
            "scopes": lambda: list(conn.scope.get("auth_scopes", [])),
            "path_params": lambda: dict(conn.path_params),
            "query_params": lambda: conn.query_params,
            "user": lambda: conn.scope.get("user"),
            "scope": lambda: conn.scope,
            "body": lambda: None,
        }
        params = inspect.signature(fn).parameters
        return {name: available[name]() for name in params if name in available}

    # -- authorization --------------------------------------------------------

    def _handler(self, resource: str, action: str) -> Callable[..., Any] | None:
        assert self.auth is not None
        handlers = self.auth._handlers
        for key in ((resource, action), (resource, "*"), ("*", action), ("*", "*")):
            if key in handlers:
                return handlers[key][-1]
        if self.auth._global_handlers:
            return self.auth._global_handlers[-1]
        return None

    async def authorize(
        self, ctx: AuthContext, resource: str, action: str, value: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Run the one handler for (resource, action); return its filter (None = no filter).

        ``value`` may be mutated by the handler; callers persist the mutations.
        """
        if self.auth is None:
            return None
        handler = self._handler(resource, action)
        if handler is None:
            return None
        sdk_ctx = SDKAuthContext(
            permissions=list(ctx.permissions), user=ctx.user, resource=resource, action=action  # type: ignore[arg-type]
        )
        try:
            result = await handler(ctx=sdk_ctx, value=value)
        except auth_exceptions.HTTPException as exc:
            raise APIError(exc.detail, exc.status_code) from None
        except AssertionError as exc:
            raise Forbidden(str(exc) or "Forbidden") from None
        except APIError:
            raise
        except Exception:
            # fail closed: a handler that cannot decide denies; details go to the log only
            logger.exception("authorization handler for %s.%s failed", resource, action)
            raise Forbidden("Forbidden") from None
        if result is None or result is True:
            return None
        if result is False:
            raise Forbidden("Forbidden")
        if isinstance(result, Mapping):
            flt = dict(result)
            try:
                validate_auth_filter(flt)
            except ValueError as exc:
                logger.error("authorization handler for %s.%s returned an invalid filter: %s", resource, action, exc)
                raise APIError(f"Invalid authorization filter: {exc}", 500) from None
            return flt or None
        logger.error("authorization handler for %s.%s returned %r", resource, action, result)
        raise APIError("Internal Server Error", 500)
