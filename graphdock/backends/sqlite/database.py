"""One SQLite file per process: graphdock's rows, langgraph's checkpointer and its store.

All writes and all point reads go through one connection, on the calling thread (the
event loop), each operation one synchronous function run as one transaction
(``BEGIN IMMEDIATE`` for writes) under one lock. On a local WAL database such a
transaction takes tens of microseconds; handing it to another thread costs more than
that, and under load each hand-off also waits for the GIL. Since every in-process
writer uses this connection, SQLite's own write lock is never contended inside the
process, so a transaction on the event loop never waits for another one of the process.
Another process may write to the same file (graphdock's run processes, a backup tool):
a write that finds SQLite's lock taken retries ``BEGIN IMMEDIATE`` after waits that
start at tens of microseconds (SQLite's own busy handler sleeps a millisecond or more
at once, far longer than the other process's transaction), for at most
:attr:`Database.BUSY_TIMEOUT_S`.

Reads whose cost grows with the data (searches, counts, listings) run instead on a
reader thread with its own connection (WAL readers never block the writer and see
every committed transaction), so a large search never stalls the event loop.

Durability is SQLite's: WAL with ``synchronous=NORMAL`` (a committed transaction
survives a crash of the process; a power loss may lose the transactions since the
last WAL checkpoint) or ``synchronous=FULL`` (each commit is synced to disk before it
returns). WAL checkpoints, the step that copies the log into the database file and
syncs it, never run on the event loop: the connection's automatic checkpoint is off and
a background thread with its own connection checkpoints after every
:attr:`Database.CHECKPOINT_EVERY` commits (the bulk while writes go on, then the last
frames with this process's writes held back for a moment, so that the log starts over).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, TypeVar

from graphdock.backends.sqlite.vectors import enable_vectors

logger = logging.getLogger("graphdock.sqlite")

T = TypeVar("T")
Synchronous = Literal["NORMAL", "FULL"]
SYNCHRONOUS_SETTINGS: tuple[Synchronous, ...] = ("NORMAL", "FULL")


class Database:
    """A SQLite file opened once per process; see the module docstring."""

    CHECKPOINT_EVERY = 500
    BUSY_TIMEOUT_S = 30.0

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: Synchronous = "NORMAL",
        functions: dict[str, Callable[..., Any]] | None = None,
    ) -> None:
        if synchronous not in SYNCHRONOUS_SETTINGS:
            raise ValueError(f"unknown SQLite synchronous setting {synchronous!r}")
        self.path = str(path)
        self.synchronous = synchronous
        self.functions = dict(functions or {})  # deterministic SQL functions of two arguments
        self._memory = self.path == ":memory:"
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._reader: ThreadPoolExecutor | None = None
        self._reader_local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._commits = 0
        self._wake = threading.Event()
        self._stop = False
        self._checkpointer: threading.Thread | None = None
        self.vectors: str | None = None  # see enable_vectors

    # -- lifecycle -------------------------------------------------------------

    def open(self) -> None:
        if self._conn is not None:
            return
        if not self._memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=0")  # transactions wait in _begin (module docstring)
        self._conn = conn
        if not self._memory:
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="graphdock-sqlite-reader")
            self._stop = False
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="graphdock-wal-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=30000")
        for name, fn in self.functions.items():
            conn.create_function(name, 2, fn, deterministic=True)
        if self.vectors is not None:
            enable_vectors(conn)
        return conn

    def enable_vectors(self) -> str:
        """Give the shared connection, and every connection opened after, the vector
        distance functions of langgraph's SQLite store (sqlite-vec, or their Python
        equivalents where this Python cannot load SQLite extensions: see
        :mod:`graphdock.backends.sqlite.vectors`). Returns which."""
        with self._lock:
            if self.vectors is None:
                self.vectors = enable_vectors(self.conn)
            return self.vectors

    def close(self) -> None:
        if self._checkpointer is not None:
            self._stop = True
            self._wake.set()
            self._checkpointer.join(timeout=10)
            self._checkpointer = None
        if self._reader is not None:
            self._reader.shutdown(wait=True)
            self._reader = None
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        with self._lock:
            if self._conn is not None:
                self._conn.close()  # the last connection to close checkpoints the WAL
                self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "the database is not open"
        return self._conn

    # -- transactions on the shared connection ---------------------------------

    @contextmanager
    def locked(self) -> Iterator[sqlite3.Connection]:
        """Hold the connection without starting a transaction (for schema set-up, whose
        statements wait for SQLite's lock in SQLite's own busy handler)."""
        with self._lock:
            conn = self.conn
            conn.execute(f"PRAGMA busy_timeout={int(self.BUSY_TIMEOUT_S * 1000)}")
            try:
                yield conn
            finally:
                conn.execute("PRAGMA busy_timeout=0")

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """Hold the connection for one transaction; a use inside a transaction joins it.

        ``write`` starts with ``BEGIN IMMEDIATE``. A read runs its statements in autocommit
        mode: holding the connection is enough for them to see one state, since every
        write of this process goes through it.
        """
        with self._lock:
            conn = self.conn
            if not write or conn.in_transaction:
                yield conn
                return
            self._begin(conn)
            with self._committing(conn):
                yield conn

    def write(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` in one write transaction on the shared connection."""
        with self.transaction(write=True) as conn:
            return fn(conn, *args)

    async def awrite(self, fn: Callable[..., T], *args: Any) -> T:
        """:meth:`write`, except that while another process holds SQLite's write lock the
        event loop goes on with other work instead of waiting (``fn`` itself runs at once,
        without yielding, in the transaction)."""
        lock = self._lock
        lock.acquire()
        try:
            conn = self.conn
            if conn.in_transaction:
                return fn(conn, *args)  # joins the transaction this thread holds
            tries, deadline = 0, time.monotonic() + self.BUSY_TIMEOUT_S
            while not self._try_begin(conn, deadline):
                tries += 1
                if tries <= 2:
                    delay = 0.0  # first let what is ready on the loop run
                elif tries <= 12:
                    time.sleep(0.00003)  # the other transaction is short: wait here
                    continue
                else:
                    delay = min(0.001 * (tries - 12), 0.01)
                lock.release()
                try:
                    await asyncio.sleep(delay)
                finally:
                    lock.acquire()
            with self._committing(conn):
                return fn(conn, *args)
        finally:
            lock.release()

    def _begin(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, waiting while another process holds SQLite's write lock."""
        deadline = time.monotonic() + self.BUSY_TIMEOUT_S
        delay = 0.00002
        while not self._try_begin(conn, deadline):
            time.sleep(delay)  # releases the GIL: the process's other threads go on
            delay = min(delay * 2, 0.002)

    @staticmethod
    def _try_begin(conn: sqlite3.Connection, deadline: float) -> bool:
        """``BEGIN IMMEDIATE``; False when another process holds SQLite's write lock (an
        error once ``deadline`` has passed)."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
            return False

    @contextmanager
    def _committing(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Commit the transaction begun on ``conn`` at the end of the block; roll it back
        if the block raises."""
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self._committed()

    def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` on the shared connection, held for the whole call."""
        with self.transaction(write=False) as conn:
            return fn(conn, *args)

    # -- reads off the event loop ----------------------------------------------

    async def scan(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` in one read transaction on the reader thread's connection
        (on the shared connection for an in-memory database)."""
        if self._reader is None:
            return self.read(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._reader, self._scan, fn, args)

    def _scan(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = getattr(self._reader_local, "conn", None)
        if conn is None:
            conn = self._reader_local.conn = self._connect()
            conn.execute("PRAGMA query_only=1")
            self._reader_conns.append(conn)
        conn.execute("BEGIN")
        try:
            return fn(conn, *args)
        finally:
            conn.execute("COMMIT")

    # -- WAL checkpoints -------------------------------------------------------

    def _committed(self) -> None:
        self._commits += 1
        if self._commits >= self.CHECKPOINT_EVERY:
            self._commits = 0
            self._wake.set()

    def _checkpoint_loop(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stop:
                    return
                try:
                    # the bulk of the log, while the process goes on writing
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    # what was appended meanwhile, with this process's writes held back: a
                    # complete checkpoint lets the next write start the log over, so the
                    # log file stops growing
                    with self._lock:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    logger.exception("WAL checkpoint of %s failed", self.path)
        finally:
            conn.close()
