"""A2A's objects (protocol 0.3, the ``a2a-sdk`` models) made from graphdock's rows.

- a task is a run (``id`` = run id), its context a thread (``contextId`` = thread id);
- task states from run statuses: ``pending`` -> submitted, ``running`` -> working,
  ``success`` -> completed, or input-required when the run stopped at an interrupt (its
  thread is interrupted and it is the thread's latest run), ``error``/``timeout`` ->
  failed, ``interrupted``/``rollback`` (cancelled) -> canceled;
- the reply is an artifact named "Assistant Response": the text of the last AI message of
  the thread's values, or, for a graph without messages, its values as a data part;
- history: the thread's messages (human -> user, ai -> agent).
"""

from __future__ import annotations

from typing import Any

from a2a.compat.v0_3 import types as a2a

from graphdock import serde
from graphdock.backends.base import Row

TERMINAL = {a2a.TaskState.completed, a2a.TaskState.failed, a2a.TaskState.canceled, a2a.TaskState.rejected}

_STATES = {
    "pending": a2a.TaskState.submitted,
    "running": a2a.TaskState.working,
    "success": a2a.TaskState.completed,
    "error": a2a.TaskState.failed,
    "timeout": a2a.TaskState.failed,
    "interrupted": a2a.TaskState.canceled,
    "rollback": a2a.TaskState.canceled,
}


def task_state(run: Row, thread: Row | None, latest: bool) -> a2a.TaskState:
    """The A2A state of ``run`` (``latest``: it is its thread's newest run)."""
    state = _STATES.get(run["status"], a2a.TaskState.unknown)
    if state == a2a.TaskState.completed and latest and thread is not None and thread.get("status") == "interrupted":
        return a2a.TaskState.input_required
    return state


def message_text(message: Any) -> str:
    """The text of a serialized LangChain message (string content or text blocks)."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block if isinstance(block, str) else str(block.get("text") or "")
            for block in content
            if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")
        )
    return ""


def _kind(message: Any) -> str | None:
    if not isinstance(message, dict):
        return None
    kind = message.get("type") or message.get("role")
    return {"human": "user", "user": "user", "ai": "agent", "assistant": "agent", "AIMessageChunk": "agent"}.get(kind)


def thread_messages(values: Any) -> list[Any]:
    messages = values.get("messages") if isinstance(values, dict) else None
    return messages if isinstance(messages, list) else []


def last_ai_message(values: Any) -> dict[str, Any] | None:
    for message in reversed(thread_messages(values)):
        if _kind(message) == "agent":
            return message
        if _kind(message) == "user":
            return None
    return None


def agent_message(text: str, *, context_id: str, task_id: str, message_id: str | None = None) -> a2a.Message:
    return a2a.Message(
        role=a2a.Role.agent,
        parts=[a2a.Part(root=a2a.TextPart(text=text))],
        message_id=message_id or serde.uuid7(),
        context_id=context_id,
        task_id=task_id,
    )


def history(values: Any, *, context_id: str, task_id: str, length: int | None) -> list[a2a.Message]:
    """The thread's user and agent messages as A2A messages, the last ``length`` of them."""
    out = []
    for message in thread_messages(values):
        role = _kind(message)
        if role is None:
            continue
        out.append(
            a2a.Message(
                role=a2a.Role(role),
                parts=[a2a.Part(root=a2a.TextPart(text=message_text(message)))],
                message_id=str(message.get("id") or serde.uuid7()),
                context_id=context_id,
                task_id=task_id,
            )
        )
    if length is not None:
        out = out[-length:] if length > 0 else []
    return out


def reply_artifact(values: Any, run_id: str) -> a2a.Artifact | None:
    """The assistant's reply in ``values`` as an artifact, if there is one."""
    if not isinstance(values, dict) or not values:
        return None
    if "messages" in values:
        message = last_ai_message(values)
        if message is None:
            return None
        part = a2a.Part(root=a2a.TextPart(text=message_text(message)))
    else:
        part = a2a.Part(root=a2a.DataPart(data={k: v for k, v in values.items() if k != "__interrupt__"}))
    return a2a.Artifact(artifact_id=f"{run_id}-reply", name="Assistant Response", parts=[part])


def _interrupt_text(interrupts: list[Any]) -> str:
    values = [i.get("value") if isinstance(i, dict) else i for i in interrupts]
    if len(values) == 1 and isinstance(values[0], str):
        return values[0]
    return serde.dumps(values if len(values) != 1 else values[0]).decode()


def build_task(
    run: Row,
    thread: Row | None,
    *,
    latest: bool,
    history_length: int | None = None,
) -> a2a.Task:
    """The A2A task of ``run`` (``thread``: its thread row, values and interrupts included)."""
    run_id, context_id = run["run_id"], run["thread_id"]
    state = task_state(run, thread, latest)
    values = (thread or {}).get("values") if latest else None
    status_message = None
    if state == a2a.TaskState.input_required:
        interrupts = [i for group in ((thread or {}).get("interrupts") or {}).values() for i in group]
        status_message = agent_message(_interrupt_text(interrupts), context_id=context_id, task_id=run_id)
    elif state == a2a.TaskState.failed and latest and (thread or {}).get("error"):
        error = thread["error"]  # type: ignore[index]
        text = f"{error.get('error')}: {error.get('message')}" if isinstance(error, dict) else str(error)
        status_message = agent_message(text, context_id=context_id, task_id=run_id)
    artifact = reply_artifact(values, run_id) if state == a2a.TaskState.completed else None
    return a2a.Task(
        id=run_id,
        context_id=context_id,
        status=a2a.TaskStatus(state=state, message=status_message, timestamp=run.get("updated_at")),
        artifacts=[artifact] if artifact is not None else None,
        history=history(values, context_id=context_id, task_id=run_id, length=history_length) if values else None,
        metadata={"assistant_id": run["assistant_id"]},
    )


def dump(model: Any) -> dict[str, Any]:
    """An a2a-sdk model as its JSON object (camelCase names, unset fields left out)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
