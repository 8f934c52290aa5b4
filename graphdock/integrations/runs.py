"""Running an assistant for a protocol adapter: a run created through the runs service
(authorization, queue, event log, exactly like ``POST /runs/wait``) and its outcome read
back from the run's event log, so it works wherever the run executes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from graphdock import models
from graphdock.auth import AuthContext
from graphdock.backends.base import Event, Row, Subscription

if TYPE_CHECKING:
    from graphdock.server import Server


@dataclass
class RunOutcome:
    """What a finished run produced: its last values, its error, the interrupts it raised."""

    values: Any = None
    error: dict[str, Any] | None = None
    interrupts: list[Any] = field(default_factory=list)

    def add(self, event: Event) -> None:
        """Take one event of the run's stream into account."""
        if event.event == "error":
            self.error = orjson.loads(event.data)
        elif event.event in ("values", "updates"):
            data = orjson.loads(event.data)
            if event.event == "values":
                self.values = data
            self._add_interrupts(data)

    def _add_interrupts(self, chunk: Any) -> None:
        if not isinstance(chunk, dict) or not chunk.get("__interrupt__"):
            return
        known = {item.get("id") for item in self.interrupts if isinstance(item, dict)}
        for item in chunk["__interrupt__"]:
            if not (isinstance(item, dict) and item.get("id") in known):
                self.interrupts.append(item)


async def start_run(
    srv: "Server",
    body: models.RunCreate,
    *,
    thread_id: str | None,
    auth: AuthContext,
    headers: dict[str, str] | None = None,
) -> Row:
    """Create the run (stateless when ``thread_id`` is None), the client waiting on it;
    ``headers``: the request headers that go into its configurable
    (``http.configurable_headers``)."""
    return await srv.runs.create(body, thread_id=thread_id, auth=auth, attached=True, headers=headers)


def run_events(srv: "Server", run: Row) -> Subscription:
    """Every event of ``run`` from its start, live, until its stream closes (the caller
    closes the subscription)."""
    return srv.events.subscribe(run["run_id"], from_start=True)


async def wait_for(srv: "Server", run: Row) -> RunOutcome:
    """The outcome of ``run`` once it has finished."""
    outcome = RunOutcome()
    events = srv.events.subscribe(run["run_id"], from_start=True, at_end=True)
    try:
        async for event in events:
            outcome.add(event)
    finally:
        await events.aclose()
    return outcome
