"""PostgreSQL from the event loop itself, for the statements of every submit and poll.

perf: a writer thread and the event loop contend for the interpreter lock (see `inline`);
psycopg's async connection needs no thread. Submits made during one turn of the loop are
inserted together in one transaction (group commit: one WAL flush for the batch); up to
`writers` such transactions are in flight at once, each on a connection of its own (queue
numbers come from a sequence; batches of one key wait for each other on its turns, see
`turns`), while the next batch gathers. Polls read on a small pool of connections.

Every statement these connections run is an index probe by design (a submit's batch, a poll,
the outbox's due check), and psycopg prepares each: its plan is made once, with the
statistics of that moment. Made while the queue was empty, the planner would pick a
sequential scan for a read of the head of the queue, and keep it for thousands of queued jobs.
So these connections never plan one (`enable_seqscan=off`): the plans stay the index probes
whatever the statistics said, and no statement needs planning again on each run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from openimagine.store.sql.executor import Row, dialect_sql, driver_options
from openimagine.store.sql.wakeup import CHANNEL

if TYPE_CHECKING:
    from psycopg import AsyncConnection, AsyncCursor
    from psycopg_pool import AsyncConnectionPool

    from openimagine.store.sql.inline import Together

log = logging.getLogger(__name__)

# See the module's docstring. And no JIT: a plan that scans a small table all the same (the
# keys' turns) is costed past `jit_above_cost` by the disabled scan's penalty, and compiling
# it would take 0.4 s on every poll.
_HOT_PLANS = "-c enable_seqscan=off -c jit=off"
# The queue's connections (a worker's claims, leases and completions) read the head of the
# queue in index order and nothing else. Planned while the statistics still said "a few
# queued jobs" (a burst of submits outruns autovacuum's ANALYZE), a claim would gather every
# queued job with a bitmap scan and sort them to take one: 2 ms at 2,000 queued, growing with
# the queue, and a bitmap scan never marks the claimed jobs' dead index entries either, which
# an index scan does (so the next claims skip them). With neither plan allowed, a claim is
# one index probe (0.1 ms) at any depth.
QUEUE_PLANS = "-c enable_bitmapscan=off -c enable_sort=off"


def _with_hot_plans(conninfo: str, more: str = "") -> str:
    """`conninfo` with `_HOT_PLANS` (and `more`) added to its server options (a `search_path`
    in them, say, is kept)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    given = str(conninfo_to_dict(conninfo).get("options") or "")
    return make_conninfo(conninfo, options=f"{given} {_HOT_PLANS} {more}".strip())


class AsyncPgExecutor:
    """psycopg's async connection behind the hot path's `Executor` interface."""

    dialect = "postgresql"

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn
        self.woken = False

    async def _cursor(self, sql: str, params: Mapping[str, Any] | None) -> AsyncCursor[Any]:
        options = driver_options(sql, self.dialect)
        return await self.conn.execute(dialect_sql(sql, self.dialect), params or {}, **options)

    async def fetchall(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Every row `sql` returns."""
        return await (await self._cursor(sql, params)).fetchall()

    async def fetchone(self, sql: str, params: Mapping[str, Any] | None = None) -> Row | None:
        """The first row `sql` returns."""
        return await (await self._cursor(sql, params)).fetchone()

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run `sql`, which returns no rows."""
        await self._cursor(sql, params)

    def wake(self) -> None:
        """`NOTIFY` the workers after the batch's writes."""
        self.woken = True

    def atomic(self) -> AbstractAsyncContextManager[object]:
        """A transaction around the block (the connection is in autocommit mode)."""
        return self.conn.transaction()


class AsyncPostgres:
    """The event loop's connections to one PostgreSQL database."""

    def __init__(
        self, conninfo: str, readers: int = 4, writers: int = 3, *, options: str = ""
    ) -> None:
        self.conninfo = _with_hot_plans(conninfo, options)
        self.readers = readers
        self.writers = writers
        self._idle: list[AsyncConnection[Any]] = []
        self._pool: AsyncConnectionPool | None = None
        self._pending: list[tuple[Together, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._kick_scheduled = False
        self._in_flight: set[asyncio.Task[None]] = set()

    async def write_together(self, fn: Together, args: tuple[Any, ...]) -> Any:
        """Run `fn(executor, [args, ...])` for this write and the others gathered meanwhile,
        in one transaction."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((fn, args, future))
        if not self._kick_scheduled:  # at the end of this turn: its writes batch together
            self._kick_scheduled = True
            loop.call_soon(self._kick)
        return await future

    def _kick(self) -> None:
        self._kick_scheduled = False
        if self._pending and len(self._in_flight) < self.writers:
            batch, self._pending = self._pending, []
            task = asyncio.ensure_future(self._commit(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._landed)

    def _landed(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._kick()  # what gathered meanwhile

    async def _commit(self, batch: list[Any]) -> None:
        outcomes = await self._transaction(batch)
        for (_fn, _args, future), (ok, value) in zip(batch, outcomes, strict=True):
            if not future.done():
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    async def _transaction(self, batch: list[Any]) -> list[tuple[bool, Any]]:
        """The batch's writes. The connection is in autocommit mode: a write function keeps
        each of its writes to one statement, which is its own transaction (`submits.create`
        inserts a batch, its turns and its NOTIFY in one)."""
        import psycopg

        conn: AsyncConnection[Any] | None = None
        try:
            conn = self._idle.pop() if self._idle else await self._connect()
            executor = AsyncPgExecutor(conn)
            outcomes: list[tuple[bool, Any]] = []
            start = 0
            while start < len(batch):  # runs of the same function, each awaited once
                fn, end = batch[start][0], start
                while end < len(batch) and batch[end][0] is fn:
                    end += 1
                outcomes.extend(await fn(executor, [item[1] for item in batch[start:end]]))
                start = end
            if executor.woken:
                await conn.execute(f"NOTIFY {CHANNEL}")
        except Exception as exc:
            if conn is not None and (isinstance(exc, psycopg.OperationalError) or conn.closed):
                # A new connection for the next batch; the idle ones most likely died with
                # this one (a server restart), so they go too.
                stale, self._idle = [conn, *self._idle], []
                for old in stale:
                    with contextlib.suppress(Exception):
                        await old.close()
                conn = None
            return [(False, exc)] * len(batch)
        finally:
            if conn is not None and not conn.closed:
                self._idle.append(conn)
        return outcomes

    async def _connect(self) -> AsyncConnection[Any]:
        import psycopg

        return await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)

    async def read(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
        """`await fn(executor, *args)` on a pooled connection (autocommit: each statement
        sees the latest commits, and one that writes commits at once; `executor.atomic()`
        makes a transaction of several)."""
        pool = await self._reader_pool()
        async with pool.connection() as conn:
            return await fn(AsyncPgExecutor(conn), *args)

    async def _reader_pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            from psycopg_pool import AsyncConnectionPool

            pool = AsyncConnectionPool(
                self.conninfo,
                min_size=1,
                max_size=self.readers,
                kwargs={"autocommit": True},
                timeout=5.0,  # a poll during an outage fails in 5 s, not psycopg's 30
                open=False,
            )
            await pool.open()
            self._pool = pool
        return self._pool

    async def close(self) -> None:
        """Wait for the batches in flight, then close every connection."""
        while self._in_flight:
            with contextlib.suppress(Exception):
                await next(iter(self._in_flight))
        for conn in self._idle:
            with contextlib.suppress(Exception):
                await conn.close()
        self._idle.clear()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
