"""Soak: many concurrent SSE streams on a running graphdock server, and its memory.

    .venv/bin/python bench/soak.py --url http://127.0.0.1:2024 --pid PID [--streams 1000] [--rounds 4]

Creates ``--streams`` threads, then per round opens one thread stream
(``GET /threads/{id}/stream``, ``run_modes``) on each, runs ``--assistant`` on a sample of
the threads while all streams are open (each of those streams must see its run), closes
them all, and prints the server's RSS (``/proc/PID/status``) while held and after. Errors
(a status that is not 200, a stream dropped by the server) are counted; memory that does
not return to the same level round after round is a leak. Serve the bundled examples
(``graphdock serve --config examples/langgraph.json``) for the default assistant.
"""

from __future__ import annotations

import argparse
import asyncio

import httpx


def rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return 0


async def hold(client: httpx.AsyncClient, tid: str, saw: set[str], errors: list[str], done: asyncio.Event) -> None:
    try:
        async with client.stream("GET", f"/threads/{tid}/stream", params={"stream_mode": "run_modes"}) as r:
            if r.status_code != 200:
                errors.append(f"stream {r.status_code}")
                return
            async for line in r.aiter_lines():
                if line.startswith("event:") and "metadata" not in line:
                    saw.add(tid)
    except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
        if not done.is_set():
            errors.append(repr(exc))


async def soak(args: argparse.Namespace) -> int:
    limits = httpx.Limits(max_connections=args.streams + 100, max_keepalive_connections=args.streams + 100)
    async with httpx.AsyncClient(base_url=args.url, timeout=httpx.Timeout(120), limits=limits) as client:
        tids = [(await client.post("/threads", json={})).json()["thread_id"] for _ in range(args.streams)]
        print(f"{args.streams} threads; server RSS {rss_mb(args.pid)} MB", flush=True)
        failed = 0
        for n in range(args.rounds):
            saw: set[str] = set()
            errors: list[str] = []
            done = asyncio.Event()
            streams = [asyncio.create_task(hold(client, tid, saw, errors, done)) for tid in tids]
            await asyncio.sleep(5)  # every stream open
            sample = tids[:: max(1, args.streams // 50)]
            body = {"assistant_id": args.assistant, "input": {}, "context": {"user_id": "soak"}}
            runs = await asyncio.gather(*(client.post(f"/threads/{tid}/runs/wait", json=body) for tid in sample))
            errors += [f"run {r.status_code}" for r in runs if r.status_code != 200]
            await asyncio.sleep(3)
            held = rss_mb(args.pid)
            done.set()
            for task in streams:
                task.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
            await asyncio.sleep(2)
            seen = len(saw & set(sample))
            failed += len(errors) + (len(sample) - seen)
            print(
                f"round {n}: {args.streams} streams, RSS held {held} MB, after {rss_mb(args.pid)} MB, "
                f"errors {len(errors)} {errors[:3]}, streams that saw their run {seen}/{len(sample)}",
                flush=True,
            )
        return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:2024")
    parser.add_argument("--pid", type=int, required=True, help="the server process, for its RSS")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--assistant", default="greeting", help="run on a sample of the threads (default greeting)")
    return asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
