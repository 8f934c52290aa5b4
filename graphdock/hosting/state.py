"""Converting langgraph state snapshots and graph descriptions to API JSON."""

from __future__ import annotations

from typing import Any

from langgraph.pregel import Pregel
from langgraph.types import StateSnapshot

from graphdock import serde


def checkpoint_ref(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``{thread_id, checkpoint_ns, checkpoint_id, checkpoint_map}`` of a checkpoint config."""
    if not config:
        return None
    conf = config.get("configurable") or {}
    if "checkpoint_id" not in conf:
        return None
    out = {
        "thread_id": conf.get("thread_id"),
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
        "checkpoint_id": conf.get("checkpoint_id"),
    }
    if conf.get("checkpoint_map"):
        out["checkpoint_map"] = conf["checkpoint_map"]
    return out


def interrupt_json(interrupt: Any) -> dict[str, Any]:
    out = {"id": interrupt.id, "value": interrupt.value}
    schema = getattr(interrupt, "response_schema", None)
    if schema is not None:
        out["response_schema"] = serde.to_jsonable(interrupt)["response_schema"]
    return out


def snapshot_json(snapshot: StateSnapshot) -> dict[str, Any]:
    """A ThreadState: values, next, tasks, metadata, checkpoints and interrupts."""
    tasks = []
    for task in snapshot.tasks:
        state = task.state
        task_checkpoint = None
        task_state = None
        if isinstance(state, StateSnapshot):
            task_state = snapshot_json(state)
        elif isinstance(state, dict):
            task_checkpoint = (state.get("configurable") or {}) and {
                k: v
                for k, v in (state.get("configurable") or {}).items()
                if k in ("thread_id", "checkpoint_ns", "checkpoint_id", "checkpoint_map")
            }
        tasks.append(
            {
                "id": task.id,
                "name": task.name,
                "path": list(task.path) if task.path else [],
                "error": serde.error_payload(task.error) if isinstance(task.error, BaseException) else task.error,
                "interrupts": [interrupt_json(i) for i in task.interrupts],
                "checkpoint": task_checkpoint or None,
                "state": task_state,
                "result": task.result,
            }
        )
    metadata = dict(snapshot.metadata) if snapshot.metadata is not None else None
    if metadata is not None and metadata.get("checkpoint_ns") == "":
        metadata.pop("checkpoint_ns")
    checkpoint = checkpoint_ref(snapshot.config)
    parent = checkpoint_ref(snapshot.parent_config)
    return serde.to_jsonable(
        {
            "values": snapshot.values,
            "next": list(snapshot.next),
            "tasks": tasks,
            "metadata": metadata,
            "created_at": snapshot.created_at,
            "checkpoint": checkpoint,
            "parent_checkpoint": parent,
            "interrupts": [interrupt_json(i) for i in snapshot.interrupts],
            "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
            "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
        }
    )


EMPTY_STATE: dict[str, Any] = {
    "values": {},
    "next": [],
    "tasks": [],
    "metadata": None,
    "created_at": None,
    "checkpoint": None,
    "parent_checkpoint": None,
    "interrupts": [],
    "checkpoint_id": None,
    "parent_checkpoint_id": None,
}


def thread_interrupts(snapshot: StateSnapshot) -> dict[str, list[dict[str, Any]]]:
    """Pending interrupts keyed by task id, as cached on the thread."""
    return serde.to_jsonable(
        {
            task.id: [{"id": i.id, "value": i.value} for i in task.interrupts]
            for task in snapshot.tasks
            if task.interrupts
        }
    )


def drawable_graph(graph: Pregel, xray: bool | int) -> dict[str, Any]:
    drawn = graph.get_graph(xray=xray).to_json()
    for node in drawn.get("nodes", []):
        data = node.get("data")
        if isinstance(data, dict):
            data.pop("id", None)
    return serde.to_jsonable(drawn)


_HIDDEN_CONFIG_KEYS = ("__pregel_checkpointer", "__pregel_store", "checkpoint_id", "checkpoint_ns", "thread_id")


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception:
        return None


def _channels_schema(graph: Pregel, keys: Any, title: str) -> dict[str, Any] | None:
    """A JSON schema with one property per channel, typed by the channel's update type."""
    from pydantic import create_model

    if isinstance(keys, str):
        keys = [keys]
    if "__start__" in keys:
        keys = graph.stream_channels_list
    fields: dict[str, Any] = {}
    for key in keys:
        channel = graph.channels.get(key)
        if channel is None:
            continue
        try:
            fields[key] = (channel.UpdateType, None)
        except Exception:
            fields[key] = (Any, None)
    model = create_model(title, **fields)
    return model.model_json_schema()


def _io_schema(graph: Pregel, method: str, keys: Any, title: str) -> dict[str, Any] | None:
    try:
        return getattr(graph, method)()
    except Exception:
        # e.g. typing.TypedDict state on Python < 3.12: describe the channels instead
        return _channels_schema(graph, keys, title)


def _config_schema(graph: Pregel) -> dict[str, Any] | None:
    schema = graph.config_schema()
    field = schema.model_fields.get("configurable")
    if field is None or field.annotation is None:
        return {}
    from pydantic import TypeAdapter

    out = TypeAdapter(field.annotation).json_schema()
    props = out.get("properties")
    if isinstance(props, dict):
        for key in _HIDDEN_CONFIG_KEYS:
            props.pop(key, None)
    if graph.context_schema is not None:
        out["title"] = getattr(graph.context_schema, "__name__", out.get("title"))
    return out


def graph_schemas(graph: Pregel) -> dict[str, Any]:
    """The five JSON schemas of a graph; each that cannot be built is ``None``."""
    return serde.to_jsonable(
        {
            "input_schema": _safe(
                lambda: _io_schema(graph, "get_input_jsonschema", graph.input_channels, f"{graph.name}_input")
            ),
            "output_schema": _safe(
                lambda: _io_schema(graph, "get_output_jsonschema", graph.output_channels, f"{graph.name}_output")
            ),
            "state_schema": _safe(
                lambda: _channels_schema(graph, graph.stream_channels_list, f"{graph.name}_state")
            ),
            "config_schema": _safe(lambda: _config_schema(graph)),
            "context_schema": _safe(graph.get_context_jsonschema),
        }
    )
