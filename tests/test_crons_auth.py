"""Crons under custom auth (tests/auth): ``@auth.on.crons.*`` handlers, owner filters on
every cron route, and fires that run with the identity of the cron's creator."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Iterator

import httpx
import pytest

from conftest import BACKENDS, ROOT, make_server

ALICE = {"Authorization": "Bearer alice"}
BOB = {"Authorization": "Bearer bob"}
ERIN = {"Authorization": "Bearer tuple-erin"}
EVERY_SECOND = "* * * * * *"


@pytest.fixture(scope="module", params=BACKENDS)
def base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    srv = make_server(
        request.param,
        tmp_path_factory.mktemp("cronauth"),
        config=ROOT / "tests" / "auth" / "langgraph.json",
        env={"GRAPHDOCK_CRON_SECONDS": "1"},
    ).start()
    yield srv.url
    (getattr(srv, "destroy", None) or srv.stop)()


def client(base: str, headers: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=base, headers=headers, timeout=30)


def wait_for(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_cron_handlers_stamp_and_refuse(base):
    with client(base, ALICE) as alice, client(base, ERIN) as erin:
        r = erin.post("/runs/crons", json={"assistant_id": "simple", "schedule": "0 0 1 1 *"})
        assert r.status_code == 403 and "erin may not schedule" in r.text
        cron = alice.post("/runs/crons", json={"assistant_id": "simple", "schedule": "0 0 1 1 *", "metadata": {"x": 1}}).json()
        assert cron["metadata"] == {"x": 1, "owner": "alice", "seen_schedule": "0 0 1 1 *"}
        assert cron["user_id"] == "alice"
        alice.delete(f"/runs/crons/{cron['cron_id']}")


def test_other_users_cannot_see_or_change_a_cron(base):
    with client(base, ALICE) as alice, client(base, BOB) as bob:
        tag = uuid.uuid4().hex
        cron = alice.post("/runs/crons", json={"assistant_id": "simple", "schedule": "0 0 1 1 *", "metadata": {"tag": tag}}).json()
        cid = cron["cron_id"]
        assert bob.get(f"/runs/crons/{cid}").status_code == 404
        assert bob.patch(f"/runs/crons/{cid}", json={"enabled": False}).status_code == 404
        assert bob.delete(f"/runs/crons/{cid}").status_code == 404
        assert bob.post("/runs/crons/search", json={"metadata": {"tag": tag}}).json() == []
        assert bob.post("/runs/crons/count", json={"metadata": {"tag": tag}}).json() == 0
        assert alice.post("/runs/crons/count", json={"metadata": {"tag": tag}}).json() == 1
        assert alice.get(f"/runs/crons/{cid}").json()["enabled"] is True
        assert alice.patch(f"/runs/crons/{cid}", json={"enabled": False}).json()["enabled"] is False
        assert alice.delete(f"/runs/crons/{cid}").status_code == 204


def test_fires_run_with_the_creators_identity(base):
    with client(base, ALICE) as alice, client(base, BOB) as bob:
        thread = alice.post("/threads", json={}).json()["thread_id"]
        # bob may not schedule on alice's thread
        r = bob.post(f"/threads/{thread}/runs/crons", json={"assistant_id": "simple", "schedule": EVERY_SECOND})
        assert r.status_code == 404
        cron = alice.post(
            f"/threads/{thread}/runs/crons",
            json={"assistant_id": "simple", "schedule": EVERY_SECOND, "input": {"items": ["c"]}},
        ).json()
        tag = uuid.uuid4().hex
        stateless = alice.post(
            "/runs/crons",
            json={"assistant_id": "simple", "schedule": EVERY_SECOND, "input": {"items": []},
                  "on_run_completed": "keep", "metadata": {"tag": tag}},
        ).json()  # fmt: skip
        runs = wait_for(lambda: alice.get(f"/threads/{thread}/runs").json())
        kept = wait_for(lambda: alice.post("/threads/search", json={"metadata": {"tag": tag}}).json())
        alice.delete(f"/runs/crons/{cron['cron_id']}")
        alice.delete(f"/runs/crons/{stateless['cron_id']}")
        assert runs and kept
        configurable = runs[0]["kwargs"]["config"]["configurable"]
        assert configurable["cron_id"] == cron["cron_id"]
        assert configurable["langgraph_auth_user_id"] == "alice" and configurable["user_id"] == "alice"
        assert kept[0]["metadata"]["owner"] == "alice"
        assert bob.post("/threads/search", json={"metadata": {"tag": tag}}).json() == []
