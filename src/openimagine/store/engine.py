"""Engines for both dialects, their connection rules, and programmatic migration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


@dataclass(frozen=True, slots=True)
class Engines:
    """`write` takes the write lock up front (SQLite `BEGIN IMMEDIATE`); `read` does not.

    On PostgreSQL both are the same engine.
    """

    write: AsyncEngine
    read: AsyncEngine
    dialect: str

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.write.dispose()
        if self.read is not self.write:
            await self.read.dispose()


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int) -> AsyncEngine:
    # timeout: the driver's busy wait, so concurrent writers from other processes queue up
    # instead of failing with "database is locked".
    engine = create_async_engine(
        url, connect_args={"timeout": 30}, pool_size=pool_size, max_overflow=0
    )
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine.sync_engine, "connect")
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

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def make_engines(url: str, pool_size: int = 10) -> Engines:
    """Engines for an async SQLAlchemy URL (sqlite+aiosqlite or postgresql+psycopg)."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One writer connection per process: writes serialize here instead of in busy waits.
        write = _sqlite_engine(url, immediate=True, pool_size=1)
        read = _sqlite_engine(url, immediate=False, pool_size=pool_size)
        return Engines(write=write, read=read, dialect="sqlite")
    if url.startswith("postgresql"):
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
        return Engines(write=engine, read=engine, dialect="postgresql")
    raise ValueError(
        f"unsupported store URL {url!r}: use sqlite+aiosqlite:// or postgresql+psycopg://"
    )


def sync_url(url: str) -> str:
    """The synchronous twin of an async URL (migrations run synchronously)."""
    return url.replace("sqlite+aiosqlite", "sqlite", 1)


def run_migrations(url: str) -> None:
    """Upgrade the schema to the newest revision (blocking; call in a thread)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    engine = sa.create_engine(sync_url(url))
    if engine.dialect.name == "sqlite":
        # Serialize concurrent migrators (serve and a worker starting together): take the
        # write lock before alembic reads its version table.
        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA busy_timeout=30000")

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
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
