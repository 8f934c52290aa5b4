"""The cron and thread-TTL part of the :class:`graphdock.backends.base.Storage` contract,
against every adapter: rows as written, filters, sorting, the due-cron claim (exactly
one of several processes wins it), cascades on thread and assistant deletion, TTL rows
and the idle-only thread deletion."""

from __future__ import annotations

import asyncio
from typing import Any

from graphdock import serde
from graphdock.backends import Backend
from graphdock.backends.base import Row

from .conftest import BackendOpener, add_run, assistant_row, at, new_id, thread_row

CRON_KEYS = {
    "cron_id", "assistant_id", "thread_id", "user_id", "payload", "schedule", "timezone",
    "next_run_date", "end_time", "enabled", "on_run_completed", "metadata", "created_at", "updated_at",
}  # fmt: skip


def cron_row(**changes: Any) -> Row:
    now = serde.now_iso()
    row: Row = {
        "cron_id": new_id(),
        "assistant_id": new_id(),
        "thread_id": None,
        "user_id": "",
        "payload": {"input": {"x": 1}, "config": {"configurable": {"k": "v"}}},
        "schedule": "* * * * *",
        "timezone": None,
        "next_run_date": at(60_000),
        "end_time": None,
        "enabled": True,
        "on_run_completed": "delete",
        "metadata": {},
        "created_at": now,
        "updated_at": now,
    }
    row.update(changes)
    return row


async def test_create_get_update_delete_cron(backend: Backend, tag: str) -> None:
    storage = backend.storage
    row = cron_row(metadata={"tag": tag, "owner": "a"}, timezone="Europe/Paris", end_time=at(3_600_000))
    created = await storage.create_cron(row)
    assert set(created) == CRON_KEYS and created == row
    assert await storage.get_cron(row["cron_id"]) == row
    assert await storage.get_cron(row["cron_id"], auth_filter={"owner": "b"}) is None
    assert await storage.update_cron(row["cron_id"], {"enabled": False}, auth_filter={"owner": "b"}) is None
    updated = await storage.update_cron(
        row["cron_id"], {"enabled": False, "end_time": None, "payload": {"input": 2}}, auth_filter={"owner": "a"}
    )
    assert updated is not None and updated["enabled"] is False and updated["end_time"] is None
    assert updated["payload"] == {"input": 2} and updated["updated_at"] > row["updated_at"]
    assert await storage.delete_cron(row["cron_id"], auth_filter={"owner": "b"}) is False
    assert await storage.delete_cron(row["cron_id"]) is True
    assert await storage.get_cron(row["cron_id"]) is None
    assert await storage.delete_cron(row["cron_id"]) is False


async def test_search_and_count_crons(backend: Backend, tag: str) -> None:
    storage = backend.storage
    assistant, thread = new_id(), new_id()
    rows = [
        cron_row(assistant_id=assistant, metadata={"tag": tag, "i": 0}, next_run_date=at(3000), created_at=at(0)),
        cron_row(assistant_id=assistant, metadata={"tag": tag, "i": 1}, next_run_date=at(1000), created_at=at(1)),
        cron_row(thread_id=thread, metadata={"tag": tag, "i": 2}, enabled=False, next_run_date=at(2000), created_at=at(2)),
    ]
    for row in rows:
        await storage.create_cron(row)
    ids = [r["cron_id"] for r in rows]

    async def search(**kw: Any) -> list[str]:
        args: dict[str, Any] = dict(assistant_id=None, thread_id=None, enabled=None, metadata={"tag": tag},
                                    limit=10, offset=0, sort_by="created_at", sort_order="desc")  # fmt: skip
        args.update(kw)
        return [r["cron_id"] for r in (await storage.search_crons(**args)).rows]

    assert await search() == ids[::-1]
    assert await search(sort_order="asc") == ids
    assert await search(sort_by="next_run_date", sort_order="asc") == [ids[1], ids[2], ids[0]]
    assert await search(assistant_id=assistant, sort_order="asc") == ids[:2]
    assert await search(thread_id=thread) == [ids[2]]
    assert await search(enabled=False) == [ids[2]]
    assert await search(enabled=True, sort_order="asc") == ids[:2]
    assert await search(metadata={"tag": tag, "i": 1}) == [ids[1]]
    page = await storage.search_crons(
        assistant_id=None, thread_id=None, enabled=None, metadata={"tag": tag},
        limit=2, offset=0, sort_by="created_at", sort_order="asc",
    )  # fmt: skip
    assert page.has_more and len(page.rows) == 2
    assert await storage.count_crons(assistant_id=None, thread_id=None, metadata={"tag": tag}) == 3
    assert await storage.count_crons(assistant_id=assistant, thread_id=None, metadata={"tag": tag}) == 2
    assert await storage.count_crons(assistant_id=None, thread_id=None, metadata={"tag": tag}, auth_filter={"i": 2}) == 1


async def test_due_crons_and_the_claim_that_only_one_process_wins(
    backend: Backend, make_backend: BackendOpener
) -> None:
    storage = backend.storage
    due = cron_row(next_run_date=at(-1000))
    later = cron_row(next_run_date=at(3_600_000))
    disabled = cron_row(next_run_date=at(-1000), enabled=False)
    done = cron_row(next_run_date=None)
    for row in (due, later, disabled, done):
        await storage.create_cron(row)
    now = serde.now_iso()
    found = {r["cron_id"] for r in await storage.due_crons(now, limit=1000)}
    assert due["cron_id"] in found and not found & {later["cron_id"], disabled["cron_id"], done["cron_id"]}
    earliest = await storage.next_cron_date()
    assert earliest is not None and earliest <= due["next_run_date"]
    nxt = at(60_000)
    async with make_backend() as peer:
        claims = await asyncio.gather(
            *(s.claim_cron(due["cron_id"], due["next_run_date"], nxt) for s in (storage, peer.storage, storage, peer.storage))
        )
    assert sorted(claims) == [False, False, False, True]
    assert (await storage.get_cron(due["cron_id"]))["next_run_date"] == nxt  # type: ignore[index]
    assert await storage.claim_cron(disabled["cron_id"], disabled["next_run_date"], nxt) is False
    assert await storage.claim_cron(due["cron_id"], nxt, None) is True
    assert (await storage.get_cron(due["cron_id"]))["next_run_date"] is None  # type: ignore[index]


async def test_deleting_a_thread_or_an_assistant_deletes_its_crons(backend: Backend) -> None:
    storage = backend.storage
    thread, _ = await storage.create_thread(thread_row(), if_exists="raise")
    assistant, _ = await storage.put_assistant(assistant_row(), if_exists="raise")
    on_thread = await storage.create_cron(cron_row(thread_id=thread["thread_id"]))
    on_assistant = await storage.create_cron(cron_row(assistant_id=assistant["assistant_id"]))
    other = await storage.create_cron(cron_row())
    assert await storage.delete_thread(thread["thread_id"])
    assert await storage.delete_assistant(assistant["assistant_id"])
    assert await storage.get_cron(on_thread["cron_id"]) is None
    assert await storage.get_cron(on_assistant["cron_id"]) is None
    assert await storage.get_cron(other["cron_id"]) is not None


async def test_thread_ttls_and_idle_deletion(backend: Backend) -> None:
    storage = backend.storage
    idle, _ = await storage.create_thread(thread_row(), if_exists="raise")
    busy_id = new_id()
    await add_run(backend, busy_id)  # creates the thread, with a pending run
    fresh, _ = await storage.create_thread(thread_row(), if_exists="raise")
    await storage.set_thread_ttl(idle["thread_id"], strategy="delete", minutes=1.0, expires_at=at(-10))
    await storage.set_thread_ttl(busy_id, strategy="keep_latest", minutes=2.0, expires_at=at(-10))
    await storage.set_thread_ttl(fresh["thread_id"], strategy="delete", minutes=1.0, expires_at=at(60_000))
    expired = {r["thread_id"]: r for r in await storage.expired_threads(serde.now_iso(), limit=10_000)}
    assert idle["thread_id"] in expired and busy_id in expired and fresh["thread_id"] not in expired
    assert expired[busy_id]["strategy"] == "keep_latest" and float(expired[busy_id]["minutes"]) == 2.0
    assert expired[busy_id]["status"] == "busy" and expired[idle["thread_id"]]["updated_at"] == idle["updated_at"]
    assert await storage.delete_idle_thread(busy_id) is False
    assert await storage.get_thread(busy_id) is not None
    assert await storage.delete_idle_thread(idle["thread_id"]) is True
    assert await storage.get_thread(idle["thread_id"]) is None
    assert await storage.delete_idle_thread(idle["thread_id"]) is False
    expired = {r["thread_id"] for r in await storage.expired_threads(serde.now_iso(), limit=10_000)}
    assert idle["thread_id"] not in expired  # its TTL row went with it
    await storage.set_thread_ttl(busy_id, strategy=None, minutes=None, expires_at=None)
    expired = {r["thread_id"] for r in await storage.expired_threads(serde.now_iso(), limit=10_000)}
    assert busy_id not in expired
