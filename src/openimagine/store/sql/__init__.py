"""`SqlStore`: the `TaskStore` on SQLite (WAL, the embedded default) or PostgreSQL, one schema
and one code path for both dialects (SQLAlchemy Core, run in threads)."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

from openimagine.store.sql.database import Database, run_migrations
from openimagine.store.sql.jobs import SqlJobs
from openimagine.store.sql.keys import SqlKeys
from openimagine.store.sql.media import SqlMedia
from openimagine.store.sql.outbox import SqlOutbox
from openimagine.store.sql.queue import SqlQueue
from openimagine.store.sql.shared import Context
from openimagine.store.sql.sweep import SqlSweep
from openimagine.store.sql.usage import SqlUsage
from openimagine.store.sql.workers import SqlWorkers

__all__ = ["SqlStore"]


class SqlStore:
    """Every part of the store over one database URL."""

    def __init__(
        self, url: str, *, pool_size: int = 10, clock: Callable[[], float] = time.time
    ) -> None:
        self._ctx = Context(Database(url, pool_size), clock)
        self.url = self._ctx.db.url
        self.jobs = SqlJobs(self._ctx)
        self.queue = SqlQueue(self._ctx)
        self.outbox = SqlOutbox(self._ctx)
        self.keys = SqlKeys(self._ctx)
        self.media = SqlMedia(self._ctx)
        self.workers = SqlWorkers(self._ctx)
        self.sweep = SqlSweep(self._ctx)
        self.usage = SqlUsage(self._ctx)

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self._ctx.db.dialect

    @property
    def clock(self) -> Callable[[], float]:
        """The clock every timestamp and lease is read from."""
        return self._ctx.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self._ctx.clock = clock

    async def migrate(self) -> None:
        """Create or upgrade the schema."""
        await anyio.to_thread.run_sync(run_migrations, self.url)

    async def close(self) -> None:
        """Release connections."""
        await self._ctx.db.close()
