"""One SQLAlchemy engine per dialect, run in threads: every store operation is one sync
function over a connection, executed in one thread hop.

SQLite (the embedded default) gets one writer connection per process, taken with
`BEGIN IMMEDIATE`, so writes queue here rather than in busy waits, and a pool of readers
that never take the write lock. PostgreSQL gets one pooled engine (psycopg 3), with
pre-ping so a restarted server costs a reconnect, not an error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio
import sqlalchemy as sa
from sqlalchemy import event

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
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA busy_timeout=30000",
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
            self._writer = _sqlite_engine(self.url, immediate=True, pool_size=1)
            self._reader = _sqlite_engine(self.url, immediate=False, pool_size=pool_size)
            self._writers = anyio.CapacityLimiter(1)
        elif self.dialect == "postgresql":
            self._writer = self._reader = sa.create_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
            self._writers = anyio.CapacityLimiter(2 * pool_size)
        else:
            raise ValueError(
                f"unsupported store URL {url!r}: use sqlite:///PATH or postgresql+psycopg://..."
            )
        self._readers = anyio.CapacityLimiter(pool_size)

    async def write(
        self, fn: Callable[Concatenate[sa.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(connection, ...)` in one write transaction, in a thread."""
        call = functools.partial(self._in_transaction, fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, limiter=self._writers)

    async def read(
        self, fn: Callable[Concatenate[sa.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(connection, ...)` on a reader (one snapshot, never the write lock)."""
        call = functools.partial(self._on_reader, fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, limiter=self._readers)

    def _in_transaction(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._writer.begin() as conn:
            return fn(conn, *args, **kwargs)

    def _on_reader(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._reader.connect() as conn:
            return fn(conn, *args, **kwargs)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self._writer.dispose()
        if self._reader is not self._writer:
            self._reader.dispose()


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
