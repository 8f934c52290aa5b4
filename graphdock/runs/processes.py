"""Run processes: executing runs in processes of their own, next to the server process.

One server process parses every request, keeps the queue, the event logs and the cancel
signals. When its event loop is saturated, one core does all the work while the others
idle; a run process (``graphdock.runs.run_process``) then takes runs off it: it imports the
same graphs, opens the same SQLite file with its own connection, and executes the runs it
is handed with the same :class:`~graphdock.runs.executor.Executor`. Their events come back
over a socket to the server's event logs, so clients stream, join and cancel exactly as
for a run executed in the server process.

:class:`RunProcesses` decides where each run goes. Policy ``saturated`` (the default)
starts the run processes only once the server's event loop has been saturated while runs
execute, then hands them most runs (the server process keeps a run when they are well
ahead of it), and stops them after :data:`IDLE_STOP_S` seconds without a run, so an idle
server is one process. Policy ``always`` starts them with the server and executes every
run in them, never in the server process (a run process that exits is replaced; its runs
in flight end with an error).

Frames on the socket: a 4-byte big-endian body length, a 1-byte kind, the body. Run ids are
sent as a 1-byte length and the id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import sys
import time
from typing import Any, Callable

from graphdock import serde
from graphdock.backends.base import CancelAction
from graphdock.hosting.topology import Topology, TopologyGuard
from graphdock.observability import metrics

logger = logging.getLogger("graphdock.runs.processes")

SETTINGS_ENV = "GRAPHDOCK_SETTINGS"
IDLE_STOP_S = 300.0  # a run process that was handed no run for this long is stopped
BUSY_TO_START = 0.9  # the server loop's busy share (one queue window) that starts them
READY_TIMEOUT_S = 120.0
RETRY_S = 10.0  # after a run process failed to start, the next attempt waits this long
STOP_TIMEOUT_S = 10.0

HEADER = struct.Struct(">IB")

# server -> run process
RUN = ord("R")  # body: claimed flag (b"1"/b"0") + run id
CANCEL = ord("C")  # body: action (b"i" interrupt, b"r" rollback) + run id
STOP = ord("S")  # body empty: stop (running runs are left pending), then exit
# run process -> server
READY = ord("Y")  # body: the process id as ASCII
OPEN = ord("O")  # body: JSON [run_id, thread_id, resumable]
PUBLISH = ord("P")  # body: run id, 1-byte event name length, event name, data
CLOSE = ord("E")  # body: run id
DONE = ord("D")  # body: run id (the run's execution returned)
METRICS = ord("M")  # body: JSON, a list of records of graphdock.observability.metrics (runs, tokens)
# both ways
TOPOLOGY = ord("T")  # body: JSON [graph_id, access_context, topology] (see hosting.topology)


def topology_frame(graph_id: str, access_context: str, topology: Topology) -> bytes:
    return frame(TOPOLOGY, serde.dumps([graph_id, access_context, topology.to_json()]))


def observe_topology(guard: TopologyGuard, body: bytes) -> None:
    graph_id, access_context, raw = serde.loads(body)
    guard.observe(graph_id, access_context, Topology.from_json(raw))


def frame(kind: int, body: bytes = b"") -> bytes:
    return HEADER.pack(len(body), kind) + body


def run_id_bytes(run_id: str) -> bytes:
    raw = run_id.encode()
    return bytes((len(raw),)) + raw


def split_run_id(body: bytes, start: int = 0) -> tuple[str, int]:
    """The run id at ``start`` of ``body`` and the index after it."""
    n = body[start]
    end = start + 1 + n
    return body[start + 1 : end].decode(), end


class FrameProtocol(asyncio.Protocol):
    """One end of the socket: each whole frame received is handed to ``on_frame(kind,
    body)`` at once, from the transport's callback (an event reaches the server's event
    log without waiting for a task to be scheduled); ``on_lost()`` when the other end is
    gone. :meth:`write` sends a frame's bytes; :meth:`drain` waits while the socket's
    buffer is full."""

    def __init__(self, on_frame: Callable[[int, bytes], None], on_lost: Callable[[], None]) -> None:
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.paused = False
        self._resumed: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        pos, end_of_data = 0, len(buffer)
        while end_of_data - pos >= HEADER.size:
            size, kind = HEADER.unpack_from(buffer, pos)
            end = pos + HEADER.size + size
            if end > end_of_data:
                break
            body = bytes(buffer[pos + HEADER.size : end])
            pos = end
            try:
                self._on_frame(kind, body)
            except Exception:
                logger.exception("handling a frame of kind %r failed", chr(kind))
        if pos:
            del buffer[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._wake()
        self._on_lost()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()

    def _wake(self) -> None:
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)
        self._resumed = None

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        while self.paused and self.transport is not None:
            if self._resumed is None:
                self._resumed = asyncio.get_running_loop().create_future()
            await self._resumed

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(
    sock: socket.socket, on_frame: Callable[[int, bytes], None], on_lost: Callable[[], None]
) -> FrameProtocol:
    protocol = FrameProtocol(on_frame, on_lost)
    await asyncio.get_running_loop().create_unix_connection(lambda: protocol, sock=sock)
    return protocol


class RunProcessLost(Exception):
    """The run process executing a run exited before the run ended."""


class RunProcess:
    """One run process, seen from the server process."""

    def __init__(self, settings_json: str, events: Any, guard: TopologyGuard, index: int) -> None:
        self._settings_json = settings_json
        self._events = events  # the server's MemoryEventLog
        self._guard = guard
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = False
        self.stopping = False
        self.last_used = time.monotonic()
        self._channel: FrameProtocol | None = None
        self._gone = asyncio.get_running_loop().create_future()  # set when the socket closes
        self._ready = asyncio.get_running_loop().create_future()
        self._runs: dict[str, asyncio.Future[None]] = {}

    @property
    def inflight(self) -> int:
        return len(self._runs)

    async def start(self) -> None:
        began = time.monotonic()
        parent, child = socket.socketpair()
        try:
            env = dict(os.environ)
            env[SETTINGS_ENV] = self._settings_json
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "graphdock.runs.run_process",
                str(child.fileno()),
                logging.getLevelName(logging.getLogger().getEffectiveLevel()),
                pass_fds=(child.fileno(),),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            child.close()
        self._channel = await connect(parent, self._on_frame, self._on_lost)
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await asyncio.shield(self._ready)
        except BaseException:
            await self.stop(timeout=1.0)
            raise
        self.ready = True
        for graph_id, access_context, topology in self._guard.references():
            self.send_topology(graph_id, access_context, topology)
        logger.info(
            "run process %d started (pid %s) in %.1fs", self.index, self.proc.pid, time.monotonic() - began
        )

    def execute(self, run_id: str, claimed: bool) -> asyncio.Future[None]:
        """Hand ``run_id`` over; the future ends when its execution has returned."""
        assert self._channel is not None and self.ready and not self.stopping
        future = asyncio.get_running_loop().create_future()
        self._runs[run_id] = future
        self.last_used = time.monotonic()
        self._channel.write(frame(RUN, (b"1" if claimed else b"0") + run_id_bytes(run_id)))
        return future

    def send_topology(self, graph_id: str, access_context: str, topology: Topology) -> None:
        if self._channel is not None:
            self._channel.write(topology_frame(graph_id, access_context, topology))

    def cancel(self, run_id: str, action: CancelAction) -> None:
        if self._channel is not None and run_id in self._runs:
            flag = b"r" if action == "rollback" else b"i"
            self._channel.write(frame(CANCEL, flag + run_id_bytes(run_id)))

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Ask the process to stop (its running runs are left pending) and wait for it."""
        self.stopping = True
        self.ready = False
        if self._channel is not None:
            self._channel.write(frame(STOP))
        proc = self.proc
        if proc is not None and proc.returncode is None:
            try:
                async with asyncio.timeout(timeout):
                    await proc.wait()
            except TimeoutError:
                logger.warning("run process %d did not stop in %gs; killing it", self.index, timeout)
                proc.kill()
                await proc.wait()
        if self._channel is not None:
            self._channel.close()
            try:
                async with asyncio.timeout(1.0):
                    await asyncio.shield(self._gone)
            except TimeoutError:
                pass

    def _on_frame(self, kind: int, body: bytes) -> None:
        events = self._events
        if kind == PUBLISH:
            run_id, at = split_run_id(body)
            n = body[at]
            events.publish_now(run_id, body[at + 1 : at + 1 + n].decode(), body[at + 1 + n :])
        elif kind == DONE:
            future = self._runs.pop(split_run_id(body)[0], None)
            if future is not None and not future.done():
                future.set_result(None)
        elif kind == CLOSE:
            events.close_now(split_run_id(body)[0])
        elif kind == OPEN:
            run_id, thread_id, resumable = serde.loads(body)
            events.open_now(run_id, thread_id, resumable=resumable)
        elif kind == METRICS:
            for entry in serde.loads(body):
                metrics.apply(entry)
        elif kind == TOPOLOGY:
            observe_topology(self._guard, body)
        elif kind == READY:
            if not self._ready.done():
                self._ready.set_result(None)
        else:
            logger.error("run process %d sent an unknown frame %r", self.index, kind)

    def _on_lost(self) -> None:
        self.ready = False
        self.stopping = True
        if not self._gone.done():
            self._gone.set_result(None)
        if not self._ready.done():
            self._ready.set_exception(RuntimeError(f"run process {self.index} exited while starting"))
        lost = list(self._runs.values())
        self._runs.clear()
        if lost:
            logger.error("run process %d exited with %d run(s) in flight", self.index, len(lost))
        for future in lost:
            if not future.done():
                future.set_exception(RunProcessLost("the run's process exited before the run ended"))


class RunProcesses:
    """Where runs execute: the server process, or one of up to ``size`` run processes."""

    def __init__(
        self,
        settings_json: str,
        events: Any,
        guard: TopologyGuard,
        *,
        size: int,
        per_process: int = 10,
        policy: str = "saturated",
        busy: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.size = size
        self.per_process = per_process  # runs a run process executes at once at most
        self.policy = policy
        self._settings_json = settings_json
        self._events = events
        self._guard = guard
        guard.listener = self._share_topology
        self._busy = busy  # the server loop's busy share in the queue's last window
        self._procs: list[RunProcess] = []
        self._starting: asyncio.Task[None] | None = None
        self._reaper: asyncio.TimerHandle | None = None
        self._retry_at = 0.0  # no new start attempt before (after one failed)
        self._stopping: set[asyncio.Task[None]] = set()  # idle run processes being stopped
        self._closed = False

    @property
    def enabled(self) -> bool:
        return self.size > 0

    @property
    def running(self) -> list[RunProcess]:
        return [p for p in self._procs if p.ready]

    async def start(self) -> None:
        if self.enabled and self.policy == "always":
            await self._spawn(self.size)

    async def stop(self) -> None:
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
        if self._starting is not None:
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        procs, self._procs = self._procs, []
        await asyncio.gather(*(p.stop() for p in procs), *self._stopping, return_exceptions=True)

    def pick(self, local_inflight: int) -> RunProcess | None:
        """The run process to execute the next run, or None for the server process."""
        if not self.enabled or self._closed:
            return None
        ready = [p for p in self._procs if p.ready]
        if len(ready) < self.size and (self.policy == "always" or self._busy() >= BUSY_TO_START):
            self._start_more()
        if not ready:
            return None
        if self.policy == "always":
            return min(ready, key=lambda p: p.inflight)
        best = min(ready, key=lambda p: p.inflight)
        # the server process also parses every request and runs the API: a run stays in
        # it only when the run processes are well ahead of it (or full)
        if best.inflight > 2 * local_inflight + 1 or best.inflight >= self.per_process:
            return None
        return best

    def _share_topology(self, graph_id: str, access_context: str, topology: Topology) -> None:
        for proc in self._procs:
            if proc.ready:
                proc.send_topology(graph_id, access_context, topology)

    async def wait_ready(self) -> RunProcess:
        """A run process for policy ``always`` when :meth:`pick` found none ready: the one
        being started; RunProcessLost when none can be started."""
        while not self._closed:
            ready = [p for p in self._procs if p.ready]
            if ready:
                return min(ready, key=lambda p: p.inflight)
            self._start_more()
            starting = self._starting
            if starting is None:
                break
            await asyncio.shield(starting)
            if not any(p.ready for p in self._procs):
                break
        if self._closed:
            raise asyncio.CancelledError()  # the server is stopping
        raise RunProcessLost("no run process could be started (see the server's log)")

    def _start_more(self) -> None:
        if self._starting is None and time.monotonic() >= self._retry_at:
            self._starting = asyncio.create_task(self._spawn(self.size), name="run-processes-start")

    async def _spawn(self, size: int) -> None:
        try:
            self._procs = [p for p in self._procs if not p.stopping]
            while len(self._procs) < size and not self._closed:
                proc = RunProcess(self._settings_json, self._events, self._guard, len(self._procs))
                self._procs.append(proc)
                try:
                    await proc.start()
                except Exception:
                    logger.exception("starting a run process failed; runs stay in the server process")
                    self._procs.remove(proc)
                    self._retry_at = time.monotonic() + RETRY_S
                    return
            if self.policy != "always" and self._reaper is None and not self._closed:
                self._reaper = asyncio.get_running_loop().call_later(IDLE_STOP_S, self._reap)
        finally:
            self._starting = None

    def _reap(self) -> None:
        """Stop the run processes that were handed no run for :data:`IDLE_STOP_S`."""
        self._reaper = None
        if self._closed:
            return
        now = time.monotonic()
        for proc in list(self._procs):
            if proc.stopping or (proc.ready and not proc.inflight and now - proc.last_used >= IDLE_STOP_S):
                self._procs.remove(proc)
                if not proc.stopping:
                    logger.info("run process %d idle for %gs: stopping it", proc.index, IDLE_STOP_S)
                    proc.ready = False  # from now on pick() passes it over
                    task = asyncio.create_task(proc.stop(), name=f"run-process-{proc.index}-stop")
                    self._stopping.add(task)
                    task.add_done_callback(self._stopping.discard)
        if self._procs:
            self._reaper = asyncio.get_running_loop().call_later(IDLE_STOP_S / 3, self._reap)
