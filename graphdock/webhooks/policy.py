"""The webhook URL policy (``webhooks`` in langgraph.json) and header templates.

A URL is checked when a run or cron is created (a 422 naming the rule it breaks) and
again at delivery, on every address its host resolves to (so a name re-pointed at an
internal address after creation, DNS rebinding, cannot reach it): the delivery then
connects to the address that was checked.

Rules: ``max_url_length``; an absolute ``http``/``https`` URL with a host;
``require_https``; ``allowed_domains`` (exact names or ``*.suffix``); ``allowed_ports``;
loopback addresses and ``localhost`` refused unless ``disable_loopback`` is false;
private addresses refused when ``disable_private_ips`` is true; link-local addresses
and cloud metadata endpoints always refused. Without a ``webhooks.url`` block HTTPS is
not required, URLs may be 4096 characters; with one, its unspecified fields default to
``require_https: true`` and ``max_url_length: 2048``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

from graphdock.errors import Unprocessable

#: cloud metadata endpoints (AWS/GCP/Azure/OpenStack IPv4 and IPv6, Alibaba, Oracle)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "metadata.azure.internal", "instance-data"})
_TEMPLATE = re.compile(r"\$\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_URL_KEYS = {"require_https", "allowed_domains", "allowed_ports", "max_url_length", "disable_loopback", "disable_private_ips"}
_KEYS = {"env_prefix", "url", "headers", "allowed_fields", "signing_secret"}


def _expand(text: str, prefix: str, where: str, env: Mapping[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if not name.startswith(prefix):
            raise ValueError(f"{where}: ${{{{ env.{name} }}}} is not allowed: variables must start with '{prefix}' (webhooks.env_prefix)")
        if name not in env:
            raise ValueError(f"{where}: environment variable {name} is not set")
        return env[name]

    return _TEMPLATE.sub(sub, text)


@dataclass(frozen=True)
class WebhookPolicy:
    require_https: bool = False
    allowed_domains: tuple[str, ...] = ()
    allowed_ports: tuple[int, ...] = ()
    max_url_length: int = 4096
    disable_loopback: bool = True
    disable_private_ips: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    allowed_fields: tuple[str, ...] | None = None
    signing_secret: str | None = None
    disabled: bool = False  # http.disable_webhooks: URLs still checked, nothing delivered

    @classmethod
    def from_config(
        cls, section: Any, *, disabled: bool = False, env: Mapping[str, str] | None = None
    ) -> "WebhookPolicy":
        """The policy of a ``webhooks`` section (None: the defaults); ValueError naming
        the key that is wrong. ``${{ env.NAME }}`` templates are resolved here, at
        start-up, from ``env`` (default: the process environment)."""
        env = os.environ if env is None else env
        if section is None:
            return cls(disabled=disabled)
        if not isinstance(section, dict):
            raise ValueError("webhooks: expected an object")
        unknown = set(section) - _KEYS
        if unknown:
            raise ValueError(f"webhooks.{sorted(unknown)[0]}: unknown key (expected {', '.join(sorted(_KEYS))})")
        prefix = section.get("env_prefix", "LG_WEBHOOK_")
        if not isinstance(prefix, str):
            raise ValueError("webhooks.env_prefix: expected a string")
        kwargs: dict[str, Any] = {"disabled": disabled}
        url = section.get("url")
        if url is not None:
            if not isinstance(url, dict):
                raise ValueError("webhooks.url: expected an object")
            bad = set(url) - _URL_KEYS
            if bad:
                raise ValueError(f"webhooks.url.{sorted(bad)[0]}: unknown key (expected {', '.join(sorted(_URL_KEYS))})")
            kwargs.update(require_https=True, max_url_length=2048)
            for key in ("require_https", "disable_loopback", "disable_private_ips"):
                if key in url:
                    if not isinstance(url[key], bool):
                        raise ValueError(f"webhooks.url.{key}: expected true or false")
                    kwargs[key] = url[key]
            if "max_url_length" in url:
                if not isinstance(url["max_url_length"], int) or url["max_url_length"] < 10:
                    raise ValueError("webhooks.url.max_url_length: expected an integer of at least 10")
                kwargs["max_url_length"] = url["max_url_length"]
            domains = url.get("allowed_domains")
            if domains is not None:
                if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
                    raise ValueError("webhooks.url.allowed_domains: expected a list of names or '*.suffix' patterns")
                kwargs["allowed_domains"] = tuple(d.lower() for d in domains)
            ports = url.get("allowed_ports")
            if ports is not None:
                if not isinstance(ports, list) or not all(isinstance(p, int) and 0 < p < 65536 for p in ports):
                    raise ValueError("webhooks.url.allowed_ports: expected a list of port numbers")
                kwargs["allowed_ports"] = tuple(ports)
        headers = section.get("headers")
        if headers is not None:
            if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
                raise ValueError("webhooks.headers: expected an object of header names to strings")
            kwargs["headers"] = {str(k): _expand(v, prefix, f"webhooks.headers.{k}", env) for k, v in headers.items()}
        fields = section.get("allowed_fields")
        if fields is not None:
            if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
                raise ValueError("webhooks.allowed_fields: expected a list of field names")
            kwargs["allowed_fields"] = tuple(fields)
        secret = section.get("signing_secret")
        if secret is not None:
            if not isinstance(secret, str) or not secret:
                raise ValueError("webhooks.signing_secret: expected a non-empty string")
            kwargs["signing_secret"] = _expand(secret, prefix, "webhooks.signing_secret", env)
        return cls(**kwargs)

    # -- checks ---------------------------------------------------------------

    def check(self, url: str) -> str:
        """The URL if the policy allows it; 422 naming the rule it breaks. (Names are
        checked as names here; their addresses at delivery, :meth:`check_address`.)"""
        if len(url) > self.max_url_length:
            raise Unprocessable(
                f"Invalid webhook: the URL is longer than {self.max_url_length} characters (webhooks.url.max_url_length)"
            )
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise Unprocessable("Invalid webhook: not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Unprocessable("Invalid webhook: expected an absolute http:// or https:// URL with a host")
        if self.require_https and parts.scheme != "https":
            raise Unprocessable("Invalid webhook: the URL must use https (webhooks.url.require_https)")
        host = parts.hostname.lower().rstrip(".")
        if self.allowed_domains and not any(
            host == d or (d.startswith("*.") and host.endswith(d[1:])) for d in self.allowed_domains
        ):
            raise Unprocessable(f"Invalid webhook: host '{host}' is not in webhooks.url.allowed_domains")
        port = port or (443 if parts.scheme == "https" else 80)
        if self.allowed_ports and port not in self.allowed_ports:
            raise Unprocessable(f"Invalid webhook: port {port} is not in webhooks.url.allowed_ports")
        if host in METADATA_NAMES:
            raise Unprocessable(f"Invalid webhook: '{host}' is a cloud metadata endpoint, which is always blocked")
        if host == "localhost" or host.endswith(".localhost"):
            if self.disable_loopback:
                raise Unprocessable(
                    "Invalid webhook: loopback addresses are blocked (set webhooks.url.disable_loopback to false to allow them)"
                )
        else:
            try:
                address = ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                address = None
            if address is not None:
                self.check_address(address)
        return url

    def check_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        """422 when the policy refuses to deliver to ``address``."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address in METADATA_ADDRESSES:
            raise Unprocessable(f"Invalid webhook: {address} is a cloud metadata address, which is always blocked")
        if address.is_link_local:
            raise Unprocessable(f"Invalid webhook: {address} is a link-local address, which is always blocked")
        if address.is_loopback or address.is_unspecified:
            if self.disable_loopback:
                raise Unprocessable(
                    f"Invalid webhook: {address} is a loopback address (set webhooks.url.disable_loopback to false to allow it)"
                )
            return
        if self.disable_private_ips and (address.is_private or address.is_reserved or address.is_multicast):
            raise Unprocessable(
                f"Invalid webhook: {address} is a private address (webhooks.url.disable_private_ips)"
            )
