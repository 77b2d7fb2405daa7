"""`SqlWorkers`: worker processes, their heartbeats, and the task each runs.

The task is not written with the heartbeat (no write more on a claim): `all` joins each worker
to the running job whose lease it holds. perf: the join reads the running jobs through
`ix_jobs_turn` (status, ...), so it costs one probe of the few running jobs, however many
finished jobs the table keeps; an index on `lease_owner` would cost every claim and finish an
index write for nothing (plans checked on SQLite and PostgreSQL with 200,000 jobs).
"""

from __future__ import annotations

import sqlalchemy as sa

from openimagine.domain.jobs import JobStatus
from openimagine.domain.records import WorkerInfo, WorkerState
from openimagine.store.sql.rows import to_worker, worker_fields
from openimagine.store.sql.shared import Context
from openimagine.store.sql.tables import jobs, workers


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
        """Workers, oldest first, optionally only those seen recently, each with the task
        whose lease it holds."""
        since = None if fresh_within_s is None else self._ctx.now() - fresh_within_s
        return await self._ctx.db.read(_list, since)


def _register(conn: sa.Connection, info: WorkerInfo) -> None:
    conn.execute(workers.delete().where(workers.c.id == info.id))
    conn.execute(workers.insert().values(**worker_fields(info)))  # its task: see `_list`


def _beat(conn: sa.Connection, worker_id: str, state: WorkerState, now: float) -> None:
    conn.execute(
        workers.update().where(workers.c.id == worker_id).values(state=state, heartbeat_at=now)
    )


def _list(conn: sa.Connection, since: float | None) -> list[WorkerInfo]:
    holds = sa.and_(jobs.c.lease_owner == workers.c.id, jobs.c.status == JobStatus.RUNNING.value)
    q = (
        sa.select(workers, jobs.c.task_uuid)
        .select_from(workers.outerjoin(jobs, holds))
        # A worker that lost a lease (its store was away) may still be named on that job
        # until it is reaped; the lease it renews now expires last.
        .order_by(workers.c.started_at, workers.c.id, jobs.c.lease_expires_at)
    )
    if since is not None:
        q = q.where(workers.c.heartbeat_at >= since)
    found = {r.id: to_worker(r) for r in conn.execute(q)}  # the last row of each worker wins
    return list(found.values())
