"""Group commit: one thread per process writes for every caller, many writes a transaction.

Concurrent writes (submits from many clients, a worker's heartbeats) queue here; the thread
takes all that are waiting, runs each in a savepoint of one transaction, commits once, and
hands every caller its own result or error. A commit (and, on SQLite, the write lock; on
PostgreSQL, the WAL flush) is paid per batch instead of per write, and the event loop never
waits on the database: it awaits a future the thread resolves.

A write function runs on the writer's thread with the transaction's connection and must not
block on anything but the database. A write made `together` runs once for a whole run of its
kind in the batch (`fn(conn, [args, ...])` returning an outcome per item): perf, each call
into the driver lets the other threads take the interpreter lock, so a batch of submits is
one multi-row insert rather than one per submit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

log = logging.getLogger(__name__)

MAX_BATCH = 64  # writes per transaction at most, so one batch never holds the lock for long


@dataclass(slots=True)
class _Write:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    together: bool = False
    outcome: tuple[bool, Any] | None = None  # (ok, value or exception) once it ran


def _settle(writes: list[_Write]) -> None:
    """On the caller's loop: hand each caller its outcome (unless it stopped waiting)."""
    for w in writes:
        if w.future.done():
            continue
        ok, value = w.outcome or (False, RuntimeError("the write never ran"))
        if ok:
            w.future.set_result(value)
        else:
            w.future.set_exception(value)


class Writer:
    """The writing thread of one engine.

    Args:
        engine: Where to write; a connection is checked out per batch.
        after_commit: Called on the writer thread after each batch in which a write set
            `conn.info["wake"]` has committed (to wake workers up).
    """

    def __init__(self, engine: sa.Engine, after_commit: Callable[[], None] | None = None) -> None:
        self._engine = engine
        self._after_commit = after_commit
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def write(
        self, fn: Callable[..., Any], args: tuple[Any, ...], *, together: bool = False
    ) -> Any:
        """Run `fn(connection, *args)` in the next batch (with `together`:
        `fn(connection, [args, ...])` once for the run of such writes); its result, or its
        exception."""
        loop = asyncio.get_running_loop()
        write = _Write(fn, args, loop, loop.create_future(), together)
        self._start()
        self._queue.put(write)
        return await write.future

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="openimagine-store-writer", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Finish the writes already queued, then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Write]) -> None:
        wake = self._transaction(batch)
        if wake and self._after_commit is not None:
            try:
                self._after_commit()
            except Exception:  # a lost wake-up only costs the fallback poll
                log.exception("after-commit hook failed")
        by_loop: dict[asyncio.AbstractEventLoop, list[_Write]] = {}
        for write in batch:
            by_loop.setdefault(write.loop, []).append(write)
        for loop, writes in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, writes)

    def _transaction(self, batch: list[_Write]) -> bool:
        """Run the batch in one transaction; whether a write asked to wake workers."""
        try:
            with self._engine.begin() as conn:
                raw = conn.connection.driver_connection
                conn.info["wake"] = conn.info["notified"] = False  # flags of this batch
                for run in _runs(batch):
                    _run(run, conn, raw, savepoint=len(run) < len(batch))
                return bool(conn.info.pop("wake", False))
        except Exception as exc:  # rolled back: no write of the batch stands
            if len(batch) > 1:
                log.warning("store write batch of %d failed: %s", len(batch), exc)
            for write in batch:
                if write.outcome is None or write.outcome[0]:
                    write.outcome = (False, exc)
            return False


def _runs(batch: list[_Write]) -> list[list[_Write]]:
    """The batch cut into runs: one write each, or consecutive `together` writes of a kind."""
    runs: list[list[_Write]] = []
    for write in batch:
        last = runs[-1] if runs else None
        if last and write.together and last[0].together and last[0].fn is write.fn:
            last.append(write)
        else:
            runs.append([write])
    return runs


def _run(run: list[_Write], conn: sa.Connection, raw: Any, *, savepoint: bool) -> None:
    """One run of writes, in its own savepoint when it shares the transaction, so that a
    failing run leaves the rest of the batch as it was."""
    if savepoint:
        raw.execute("SAVEPOINT w")
    try:
        first = run[0]
        if first.together:
            outcomes = first.fn(conn, [w.args for w in run])
        else:
            outcomes = [(True, first.fn(conn, *first.args))]
    except Exception as exc:
        if not savepoint:
            raise
        raw.execute("ROLLBACK TO SAVEPOINT w")
        raw.execute("RELEASE SAVEPOINT w")
        outcomes = [(False, exc)] * len(run)
    else:
        if savepoint:
            raw.execute("RELEASE SAVEPOINT w")
    for write, outcome in zip(run, outcomes, strict=True):
        write.outcome = outcome
