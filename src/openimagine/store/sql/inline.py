"""SQLite on the event loop's own thread, for the statements of every submit and poll.

perf: a second Python thread that writes costs the event loop more than the writes do: each
time the thread takes the interpreter lock back from a busy loop it waits for a switch, and
the handoffs themselves are dear. SQLite in WAL mode is an in-process library whose reads
never wait for writers, so the hot statements run right on the loop:

- submits made during one turn of the loop are inserted together in one transaction (group
  commit) right after it, with `BEGIN IMMEDIATE` that never waits: when another process holds
  the write lock, the batch goes to the writer thread instead, which waits for it;
- a poll's read runs at once, on a connection of its own (falling back to a reader thread in
  the rare case that SQLite reports the database busy);
- WAL checkpoints, which write the database file and sync it, run on a background thread
  (`Checkpointer`), never in a commit on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from openimagine.store.sql.executor import Executor, SyncExecutor, drive

log = logging.getLogger(__name__)

_PRAGMAS = (
    "PRAGMA busy_timeout=5000",  # while setting up: another process may hold the lock
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=0",  # never wait on the loop: hand the work to a thread instead
    "PRAGMA wal_autocheckpoint=0",  # the Checkpointer's job
    # perf: SQLite's default puts the temporary b-trees of a RETURNING or an IN list in a file
    # it creates and unlinks per statement (three system calls each, on every submit batch).
    "PRAGMA temp_store=MEMORY",
    # perf: the default 2 MiB cache misses on the task index (random UUIDs) once the table
    # outgrows it, and every miss is a read through the WAL index.
    "PRAGMA cache_size=-65536",
)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
    for pragma in _PRAGMAS:
        conn.execute(pragma)
    return conn


def _busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


# A hot write: `fn(executor, [args, ...])` → `(ok, value or exception)` for each.
Together = Callable[[Executor, list[tuple[Any, ...]]], Coroutine[Any, Any, list[tuple[bool, Any]]]]


def _settle(batch: list[Any], outcomes: list[tuple[bool, Any]]) -> None:
    for (_fn, _args, future), (ok, value) in zip(batch, outcomes, strict=True):
        if future.done():  # its caller stopped waiting
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class InlineSqlite:
    """The loop-thread connections of one SQLite database.

    Args:
        path: The database file.
        fallback_write: Runs a `together` write on the writer thread (awaitable).
        after_commit: Called after a batch that woke workers has committed.
        committed: Called after every commit (the checkpointer's nudge).
        paused: Whether batches should wait (the checkpointer's `paused`).
    """

    def __init__(
        self,
        path: str,
        fallback_write: Callable[[Together, tuple[Any, ...]], Any],
        after_commit: Callable[[], None],
        committed: Callable[[], None],
        paused: Callable[[], bool],
    ) -> None:
        self.path = path
        self._paused = paused
        self._fallback_write = fallback_write
        self._after_commit = after_commit
        self._committed = committed
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._pending: list[tuple[Together, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._detours: set[asyncio.Task[None]] = set()

    # -- writes ----------------------------------------------------------------------------

    async def write_together(self, fn: Together, args: tuple[Any, ...]) -> Any:
        """Run `fn(conn, [args, ...])` for this write and the others of this turn of the loop,
        in one transaction right after it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((fn, args, future))
        return await future

    def _flush(self) -> None:
        if self._paused():  # a checkpoint is starting the WAL over: gather a little longer
            asyncio.get_running_loop().call_later(_PAUSE_S, self._flush)
            return
        batch, self._pending = self._pending, []
        if self._writer is None:
            self._writer = _connect(self.path)
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                self._detour(batch)  # another process writes: wait for it on the writer thread
            else:
                _settle(batch, [(False, exc)] * len(batch))
            return
        session = SyncExecutor(conn, "sqlite")
        try:
            outcomes = self._run(session, batch)
            conn.execute("COMMIT")
        except Exception as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and _busy(exc):
                self._detour(batch)
                return
            outcomes = [(False, exc)] * len(batch)
        self._committed()
        if session.woken:
            self._after_commit()
        _settle(batch, outcomes)

    @staticmethod
    def _run(session: SyncExecutor, batch: list[Any]) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        start = 0
        while start < len(batch):  # runs of the same function, each called once
            fn = batch[start][0]
            end = start
            while end < len(batch) and batch[end][0] is fn:
                end += 1
            outcomes.extend(drive(fn(session, [item[1] for item in batch[start:end]])))
            start = end
        return outcomes

    def _detour(self, batch: list[Any]) -> None:
        async def via_thread(fn: Together, args: tuple[Any, ...], future: Any) -> None:
            try:
                value = await self._fallback_write(fn, args)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(value)

        for fn, args, future in batch:
            task = asyncio.ensure_future(via_thread(fn, args, future))
            self._detours.add(task)  # keep a reference until it is done
            task.add_done_callback(self._detours.discard)

    # -- reads -----------------------------------------------------------------------------

    def read(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
        """`fn(executor, *args)` in one snapshot, now; `BlockingIOError` if SQLite says busy
        (the caller then reads on a thread)."""
        if self._reader is None:
            self._reader = _connect(self.path)
        conn = self._reader
        try:
            conn.execute("BEGIN")
            try:
                return drive(fn(SyncExecutor(conn, "sqlite"), *args))
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                raise BlockingIOError(str(exc)) from exc
            raise

    def close(self) -> None:
        """Close the connections (pending writes are the caller's to await first)."""
        for conn in (self._writer, self._reader):
            if conn is not None:
                conn.close()
        self._writer = self._reader = None


_HOLD_MS = 2000  # the longest a TRUNCATE checkpoint waits for another process's writer
_PAUSE_S = 0.002  # how soon a paused batch looks again


class Checkpointer:
    """Copies the WAL back into the database file from a background thread once it has grown
    past `wal_bytes`, and starts it over, so that no commit on the event loop pays for it and
    the WAL stays small. It looks only after commits (`nudge`), at most every `every_s`: an
    idle server wakes nobody.

    A passive checkpoint never blocks a writer, but under a steady stream of commits it never
    catches up with the last frame either, and SQLite starts the WAL over only once it has: the
    WAL of a busy server grew by 10 kB a submit without end (200 MB in a minute of `wrk`), and
    every commit and read searched its growing index. So a passive checkpoint copies most of
    it; then the loop's writer pauses (`paused`: batches keep gathering, a few milliseconds
    longer) while a TRUNCATE checkpoint copies the rest and empties the file, whose size is
    then what was written since, which is what this thread watches. Without the pause, the
    TRUNCATE lost the race for the write lock to the loop's next batch, again and again.
    """

    def __init__(self, path: str, wal_bytes: int = 8 << 20, every_s: float = 0.05) -> None:
        self.path = path
        self.wal_bytes = wal_bytes
        self.every_s = every_s
        self._stop = threading.Event()
        self._nudged = threading.Event()
        self._holding = threading.Event()
        self._thread: threading.Thread | None = None

    def nudge(self) -> None:
        """Something was committed: look at the WAL soon."""
        self._nudged.set()

    def paused(self) -> bool:
        """Whether writers on the loop should wait: a TRUNCATE checkpoint is under way."""
        return self._holding.is_set()

    def start(self) -> None:
        """Begin (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="openimagine-checkpoint", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={_HOLD_MS}")
        try:
            while not self._stop.wait(self.every_s):
                self._nudged.wait()
                self._nudged.clear()
                if self._stop.is_set():
                    return
                try:
                    if os.path.getsize(self.path + "-wal") > self.wal_bytes:
                        self._checkpoint(conn)
                except (OSError, sqlite3.Error) as exc:
                    log.debug("checkpoint skipped: %s", exc)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._holding.set()
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._holding.clear()

    def stop(self) -> None:
        """Stop and wait for the thread."""
        self._stop.set()
        self._nudged.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
