"""The :class:`graphdock.backends.base.EventLog` contract, against every adapter.

Nothing here sleeps to wait for an event: every wait is an await bounded by a timeout,
and what must *not* happen is checked against a later event that must (a barrier), or
with :func:`not_within` for the ``at_end`` subscribers.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from graphdock import serde
from graphdock.backends import Backend
from graphdock.backends.base import CancelAction, Event, EventLog, parse_event_id

from .conftest import BackendOpener, collect, new_id, not_within, pairs, take, within


def events_of(backend: Backend) -> EventLog:
    assert backend.events is not None
    return backend.events


def assert_increasing(events: list[Event]) -> None:
    parsed = [parse_event_id(e.id) for e in events]
    assert None not in parsed, [e.id for e in events]
    assert parsed == sorted(parsed) and len(set(parsed)) == len(parsed), [e.id for e in events]  # type: ignore[type-var]


async def publish_all(log: EventLog, run_id: str, items: list[tuple[str, bytes]]) -> None:
    for event, data in items:
        await log.publish(run_id, event, data)


ITEMS = [("metadata", b'{"run_id":"x"}'), ("values", b'{"n":1}'), ("values", b'{"n":2}'), ("end", b"null")]


async def test_subscriber_attached_first_sees_everything_then_ends(backend: Backend) -> None:
    log = events_of(backend)
    run_id = new_id()
    await log.open(run_id, new_id(), resumable=False)
    sub = log.subscribe(run_id)
    await publish_all(log, run_id, ITEMS)
    await log.close(run_id)
    got = await collect(sub)
    assert pairs(got) == ITEMS
    assert_increasing(got)


async def test_live_subscriber_sees_only_what_follows(backend: Backend) -> None:
    log = events_of(backend)
    run_id = new_id()
    await log.open(run_id, None, resumable=True)
    await log.publish(run_id, "values", b"1")
    sub = log.subscribe(run_id)  # registered now: what is published next is not missed
    await log.publish(run_id, "values", b"2")
    await log.publish(run_id, "values", b"3")
    await log.close(run_id)
    assert pairs(await collect(sub)) == [("values", b"2"), ("values", b"3")]


async def test_from_start_replays_a_kept_log(backend: Backend) -> None:
    log = events_of(backend)
    run_id = new_id()
    await log.open(run_id, new_id(), resumable=True)
    await publish_all(log, run_id, ITEMS[:2])
    live = log.subscribe(run_id, from_start=True)
    assert pairs(await take(live, 2)) == ITEMS[:2]
    await publish_all(log, run_id, ITEMS[2:])
    await log.close(run_id)
    assert pairs(await collect(live)) == ITEMS[2:]
    # after the run's end, while the log is kept
    again = await collect(log.subscribe(run_id, from_start=True))
    assert pairs(again) == ITEMS
    assert_increasing(again)


async def test_last_event_id_replays_resumable_runs_only(backend: Backend) -> None:
    log = events_of(backend)
    resumable, plain = new_id(), new_id()
    await log.open(resumable, None, resumable=True)
    await log.open(plain, None, resumable=False)
    await publish_all(log, resumable, ITEMS[:3])
    await publish_all(log, plain, ITEMS[:3])
    head = log.subscribe(resumable, from_start=True)
    (first,) = await take(head, 1)
    await head.aclose()

    sub = log.subscribe(resumable, last_event_id=first.id)
    no_replay = log.subscribe(plain, last_event_id=first.id)
    await log.publish(resumable, *ITEMS[3])
    await log.publish(plain, *ITEMS[3])
    await log.close(resumable)
    await log.close(plain)
    assert pairs(await collect(sub)) == ITEMS[1:]
    assert pairs(await collect(no_replay)) == ITEMS[3:]

    # resuming a finished resumable run from its last id: nothing more, and it ends
    everything = await collect(log.subscribe(resumable, from_start=True))
    assert await collect(log.subscribe(resumable, last_event_id=everything[-1].id)) == []
    assert pairs(await collect(log.subscribe(resumable, last_event_id=everything[1].id))) == ITEMS[2:]


async def test_at_end_delivers_everything_once_closed(backend: Backend) -> None:
    log = events_of(backend)
    run_id = new_id()
    await log.open(run_id, None, resumable=False)
    sub = log.subscribe(run_id, at_end=True)
    await publish_all(log, run_id, ITEMS)
    first = asyncio.ensure_future(sub.__anext__())
    await not_within(first, 0.3)
    assert sub.take_ready() == []
    await log.close(run_id)
    got = [await within(first), *await collect(sub)]
    assert pairs(got) == ITEMS


async def _ended_at_end(log: EventLog) -> None:
    """Open, subscribe at the end of, and close a run of its own: the process then listens
    for end markers, and every end marker published before this one has reached it."""
    run_id = new_id()
    await log.open(run_id, None, resumable=False)
    sub = log.subscribe(run_id, at_end=True)
    await log.close(run_id)
    assert await within(collect(sub)) == []


async def test_at_end_subscribers_before_and_after_the_end_of_a_log_opened_here(backend: Backend) -> None:
    log = events_of(backend)
    await _ended_at_end(log)
    run_id = new_id()
    await log.open(run_id, None, resumable=True)  # kept after its end
    await publish_all(log, run_id, ITEMS)
    before = log.subscribe(run_id, at_end=True, from_start=True)
    await log.close(run_id)
    # its end marker may not have arrived yet
    just_after = log.subscribe(run_id, at_end=True, from_start=True)
    assert pairs(await within(collect(before))) == ITEMS
    assert pairs(await within(collect(just_after))) == ITEMS
    await _ended_at_end(log)  # run_id's end marker has arrived by now
    assert pairs(await within(collect(log.subscribe(run_id, at_end=True, from_start=True)))) == ITEMS


async def test_unknown_run_is_a_finished_empty_stream(backend: Backend) -> None:
    log = events_of(backend)
    assert await collect(log.subscribe(new_id())) == []
    assert await collect(log.subscribe(new_id(), from_start=True)) == []
    assert await collect(log.subscribe(new_id(), last_event_id="0")) == []
    assert await collect(log.subscribe(new_id(), at_end=True)) == []
    # publishing to or closing a log that is not open changes nothing
    run_id = new_id()
    await log.publish(run_id, "values", b"1")
    await log.close(run_id)
    assert await collect(log.subscribe(run_id, from_start=True)) == []


async def test_opening_an_open_log_again_keeps_it(backend: Backend) -> None:
    log = events_of(backend)
    run_id = new_id()
    await log.open(run_id, new_id(), resumable=True)
    sub = log.subscribe(run_id)
    await log.publish(run_id, "values", b"1")
    await log.open(run_id, new_id(), resumable=True)  # e.g. a worker taking the run over
    await log.publish(run_id, "values", b"2")
    await log.close(run_id)
    assert pairs(await collect(sub)) == [("values", b"1"), ("values", b"2")]
    assert pairs(await collect(log.subscribe(run_id, from_start=True))) == [("values", b"1"), ("values", b"2")]


async def test_ids_increase_across_runs(backend: Backend) -> None:
    log = events_of(backend)
    runs = [new_id(), new_id(), new_id()]
    for run_id in runs:
        await log.open(run_id, None, resumable=True)
    for i in range(30):
        await log.publish(runs[i % 3], "values", str(i).encode())
    for run_id in runs:
        await log.close(run_id)
    merged: list[Event] = []
    for run_id in runs:
        got = await collect(log.subscribe(run_id, from_start=True))
        assert [int(e.data) for e in got] == list(range(runs.index(run_id), 30, 3))
        assert_increasing(got)
        merged.extend(got)
    merged.sort(key=lambda e: parse_event_id(e.id))  # type: ignore[arg-type,return-value]
    assert [int(e.data) for e in merged] == list(range(30))  # ids order events across runs


async def test_take_ready_takes_what_arrived_without_loss(backend: Backend) -> None:
    log = events_of(backend)
    run_id = new_id()
    await log.open(run_id, None, resumable=False)
    sub = log.subscribe(run_id)
    assert sub.take_ready() == []
    items = [("values", str(i).encode()) for i in range(20)]
    await publish_all(log, run_id, items)
    await log.close(run_id)
    got: list[Event] = []

    async def drain() -> None:
        async for event in sub:
            got.append(event)
            got.extend(sub.take_ready())

    await within(drain())
    assert pairs(got) == items
    assert sub.take_ready() == []


async def test_ticking_yields_none_when_idle_and_loses_nothing(backend: Backend) -> None:
    log = events_of(backend)
    run_id = new_id()
    await log.open(run_id, None, resumable=False)
    sub = log.subscribe(run_id)
    ticks = sub.ticking(0.002).__aiter__()
    assert await within(ticks.__anext__()) is None  # nothing published: a heartbeat
    items = [("values", str(i).encode()) for i in range(40)]

    async def publisher() -> None:
        for i, (event, data) in enumerate(items):
            await log.publish(run_id, event, data)
            if i % 4 == 0:
                await asyncio.sleep(0.003)  # let ticks fall between events
        await log.close(run_id)

    task = asyncio.create_task(publisher())
    got: list[Event] = []
    nones = 0

    async def read() -> None:
        nonlocal nones
        async for item in ticks:
            if item is None:
                nones += 1
            else:
                got.append(item)

    await within(read())
    await within(task)
    assert pairs(got) == items
    assert nones >= 1


async def test_aclose_ends_a_subscription(backend: Backend) -> None:
    log = events_of(backend)
    run_id = new_id()
    await log.open(run_id, None, resumable=False)
    sub = log.subscribe(run_id)
    await log.publish(run_id, "values", b"1")
    await sub.aclose()
    # the run goes on, but the subscriber that left is not kept waiting for it
    left = await collect(sub)
    assert pairs(left) in ([], [("values", b"1")])
    await log.close(run_id)


# -- thread streams ---------------------------------------------------------------------


def run_done(run_id: str) -> tuple[str, bytes]:
    return ("metadata", serde.dumps({"status": "run_done", "run_id": run_id}))


async def test_thread_stream_live(backend: Backend) -> None:
    log = events_of(backend)
    thread_id, run_id, silent = new_id(), new_id(), new_id()
    sub = log.subscribe_thread(thread_id)
    try:
        await log.open(run_id, thread_id, resumable=False)
        await publish_all(log, run_id, ITEMS[:2])
        await log.close(run_id)
        got = await take(sub, 3)
        assert pairs(got[:2]) == ITEMS[:2]
        assert got[2].event == "metadata" and serde.loads(got[2].data) == {"status": "run_done", "run_id": run_id}
        assert_increasing(got)

        # a run that published nothing never started: no run_done for it
        await log.open(silent, thread_id, resumable=False)
        await log.close(silent)
        await log.publish_thread(thread_id, "state_update", b'{"values":{"n":1}}')
        (update,) = await take(sub, 1)
        assert (update.event, update.data) == ("state_update", b'{"values":{"n":1}}')
        assert parse_event_id(update.id) is not None

        # other threads' events are not this thread's
        other = new_id()
        await log.open(other, new_id(), resumable=False)
        await log.publish(other, "values", b"other")
        await log.close(other)
        await log.publish_thread(new_id(), "state_update", b"other")
        await log.publish_thread(thread_id, "state_update", b"mine")
        assert pairs(await take(sub, 1)) == [("state_update", b"mine")]
    finally:
        await sub.aclose()


async def test_thread_stream_replays_resumable_runs_in_id_order(backend: Backend) -> None:
    log = events_of(backend)
    thread_id, first, second, plain = new_id(), new_id(), new_id(), new_id()
    for run_id, resumable in ((first, True), (second, True), (plain, False)):
        await log.open(run_id, thread_id, resumable=resumable)
    order = [(first, b"a1"), (plain, b"p1"), (second, b"b1"), (first, b"a2"), (plain, b"p2"), (second, b"b2")]
    for run_id, data in order:
        await log.publish(run_id, "values", data)
    await log.close(first)
    head = (await collect(log.subscribe(first, from_start=True)))[0]

    sub = log.subscribe_thread(thread_id, last_event_id=head.id)
    try:
        await log.publish(second, "values", b"b3")  # then live ones
        got: list[Event] = []
        while len(got) < 6 and (not got or got[-1].data != b"b3"):
            got.extend(await take(sub, 1))
        # the end of a run that ended meanwhile may be replayed too (once, in id order)
        ended = [e for e in got if (e.event, e.data) == run_done(first)]
        assert len(ended) <= 1
        assert [e.data for e in got if e not in ended] == [b"b1", b"a2", b"b2", b"b3"]
        assert_increasing(got)
    finally:
        await sub.aclose()
        await log.close(second)
        await log.close(plain)


async def test_thread_subscriber_is_registered_when_created(backend: Backend) -> None:
    log = events_of(backend)
    thread_id, run_id = new_id(), new_id()
    sub = log.subscribe_thread(thread_id)
    try:
        await log.publish_thread(thread_id, "state_update", b"1")  # before the first iteration
        await log.open(run_id, thread_id, resumable=False)
        await log.publish(run_id, "values", b"2")
        got = await take(sub, 2)
        assert pairs(got) == [("state_update", b"1"), ("values", b"2")]
    finally:
        await sub.aclose()
        await log.close(run_id)


# -- cancel signals -----------------------------------------------------------------------


class Recorder:
    """A cancel callback that records its calls and the thread they were made on."""

    def __init__(self) -> None:
        self.calls: list[CancelAction] = []
        self.threads: set[int] = set()
        self._changed = asyncio.Event()

    def __call__(self, action: CancelAction) -> None:
        self.calls.append(action)
        self.threads.add(threading.get_ident())
        self._changed.set()

    async def wait_for(self, action: CancelAction, count: int = 1) -> None:
        async def wait() -> None:
            while self.calls.count(action) < count:
                self._changed.clear()
                await self._changed.wait()

        await within(wait())


async def test_cancel_requested_after_listening(backend: Backend) -> None:
    log = events_of(backend)
    run_id = new_id()
    callback = Recorder()
    actions = await log.on_cancel(run_id, callback)
    assert actions == []
    await log.request_cancel(run_id, "interrupt")
    await callback.wait_for("interrupt")
    await log.request_cancel(run_id, "rollback")
    await callback.wait_for("rollback")
    assert callback.calls == ["interrupt", "rollback"]
    assert actions == ["interrupt", "rollback"]  # the list keeps growing
    assert callback.threads == {threading.get_ident()}  # on this process's loop
    await log.release_cancel(run_id)


async def test_cancel_requested_before_listening(backend: Backend) -> None:
    log = events_of(backend)
    run_id = new_id()
    await log.request_cancel(run_id, "interrupt")
    callback = Recorder()
    actions = await log.on_cancel(run_id, callback)
    assert actions == ["interrupt"]
    await log.request_cancel(run_id, "rollback")
    await callback.wait_for("rollback")
    assert actions == ["interrupt", "rollback"]
    assert callback.calls.count("rollback") == 1
    await log.release_cancel(run_id)


async def test_cancel_requested_around_the_opening_of_a_log(backend: Backend) -> None:
    log = events_of(backend)
    warm = new_id()  # the process listens for cancel requests already (as a worker does)
    await log.on_cancel(warm, Recorder())
    await log.release_cancel(warm)
    before, between = new_id(), new_id()
    await log.request_cancel(before, "interrupt")
    await log.open(before, None, resumable=False)
    assert await log.on_cancel(before, Recorder()) == ["interrupt"]
    await log.open(between, None, resumable=False)
    await log.request_cancel(between, "rollback")
    callback = Recorder()
    actions = await log.on_cancel(between, callback)
    await callback.wait_for("rollback")
    assert actions == ["rollback"] and callback.calls == ["rollback"]
    for run_id in (before, between):
        await log.release_cancel(run_id)
        await log.close(run_id)


async def test_release_cancel_forgets_the_callbacks(backend: Backend) -> None:
    log = events_of(backend)
    run_id = new_id()
    released, current = Recorder(), Recorder()
    await log.on_cancel(run_id, released)
    await log.release_cancel(run_id)
    await log.on_cancel(run_id, current)  # e.g. the run executed here again
    await log.request_cancel(run_id, "interrupt")
    await current.wait_for("interrupt")
    assert released.calls == []
    await log.release_cancel(run_id)


async def test_cancel_signals_are_per_run(backend: Backend) -> None:
    log = events_of(backend)
    first, second = new_id(), new_id()
    one, two = Recorder(), Recorder()
    await log.on_cancel(first, one)
    await log.on_cancel(second, two)
    await log.request_cancel(first, "rollback")
    await log.request_cancel(second, "interrupt")
    await one.wait_for("rollback")
    await two.wait_for("interrupt")
    assert (one.calls, two.calls) == (["rollback"], ["interrupt"])
    await log.release_cancel(first)
    await log.release_cancel(second)


# -- across processes (scaled out) ----------------------------------------------------------


@pytest.mark.scaled_only
async def test_events_published_by_one_process_reach_another(
    backend: Backend, make_backend: BackendOpener
) -> None:
    log = events_of(backend)
    thread_id, run_id = new_id(), new_id()
    async with make_backend() as peer:
        remote = events_of(peer)
        await log.open(run_id, thread_id, resumable=True)
        live = remote.subscribe(run_id)
        at_end = remote.subscribe(run_id, at_end=True)
        thread_sub = remote.subscribe_thread(thread_id)
        try:
            await publish_all(log, run_id, ITEMS)
            await log.publish_thread(thread_id, "state_update", b"{}")
            await log.close(run_id)
            got = await collect(live)
            assert pairs(got) == ITEMS
            assert pairs(await collect(at_end)) == ITEMS
            thread_events = await take(thread_sub, len(ITEMS) + 2)
            assert pairs(thread_events[: len(ITEMS)]) == ITEMS
            assert sorted(pairs(thread_events[len(ITEMS) :])) == sorted(
                [("state_update", b"{}"), run_done(run_id)]
            )
            # replay and resumption from the other process
            assert pairs(await collect(remote.subscribe(run_id, from_start=True))) == ITEMS
            resumed = await collect(remote.subscribe(run_id, last_event_id=got[1].id))
            assert resumed == got[2:]
        finally:
            await thread_sub.aclose()


@pytest.mark.scaled_only
async def test_cancel_requested_by_one_process_reaches_another(
    backend: Backend, make_backend: BackendOpener
) -> None:
    log = events_of(backend)
    early, late = new_id(), new_id()
    async with make_backend() as peer:
        remote = events_of(peer)
        await remote.request_cancel(early, "rollback")
        callback = Recorder()
        assert await log.on_cancel(early, callback) == ["rollback"]

        listener = Recorder()
        actions = await log.on_cancel(late, listener)
        await remote.request_cancel(late, "interrupt")
        await listener.wait_for("interrupt")
        assert actions == ["interrupt"]
        assert listener.threads == {threading.get_ident()}
        await log.release_cancel(early)
        await log.release_cancel(late)


async def test_ping_answers_while_the_log_is_reachable(backend: Backend) -> None:
    await within(events_of(backend).ping())  # raises when its service is down
