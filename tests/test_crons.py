"""Crons through the official SDK, on every backend: creation and validation, search,
count, patch, delete, and the scheduler firing them (stateless and per-thread runs,
disabled crons, restarts, once across the processes of a scaled-out deployment).

Schedules here carry a 6th field, the seconds (``GRAPHDOCK_CRON_SECONDS=1``, tests only),
so that crons fire within seconds; the scheduler's code path is the same as for the
5-field schedules of real deployments. Each fire of the ``recorder`` graph writes one
store item under ``("fires", <tag>)``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import httpx
import pytest
from croniter import croniter
from langgraph_sdk import get_client
from langgraph_sdk.errors import APIStatusError

from conftest import BACKENDS, make_server

CONFIG = Path(__file__).resolve().parent / "crons" / "langgraph.json"
ENV = {"GRAPHDOCK_CRON_SECONDS": "1", "GD_TEST_HOOK_TOKEN": "token-1", "GD_TEST_HOOK_SECRET": "secret-1"}
EVERY_2S = "* * * * * */2"


def start(kind: str, data_dir: Path) -> Any:
    return make_server(kind, data_dir, config=CONFIG, env=ENV).start()


def finish(srv: Any) -> None:
    (getattr(srv, "destroy", None) or srv.stop)()


@pytest.fixture(scope="module", params=BACKENDS)
def cron_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    srv = start(request.param, tmp_path_factory.mktemp("crons"))
    yield srv
    finish(srv)


@pytest.fixture
def client(cron_server: Any) -> Any:
    return get_client(url=cron_server.url)


@pytest.fixture
def http(cron_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cron_server.url, timeout=30) as c:
        yield c


def tag() -> str:
    return uuid.uuid4().hex[:12]


async def fires(client: Any, name: str) -> list[dict[str, Any]]:
    page = await client.store.search_items(("fires", name), limit=100)
    return page["items"]


async def wait_fires(client: Any, name: str, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        items = await fires(client, name)
        if len(items) >= n or time.monotonic() > deadline:
            return items
        await asyncio.sleep(0.2)


async def get_cron(client: Any, cron_id: str) -> dict[str, Any]:
    """``GET /runs/crons/{cron_id}`` (the SDK has no method for it)."""
    return await client.http.get(f"/runs/crons/{cron_id}")


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


# -- firing -------------------------------------------------------------------------


async def test_stateless_cron_fires_on_time_on_new_threads_that_are_deleted(client):
    name = tag()
    cron = await client.crons.create("recorder", schedule=EVERY_2S, input={"tag": name}, metadata={"probe": name})
    assert cron["thread_id"] is None and cron["on_run_completed"] == "delete" and cron["enabled"] is True
    assert cron["payload"]["config"]["configurable"]["cron_id"] == cron["cron_id"]
    first_due = at(cron["next_run_date"])
    assert first_due > at(cron["created_at"]) and first_due.microsecond == 0 and first_due.second % 2 == 0
    items = await wait_fires(client, name, 2)
    await client.crons.delete(cron["cron_id"])
    assert len(items) >= 2
    for item in items:
        assert item["value"]["cron_id"] == cron["cron_id"]
        assert item["value"]["metadata"] == name  # the cron's metadata reaches the run
    # each fire ran on a thread of its own, deleted after the run
    threads = {item["value"]["thread_id"] for item in items}
    assert len(threads) == len(items)
    await asyncio.sleep(0.5)
    for thread_id in threads:
        with pytest.raises(APIStatusError) as err:
            await client.threads.get(thread_id)
        assert err.value.status_code == 404
    # on time: the first fire within a few seconds of its due time
    first = min(at(item["created_at"]) for item in items)
    assert first_due - timedelta(seconds=0.1) <= first <= first_due + timedelta(seconds=3)


async def test_stateless_cron_keeps_its_threads_when_asked(client):
    name = tag()
    cron = await client.crons.create("recorder", schedule=EVERY_2S, input={"tag": name}, on_run_completed="keep")
    items = await wait_fires(client, name, 1)
    await client.crons.delete(cron["cron_id"])
    assert items and cron["on_run_completed"] == "keep"
    await asyncio.sleep(1)
    thread = await client.threads.get(items[0]["value"]["thread_id"])
    assert thread["values"]["count"] == 1


async def test_thread_cron_fires_on_its_thread(client):
    name = tag()
    thread = await client.threads.create()
    cron = await client.crons.create_for_thread(
        thread["thread_id"], "recorder", schedule=EVERY_2S, input={"tag": name}, multitask_strategy="enqueue"
    )
    assert cron["thread_id"] == thread["thread_id"] and cron["on_run_completed"] is None
    items = await wait_fires(client, name, 2)
    await client.crons.delete(cron["cron_id"])
    assert len(items) >= 2 and {i["value"]["thread_id"] for i in items} == {thread["thread_id"]}
    runs = await client.runs.list(thread["thread_id"])
    await asyncio.sleep(1)
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["count"] == len(await fires(client, name))
    assert all(r["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"] for r in runs)


async def test_disabled_cron_does_not_fire_until_enabled(client):
    name = tag()
    cron = await client.crons.create("recorder", schedule=EVERY_2S, input={"tag": name}, enabled=False)
    assert cron["enabled"] is False
    await asyncio.sleep(4.5)
    assert await fires(client, name) == []
    assert (await client.crons.search(enabled=False, metadata=None, limit=1000)) != []
    enabled = await client.crons.update(cron["cron_id"], enabled=True)
    assert enabled["enabled"] is True and at(enabled["next_run_date"]) > at(enabled["updated_at"])
    items = await wait_fires(client, name, 1)
    await client.crons.delete(cron["cron_id"])
    assert items


async def test_cron_past_its_end_time_does_not_fire(client):
    name = tag()
    end = datetime.now(timezone.utc) + timedelta(seconds=3)
    cron = await client.crons.create("recorder", schedule=EVERY_2S, input={"tag": name}, end_time=end)
    assert at(cron["end_time"]) == end.replace(microsecond=end.microsecond)
    await asyncio.sleep(6)
    got = await get_cron(client, cron["cron_id"])
    n = len(await fires(client, name))
    await asyncio.sleep(3)
    assert 1 <= n == len(await fires(client, name)) <= 2
    assert got["next_run_date"] is None
    await client.crons.delete(cron["cron_id"])


# -- validation -----------------------------------------------------------------------


async def test_invalid_requests_are_refused_naming_the_problem(client, http):
    cases = [
        ({"assistant_id": "recorder", "schedule": "not a cron"}, 422, "Invalid cron schedule: 'not a cron'"),
        ({"assistant_id": "recorder", "schedule": "61 * * * *"}, 422, "Invalid cron schedule"),
        ({"assistant_id": "recorder", "schedule": "* * * *"}, 422, "Invalid cron schedule"),
        ({"assistant_id": "recorder", "schedule": "* * * * *", "timezone": "Mars/Olympus"}, 422, "Mars/Olympus"),
        ({"assistant_id": "recorder", "schedule": "* * * * *", "bogus": 1}, 422, "bogus"),
        ({"assistant_id": "nope", "schedule": "* * * * *"}, 422, "Invalid assistant"),
        ({"assistant_id": str(uuid.uuid4()), "schedule": "* * * * *"}, 404, "not found"),
        ({"assistant_id": "context", "schedule": "* * * * *", "context": {"temperature": "hot"}}, 422, "temperature"),
        ({"assistant_id": "recorder", "schedule": "* * * * *", "on_run_completed": "maybe"}, 422, "on_run_completed"),
        ({"schedule": "* * * * *"}, 422, "assistant_id"),
    ]
    for body, status, text in cases:
        r = http.post("/runs/crons", json=body)
        assert r.status_code == status, (body, r.text)
        assert text in r.text, (body, r.text)
    missing = str(uuid.uuid4())
    r = http.post(f"/threads/{missing}/runs/crons", json={"assistant_id": "recorder", "schedule": "* * * * *"})
    assert r.status_code == 404
    thread = http.post("/threads", json={}).json()
    r = http.post(
        f"/threads/{thread['thread_id']}/runs/crons",
        json={"assistant_id": "recorder", "schedule": "* * * * *", "on_run_completed": "keep"},
    )
    assert r.status_code == 422 and "stateless" in r.text
    assert http.get("/runs/crons/not-a-uuid").status_code == 422
    assert http.get(f"/runs/crons/{uuid.uuid4()}").status_code == 404
    assert http.patch(f"/runs/crons/{uuid.uuid4()}", json={"enabled": False}).status_code == 404
    assert http.delete(f"/runs/crons/{uuid.uuid4()}").status_code == 404
    cron = await client.crons.create("recorder", schedule="0 0 1 1 *")
    r = http.patch(f"/runs/crons/{cron['cron_id']}", json={})
    assert r.status_code == 400 and r.json()["detail"] == "Request body cannot be empty"
    r = http.patch(f"/runs/crons/{cron['cron_id']}", json={"schedule": "every day"})
    assert r.status_code == 422 and "every day" in r.text
    r = http.patch(f"/runs/crons/{cron['cron_id']}", json={"timezone": "Nowhere/Land"})
    assert r.status_code == 422 and "Nowhere/Land" in r.text
    r = http.patch(f"/runs/crons/{cron['cron_id']}", json={"assistant_id": "recorder"})
    assert r.status_code == 422 and "assistant_id" in r.text
    r = http.post("/runs/crons/search", json={"select": ["cron_id", "secret"]})
    assert r.status_code == 422
    r = http.post("/runs/crons/search", json={"sort_by": "schedule"})
    assert r.status_code == 422
    await client.crons.delete(cron["cron_id"])


async def test_context_is_validated_and_reaches_the_fired_run(client):
    cron = await client.crons.create("context", schedule="0 0 1 1 *", context={"model": "m9"})
    assert cron["payload"]["context"] == {"model": "m9"}
    await client.crons.delete(cron["cron_id"])


# -- search, count, patch, delete ---------------------------------------------------------


def expected_next(schedule: str, tz: str | None, after: datetime) -> datetime:
    zone = ZoneInfo(tz) if tz else timezone.utc
    return croniter(schedule, after.astimezone(zone)).get_next(datetime).astimezone(timezone.utc)


async def test_search_count_select_sort_and_pagination(client, http):
    name = tag()
    thread = await client.threads.create()
    made = [
        await client.crons.create("recorder", schedule=f"{i} 3 * * *", metadata={"group": name, "i": i})
        for i in range(3)
    ]
    made.append(
        await client.crons.create_for_thread(thread["thread_id"], "recorder", schedule="0 4 * * *", metadata={"group": name})
    )
    ids = [c["cron_id"] for c in made]
    found = await client.crons.search(metadata={"group": name}, limit=100)
    assert [c["cron_id"] for c in found] == ids[::-1]  # created_at desc by default
    asc = await client.crons.search(metadata={"group": name}, sort_by="created_at", sort_order="asc")
    assert [c["cron_id"] for c in asc] == ids
    by_next = await client.crons.search(metadata={"group": name}, sort_by="next_run_date", sort_order="asc")
    dates = [c["next_run_date"] for c in by_next]
    assert dates == sorted(dates)
    assert await client.crons.count(metadata={"group": name}) == 4
    assert await client.crons.count(thread_id=thread["thread_id"]) == 1
    assert [c["cron_id"] for c in await client.crons.search(thread_id=thread["thread_id"])] == [ids[3]]
    assert await client.crons.count(metadata={"group": name, "i": 1}) == 1
    assert len(await client.crons.search(assistant_id="recorder", metadata={"group": name})) == 4
    selected = await client.crons.search(metadata={"group": name}, select=["cron_id", "schedule"])
    assert all(set(c) == {"cron_id", "schedule"} for c in selected)
    r = http.post("/runs/crons/search", json={"metadata": {"group": name}, "limit": 2, "offset": 0})
    assert r.headers["x-pagination-next"] == "2" and r.headers["x-pagination-total"] == "3"
    r = http.post("/runs/crons/search", json={"metadata": {"group": name}, "limit": 2, "offset": 2})
    assert "x-pagination-next" not in r.headers and r.headers["x-pagination-total"] == "4"
    assert len(r.json()) == 2
    for cron_id in ids:
        await client.crons.delete(cron_id)
    assert await client.crons.count(metadata={"group": name}) == 0


async def test_patch_recomputes_next_run_date_and_merges(client):
    cron = await client.crons.create(
        "recorder", schedule="0 9 * * *", input={"tag": "a"}, metadata={"a": 1}, end_time=datetime(2100, 1, 1, tzinfo=timezone.utc)
    )
    assert at(cron["next_run_date"]) == expected_next("0 9 * * *", None, at(cron["created_at"]))
    patched = await client.crons.update(cron["cron_id"], schedule="30 7 * * 1", timezone="America/New_York")
    assert patched["schedule"] == "30 7 * * 1" and patched["timezone"] == "America/New_York"
    assert at(patched["next_run_date"]) == expected_next("30 7 * * 1", "America/New_York", at(patched["updated_at"]))
    patched = await client.crons.update(cron["cron_id"], timezone="Asia/Tokyo")
    assert at(patched["next_run_date"]) == expected_next("30 7 * * 1", "Asia/Tokyo", at(patched["updated_at"]))
    patched = await client.crons.update(cron["cron_id"], metadata={"b": 2}, input={"tag": "b"})
    assert patched["metadata"] == {"a": 1, "b": 2}
    assert patched["payload"]["input"] == {"tag": "b"}
    assert patched["payload"]["assistant_id"] == cron["assistant_id"]
    assert patched["payload"]["config"]["configurable"]["cron_id"] == cron["cron_id"]
    assert patched["end_time"] is not None
    cleared = await client.crons.update(cron["cron_id"], end_time=None)
    assert cleared["end_time"] is None
    got = await get_cron(client, cron["cron_id"])
    assert got == cleared
    await client.crons.delete(cron["cron_id"])
    with pytest.raises(APIStatusError) as err:
        await get_cron(client, cron["cron_id"])
    assert err.value.status_code == 404


async def test_deleting_a_thread_or_an_assistant_deletes_its_crons(client):
    thread = await client.threads.create()
    on_thread = await client.crons.create_for_thread(thread["thread_id"], "recorder", schedule="0 0 1 1 *")
    await client.threads.delete(thread["thread_id"])
    with pytest.raises(APIStatusError):
        await get_cron(client, on_thread["cron_id"])
    assistant = await client.assistants.create("recorder")
    on_assistant = await client.crons.create(assistant["assistant_id"], schedule="0 0 1 1 *")
    await client.assistants.delete(assistant["assistant_id"])
    with pytest.raises(APIStatusError):
        await get_cron(client, on_assistant["cron_id"])


async def test_info_reports_crons(http):
    assert http.get("/info").json()["flags"]["crons"] is True


# -- restarts and several processes -----------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_cron_missed_while_down_fires_once_at_start_up(kind, tmp_path):
    srv = start(kind, tmp_path / "restart")
    try:
        client = get_client(url=srv.url)
        name, idle = tag(), tag()
        now = datetime.now(timezone.utc)
        # three due times in the next seconds, all while the server is down, then none for a minute
        seconds = sorted({(now.second + d) % 60 for d in (3, 4, 5)})
        schedule = f"* * * * * {','.join(map(str, seconds))}"
        missed = await client.crons.create("recorder", schedule=schedule, input={"tag": name})
        disabled = await client.crons.create("recorder", schedule=schedule, input={"tag": idle}, enabled=False)
        srv.stop()
        time.sleep(max(0.0, 7 - (datetime.now(timezone.utc) - now).total_seconds()))
        srv.start()
        client = get_client(url=srv.url)
        items = await wait_fires(client, name, 1, timeout=30)
        await asyncio.sleep(3)
        items = await fires(client, name)
        assert len(items) == 1, items
        assert await fires(client, idle) == []
        after = await get_cron(client, missed["cron_id"])
        # the next due time is the next minute's, not one of the missed ones (however long
        # the restart took)
        assert at(after["next_run_date"]) >= now + timedelta(seconds=60), after
        assert (await get_cron(client, disabled["cron_id"]))["enabled"] is False
    finally:
        finish(srv)


async def test_each_due_time_fires_once_across_processes(cron_server, client):
    """Scaled out, four processes race for every due time; embedded, the one scheduler
    must still fire each due time once."""
    name = tag()
    cron = await client.crons.create("recorder", schedule=EVERY_2S, input={"tag": name})
    await asyncio.sleep(9)
    await client.crons.delete(cron["cron_id"])
    await asyncio.sleep(1)
    items = await fires(client, name)
    times = sorted(at(i["created_at"]) for i in items)
    assert 3 <= len(times) <= 6, times
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    assert all(gap > 1.0 for gap in gaps), times  # never two fires for one due time


def test_sync_sdk_create_search_delete(cron_server):
    """The SDK's own integration round trip (create, search, delete), on the sync client."""
    from langgraph_sdk import get_sync_client

    crons = get_sync_client(url=cron_server.url).crons
    created = crons.create(
        "recorder", schedule="0 0 1 1 *", input={"messages": [], "value": "init", "items": []},
        metadata={"suite": "integration", "label": "crons-sync"},
    )  # fmt: skip
    try:
        assert any(c["cron_id"] == created["cron_id"] for c in crons.search(limit=20))
    finally:
        crons.delete(created["cron_id"])
    assert all(c["cron_id"] != created["cron_id"] for c in crons.search(limit=1000))
