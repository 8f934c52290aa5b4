"""Rules shared by services: ids, reserved keys, config/context mirroring."""

from __future__ import annotations

import copy
import math
import uuid
from typing import Any

from graphdock.errors import BadRequest, Unprocessable

RESERVED_METADATA = frozenset(
    {"thread_id", "assistant_id", "run_id", "cron_id", "counters_since_delta_snapshot"}
)
RESERVED_CONFIGURABLE = frozenset(
    {
        "langgraph_auth_user",
        "langgraph_auth_user_id",
        "langgraph_auth_permissions",
        "langgraph_request_id",
        "__langsmith_project__",
        "__langsmith_example_id__",
        "__request_start_time_ms__",
        "__after_seconds__",
        "__otel_traceparent__",
        "__otel_tracestate__",
        "__dd_trace_headers__",
        "__pregel_node_finished",
        "__context_provided__",
    }
)


def parse_uuid(value: str, what: str) -> str:
    """The canonical string form of a UUID path or body id; 422 naming ``what`` otherwise."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise Unprocessable(f"Invalid {what} ID: must be a UUID") from None


def clean_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (metadata or {}).items() if k not in RESERVED_METADATA}


def clean_configurable(values: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (values or {}).items() if k not in RESERVED_CONFIGURABLE}


def _check_nul_keys(obj: dict[str, Any] | None, where: str) -> None:
    for key in obj or {}:
        if "\x00" in str(key):
            raise Unprocessable(f"{where}: property names may not contain NUL characters")


def normalise_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """A stored config: reserved configurable keys and metadata keys dropped."""
    config = copy.deepcopy(config or {})
    _check_nul_keys(config.get("configurable"), "config.configurable")
    if "configurable" in config:
        config["configurable"] = clean_configurable(config["configurable"])
    if "metadata" in config:
        config["metadata"] = clean_metadata(config["metadata"])
    return config


def mirror_context(
    config: dict[str, Any], context: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply the rule that ``config.configurable`` and ``context`` are two spellings of one thing.

    Both non-empty is a 400; whichever is given is copied into the other.
    """
    _check_nul_keys(context, "context")
    context = clean_configurable(context)
    configurable = config.get("configurable") or {}
    if configurable and context:
        raise BadRequest(
            "Cannot specify both configurable and context. Prefer setting context alone."
            " Context was introduced in LangGraph 0.6.0 and is the long term planned replacement"
            " for configurable."
        )
    if context:
        config = {**config, "configurable": dict(context)}
    elif configurable:
        context = dict(configurable)
    return config, context or {}


_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def check_storable(value: Any, where: str) -> None:
    """422 naming the path (``where`` + keys) of the first value that JSON storage cannot
    round-trip unchanged: an integer outside the 64-bit range, NaN or Infinity, or a string
    (value or key) holding a lone surrogate. Other JSON values pass."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Unprocessable(f"{where}: text contains a lone surrogate, which cannot be stored") from None
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise Unprocessable(f"{where}: integer {value} is outside the 64-bit range that can be stored")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise Unprocessable(f"{where}: NaN and Infinity are not valid JSON numbers")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, f"{where} (a key)")
            check_storable(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_storable(item, f"{where}[{index}]")
