"""`SqlWorkers`: worker processes and their heartbeats."""

from __future__ import annotations

import sqlalchemy as sa

from openimagine.domain.records import WorkerInfo, WorkerState
from openimagine.store.sql.rows import fields, to_worker
from openimagine.store.sql.shared import Context
from openimagine.store.sql.tables import workers


class SqlWorkers:
    """`WorkerRegistry` over SQL."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def register(self, info: WorkerInfo) -> None:
        """Insert or replace a worker's row."""
        await self._ctx.db.write(_register, info)

    async def beat(self, worker_id: str, state: WorkerState) -> None:
        """Refresh a worker's row."""
        await self._ctx.db.write(_beat, worker_id, state, self._ctx.now())

    async def all(self, fresh_within_s: float | None = None) -> list[WorkerInfo]:
        """Workers, oldest first, optionally only those seen recently."""
        since = None if fresh_within_s is None else self._ctx.now() - fresh_within_s
        return await self._ctx.db.read(_list, since)


def _register(conn: sa.Connection, info: WorkerInfo) -> None:
    conn.execute(workers.delete().where(workers.c.id == info.id))
    conn.execute(workers.insert().values(**fields(info)))


def _beat(conn: sa.Connection, worker_id: str, state: WorkerState, now: float) -> None:
    conn.execute(
        workers.update().where(workers.c.id == worker_id).values(state=state, heartbeat_at=now)
    )


def _list(conn: sa.Connection, since: float | None) -> list[WorkerInfo]:
    q = workers.select().order_by(workers.c.started_at)
    if since is not None:
        q = q.where(workers.c.heartbeat_at >= since)
    return [to_worker(r) for r in conn.execute(q)]
