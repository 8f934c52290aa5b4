"""Durability against a crash: what a response reported as done survives SIGKILL.

The server is killed without any chance to clean up (no graceful shutdown, no final WAL
checkpoint), then a new process is started on the same data directory.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from langgraph_sdk import get_sync_client

from conftest import ServerProcess


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_committed_state_survives_sigkill(data_dir):
    first = ServerProcess(data_dir).start()
    second = None
    try:
        c = get_sync_client(url=first.url)
        assistant = c.assistants.create("simple", metadata={"team": "crash"}, name="before-crash")
        aid = assistant["assistant_id"]
        # enough transactions for the background WAL checkpoint to run at least once
        threads = []
        for i in range(40):
            tid = c.threads.create(metadata={"i": i})["thread_id"]
            c.runs.wait(tid, aid, input={"items": [str(i)]})
            threads.append(tid)
        asking = c.threads.create()["thread_id"]
        c.runs.wait(asking, "simple", input={"items": [], "ask": True})
        c.store.put_item(["crash"], "k", {"v": 1})
        assert c.runs.wait(None, "simple", input={"items": ["stateless"]})["items"][-1] == "b"
        states = {t: c.threads.get_state(t) for t in threads + [asking]}
        rows = {t: c.threads.get(t) for t in threads + [asking]}
        runs = {t: c.runs.list(t) for t in threads}

        assert first.proc is not None
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        first.stop()

        second = ServerProcess(data_dir).start()
        c = get_sync_client(url=second.url)
        assert c.assistants.get(aid) == assistant
        for t in threads + [asking]:
            assert c.threads.get(t) == rows[t], t
            assert c.threads.get_state(t) == states[t], t
        for t in threads:
            assert c.runs.list(t) == runs[t], t
            assert [r["status"] for r in runs[t]] == ["success"]
        assert c.store.get_item(["crash"], "k")["value"] == {"v": 1}
        # the temporary thread of the stateless run was deleted before its answer
        assert c.threads.count() == len(threads) + 1
        # the interrupted thread resumes from its checkpoint
        assert c.runs.wait(asking, "simple", command={"resume": "yes"})["answer"] == "yes"
    finally:
        first.stop()
        if second is not None:
            second.stop()
