"""One SQLAlchemy engine per dialect, run in threads: every store operation is one sync
function over a connection, executed in one thread hop.

Writes go through the process's `Writer` (group commit: one thread, one transaction per
batch of concurrent writes); reads run on a small pool of reader threads and never take a
write lock. SQLite (the embedded default) writes with `BEGIN IMMEDIATE` on one connection per
process; PostgreSQL uses one pooled engine (psycopg 3) with pre-ping, so a restarted server
costs a reconnect, not an error. The event loop's own PostgreSQL connections (`pg_async`)
cannot be pinged before each statement without a round trip more, so a statement that meets
a dead one (every idle connection dies with a server restart) is run again, at once, on
another (`_on_pg`). Idle workers wait for `wake` (see `wakeup`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio
import sqlalchemy as sa
from sqlalchemy import event

from openimagine.store.errors import lost_connection
from openimagine.store.sql.executor import SyncExecutor, drive
from openimagine.store.sql.inline import Checkpointer, InlineSqlite, Together
from openimagine.store.sql.pg_async import QUEUE_PLANS, AsyncPostgres
from openimagine.store.sql.wakeup import CHANNEL, Doorbell, Listener
from openimagine.store.sql.writer import Writer

P = ParamSpec("P")
T = TypeVar("T")


def normalize_url(url: str) -> str:
    """A synchronous SQLAlchemy URL for any form a user may give.

    `sqlite+aiosqlite://` (the form of earlier releases) and `sqlite://` both mean the
    standard library driver; `postgresql://` means psycopg 3.
    """
    if url.startswith("sqlite+aiosqlite:"):
        return "sqlite:" + url.removeprefix("sqlite+aiosqlite:")
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int) -> sa.Engine:
    engine = sa.create_engine(
        url, connect_args={"timeout": 30}, pool_size=pool_size, max_overflow=0
    )
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (below); the driver's implicit BEGIN would be DEFERRED, and a
        # deferred transaction that later writes can fail to upgrade its lock under contention.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA busy_timeout=30000",  # first: another process may hold the lock already
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """The engines of one store URL, and the thread hops that use them."""

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = normalize_url(url)
        parsed = sa.engine.make_url(self.url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            path = parsed.database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._write_engine = _sqlite_engine(self.url, immediate=True, pool_size=1)
            self._reader = _sqlite_engine(self.url, immediate=False, pool_size=pool_size)
            self._doorbell: Doorbell | None = Doorbell(Path(f"{path or 'memory'}.wake"))
            self._listener: Listener | None = None
            self._pg: AsyncPostgres | None = None
            self._queue_pg: AsyncPostgres | None = None
        elif self.dialect == "postgresql":
            # A server that does not answer (a host gone, not one restarting) costs a write
            # batch `connect_timeout`, not psycopg's default of two minutes.
            timeout = {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
            self._write_engine = self._reader = sa.create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                connect_args=timeout,
            )
            self._doorbell = None
            conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
            self._listener = Listener(conninfo)
            self._pg = AsyncPostgres(conninfo)
            # A worker's own: opened on its first claim, so an API replica never opens it.
            self._queue_pg = AsyncPostgres(conninfo, readers=2, writers=0, options=QUEUE_PLANS)
        else:
            raise ValueError(
                f"unsupported store URL {url!r}: use sqlite:///PATH or postgresql+psycopg://..."
            )
        self._writer = Writer(self._write_engine, after_commit=self._rang)
        self._readers = anyio.CapacityLimiter(pool_size)
        self._inline: InlineSqlite | None = None
        self._checkpointer: Checkpointer | None = None
        self._adapters: dict[Together, Callable[..., Any]] = {}
        if self.dialect == "sqlite" and path and path != ":memory:":
            self._checkpointer = Checkpointer(path)
            self._inline = InlineSqlite(
                path,
                self._thread_write_together,
                self._rang,
                self._checkpointer.nudge,
                self._checkpointer.paused,
            )

    def _thread_write_together(self, fn: Together, args: tuple[Any, ...]) -> Any:
        return self._writer.write(self._on_thread(fn), args, together=True)

    def _on_thread(self, fn: Together) -> Callable[..., Any]:
        """`fn` as the writer thread runs it (one adapter per function: the writer batches
        writes of the same function together)."""
        adapter = self._adapters.get(fn)
        if adapter is None:

            def adapter(conn: sa.Connection, items: list[tuple[Any, ...]]) -> Any:
                executor = SyncExecutor(conn.connection.driver_connection, self.dialect)
                outcomes = drive(fn(executor, items))
                if executor.woken:
                    self.wake(conn)
                return outcomes

            self._adapters[fn] = adapter
        return adapter

    async def write(
        self, fn: Callable[Concatenate[sa.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(connection, ...)` in the next write batch (group commit)."""
        call = functools.partial(fn, **kwargs) if kwargs else fn
        result: T = await self._writer.write(call, args)
        return result

    async def write_together(self, fn: Together, *args: Any) -> Any:
        """Run `args` in the next write batch, together with the other writes of `fn` there:
        `await fn(executor, [args, ...])` gives `(ok, value or exception)` for each. On SQLite
        it runs on the event loop (see `inline`), elsewhere on the writer thread."""
        if self._inline is not None:
            assert self._checkpointer is not None  # noqa: S101 - made with the inline path
            self._checkpointer.start()
            return await self._inline.write_together(fn, args)
        if self._pg is not None:
            pg = self._pg
            # Safe to run again: the write did not commit, and submits are idempotent anyway.
            return await _on_pg(lambda: pg.write_together(fn, args), pg.writers + 1)
        return await self._thread_write_together(fn, args)

    async def read_hot(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """`await fn(executor, *args)` in one snapshot: on SQLite on the event loop (a reader
        thread when SQLite reports busy), elsewhere on a reader thread."""
        if self._inline is not None:
            try:
                result: T = self._inline.read(fn, *args)
            except BlockingIOError:
                pass
            else:
                return result
        if self._pg is not None:
            pg = self._pg
            found: T = await _on_pg(lambda: pg.read(fn, *args), pg.readers + 1)
            return found

        def on_thread(conn: sa.Connection) -> T:
            return drive(fn(SyncExecutor(conn.connection.driver_connection, self.dialect), *args))

        return await self.read(on_thread)

    async def work(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """`await fn(executor, *args)` for a worker's queue operations (claims, leases,
        completions). On PostgreSQL on the event loop, on the queue's own connections (see
        `pg_async.QUEUE_PLANS`): each statement commits by itself, `executor.atomic()` groups
        several. Elsewhere in the next write batch, as one transaction."""
        if self._queue_pg is not None:
            pg = self._queue_pg
            done: T = await _on_pg(lambda: pg.read(fn, *args), pg.readers + 1)
            return done

        def on_thread(conn: sa.Connection) -> T:
            executor = SyncExecutor(conn.connection.driver_connection, self.dialect)
            result = drive(fn(executor, *args))
            if executor.woken:
                self.wake(conn)
            return result

        return await self.write(on_thread)

    def wake(self, conn: sa.Connection) -> None:
        """Within a write: wake idle workers once this write has committed."""
        if self.dialect == "postgresql":
            if not conn.info.get("notified"):
                conn.exec_driver_sql(f"NOTIFY {CHANNEL}")  # one per transaction is enough
                conn.info["notified"] = True
        else:
            conn.info["wake"] = True

    def _rang(self) -> None:
        if self._doorbell is not None:
            self._doorbell.ring()

    async def wait_for_work(self, timeout_s: float) -> None:
        """Return when a write may have queued work, or after `timeout_s`."""
        if self._listener is not None:
            await self._listener.wait(timeout_s)
        elif self._doorbell is not None:
            await self._doorbell.wait(timeout_s)
        else:
            await anyio.sleep(timeout_s)

    async def read(
        self, fn: Callable[Concatenate[sa.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(connection, ...)` on a reader (one snapshot, never the write lock)."""
        call = functools.partial(self._on_reader, fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, limiter=self._readers)

    def _on_reader(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._reader.connect() as conn:
            try:
                return fn(conn, *args, **kwargs)
            except Exception as exc:
                # Statements on the driver directly (`raw`) fail past SQLAlchemy, which then
                # would put the dead connection back in its pool (and log its failed reset).
                if lost_connection(exc):
                    conn.invalidate()
                raise

    async def close(self) -> None:
        """Finish queued writes, stop listening, close every pooled connection."""
        await anyio.to_thread.run_sync(self._writer.close)
        if self._checkpointer is not None:
            await anyio.to_thread.run_sync(self._checkpointer.stop)
        if self._inline is not None:
            self._inline.close()
        if self._listener is not None:
            await self._listener.close()
        if self._pg is not None:
            await self._pg.close()
        if self._queue_pg is not None:
            await self._queue_pg.close()
        if self._doorbell is not None:
            self._doorbell.close()
        self._write_engine.dispose()
        if self._reader is not self._write_engine:
            self._reader.dispose()


async def _on_pg(call: Callable[[], Awaitable[T]], tries: int) -> T:
    """`await call()` on the event loop's PostgreSQL connections, again on a connection that
    was dead (see `lost_connection`), at most `tries` times in all: one more than there are
    idle connections, which a server restart leaves all dead (each is dropped once it fails).
    While the server is down a write's tries are refused connects, so its error comes back at
    once; a read waits for the reader pool's reconnect (its own timeout), once.
    """
    for _ in range(tries - 1):
        try:
            return await call()
        except Exception as exc:
            if not lost_connection(exc):
                raise
    return await call()


def run_migrations(url: str) -> None:
    """Upgrade the schema to the newest revision (blocking; call in a thread)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent.parent / "migrations"))
    engine = sa.create_engine(normalize_url(url))
    if engine.dialect.name == "sqlite":
        # Serialize concurrent migrators (serve and a worker starting together): take the
        # write lock before alembic reads its version table.
        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA busy_timeout=30000")

        @event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Two processes starting at once must not both create the schema.
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(715517)")
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()
