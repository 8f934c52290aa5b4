"""The topology guard: a factory must build the same graph in every access context.

The seed requires a graph factory to return the same nodes, edges and state
channels whatever the access context; otherwise state updates write the wrong
channels and state reads report wrong pending tasks. The guard remembers the
topology of the first access of each graph and compares the first access in
every other access context with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Literal

from langgraph.pregel import Pregel

from graphdock.errors import FailedDependency

logger = logging.getLogger("graphdock.topology")

TopologyMode = Literal["off", "warn", "error"]


@dataclass(frozen=True)
class Topology:
    nodes: frozenset[str]
    edges: frozenset[tuple[str, str, bool]]
    channels: frozenset[str]

    @classmethod
    def of(cls, graph: Pregel) -> "Topology":
        drawn = graph.get_graph()
        nodes = frozenset(str(n) for n in drawn.nodes)
        edges = frozenset((e.source, e.target, bool(e.conditional)) for e in drawn.edges)
        channels = frozenset(k for k in graph.channels if not k.startswith("__") and not k.startswith("branch:"))
        return cls(nodes, edges, channels)

    def difference(self, other: "Topology") -> list[str]:
        """What ``other`` has or lacks compared with ``self``, one phrase per item."""
        out: list[str] = []
        for what, mine, theirs in (
            ("node", self.nodes, other.nodes),
            ("state channel", self.channels, other.channels),
        ):
            out += [f"{what} '{x}' missing" for x in sorted(mine - theirs)]
            out += [f"extra {what} '{x}'" for x in sorted(theirs - mine)]
        fmt = lambda e: f"{e[0]} -> {e[1]}{' (conditional)' if e[2] else ''}"  # noqa: E731
        out += [f"edge {fmt(e)} missing" for e in sorted(self.edges - other.edges)]
        out += [f"extra edge {fmt(e)}" for e in sorted(other.edges - self.edges)]
        return out

    def to_json(self) -> dict[str, list]:
        return {
            "nodes": sorted(self.nodes),
            "edges": sorted([list(e) for e in self.edges]),
            "channels": sorted(self.channels),
        }

    @classmethod
    def from_json(cls, raw: dict[str, list]) -> "Topology":
        return cls(
            frozenset(raw["nodes"]),
            frozenset((str(s), str(t), bool(c)) for s, t, c in raw["edges"]),
            frozenset(raw["channels"]),
        )


class TopologyGuard:
    """Compares each graph's topology across access contexts (module docstring).

    The server's processes (see :mod:`graphdock.runs.processes`) each have a guard; a
    ``listener`` is told every topology the guard sees first for a (graph, access context),
    and :meth:`observe` takes one seen by another process, so that the guards compare
    across processes (whichever process saw a graph first holds the reference)."""

    def __init__(self, mode: TopologyMode = "warn") -> None:
        self.mode = mode
        self._first: dict[str, tuple[str, Topology]] = {}
        self._checked: set[tuple[str, str]] = set()
        self.listener: Callable[[str, str, Topology], None] | None = None

    def references(self) -> list[tuple[str, str, Topology]]:
        """(graph id, access context, topology) of every graph's reference."""
        return [(graph_id, ctx, topology) for graph_id, (ctx, topology) in self._first.items()]

    def observe(self, graph_id: str, access_context: str, topology: Topology) -> None:
        """A topology another process saw first in ``access_context``: it becomes the
        reference if this guard has none, else it is compared (a difference is logged;
        the process that built the graph raised in mode ``error``)."""
        if self.mode == "off":
            return
        first = self._first.get(graph_id)
        if first is None:
            self._first[graph_id] = (access_context, topology)
        elif first[0] != access_context:
            diff = first[1].difference(topology)
            if diff:
                logger.warning(_message(graph_id, first[0], access_context, diff))

    def check(self, graph_id: str, access_context: str, graph: Pregel) -> None:
        if self.mode == "off":
            return
        if (graph_id, access_context) in self._checked:
            return
        self._checked.add((graph_id, access_context))
        try:
            topology = Topology.of(graph)
        except Exception:  # a graph that cannot be drawn is not compared
            return
        if self.listener is not None:
            self.listener(graph_id, access_context, topology)
        first = self._first.get(graph_id)
        if first is None:
            self._first[graph_id] = (access_context, topology)
            return
        first_context, reference = first
        diff = reference.difference(topology)
        if not diff:
            return
        message = _message(graph_id, first_context, access_context, diff)
        if self.mode == "error":
            self._checked.discard((graph_id, access_context))
            raise FailedDependency(message)
        logger.warning(message)


def _message(graph_id: str, first_context: str, access_context: str, diff: list[str]) -> str:
    return (
        f"graph '{graph_id}': the factory built a different topology in access context "
        f"'{access_context}' than in '{first_context}': {'; '.join(diff)}. "
        "A graph factory must return the same nodes, edges and state in every access context."
    )
