"""Semantic store search (``store.index``) through the official SDK, on both backends.

tests/store_semantic/langgraph.json indexes the ``text`` field of each item with a
deterministic bag-of-words embedding (tests/store_semantic/embed.py: every test word has
a dimension of its own, so each score is an exact cosine). The embedded server executes
every run in a run process (the store's vectors on that process's connection too); the
scaled-out one is two API processes and two workers on PostgreSQL (pgvector) + Redis.
Custom auth puts each user's items under their identity and filters searches to visible
items. Also: an async embedding function named as ``module:attr``, a model that
returns vectors of the wrong size (424, nothing written), and the start-up failures
(bad ``store.index`` keys, an embed that cannot be imported, PostgreSQL without pgvector).
"""

from __future__ import annotations

import math
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from langgraph_sdk import get_client, get_sync_client

from conftest import BACKENDS, ROOT, ServerProcess, free_port, make_server

HERE = ROOT / "tests" / "store_semantic"
CONFIG = HERE / "langgraph.json"
ALICE = {"Authorization": "Bearer alice"}
BOB = {"Authorization": "Bearer bob"}


def cosine(a: dict[str, int], b: dict[str, int]) -> float:
    """The cosine of two word-count vectors (what the test embedding's scores are)."""
    dot = sum(n * b.get(w, 0) for w, n in a.items())
    return dot / (math.sqrt(sum(n * n for n in a.values())) * math.sqrt(sum(n * n for n in b.values())))


def pgvector_available() -> bool:
    import psycopg

    from services import ADMIN_URI

    with psycopg.connect(ADMIN_URI) as conn:
        return conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone() is not None


@pytest.fixture(scope="module", params=BACKENDS)
def semantic(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if request.param == "scaled-out":
        from services import require_services

        require_services()
        if not pgvector_available():
            pytest.skip(
                "pgvector ('vector') is not installed in PostgreSQL at 127.0.0.1:5432: semantic search on"
                " PostgreSQL + Redis cannot run here (test_postgres_without_pgvector_stops_start_up checks"
                " the start-up failure instead)"
            )
        srv = make_server("scaled-out", tmp_path_factory.mktemp("semantic"), config=CONFIG).start()
    else:
        srv = make_server(
            "embedded",
            tmp_path_factory.mktemp("semantic"),
            config=CONFIG,
            args=["--run-processes", "1", "--run-process-policy", "always"],
        ).start()
    yield srv
    (getattr(srv, "destroy", None) or srv.stop)()


@pytest.fixture
def alice(semantic: Any) -> Any:
    return get_client(url=semantic.url, headers=ALICE)


def root() -> str:
    return f"sem{uuid.uuid4().hex[:12]}"


def ranked(items: list[dict[str, Any]]) -> list[tuple[str, float | None]]:
    return [(i["key"], i["score"]) for i in items]


async def test_query_ranks_items_by_similarity_with_scores(alice):
    ns = [root()]
    texts = {"a": "apple apple pie", "b": "apple banana", "c": "red truck", "d": "blue boat"}
    for key, text in texts.items():
        await alice.store.put_item(ns, key, {"text": text})
    found = (await alice.store.search_items(ns, query="apple pie"))["items"]
    assert [i["key"] for i in found[:2]] == ["a", "b"]
    assert {i["key"] for i in found} == set(texts)
    query = {"apple": 1, "pie": 1}
    for item in found:
        words: dict[str, int] = {}
        for w in texts[item["key"]].split():
            words[w] = words.get(w, 0) + 1
        assert item["score"] == pytest.approx(cosine(query, words), abs=1e-5)
        assert item["namespace"] == ["alice", *ns]  # the auth handler's namespace
        assert item["value"]["text"] == texts[item["key"]]
    plain = (await alice.store.search_items(ns))["items"]
    assert {i["key"] for i in plain} == set(texts) and all(i["score"] is None for i in plain)


async def test_query_with_filter_and_namespace_prefix(alice):
    base = root()
    await alice.store.put_item([base, "x"], "x1", {"text": "apple", "kind": "fruit"})
    await alice.store.put_item([base, "x"], "x2", {"text": "apple truck", "kind": "vehicle"})
    await alice.store.put_item([base, "y"], "y1", {"text": "apple pie", "kind": "fruit"})
    await alice.store.put_item([base, "y"], "y2", {"text": "boat", "kind": "vehicle"})
    fruit = (await alice.store.search_items([base], query="apple", filter={"kind": "fruit"}))["items"]
    assert ranked(fruit) == [("x1", pytest.approx(1.0)), ("y1", pytest.approx(1 / math.sqrt(2)))]
    in_x = (await alice.store.search_items([base, "x"], query="truck"))["items"]
    assert ranked(in_x) == [("x2", pytest.approx(1 / math.sqrt(2))), ("x1", pytest.approx(0.0, abs=1e-6))]
    vehicles_in_y = (await alice.store.search_items([base, "y"], query="apple", filter={"kind": "vehicle"}))
    assert ranked(vehicles_in_y["items"]) == [("y2", pytest.approx(0.0, abs=1e-6))]


async def test_limit_and_offset_page_through_the_ranking(alice):
    ns = [root()]
    words = ["apple", "banana", "cherry", "pie", "red", "blue"]
    # item i has the first i+1 words: its cosine with "apple" is 1/sqrt(i+1), strictly falling
    for i in range(len(words)):
        await alice.store.put_item(ns, f"k{i}", {"text": " ".join(words[: i + 1])})
    whole = (await alice.store.search_items(ns, query="apple", limit=10))["items"]
    assert [i["key"] for i in whole] == [f"k{i}" for i in range(len(words))]
    assert [i["score"] for i in whole] == pytest.approx([1 / math.sqrt(i + 1) for i in range(len(words))], abs=1e-5)
    pages = [
        [i["key"] for i in (await alice.store.search_items(ns, query="apple", limit=2, offset=off))["items"]]
        for off in (0, 2, 4, 6)
    ]
    assert pages == [["k0", "k1"], ["k2", "k3"], ["k4", "k5"], []]
    late = (await alice.store.search_items(ns, query="apple", limit=1, offset=5))["items"]
    assert [i["key"] for i in late] == ["k5"]


async def test_per_item_index_paths_and_index_false(alice):
    ns = [root()]
    await alice.store.put_item(ns, "titled", {"text": "blue boat", "title": "apple pie"}, index=["title"])
    await alice.store.put_item(ns, "skipped", {"text": "apple pie"}, index=False)
    await alice.store.put_item(ns, "plain", {"text": "apple"})
    found = ranked((await alice.store.search_items(ns, query="apple pie"))["items"])
    assert found == [("titled", pytest.approx(1.0)), ("plain", pytest.approx(1 / math.sqrt(2)))]
    assert (await alice.store.get_item(ns, "skipped"))["value"]["text"] == "apple pie"
    # a put replaces the item's vectors: no ranking by what it no longer holds or indexes
    await alice.store.put_item(ns, "plain", {"text": "apple"}, index=False)
    await alice.store.put_item(ns, "titled", {"text": "blue boat", "title": "apple pie"})
    found = ranked((await alice.store.search_items(ns, query="apple pie"))["items"])
    assert found == [("titled", pytest.approx(0.0, abs=1e-6))]
    await alice.store.delete_item(ns, "titled")
    assert (await alice.store.search_items(ns, query="apple pie"))["items"] == []
    plain = (await alice.store.search_items(ns))["items"]
    assert {i["key"] for i in plain} == {"skipped", "plain"}


async def test_auth_handlers_scope_ranked_searches(semantic, alice):
    ns = [root()]
    bob = get_client(url=semantic.url, headers=BOB)
    await alice.store.put_item(ns, "mine", {"text": "apple"})
    await alice.store.put_item(ns, "secret", {"text": "apple pie", "visible": False})
    await bob.store.put_item(ns, "bobs", {"text": "apple"})
    mine = ranked((await alice.store.search_items(ns, query="apple"))["items"])
    assert mine == [("mine", pytest.approx(1.0))]  # "secret" is filtered out; bob's lives under "bob"
    bobs = ranked((await bob.store.search_items(ns, query="apple"))["items"])
    assert bobs == [("bobs", pytest.approx(1.0))]
    # a request filter is ANDed with the handler's
    assert (await alice.store.search_items(ns, query="apple", filter={"visible": False}))["items"] == []


@pytest.mark.parametrize("graph", ["semantic", "semantic_sync"])
async def test_nodes_search_the_same_store_with_runtime_store(alice, graph):
    ns = [root()]
    await alice.store.put_item(ns, "a", {"text": "apple apple pie"})
    await alice.store.put_item(ns, "b", {"text": "red truck"})
    # inside graphs the store is the server's, without the auth handler's namespace
    state = await alice.runs.wait(None, graph, input={"namespace": ["alice", *ns], "query": "red", "limit": 5})
    assert state["results"] == [["b", pytest.approx(1 / math.sqrt(2))], ["a", pytest.approx(0.0, abs=1e-6)]]
    put = {"key": "c", "value": {"text": "red red", "visible": True}}  # the auth filter's field
    if graph == "semantic":
        state = await alice.runs.wait(None, graph, input={"namespace": ["alice", *ns], "query": "red", "put": put})
        assert [k for k, _ in state["results"]] == ["c", "b", "a"]
        via_api = ranked((await alice.store.search_items(ns, query="red"))["items"])
        assert [k for k, _ in via_api] == ["c", "b", "a"]
        assert via_api[0][1] == pytest.approx(1.0)


# -- an async embedding function named as module:attr; a model with the wrong dims -------


def _write_config(tmp_path: Path, index: Any, **extra: Any) -> Path:
    import json

    config = {
        "dependencies": [str(HERE)],
        "graphs": {"semantic": f"{HERE / 'graph.py'}:graph", "semantic_sync": f"{HERE / 'graph.py'}:sync_graph"},
        "store": {"index": index},
        **extra,
    }
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps(config))
    return path


def test_async_embedding_function_by_module_name(tmp_path: Path):
    srv = ServerProcess(tmp_path / "data", config=HERE / "langgraph_async.json").start()
    try:
        client = get_sync_client(url=srv.url, headers=ALICE)
        ns = [root()]
        client.store.put_item(ns, "a", {"text": "green river"})
        client.store.put_item(ns, "b", {"text": "green mountain sea"})
        found = ranked(client.store.search_items(ns, query="river")["items"])
        assert found == [("a", pytest.approx(1 / math.sqrt(2))), ("b", pytest.approx(0.0, abs=1e-6))]
        # a sync node on a thread: the store's synchronous search runs the async function
        state = client.runs.wait(None, "semantic_sync", input={"namespace": ["alice", *ns], "query": "sea"})
        assert [k for k, _ in state["results"]] == ["b", "a"]
    finally:
        srv.stop()


def test_wrong_vector_size_is_424_and_writes_nothing(tmp_path: Path):
    config = _write_config(tmp_path, {"embed": f"{HERE / 'embed.py'}:wrong_dims", "dims": 32, "fields": ["text"]})
    srv = ServerProcess(tmp_path / "data", config=config).start()
    try:
        import httpx

        ns = [root()]
        r = httpx.put(f"{srv.url}/store/items", json={"namespace": ns, "key": "k", "value": {"text": "apple"}})
        assert r.status_code == 424, r.text
        assert "store.index" in r.json()["detail"] and "31" in r.json()["detail"]
        client = get_sync_client(url=srv.url)
        assert client.store.get_item(ns, "k") is None
        client.store.put_item(ns, "unindexed", {"text": "apple"}, index=False)  # nothing to embed
        r = httpx.post(f"{srv.url}/store/items/search", json={"namespace_prefix": ns, "query": "apple"})
        assert r.status_code == 424, r.text
        plain = client.store.search_items(ns)["items"]
        assert [i["key"] for i in plain] == ["unindexed"]
    finally:
        srv.stop()


# -- start-up failures -------------------------------------------------------------------


def _serve(config: Path, data_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "graphdock.cli", "serve", "--config", str(config),
            "--host", "127.0.0.1", "--port", str(free_port()), "--data-dir", str(data_dir), *args,
        ],
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _one_error_line(proc: subprocess.Popen[str]) -> str:
    try:
        _, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("the server started instead of refusing its configuration")
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 1, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_bad_store_index_stops_start_up_with_one_line(tmp_path: Path):
    embed = f"{HERE / 'embed.py'}:embed"
    cases = {
        "no-dims": ({"embed": embed}, ["store.index.dims", "required"]),
        "zero-dims": ({"embed": embed, "dims": 0}, ["store.index.dims", "positive"]),
        "unknown-key": ({"embed": embed, "dims": 32, "distance": "cosine"}, ["store.index.distance", "unknown key"]),
        "no-embed": ({"dims": 32}, ["store.index.embed", "required"]),
        "bad-fields": ({"embed": embed, "dims": 32, "fields": "text"}, ["store.index.fields"]),
        "missing-file": ({"embed": "./nowhere.py:embed", "dims": 32}, ["store.index.embed", "does not exist"]),
        "missing-attr": ({"embed": f"{HERE / 'embed.py'}:nothing", "dims": 32}, ["store.index.embed", "nothing"]),
        "not-callable": ({"embed": f"{HERE / 'embed.py'}:DIMS", "dims": 32}, ["store.index.embed", "int"]),
        "provider": ({"embed": "openai:text-embedding-3-small", "dims": 1536}, ["store.index.embed"]),
    }
    import importlib.util

    if importlib.util.find_spec("langchain") is None:
        cases["provider"][1].append("langchain")  # "needs the langchain package (not installed)"
    procs = {}
    for name, (index, _) in cases.items():
        (tmp_path / name).mkdir()
        procs[name] = _serve(_write_config(tmp_path / name, index), tmp_path / name / "data")
    for name, (_, expected) in cases.items():
        line = _one_error_line(procs[name])
        for part in expected:
            assert part in line, (name, line)


def test_postgres_without_pgvector_stops_start_up(tmp_path: Path):
    """Without pgvector in PostgreSQL: one line naming the database and what to install.
    Where pgvector is installed, the same start-up as a role that may not create the
    extension: one line naming CREATE EXTENSION vector."""
    import psycopg
    from psycopg import sql

    from services import ADMIN_URI, create_database, database_uri, delete_redis_prefix, drop_database, redis_prefix, require_services

    require_services()
    name, uri = create_database("gdtest")
    prefix = redis_prefix("gdtest")
    role = None
    try:
        if pgvector_available():
            role = f"gdtest_{os.getpid()}_{secrets.token_hex(4)}"
            with psycopg.connect(ADMIN_URI, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER").format(sql.Identifier(role)))
            uri = database_uri(name).replace("postgres@", f"{role}@", 1)
            expected = ["store.index", "CREATE EXTENSION vector", name, "permission denied"]
        else:
            expected = ["store.index", "no pgvector", name, "CREATE EXTENSION vector"]
        config = _write_config(tmp_path, {"embed": f"{HERE / 'embed.py'}:embed", "dims": 32})
        line = _one_error_line(
            _serve(config, tmp_path / "data", "--database-uri", uri, "--redis-uri", "redis://127.0.0.1:6379/0",
                   "--redis-prefix", prefix)
        )
        for part in expected:
            assert part in line, line
    finally:
        drop_database(name)
        delete_redis_prefix(prefix)
        if role is not None:
            with psycopg.connect(ADMIN_URI, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
