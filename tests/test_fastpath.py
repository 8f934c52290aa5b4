"""The short way through the framework for run requests (graphdock/api/fastpath.py).

``POST /threads`` and the four run-creating ``/wait`` and ``/stream`` requests are answered
without FastAPI's per-request machinery when their body is valid, and by the FastAPI
routes otherwise. Whichever way a request goes, clients must not see a difference: these
tests send requests that take each way and compare what comes back.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

RUN = {"assistant_id": "simple", "input": {"items": ["x"]}}
DONE = {"items": ["x", "a", "b"]}


def _thread(http: httpx.Client) -> str:
    return http.post("/threads", json={}).json()["thread_id"]


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_json_content_types_all_answer(http, content_type):
    import json

    body = json.dumps(RUN).encode()
    r = http.post("/runs/wait", content=body, headers={"Content-Type": content_type})
    assert r.status_code == 200 and r.json() == DONE
    tid = _thread(http)
    r = http.post(f"/threads/{tid}/runs/wait", content=body, headers={"Content-Type": content_type})
    assert r.status_code == 200 and r.json() == DONE


def test_a_body_sent_in_pieces_is_read_whole(http):
    tid = _thread(http)
    pieces = [b'{"assistant_id": "sim', b'ple", "input": {"items"', b': ["x"]}}']
    r = http.post(
        f"/threads/{tid}/runs/wait",
        content=iter(pieces),  # chunked transfer encoding: several http.request messages
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200 and r.json() == DONE


def test_invalid_bodies_get_the_apps_own_answers(http):
    tid = _thread(http)
    for path in ("/runs/wait", f"/threads/{tid}/runs/wait", "/runs/stream", f"/threads/{tid}/runs/stream"):
        r = http.post(path, json={**RUN, "nonsense": 1})
        assert r.status_code == 422 and "nonsense" in r.json()["detail"], (path, r.text)
        r = http.post(path, content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"] == "Invalid JSON in request body", (path, r.text)
        r = http.post(path, json=[RUN])
        assert r.status_code == 422, (path, r.text)
    r = http.post("/threads", json={"metadata": "not an object"})
    assert r.status_code == 422 and "metadata" in r.json()["detail"]
    # nothing of the rejected requests was written
    assert http.post("/threads/search", json={"metadata": {"nonsense": 1}}).json() == []


def test_errors_raised_while_answering_are_json_details(http):
    missing = str(uuid.uuid4())
    r = http.post(f"/threads/{missing}/runs/wait", json=RUN)
    assert r.status_code == 404 and r.json() == {"detail": "Thread or assistant not found."}
    r = http.post("/threads/not-a-uuid/runs/stream", json=RUN)
    assert r.status_code == 422 and "thread" in r.json()["detail"].lower()
    r = http.post("/runs/wait", json={**RUN, "assistant_id": "no_such_graph"})
    assert r.status_code in (404, 422) and "detail" in r.json()
    tid = _thread(http)
    r = http.post("/threads", json={"thread_id": tid})
    assert r.status_code == 409 and "detail" in r.json()


def test_cors_and_locations_on_answers(http):
    tid = _thread(http)
    r = http.post(f"/threads/{tid}/runs/wait", json=RUN, headers={"Origin": "https://ui.example"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] in ("*", "https://ui.example")
    run_id = r.headers["content-location"].rsplit("/", 1)[1]
    assert r.headers["content-location"] == f"/threads/{tid}/runs/{run_id}"
    assert http.get(f"/threads/{tid}/runs/{run_id}").json()["status"] == "success"
    with http.stream("POST", "/runs/stream", json=RUN, headers={"Origin": "https://ui.example"}) as s:
        assert s.status_code == 200
        assert s.headers["content-type"].startswith("text/event-stream")
        assert s.headers["access-control-allow-origin"] in ("*", "https://ui.example")
        text = "".join(s.iter_text())
    assert "event: metadata" in text and "event: values" in text


def test_other_methods_and_paths_are_the_apps(http):
    tid = _thread(http)
    r = http.get("/runs/wait")
    assert r.status_code == 405
    r = http.post("/runs/wait/", json=RUN, follow_redirects=False)
    assert r.status_code in (307, 404)
    r = http.post(f"/threads/{tid}/runs", json=RUN)  # background run: the route, row returned
    assert r.status_code == 200 and r.json()["status"] == "pending"
