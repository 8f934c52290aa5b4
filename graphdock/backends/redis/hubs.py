"""Deployment-wide channels shared by every run: one subscription per process instead of a
SUBSCRIBE and an UNSUBSCRIBE per run.

A :class:`Hub` is the process's one listener of such a channel (``p:ends``: every run's
end marker; ``p:cancels``: every run's cancel requests). It hands each message to the
local listeners of the message's run, and offers them what :class:`Fanout` offers the
listeners of a channel of their own (``add`` / ``remove`` / ``confirmed``, and the
``subscribed`` / ``disconnected`` / ``stopped`` calls), keyed by run id. The hub
subscribes its channel when it gets its first listener and stays subscribed.

Each hub keeps what it received for the most recent runs (a bounded number of them): a
listener that arrives after its run's end marker, or after a cancel request made just
before it arrived, is given it at once (:meth:`Hub.add`). ``generation``
counts the subscriptions lost, so that a caller can tell that nothing was missed between
two moments (``confirmed`` at the first, the same generation at the second).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from graphdock.backends.redis.fanout import CancelRequest, Fanout, Listener, Message, RunEnded

#: runs whose messages a hub keeps while they have no listener
KEPT_RUNS = 4096


class Hub:
    """The process's listener of one deployment-wide channel (see the module)."""

    def __init__(
        self,
        fanout: Fanout,
        channel: bytes,
        run_of: Callable[[Message], str | None],
        observe: Callable[[str], None] | None = None,
    ) -> None:
        self.fanout = fanout
        self.channel = channel
        self._run_of = run_of
        self._observe = observe  # called with the run id of every message first
        self._listeners: dict[str, set[Listener]] = {}
        self._kept: OrderedDict[str, list[Message]] = OrderedDict()
        self._active = False
        self._confirmed = False
        self.generation = 0

    # -- what the runs' listeners use (as they would use the fan-out)
    def add(self, run_id: str, listener: Listener) -> None:
        """Deliver ``run_id``'s messages to ``listener``; those kept for it first."""
        if not self._active:
            self._active = True
            self.fanout.add(self.channel, self)
            self._confirmed = self.fanout.confirmed(self.channel)
        self._listeners.setdefault(run_id, set()).add(listener)
        for message in self._kept.get(run_id, ()):
            listener.message(message)

    def remove(self, run_id: str, listener: Listener) -> None:
        listeners = self._listeners.get(run_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[run_id]

    def confirmed(self, run_id: str = "") -> bool:
        """Whether every message published on the channel from now on reaches this process."""
        return self._active and self._confirmed

    # -- the fan-out's listener
    def message(self, message: Message) -> None:
        run_id = self._run_of(message)
        if run_id is None:
            return
        if self._observe is not None:
            self._observe(run_id)
        for listener in list(self._listeners.get(run_id, ())):
            listener.message(message)
        kept = self._kept.get(run_id)
        if kept is None:
            kept = self._kept[run_id] = []
            if len(self._kept) > KEPT_RUNS:
                self._kept.popitem(last=False)
        kept.append(message)

    def subscribed(self) -> None:
        self._confirmed = True
        for listener in self._all():
            listener.subscribed()

    def disconnected(self) -> None:
        self._confirmed = False
        self.generation += 1
        for listener in self._all():
            listener.disconnected()

    def stopped(self) -> None:
        for listener in self._all():
            listener.stopped()

    def _all(self) -> list[Listener]:
        return [listener for listeners in self._listeners.values() for listener in listeners]


def end_hub(fanout: Fanout, channel: bytes, observe: Callable[[str], None] | None = None) -> Hub:
    """The hub of the ends channel: :class:`RunEnded` messages by run."""
    return Hub(fanout, channel, lambda m: m.run_id if isinstance(m, RunEnded) else None, observe)


def cancel_hub(fanout: Fanout, channel: bytes) -> Hub:
    """The hub of the cancels channel: :class:`CancelRequest` messages by run."""
    return Hub(fanout, channel, lambda m: m.run_id if isinstance(m, CancelRequest) else None)
