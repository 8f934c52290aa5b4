"""Summarise a py-spy ``--format raw`` profile of a graphdock server by layer.

    python bench/profile_summary.py PROFILE.txt [--top 6]

Each sample is attributed to the innermost frame that belongs to a known layer
(SQLite, PostgreSQL + Redis, graphdock, langgraph/langchain-core, the HTTP stack); samples whose
stack holds none of them count as the asyncio loop / standard library. Record
with ``--gil`` to count only samples that hold the GIL (CPU spent in Python).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::\d+)?\)$")

_ROOTS = {"uvicorn/_compat.py", "uvicorn/main.py", "uvicorn/server.py", "graphdock/cli.py"}
_LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "SQLite (graphdock's database layer, langgraph's SQLite saver and store, aiosqlite)",
        ("graphdock/backends/sqlite/", "sqlite/", "aiosqlite/"),
    ),
    (
        "PostgreSQL + Redis (graphdock's adapters, langgraph's PostgreSQL saver and store, psycopg, redis-py)",
        ("graphdock/backends/postgres/", "graphdock/backends/redis/", "psycopg/", "psycopg_pool/", "redis/",
         "checkpoint/postgres/", "store/postgres/", "langgraph/checkpoint/postgres/", "langgraph/store/postgres/"),
    ),
    ("graphdock", ("graphdock/", "uuid_utils/")),
    (
        "langgraph + langchain-core",
        ("pregel/", "langgraph/", "_internal/", "graph/", "channels/", "langchain_core/", "checkpoint/",
         "managed/", "runtime.py", "types.py"),
    ),
    ("HTTP stack (uvicorn, h11, starlette, fastapi, pydantic)",
     ("h11/", "uvicorn/", "starlette/", "fastapi/", "anyio/", "pydantic", "httptools", "uvloop")),
]
STDLIB = "asyncio event loop / standard library"


def layer_of(frame: str) -> str | None:
    match = _FRAME.match(frame)
    path = match.group("file") if match else ""
    if path in _ROOTS:
        return None
    for name, prefixes in _LAYERS:
        if path.startswith(prefixes):
            return name
    return None


def summarise(path: str) -> tuple[int, Counter[str], dict[str, Counter[str]]]:
    total = 0
    layers: Counter[str] = Counter()
    functions: dict[str, Counter[str]] = defaultdict(Counter)
    with open(path) as fh:
        for line in fh:
            line = line.rstrip()
            if not line or " " not in line:
                continue
            stack, count = line.rsplit(" ", 1)
            n = int(count)
            total += n
            frames = stack.split(";")
            chosen, where = STDLIB, frames[-1]
            for frame in reversed(frames):
                found = layer_of(frame)
                if found is not None:
                    chosen, where = found, frame
                    break
            layers[chosen] += n
            functions[chosen][re.sub(r":\d+\)$", ")", where)] += n
    return total, layers, functions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", help="py-spy record --format raw output")
    parser.add_argument("--top", type=int, default=6, help="functions shown per layer")
    args = parser.parse_args(argv)
    total, layers, functions = summarise(args.profile)
    if not total:
        print("no samples")
        return 1
    print(f"{total} samples")
    for name, n in layers.most_common():
        print(f"{100.0 * n / total:5.1f}%  {name}")
        for func, k in functions[name].most_common(args.top):
            print(f"          {100.0 * k / total:4.1f}%  {func}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
