"""The ports graphdock's services and run execution depend on.

- :class:`Storage` keeps the rows for assistants, threads, runs, crons and thread TTLs (checkpoints and
  store items belong to langgraph's own savers and stores);
- :class:`Queue` dispatches pending runs to the processes that execute them, one
  active run per thread across the whole deployment, each claimed run held by a lease;
- :class:`EventLog` is a per-run, sequence-numbered log of stream events with live
  fan-out, replay after ``Last-Event-ID``, thread-wide streams and cancel signals;
- :class:`Housekeeping` is what graphdock needs of a checkpointer beyond langgraph's
  ``BaseCheckpointSaver``: deleting a run's checkpoints, pruning, and putting back the
  pending writes a rolled-back run added.

:func:`graphdock.backends.open_backend` opens one adapter of each for a process; nothing
above ``backends/`` names a concrete adapter or calls a method these classes do not
declare. Rows are plain dicts shaped like the API's objects (timestamps as ISO-8601
strings with offset, JSON columns as Python values).

Every adapter passes the conformance suite in ``tests/backends/``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Literal, Sequence

Row = dict[str, Any]
SortOrder = Literal["asc", "desc"]
CancelAction = Literal["interrupt", "rollback"]


@dataclass(frozen=True)
class Page:
    """One page of a search: the rows and whether more rows follow."""

    rows: list[Row]
    has_more: bool


class Storage(ABC):
    """Rows for assistants, threads, runs, crons and thread TTLs.

    Every method is atomic, and every write is committed before it returns. Several
    processes may use one storage at once (scaled out); nothing is cached that another
    process could change.
    """

    # -- lifecycle
    @abstractmethod
    async def setup(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    # -- assistants
    @abstractmethod
    async def put_assistant(
        self, row: Row, *, if_exists: str, auth_filter: Row | None = None
    ) -> tuple[Row, bool]:
        """Insert an assistant (version 1) and its first version row; return (row, created).

        An existing assistant: ``if_exists`` ``do_nothing`` returns it (created False),
        ``raise`` raises Conflict; so does an existing one that ``auth_filter`` hides."""

    @abstractmethod
    async def ensure_system_assistant(
        self, assistant_id: str, graph_id: str, name: str, description: str | None
    ) -> None:
        """Create the graph's system assistant (metadata ``{"created_by": "system"}``), or
        update its name and description; safe when several processes start at once."""

    @abstractmethod
    async def get_assistant(self, assistant_id: str, *, auth_filter: Row | None = None) -> Row | None:
        """The current assistant row; None when missing or hidden by ``auth_filter``."""

    @abstractmethod
    async def patch_assistant(
        self, assistant_id: str, changes: Row, *, auth_filter: Row | None = None
    ) -> Row | None:
        """Create a new version (max version + 1) from the current one with ``changes``;
        make it current; None when missing or hidden."""

    @abstractmethod
    async def delete_assistant(self, assistant_id: str, *, auth_filter: Row | None = None) -> bool:
        """Delete an assistant and its versions; False when missing or hidden."""

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
        graph_ids: Sequence[str] | None = None,
        auth_filter: Row | None = None,
    ) -> Page:
        """Assistants matching every given filter: ``graph_id`` equal, ``name`` a
        case-insensitive substring, ``metadata`` contained (JSON containment), ``graph_ids``
        one of, ``auth_filter`` passed (see :mod:`graphdock.filters`); sorted by
        ``sort_by`` (unknown: created_at) then assistant_id, in ``sort_order``."""

    @abstractmethod
    async def count_assistants(
        self,
        *,
        graph_id: str | None,
        name: str | None,
        metadata: Row | None,
        graph_ids: Sequence[str] | None = None,
        auth_filter: Row | None = None,
    ) -> int: ...

    @abstractmethod
    async def assistant_versions(
        self, assistant_id: str, *, metadata: Row | None, limit: int, offset: int
    ) -> list[Row]:
        """The assistant's version rows, newest first (``metadata`` contained)."""

    @abstractmethod
    async def set_assistant_version(
        self, assistant_id: str, version: int, *, auth_filter: Row | None = None
    ) -> Row | None:
        """Make ``version`` current; NotFound when the assistant is missing or hidden,
        None when the version does not exist."""

    # -- threads
    @abstractmethod
    async def create_thread(
        self, row: Row, *, if_exists: str, auth_filter: Row | None = None
    ) -> tuple[Row, bool]:
        """Insert a thread; (row as a read returns it, created). An existing one:
        ``do_nothing`` returns it, ``raise`` (or hidden by ``auth_filter``) raises Conflict."""

    @abstractmethod
    async def get_thread(self, thread_id: str, *, auth_filter: Row | None = None) -> Row | None: ...

    @abstractmethod
    async def patch_thread(
        self, thread_id: str, *, metadata: Row | None, auth_filter: Row | None = None
    ) -> Row | None:
        """Merge ``metadata`` into the thread's; None when missing or hidden."""

    @abstractmethod
    async def delete_thread(self, thread_id: str, *, auth_filter: Row | None = None) -> bool:
        """Delete the thread row and its runs (not its checkpoints: the saver's)."""

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
        auth_filter: Row | None = None,
    ) -> Page:
        """Threads matching every filter (``ids`` one of, ``metadata`` / ``values``
        contained, ``status`` equal, ``auth_filter`` passed), sorted by ``sort_by``
        (unknown: updated_at) then thread_id."""

    @abstractmethod
    async def count_threads(
        self,
        *,
        metadata: Row | None,
        values: Row | None,
        status: str | None,
        auth_filter: Row | None = None,
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
        """Set cached state fields (``...``: unchanged), merge ``metadata``; ``status``
        becomes ``busy`` while runs are pending or running on the thread; the row after
        the update, or None when there is no such thread."""

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
        """Move a pending run to running (attempt + 1); None if it is no longer pending
        (or another run of its thread is running)."""

    @abstractmethod
    async def cancel_pending_run(self, run_id: str, thread_id: str, *, delete: bool) -> bool:
        """Settle a run that never started, if it is still pending: mark it
        ``interrupted`` (``delete``: delete it), and give its thread back the status its
        recorded state implies (``interrupted`` while it has interrupts, else ``idle``;
        ``busy`` while other runs are in flight). False (nothing changed) when the run is
        not pending any more (a worker claimed it meanwhile)."""

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

        With ``delete_thread`` (the end of a temporary run) the run's thread and its runs
        are deleted instead, in the same step (a temporary run writes no checkpoints).
        """

    @abstractmethod
    async def release_run(self, run_id: str) -> None:
        """Hand back a run that was claimed and did not finish (its process is stopping): a
        ``running`` run becomes ``pending`` again (its next claim counts the next attempt)."""

    @abstractmethod
    async def set_run_status(self, run_id: str, status: str) -> Row | None:
        """Set a run's status; the row after, or None when there is no such run."""

    @abstractmethod
    async def inflight_runs(self, thread_id: str) -> list[Row]:
        """The thread's pending and running runs, oldest first."""

    @abstractmethod
    async def runs_with_status(self, statuses: Sequence[str]) -> list[Row]:
        """Every run with one of ``statuses``, oldest first."""

    @abstractmethod
    async def queue_stats(self) -> Row:
        """The deployment's queue, cheaply (counts by status, no rows read): ``n_pending``,
        ``n_running``, and in seconds (0.0 when nothing waits) how long the oldest pending
        run has waited (``pending_runs_wait_time_max_secs``), the median pending run
        (``pending_runs_wait_time_med_secs``) and the oldest pending run whose thread has
        no running run (``pending_unblocked_runs_wait_time_max_secs``). A run waits from
        its ``created_at`` (a delayed run waits from when it may start)."""

    @abstractmethod
    async def ping(self) -> None:
        """A trivial query, for readiness checks; raises when the database cannot answer."""

    # -- crons
    # A cron row: cron_id, assistant_id, thread_id (None: stateless), user_id, payload,
    # schedule, timezone, next_run_date (None: it fires no more), end_time, enabled,
    # on_run_completed, metadata, created_at, updated_at. ``delete_thread`` and
    # ``delete_assistant`` delete the crons of what they delete, in the same step.
    @abstractmethod
    async def create_cron(self, row: Row) -> Row:
        """Insert a cron; the row as a read returns it."""

    @abstractmethod
    async def get_cron(self, cron_id: str, *, auth_filter: Row | None = None) -> Row | None:
        """The cron; None when missing or its metadata fails ``auth_filter``."""

    @abstractmethod
    async def update_cron(self, cron_id: str, changes: Row, *, auth_filter: Row | None = None) -> Row | None:
        """Set the columns in ``changes`` (and ``updated_at``); the row after, or None."""

    @abstractmethod
    async def delete_cron(self, cron_id: str, *, auth_filter: Row | None = None) -> bool: ...

    @abstractmethod
    async def search_crons(
        self,
        *,
        assistant_id: str | None,
        thread_id: str | None,
        enabled: bool | None,
        metadata: Row | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: SortOrder,
        auth_filter: Row | None = None,
    ) -> Page:
        """Crons matching every filter, sorted by ``sort_by`` (unknown: created_at) then cron_id."""

    @abstractmethod
    async def count_crons(
        self,
        *,
        assistant_id: str | None,
        thread_id: str | None,
        metadata: Row | None,
        auth_filter: Row | None = None,
    ) -> int: ...

    @abstractmethod
    async def due_crons(self, now: str, *, limit: int) -> list[Row]:
        """Enabled crons whose ``next_run_date`` is at or before ``now``, earliest first."""

    @abstractmethod
    async def next_cron_date(self) -> str | None:
        """The earliest ``next_run_date`` of the enabled crons (None: none will fire)."""

    @abstractmethod
    async def claim_cron(self, cron_id: str, seen: str, next_run_date: str | None) -> bool:
        """Advance a due cron from the ``next_run_date`` read (``seen``) to ``next_run_date``
        in one atomic step; True for exactly one caller across the deployment (any other,
        having read the same ``seen``, gets False and must not fire it)."""

    # -- thread TTLs
    @abstractmethod
    async def set_thread_ttl(
        self, thread_id: str, *, strategy: str | None, minutes: float | None, expires_at: str | None
    ) -> None:
        """Give a thread a TTL (``strategy`` ``delete`` or ``keep_latest``, ``minutes``,
        the expiry time) or, with ``minutes`` None, remove it."""

    @abstractmethod
    async def expired_threads(self, now: str, *, limit: int) -> list[Row]:
        """TTL rows (thread_id, strategy, minutes, expires_at, and the thread's
        updated_at and status) whose ``expires_at`` is at or before ``now``."""

    @abstractmethod
    async def delete_idle_thread(self, thread_id: str) -> bool:
        """Delete a thread (as :meth:`delete_thread`) only when no run of it is pending or
        running, checked in the same step; False when it is busy or missing."""



# -- event log -----------------------------------------------------------------------


def parse_event_id(value: str | None) -> tuple[int, int] | None:
    """``"<ms>-<seq>"`` (or ``"<ms>"``, ``"0"``, ``"-"``) as a comparable tuple; None if malformed."""
    if value is None:
        return None
    value = value.strip()
    if value in ("-", "", "0"):
        return (0, -1)
    head, _, tail = value.partition("-")
    try:
        parsed = (int(head), int(tail) if tail and tail != "*" else -1)
    except ValueError:
        return None
    # both parts fit a stream id (64 bits): anything larger is malformed too
    return parsed if 0 <= parsed[0] < 2**63 and -1 <= parsed[1] < 2**63 else None



@dataclass(frozen=True)
class Event:
    """One stream event: its id (``"<ms>-<seq>"``, increasing across the whole
    deployment's events), name and JSON-encoded data."""

    id: str
    event: str
    data: bytes


class Subscription(ABC):
    """What :meth:`EventLog.subscribe` and :meth:`EventLog.subscribe_thread` return: an
    async iterator of events, registered when it is created (not at first iteration), so
    that nothing published after the call is missed."""

    def __aiter__(self) -> "Subscription":
        return self

    @abstractmethod
    async def __anext__(self) -> Event: ...

    @abstractmethod
    def take_ready(self) -> list[Event]:
        """The events that iterating would return now without waiting, taken at once (so
        that a response can send together what arrived together)."""

    @abstractmethod
    def ticking(self, interval: float) -> AsyncIterator[Event | None]:
        """The same events, with ``None`` whenever ``interval`` seconds pass without one
        (heartbeats); no event is lost to a tick."""

    @abstractmethod
    async def aclose(self) -> None:
        """Leave: no more events; the subscription's resources are released."""


class EventLog(ABC):
    """Per-run event logs with live fan-out and replay, thread streams and cancel signals.

    A run's log is opened when the run is created (so that subscribers attached before
    it starts see everything) and closed when it ends. A closed log is kept for
    ``retention`` seconds when the run is resumable (``stream_resumable``), else only long
    enough for subscribers already attached to drain it. A subscriber of a run whose log
    is unknown (never opened, or expired) sees a finished, empty stream.
    """

    @abstractmethod
    async def open(self, run_id: str, thread_id: str | None, *, resumable: bool) -> None:
        """Start a run's log; opening an open log again changes nothing (a run taken over
        by another worker keeps its log and its subscribers)."""

    @abstractmethod
    async def publish(self, run_id: str, event: str, data: bytes) -> None:
        """Append an event to an open log (and to its thread's stream); dropped when the
        log is not open."""

    @abstractmethod
    async def close(self, run_id: str) -> None:
        """Mark the run's stream finished; subscribers drain and end. Thread subscribers
        get ``metadata`` ``{"status": "run_done", "run_id"}`` if the run published anything."""

    @abstractmethod
    def subscribe(
        self,
        run_id: str,
        *,
        last_event_id: str | None = None,
        from_start: bool = False,
        at_end: bool = False,
    ) -> Subscription:
        """Events of a run: replayed ones after ``last_event_id`` (resumable runs only), or
        all (``from_start``, while they are kept), else only those published from now on;
        then live ones, ending when the run's stream is closed.

        ``at_end``: the same events, delivered together once the stream is closed (for a
        subscriber that only needs the outcome, such as ``/wait``: it is not woken per event).
        """

    @abstractmethod
    def subscribe_thread(self, thread_id: str, *, last_event_id: str | None = None) -> Subscription:
        """Every run event on a thread plus thread-level events, until the subscriber
        leaves; with ``last_event_id``, first the kept events of the thread's resumable
        runs after it, in id order."""

    @abstractmethod
    async def publish_thread(self, thread_id: str, event: str, data: bytes) -> None:
        """A thread-level event (``state_update``) to the thread's live subscribers."""

    # -- cancel signals
    async def ping(self) -> None:
        """Raise when the service holding the logs cannot answer (readiness checks); an
        in-process log has nothing to reach."""

    @abstractmethod
    async def request_cancel(self, run_id: str, action: CancelAction) -> None:
        """Ask whichever process executes ``run_id`` to stop it (the last action counts)."""

    @abstractmethod
    async def on_cancel(
        self, run_id: str, callback: Callable[[CancelAction], None]
    ) -> list[CancelAction]:
        """Call ``callback(action)`` (on this process's event loop) for each cancel request
        for ``run_id``: at once for those already made, then at each later one; returns the
        list of actions requested, which the adapter keeps appending later requests to."""

    @abstractmethod
    async def release_cancel(self, run_id: str) -> None:
        """Forget ``run_id``'s callbacks in this process (its execution here has ended)."""

    async def aclose(self) -> None:
        """Release the log's connections and tasks (the process is stopping)."""


class LocalEventLog(EventLog):
    """An event log that lives in this process's memory: events may also be appended
    without awaiting (run processes hand their events over from a socket callback)."""

    @abstractmethod
    def open_now(self, run_id: str, thread_id: str | None, *, resumable: bool) -> None: ...

    @abstractmethod
    def publish_now(self, run_id: str, event: str, data: bytes) -> None: ...

    @abstractmethod
    def close_now(self, run_id: str) -> None: ...


# -- queue ---------------------------------------------------------------------------

Execute = Callable[[str, "Row | None"], Awaitable[None]]


class Queue(ABC):
    """Dispatch of pending runs to the processes that execute them.

    At most one run executes per thread across the deployment, pending runs of a thread
    start in ``created_at`` order (the embedded queue, the only writer of its file, is told
    of runs in that order: it starts them in the order it is told), and a run created with
    ``after_seconds`` is not started before its ``created_at``. A process that executes runs holds a lease on each run it
    claimed and renews it; a run whose lease expired (its process died) becomes claimable
    again, and its next claim counts another attempt.
    """

    #: this process's identity as a holder of leases
    worker_id: str

    @abstractmethod
    async def start(self, execute: Execute | None) -> None:
        """Begin dispatching: call ``execute(run_id, claimed)`` for each run this process is
        to execute, at most its concurrency at once (``claimed``: the run's row after the
        queue claimed it; None: the executor claims it with ``Storage.claim_run``).
        ``execute=None``: this process executes no runs (an API process with
        ``--n-jobs-per-worker 0``); it only announces the runs it creates.
        Also takes over what the deployment left: runs whose process is gone."""

    @abstractmethod
    async def stop(self, grace: float = 0.0) -> None:
        """Stop claiming; runs executing here get ``grace`` seconds to end, then are
        cancelled and handed back (pending again, claimable by another process)."""

    @abstractmethod
    async def enqueue(self, run: Row) -> None:
        """A run was written pending (created, or handed back): make it start when its
        thread, a worker and its ``created_at`` allow, waking an idle worker of the
        deployment."""

    @abstractmethod
    def can_start(self, thread_id: str) -> bool:
        """Whether a run on ``thread_id`` would start at once in this process: a slot is
        free here, and no run of the thread is active or waiting here, and no other run waits
        here for a slot. (False where the queue cannot tell without asking the database.)"""

    @abstractmethod
    async def start_claimed(self, run: Row) -> bool:
        """Start executing here a run already claimed (``Storage.create_run(start=True)``);
        False (nothing started) when :meth:`can_start` no longer holds for its thread."""

    @abstractmethod
    async def release(self, run_id: str) -> None:
        """Hand back a run this process claimed and did not finish (it is stopping): the
        run is pending again (its next claim counts the next attempt) and announced as by
        :meth:`enqueue`."""

    @property
    @abstractmethod
    def running(self) -> int:
        """How many runs this process is executing now."""

    # -- load hints for placing runs (defaults for queues that do not measure)
    @property
    def busy(self) -> float:
        """The share (0..1) of the last measuring window this process's CPU was busy."""
        return 0.0

    def set_executors(self, processes: int) -> None:
        """Runs dispatched here now execute in ``processes`` processes (run processes)."""


# -- checkpoint housekeeping ------------------------------------------------------------


class Housekeeping(ABC):
    """What graphdock's checkpointers offer beyond langgraph's ``BaseCheckpointSaver``
    (they implement its ``adelete_for_runs`` and ``aprune`` too)."""

    @abstractmethod
    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) whose metadata ``run_id`` is one of ``run_ids``."""

    @abstractmethod
    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep only the latest checkpoint of each namespace of each thread."""

    @abstractmethod
    async def ahead_writes(self, thread_id: str, checkpoint_id: str | None = None) -> Any:
        """The pending writes of the thread's latest checkpoint in each namespace (and of
        root checkpoint ``checkpoint_id``): the existing checkpoints a run can add writes to.

        Taken when a run starts; :meth:`arestore_writes` puts them back if the run is rolled back.
        """

    @abstractmethod
    async def arestore_writes(self, thread_id: str, snapshot: Any) -> None:
        """Make the pending writes of the checkpoints in ``snapshot`` exactly what they were."""
