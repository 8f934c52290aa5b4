"""The Redis event log of a scaled-out deployment (run events, replay, thread streams,
cancel signals): :func:`open_redis_events` opens it for one process."""

from __future__ import annotations

import socket
from contextlib import asynccontextmanager
from typing import AsyncIterator

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.asyncio.retry import Retry

from graphdock.backends.redis.eventlog import RedisEventLog
from graphdock.config import ConfigError

__all__ = ["RedisEventLog", "open_redis_events"]


@asynccontextmanager
async def open_redis_events(uri: str, *, prefix: str, retention: float) -> AsyncIterator[RedisEventLog]:
    """The deployment's event log in the Redis at ``uri``, every key and channel named
    ``"<prefix>:..."``, resumable runs' logs kept ``retention`` seconds after they end.

    Redis is pinged first: an unreachable server or refused credentials raise
    :class:`ConfigError` with one line naming the server (never the password).
    """
    try:
        client = Redis.from_url(
            uri,
            decode_responses=False,
            protocol=2,
            # a command is sent once: the event log retries what may run twice itself
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=5.0,
            socket_timeout=10.0,
        )
    except ValueError as exc:
        raise ConfigError(
            f"invalid Redis URI ({exc}); expected redis://[[user]:password@]host[:port][/db], "
            "rediss://... or unix:///path/to/socket"
        ) from None
    # replies stay bytes (event data is passed through untouched), whatever the URI says
    client.connection_pool.connection_kwargs["decode_responses"] = False
    where = _describe(client)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise ConfigError(f"cannot connect to Redis at {where}: {_reason(exc)}") from exc
    events = RedisEventLog(client, prefix=prefix, retention=retention)
    try:
        await events.start()
    except BaseException as exc:
        await events.aclose()
        if isinstance(exc, (RedisError, OSError)):
            raise ConfigError(f"cannot connect to Redis at {where}: {_reason(exc)}") from exc
        raise
    try:
        yield events
    finally:
        await events.aclose()


def _describe(client: Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    db = kwargs.get("db", 0)
    if kwargs.get("path"):
        return f"{kwargs['path']} (db {db})"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"


def _reason(exc: BaseException) -> str:
    """Why connecting failed, in a few words."""
    if isinstance(exc, AuthenticationError) or (
        isinstance(exc, ResponseError) and str(exc).upper().startswith(("NOAUTH", "WRONGPASS", "NOPERM"))
    ):
        return "authentication failed"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return "unknown host"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, (TimeoutError, RedisTimeoutError)):
            return "timed out"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "Connection refused" in text or "Connect call failed" in text:
        return "connection refused"
    return text
