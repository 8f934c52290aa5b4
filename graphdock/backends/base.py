"""The ports graphdock's services depend on.

- :class:`Storage` keeps the rows for assistants, threads and runs (checkpoints and
  store items belong to langgraph's own savers and stores);
- :class:`Queue` dispatches pending runs to workers, one active run per thread;
- :class:`EventLog` is a per-run, sequence-numbered log of stream events with live
  fan-out, replay after ``Last-Event-ID``, thread-wide streams and cancel signals.

Rows are plain dicts shaped like the API's objects.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Literal, Sequence

Row = dict[str, Any]
SortOrder = Literal["asc", "desc"]


@dataclass(frozen=True)
class Page:
    """One page of a search: the rows and whether more rows follow."""

    rows: list[Row]
    has_more: bool


class Storage(ABC):
    """Rows for assistants, threads and runs. Every method is atomic."""

    # -- lifecycle
    @abstractmethod
    async def setup(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    # -- assistants
    @abstractmethod
    async def put_assistant(self, row: Row, *, if_exists: str) -> tuple[Row, bool]:
        """Insert an assistant (version 1); return (row, created). ``if_exists``: raise | do_nothing."""

    @abstractmethod
    async def ensure_system_assistant(
        self, assistant_id: str, graph_id: str, name: str, description: str | None
    ) -> None: ...

    @abstractmethod
    async def get_assistant(self, assistant_id: str) -> Row | None: ...

    @abstractmethod
    async def patch_assistant(self, assistant_id: str, changes: Row) -> Row | None:
        """Create a new version from the current one with ``changes``; make it current."""

    @abstractmethod
    async def delete_assistant(self, assistant_id: str) -> bool: ...

    @abstractmethod
    async def search_assistants(
        self,
        *,
        graph_id: str | None,
        name: str | None,
        metadata: Row | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: SortOrder,
    ) -> Page: ...

    @abstractmethod
    async def count_assistants(
        self, *, graph_id: str | None, name: str | None, metadata: Row | None
    ) -> int: ...

    @abstractmethod
    async def assistant_versions(
        self, assistant_id: str, *, metadata: Row | None, limit: int, offset: int
    ) -> list[Row]: ...

    @abstractmethod
    async def set_assistant_version(self, assistant_id: str, version: int) -> Row | None:
        """Make ``version`` current; None when the assistant or version does not exist."""

    # -- threads
    @abstractmethod
    async def create_thread(self, row: Row, *, if_exists: str) -> tuple[Row, bool]: ...

    @abstractmethod
    async def get_thread(self, thread_id: str) -> Row | None: ...

    @abstractmethod
    async def patch_thread(self, thread_id: str, *, metadata: Row | None) -> Row | None: ...

    @abstractmethod
    async def delete_thread(self, thread_id: str) -> bool:
        """Delete the thread row and its runs."""

    @abstractmethod
    async def search_threads(
        self,
        *,
        ids: Sequence[str] | None,
        metadata: Row | None,
        values: Row | None,
        status: str | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: SortOrder,
    ) -> Page: ...

    @abstractmethod
    async def count_threads(
        self, *, metadata: Row | None, values: Row | None, status: str | None
    ) -> int: ...

    @abstractmethod
    async def update_thread_state(
        self,
        thread_id: str,
        *,
        values: Any = ...,
        interrupts: Any = ...,
        error: Any = ...,
        status: str | None = None,
        metadata: Row | None = None,
        state_updated: bool = False,
    ) -> Row | None:
        """Set cached state fields; ``status`` becomes ``busy`` while runs are in flight."""

    # -- runs
    @abstractmethod
    async def create_run(
        self,
        run: Row,
        *,
        thread: Row,
        if_not_exists: str,
        multitask_strategy: str,
        start: bool = False,
    ) -> tuple[Row, list[str]]:
        """Insert a pending run, creating its thread if allowed; return (run, in-flight run ids).

        Raises NotFound when the thread is missing and may not be created, Conflict for
        ``reject`` with runs in flight. ``thread`` holds the metadata and config that a
        created thread gets and that an existing thread merges.

        ``start``: when the thread has no run in flight, insert the run already claimed
        (``running``, attempt 1, as :meth:`claim_run` would leave it) in the same
        transaction; the returned row's status tells whether it was.
        """

    @abstractmethod
    async def get_run(self, run_id: str, thread_id: str | None = None) -> Row | None: ...

    @abstractmethod
    async def list_runs(
        self, thread_id: str, *, limit: int, offset: int, status: str | None
    ) -> list[Row]: ...

    @abstractmethod
    async def delete_run(self, run_id: str, thread_id: str) -> bool: ...

    @abstractmethod
    async def claim_run(self, run_id: str) -> Row | None:
        """Move a pending run to running (attempt + 1); None if it is no longer pending."""

    @abstractmethod
    async def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        thread_status: str,
        values: Any = ...,
        interrupts: Any = ...,
        error: Any = ...,
        delete_thread: bool = False,
    ) -> None:
        """Record a run's final status and its thread's state in one step.

        With ``delete_thread`` (the end of a temporary run) the run's thread, its runs and
        its checkpoints are deleted instead, in the same step.
        """

    @abstractmethod
    async def set_run_status(self, run_id: str, status: str) -> Row | None: ...

    @abstractmethod
    async def inflight_runs(self, thread_id: str) -> list[Row]: ...

    @abstractmethod
    async def runs_with_status(self, statuses: Sequence[str]) -> list[Row]: ...

    @abstractmethod
    async def runnable_runs(self) -> list[Row]:
        """Pending runs (oldest first), after putting runs left running back to pending."""

    # -- checkpoint housekeeping that langgraph's savers do not offer
    @abstractmethod
    async def delete_checkpoints_for_run(self, thread_id: str, run_id: str) -> None:
        """Delete the checkpoints (and pending writes) that ``run_id`` wrote."""

    @abstractmethod
    async def head_writes(self, thread_id: str, checkpoint_id: str | None = None) -> Any:
        """The pending writes of the thread's latest checkpoint in each namespace (and of
        root checkpoint ``checkpoint_id``): the existing checkpoints a run can add writes to.

        Taken when a run starts; :meth:`restore_writes` puts them back if the run is rolled back.
        """

    @abstractmethod
    async def restore_writes(self, thread_id: str, snapshot: Any) -> None:
        """Make the pending writes of the checkpoints in ``snapshot`` exactly what they were."""

    @abstractmethod
    async def prune_checkpoints(self, thread_id: str) -> None:
        """Keep only the latest checkpoint of each namespace of the thread."""


@dataclass(frozen=True)
class Event:
    """One stream event: its id, name and JSON-encoded data."""

    id: str
    event: str
    data: bytes


class EventLog(ABC):
    """Per-run event logs with live fan-out and replay."""

    @abstractmethod
    async def open(self, run_id: str, thread_id: str | None, *, resumable: bool) -> None:
        """Start a run's log so that subscribers opened before the run starts see everything."""

    @abstractmethod
    async def publish(self, run_id: str, event: str, data: bytes) -> None: ...

    @abstractmethod
    async def close(self, run_id: str) -> None:
        """Mark the run's stream finished; subscribers drain and end."""

    @abstractmethod
    def subscribe(
        self,
        run_id: str,
        *,
        last_event_id: str | None = None,
        from_start: bool = False,
        at_end: bool = False,
    ) -> AsyncIterator[Event]:
        """Events of a run: replayed ones after ``last_event_id`` (or all, with ``from_start``
        while they are kept), then live ones, ending when the run's stream is closed.

        ``at_end``: the same events, delivered together once the stream is closed (for a
        subscriber that only needs the outcome, such as ``/wait``: it is not woken per event).
        """

    @abstractmethod
    def subscribe_thread(
        self, thread_id: str, *, last_event_id: str | None = None
    ) -> AsyncIterator[Event]:
        """Every run event on a thread plus thread-level events, until the subscriber leaves."""

    @abstractmethod
    async def publish_thread(self, thread_id: str, event: str, data: bytes) -> None: ...

    @abstractmethod
    def is_finished(self, run_id: str) -> bool: ...


CancelAction = Literal["interrupt", "rollback"]


class Queue(ABC):
    """Dispatch of pending runs to workers."""

    @abstractmethod
    async def start(self, execute: Callable[[str], Awaitable[None]]) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    def enqueue(self, run_id: str, thread_id: str, *, not_before: float | None = None) -> None: ...

    @abstractmethod
    def can_start(self, thread_id: str) -> bool:
        """Whether a run on ``thread_id`` would start at once: a worker is free, no run of
        the thread is active or waiting, and no other run waits for a worker."""

    @abstractmethod
    def start_claimed(self, run: Row) -> bool:
        """Start a run that is already claimed (see ``Storage.create_run(start=True)``), its
        row passed to the worker; False (nothing started) when :meth:`can_start` no longer
        holds for its thread."""

    @abstractmethod
    def cancel(self, run_id: str, action: CancelAction) -> bool:
        """Signal a running run to stop; True when this process was running it."""
