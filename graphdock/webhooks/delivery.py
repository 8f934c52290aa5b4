"""Delivering a finished run to its webhook: signed, retried, never in the run's way.

:func:`run_finished` is what the executor calls when a run that has a ``webhook`` ends
(success, error, timeout, interrupted, rollback). It only schedules the delivery on the
event loop and returns: the run's outcome is recorded before and never depends on it.

The body is the run's JSON (the API's Run object) with ``status`` (final),
``run_started_at``, ``run_ended_at``, ``webhook_sent_at`` (ISO-8601), ``values`` (the final
state values, or null) and ``error`` (only on failure), restricted to
``webhooks.allowed_fields`` when set. Headers: ``Content-Type: application/json``, the
configured ``webhooks.headers``, and, with ``webhooks.signing_secret``,
``X-Graphdock-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` (a
receiver recomputes the HMAC over the raw body with the shared secret, compares in
constant time and may refuse old ``t``).

Each attempt resolves the host, checks every address with the policy (DNS rebinding
cannot reach a refused address) and connects to the checked address. A connection
error, a timeout, a 429 or a 5xx is retried after 0.5, 1, 2, 4 s (5 attempts in all);
another 4xx is not. Failures are logged, nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from graphdock import serde
from graphdock.errors import APIError
from graphdock.webhooks.policy import WebhookPolicy

logger = logging.getLogger("graphdock.webhooks")

ATTEMPTS = 5
BACKOFF = 0.5  # seconds before the second attempt; doubled before each next one
TIMEOUT = 10.0  # seconds per attempt
SIGNATURE_HEADER = "X-Graphdock-Signature"

_RUN_FIELDS = (
    "run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status", "metadata", "kwargs",
    "multitask_strategy",
)  # fmt: skip

_policy: WebhookPolicy = WebhookPolicy()
_tasks: set[asyncio.Task[None]] = set()


def install(policy: WebhookPolicy) -> None:
    """Set the policy this process delivers with (at start-up)."""
    global _policy
    _policy = policy


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, body: bytes, header: str, *, tolerance: float | None = 300.0) -> bool:
    """Whether ``header`` is a valid signature of ``body`` (receivers may copy this)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if tolerance is not None and abs(time.time() - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), header)


def payload(run: dict[str, Any], status: str, *, values: Any, error: Any, policy: WebhookPolicy) -> dict[str, Any]:
    """The JSON a webhook receives for ``run`` (see the module docstring)."""
    body: dict[str, Any] = {key: run.get(key) for key in _RUN_FIELDS}
    body["langsmith_session_name"] = None
    body.update(
        status=status,
        run_started_at=run.get("updated_at"),
        run_ended_at=serde.now_iso(),
        webhook_sent_at=None,
        values=values,
    )
    if error is not None:
        body["error"] = error
    if policy.allowed_fields is not None:
        body = {k: v for k, v in body.items() if k in policy.allowed_fields}
    return body


def run_finished(run: dict[str, Any], status: str, *, values: Any = None, error: Any = None) -> None:
    """Schedule the delivery of a finished run to its webhook (nothing when it has none,
    or ``http.disable_webhooks``); returns at once."""
    url = (run.get("kwargs") or {}).get("webhook")
    if not url or _policy.disabled:
        return
    try:
        body = payload(run, status, values=values, error=error, policy=_policy)
        task = asyncio.get_running_loop().create_task(_deliver_logged(url, body, _policy))
    except Exception:  # never the run's problem
        logger.exception("webhook of run %s could not be scheduled", run.get("run_id"))
        return
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _checked_target(url: str, policy: WebhookPolicy) -> tuple[str, str]:
    """(the URL with its host replaced by a checked address, the original host)."""
    policy.check(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise OSError(f"{host} does not resolve")
    for address in addresses:
        policy.check_address(address)
    address = addresses[0]
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), host


async def deliver(url: str, body: dict[str, Any], policy: WebhookPolicy, *, attempts: int = ATTEMPTS) -> bool:
    """POST ``body`` to ``url`` with retries; True once a 2xx/3xx answer came."""
    delay = BACKOFF
    for attempt in range(1, attempts + 1):
        try:
            target, host = await _checked_target(url, policy)
        except APIError as exc:
            logger.warning("webhook %s refused at delivery: %s", url, exc.detail)
            return False
        except OSError as exc:
            logger.warning("webhook %s: attempt %d: %s", url, attempt, exc)
        else:
            stamped = {**body, "webhook_sent_at": serde.now_iso()} if "webhook_sent_at" in body else body
            data = serde.dumps(stamped)
            parts = urlsplit(url)
            headers = {**policy.headers, "Content-Type": "application/json", "Host": parts.netloc.rsplit("@", 1)[-1]}
            if policy.signing_secret:
                headers[SIGNATURE_HEADER] = sign(policy.signing_secret, data, int(time.time()))
            try:
                async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as client:
                    response = await client.post(target, content=data, headers=headers, extensions={"sni_hostname": host})
                if response.status_code < 400:
                    return True
                logger.warning("webhook %s: attempt %d: HTTP %d", url, attempt, response.status_code)
                if response.status_code != 429 and response.status_code < 500:
                    return False
            except httpx.HTTPError as exc:
                logger.warning("webhook %s: attempt %d: %s", url, attempt, exc)
        if attempt < attempts:
            await asyncio.sleep(delay)
            delay *= 2
    logger.error("webhook %s: giving up after %d attempts", url, attempts)
    return False


async def _deliver_logged(url: str, body: dict[str, Any], policy: WebhookPolicy) -> None:
    try:
        await deliver(url, body, policy)
    except Exception:
        logger.exception("webhook %s: delivery failed", url)


async def drain(timeout: float = 5.0) -> None:
    """Wait (at most ``timeout`` seconds) for deliveries in flight (the process is stopping)."""
    if _tasks:
        await asyncio.wait(list(_tasks), timeout=timeout)
