"""A run process: executes the runs the server process hands it (see :mod:`.processes`).

Started by the server process as ``python -m graphdock.runs.run_process <fd> <log level>``, with the
server's settings in the environment and one end of a socket pair at file descriptor
``fd``. It loads the same graphs, opens the same SQLite file (its own connection: its
checkpoints, store items and run rows are committed as the server's are), sends each run's
events back over the socket, and stops the runs it is executing (leaving them pending, as
a server shutting down does) when the server asks it to stop or goes away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any, Callable

from graphdock import serde
from graphdock.backends.base import CancelAction
from graphdock.backends.cancels import CancelSignals
from graphdock.observability import logs, metrics
from graphdock.runs import processes as wire


METRICS_FLUSH_S = 1.0  # metric records not sent with a run's end go at the latest this late


class RemoteEvents:
    """The executor's event log in a run process: events go to the server's log over the
    socket; cancel signals come from it.

    The run and token records of :mod:`graphdock.observability.metrics` made here
    (:meth:`record`) are sent in one frame just before a run's end, so the server has
    counted a run when its client sees it finish, and otherwise within
    :data:`METRICS_FLUSH_S` (the tokens of a long run); not one frame each."""

    def __init__(self, channel: wire.FrameProtocol) -> None:
        self._channel = channel
        self.cancels = CancelSignals()  # fed by the server's cancel frames
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._metrics: list[Any] = []
        self._flush_armed = False

    def record(self, entry: Any) -> None:
        """Queue one metrics record (from the event loop, or a sync node's thread)."""
        self._metrics.append(entry)
        if not self._flush_armed:
            self._flush_armed = True
            if threading.get_ident() == self._loop_thread:
                self._loop.call_later(METRICS_FLUSH_S, self._timed_flush)
            else:
                self._loop.call_soon_threadsafe(self._loop.call_later, METRICS_FLUSH_S, self._timed_flush)

    def _timed_flush(self) -> None:
        self._flush_armed = False
        self.flush_metrics()

    def flush_metrics(self) -> None:
        if self._metrics:
            entries, self._metrics = self._metrics, []
            self._channel.write(wire.frame(wire.METRICS, serde.dumps(entries)))

    async def open(self, run_id: str, thread_id: str | None, *, resumable: bool) -> None:
        self._channel.write(wire.frame(wire.OPEN, serde.dumps([run_id, thread_id, resumable])))

    async def publish(self, run_id: str, event: str, data: bytes) -> None:
        name = event.encode()
        self._channel.write(
            wire.frame(wire.PUBLISH, wire.run_id_bytes(run_id) + bytes((len(name),)) + name + data)
        )
        if self._channel.paused:
            await self._channel.drain()  # the server reads slower than the graph writes

    async def close(self, run_id: str) -> None:
        self.flush_metrics()  # counted before anyone sees the run end
        self._channel.write(wire.frame(wire.CLOSE, wire.run_id_bytes(run_id)))

    async def on_cancel(self, run_id: str, callback: Callable[[CancelAction], None]) -> list[CancelAction]:
        return self.cancels.listen(run_id, callback)

    async def release_cancel(self, run_id: str) -> None:
        self.cancels.release(run_id)


async def serve(fd: int) -> None:
    from graphdock.backends import open_backend
    from graphdock.config import Settings
    from graphdock.hosting import Hosting, load_graphs
    from graphdock.runs.executor import Executor
    from graphdock.process import tune_gc

    settings = Settings.from_json(os.environ[wire.SETTINGS_ENV])
    settings.config.apply_env()
    from graphdock.observability import tracing

    tracing.setup()  # the server's OTEL_* variables: this process's runs are traced too
    from graphdock.hosting import loopback

    loopback.prepare()  # before the graphs are imported
    graphs = load_graphs(settings.config)
    from graphdock.hosting.embeddings import resolve_store_index

    async with open_backend(settings, "run-process", store_index=resolve_store_index(settings.config)) as backend:
        storage, saver, store = backend.storage, backend.checkpointer, backend.store
        hosting = Hosting(graphs, store=store, checkpointer=saver, topology=settings.topology_check)  # type: ignore[arg-type]
        tasks: dict[str, asyncio.Task[None]] = {}
        stop = asyncio.Event()

        def on_frame(kind: int, body: bytes) -> None:
            if kind == wire.RUN:
                run_id, _ = wire.split_run_id(body, 1)
                tasks[run_id] = asyncio.create_task(execute(run_id, body[:1] == b"1"))
            elif kind == wire.CANCEL:
                run_id, _ = wire.split_run_id(body, 1)
                if run_id in tasks:
                    events.cancels.request(run_id, "rollback" if body[:1] == b"r" else "interrupt")
            elif kind == wire.TOPOLOGY:
                wire.observe_topology(hosting.topology, body)
            elif kind == wire.STOP:
                stop.set()

        channel = await wire.connect(socket.socket(fileno=fd), on_frame, stop.set)
        hosting.topology.listener = lambda graph_id, access_context, topology: channel.write(
            wire.topology_frame(graph_id, access_context, topology)
        )
        events = RemoteEvents(channel)
        # the runs and token usage counted here appear on the server process's /metrics
        metrics.forward_to(events.record)
        executor = Executor(
            storage, hosting, events, run_timeout=settings.run_timeout, max_attempts=settings.max_attempts  # type: ignore[arg-type]
        )
        from graphdock.webhooks import delivery as webhook_delivery

        webhook_delivery.install(settings.config.webhooks)  # runs executed here deliver their webhooks

        async def execute(run_id: str, claimed: bool) -> None:
            try:
                row = await storage.get_run(run_id) if claimed else None
                if claimed and row is None:
                    await events.close(run_id)  # deleted meanwhile: nothing to execute
                else:
                    await executor.execute(run_id, row)
            except asyncio.CancelledError:
                await storage.release_run(run_id)  # stopping: pending for the next start
            except Exception:
                logging.getLogger("graphdock.runs").exception("run process failed on run %s", run_id)
            finally:
                tasks.pop(run_id, None)
                channel.write(wire.frame(wire.DONE, wire.run_id_bytes(run_id)))

        # get_client() without url in a graph: relayed to the server process, which keeps the
        # queue and the event logs
        loopback.install_relay()
        tune_gc()
        channel.write(wire.frame(wire.READY, str(os.getpid()).encode()))
        await stop.wait()  # the server asked, or went away
        running = list(tasks.values())
        for task in running:
            task.cancel()  # each run is handed back, pending, to be retried
        await asyncio.gather(*running, return_exceptions=True)
        await channel.drain()
        channel.close()
    if tracing.enabled:
        await tracing.ashutdown()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server process decides when to stop
    level = sys.argv[2] if len(sys.argv) > 2 else "WARNING"  # the server's log level
    logs.configure(level)  # the server's kind of line (LOG_JSON is inherited)
    fd = int(sys.argv[1])
    try:
        import uvloop

        uvloop.run(serve(fd))
    except ImportError:
        asyncio.run(serve(fd))


if __name__ == "__main__":
    main()
