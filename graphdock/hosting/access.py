"""Which access context each server operation opens a graph in — the one table.

Every code path that needs a user graph names one of these operations when it
calls :meth:`graphdock.hosting.Hosting.open_graph`; the access context a graph
factory sees in its ``ServerRuntime`` is decided here and nowhere else.

| operation           | endpoints                                                            | access context       |
|---------------------|----------------------------------------------------------------------|----------------------|
| ``run``             | every run execution (``/runs*``, ``/threads/{id}/runs*``, MCP tool   | ``threads.create_run`` |
|                     | calls, A2A messages)                                                 |                      |
| ``state.read``      | ``GET /threads/{id}/state[/{cp}]``, ``POST .../state/checkpoint``,   | ``threads.read``     |
|                     | ``GET/POST /threads/{id}/history``, the read after an update         |                      |
| ``state.update``    | ``POST /threads/{id}/state``, ``POST /threads`` with ``supersteps``  | ``threads.update``   |
| ``introspect``      | ``GET /assistants/{id}/graph``, ``/schemas``, ``/subgraphs[/{ns}]``, | ``assistants.read``  |
|                     | MCP ``tools/list`` / ``tools/call`` schemas, the A2A agent and card  |                      |

Assistant, thread, run and store CRUD and search never open a graph.
"""

from __future__ import annotations

from typing import Literal

AccessContext = Literal["threads.create_run", "threads.update", "threads.read", "assistants.read"]
Operation = Literal["run", "state.read", "state.update", "introspect"]

ACCESS_CONTEXTS: dict[Operation, AccessContext] = {
    "run": "threads.create_run",
    "state.read": "threads.read",
    "state.update": "threads.update",
    "introspect": "assistants.read",
}


def access_context_of(operation: Operation | AccessContext) -> AccessContext:
    """The access context for an operation (an access context name is accepted as itself)."""
    if operation in ACCESS_CONTEXTS:
        return ACCESS_CONTEXTS[operation]  # type: ignore[index]
    if operation in ACCESS_CONTEXTS.values():
        return operation  # type: ignore[return-value]
    raise KeyError(f"unknown graph access operation {operation!r}")
