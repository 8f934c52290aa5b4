"""Cancel requests known in this process: who to tell, and what was asked so far.

Shared by the event logs that deliver cancel signals (the in-process one, and the Redis
one, whose messages from other processes end up here) and by a run process, which
receives its server's cancel requests over a socket.
"""

from __future__ import annotations

from typing import Callable

from graphdock.backends.base import CancelAction


class CancelSignals:
    """Per run: the actions requested (the last one counts) and the callbacks to call."""

    def __init__(self) -> None:
        self._runs: dict[str, tuple[list[CancelAction], list[Callable[[CancelAction], None]]]] = {}

    def listen(self, run_id: str, callback: Callable[[CancelAction], None]) -> list[CancelAction]:
        """Call ``callback(action)`` at each later request for ``run_id`` and, at once, for
        each one already made; returns the list of actions, which keeps growing."""
        actions, callbacks = self._runs.setdefault(run_id, ([], []))
        callbacks.append(callback)
        for action in list(actions):
            callback(action)
        return actions

    def request(self, run_id: str, action: CancelAction) -> None:
        actions, callbacks = self._runs.setdefault(run_id, ([], []))
        actions.append(action)
        for callback in list(callbacks):
            callback(action)

    def known(self, run_id: str) -> bool:
        return run_id in self._runs

    def release(self, run_id: str) -> None:
        self._runs.pop(run_id, None)
