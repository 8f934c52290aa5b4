"""Process-wide tuning shared by every kind of graphdock process."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Keep Python's cyclic garbage collector off the request path once start-up is done.

    The objects built at start-up (modules, graphs, the app) live as long as the process:
    ``gc.freeze()`` moves them out of the collector's reach, so a full collection no longer
    walks them all (pauses of tens of milliseconds in the middle of requests). A larger
    first-generation threshold makes collections rarer; they still run.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)
