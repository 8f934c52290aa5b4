"""The only code that touches user graphs: loading, factories, and opening a graph per access."""

from graphdock.hosting.access import AccessContext
from graphdock.hosting.graph import Hosting, system_assistant_id
from graphdock.hosting.loader import LoadedGraph, check_graphs, load_graphs

__all__ = [
    "AccessContext",
    "Hosting",
    "LoadedGraph",
    "check_graphs",
    "load_graphs",
    "system_assistant_id",
]
