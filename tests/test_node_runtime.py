"""Seed 002: what nodes receive through `langgraph.runtime.Runtime` when graphdock runs them."""

from __future__ import annotations


async def test_node_runtime_carries_context_store_writer_and_infos(client):
    await client.store.put_item(["notes"], "n1", {"text": "from the API"})
    thread = await client.threads.create()
    tid = thread["thread_id"]
    customs = []
    run_id = None
    async for event in client.runs.stream(
        tid, "node_runtime", input={}, context={"model": "m1", "bogus": True}, stream_mode=["custom", "values"]
    ):
        if event.event == "metadata":
            run_id = event.data["run_id"]
        elif event.event == "custom":
            customs.append(event.data)
        elif event.event == "values" and event.data.get("seen"):
            seen = event.data["seen"]
    assert customs == [{"via": "runtime.stream_writer"}, {"via": "get_stream_writer"}]
    assert seen["context_type"] == "Ctx" and seen["model"] == "m1"
    assert seen["same_runtime"] is True and seen["store_is_get_store"] is True
    assert seen["note"] == {"text": "from the API"}
    assert seen["execution"]["run_id"] == run_id
    assert seen["execution"]["thread_id"] == tid
    assert seen["execution"]["node_attempt"] == 1 and seen["execution"]["task_id"]
    assistant_id = (await client.assistants.search(graph_id="node_runtime"))[0]["assistant_id"]
    assert seen["server"] == {"assistant_id": assistant_id, "graph_id": "node_runtime", "user": None}
    assert seen["configurable"] == {
        "run_id": run_id, "thread_id": tid, "graph_id": "node_runtime", "assistant_id": assistant_id, "user_id": ""
    }
    # the node wrote to the same store the API serves
    item = await client.store.get_item(["notes"], "from-node")
    assert item["value"] == {"run_id": run_id}


async def test_previous_for_entrypoint_graphs_on_a_thread(client):
    tid = (await client.threads.create())["thread_id"]
    first = await client.runs.wait(tid, "functional_runtime", input=5)
    assert first["total"] == 5 and first["previous"] is None
    second = await client.runs.wait(tid, "functional_runtime", input=3)
    assert second == {**second, "total": 8, "previous": 5}
    # a stateless run has no previous
    alone = await client.runs.wait(None, "functional_runtime", input=4)
    assert alone["total"] == 4 and alone["previous"] is None
