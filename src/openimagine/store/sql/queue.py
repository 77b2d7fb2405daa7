"""`SqlQueue`: claims, leases, progress and completion, every write fenced by a lease token.

The claim differs by dialect only in locking: PostgreSQL selects the candidate
`FOR UPDATE SKIP LOCKED` so concurrent workers never wait on each other; SQLite runs the same
statement inside `BEGIN IMMEDIATE`, which serializes writers.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from openimagine.domain.deliveries import NewDelivery
from openimagine.domain.jobs import Claim, Job, JobStatus, ResultStatus, ResultUpdate, reaped
from openimagine.errors import LeaseLost
from openimagine.store.sql.rows import to_job
from openimagine.store.sql.shared import Context, fail_pending, insert_deliveries, results_of
from openimagine.store.sql.tables import jobs, results


class SqlQueue:
    """`QueueStore` over SQL."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def claim(self, worker_id: str, lease_s: float) -> Claim | None:
        """Lease the next runnable job: queued, or running with an expired lease."""
        now = self._ctx.now()
        # perf: idle workers poll often; look on a reader first so an empty queue never
        # takes SQLite's write lock away from submits.
        if not await self._ctx.db.read(_any_claimable, now):
            return None
        token = secrets.token_hex(16)
        return await self._ctx.db.write(
            _claim, worker_id, token, now, lease_s, self._ctx.db.dialect
        )

    async def heartbeat(self, task_uuid: str, token: str, lease_s: float) -> bool:
        """Extend the lease; return whether cancel was requested."""
        expires = self._ctx.now() + lease_s
        job = await self._ctx.db.write(_fence, task_uuid, token, {"lease_expires_at": expires})
        return job.cancel_requested

    async def progress(self, task_uuid: str, token: str, percent: int) -> bool:
        """Record progress; return whether cancel was requested."""
        values = {"progress": max(0, min(100, percent))}
        job = await self._ctx.db.write(_fence, task_uuid, token, values)
        return job.cancel_requested

    async def complete_result(
        self,
        task_uuid: str,
        token: str,
        update: ResultUpdate,
        deliveries: Sequence[NewDelivery] = (),
    ) -> None:
        """Mark one result successful, with its deliveries, in one transaction."""
        await self._ctx.db.write(_complete, task_uuid, token, update, deliveries, self._ctx.now())

    async def finish(
        self,
        task_uuid: str,
        token: str,
        status: JobStatus,
        error_code: str | None = None,
        error_message: str | None = None,
        deliveries: Sequence[NewDelivery] = (),
    ) -> None:
        """Terminal transition; results still processing take the error."""
        if not status.terminal:
            raise ValueError(f"finish needs a terminal status, got {status}")
        await self._ctx.db.write(
            _finish, task_uuid, token, status, error_code, error_message, deliveries,
            self._ctx.now(),
        )  # fmt: skip

    async def release(self, task_uuid: str, token: str) -> None:
        """Hand a running job back to the queue without spending an attempt."""
        values = {
            "status": JobStatus.QUEUED.value,
            "attempts": jobs.c.attempts - 1,
            "lease_owner": None,
            "lease_token": None,
            "lease_expires_at": None,
        }
        await self._ctx.db.write(_fence, task_uuid, token, values)

    async def reap_expired(self) -> int:
        """Fail (or cancel) jobs whose lease expired with no attempts left (or cancel asked)."""
        return await self._ctx.db.write(_reap, self._ctx.now())


def _claimable(now: float) -> sa.ColumnElement[bool]:
    return sa.and_(
        jobs.c.cancel_requested == sa.false(),
        sa.or_(
            jobs.c.status == JobStatus.QUEUED.value,
            sa.and_(
                jobs.c.status == JobStatus.RUNNING.value,
                jobs.c.lease_expires_at < now,
                jobs.c.attempts < jobs.c.max_attempts,
            ),
        ),
    )


def _any_claimable(conn: sa.Connection, now: float) -> bool:
    probe = sa.select(jobs.c.task_uuid).where(_claimable(now)).limit(1)
    return conn.execute(probe).first() is not None


def _claim(
    conn: sa.Connection, worker_id: str, token: str, now: float, lease_s: float, dialect: str
) -> Claim | None:
    candidate = (
        sa.select(jobs.c.task_uuid)
        .where(_claimable(now))
        .order_by(jobs.c.priority.desc(), jobs.c.created_at, jobs.c.task_uuid)
        .limit(1)
    )
    if dialect == "postgresql":
        candidate = candidate.with_for_update(skip_locked=True)
    stmt = (
        jobs.update()
        .where(jobs.c.task_uuid == candidate.scalar_subquery())
        .values(
            status=JobStatus.RUNNING.value,
            attempts=jobs.c.attempts + 1,
            lease_owner=worker_id,
            lease_token=token,
            lease_expires_at=now + lease_s,
            started_at=sa.func.coalesce(jobs.c.started_at, now),
        )
        .returning(*jobs.c)
    )
    row = conn.execute(stmt).first()
    if row is None:
        return None
    job = to_job(row)
    return Claim(job=job, token=token, results=tuple(results_of(conn, job.task_uuid)))


def _fence(conn: sa.Connection, task_uuid: str, token: str, values: dict[str, Any]) -> Job:
    """Update the job only while `token` holds its lease; `LeaseLost` otherwise."""
    # With nothing to change, still write a no-op so the row is locked and checked.
    values = values or {"lease_token": token}
    stmt = (
        jobs.update()
        .where(
            jobs.c.task_uuid == task_uuid,
            jobs.c.lease_token == token,
            jobs.c.status == JobStatus.RUNNING.value,
        )
        .values(**values)
        .returning(*jobs.c)
    )
    row = conn.execute(stmt).first()
    if row is None:
        raise LeaseLost(task_uuid)
    return to_job(row)


def _complete(
    conn: sa.Connection,
    task_uuid: str,
    token: str,
    update: ResultUpdate,
    new: Sequence[NewDelivery],
    now: float,
) -> None:
    _fence(conn, task_uuid, token, {})
    conn.execute(
        results.update()
        .where(results.c.video_uuid == update.video_uuid, results.c.task_uuid == task_uuid)
        .values(
            status=ResultStatus.SUCCESS.value,
            blob_key=update.blob_key,
            content_type=update.content_type,
            size_bytes=update.size_bytes,
            nsfw=update.nsfw,
            completed_at=now,
            expires_at=update.expires_at,
        )
    )
    insert_deliveries(conn, task_uuid, new, now)


def _finish(
    conn: sa.Connection,
    task_uuid: str,
    token: str,
    status: JobStatus,
    code: str | None,
    message: str | None,
    new: Sequence[NewDelivery],
    now: float,
) -> None:
    _fence(
        conn,
        task_uuid,
        token,
        {
            "status": status.value,
            "finished_at": now,
            "progress": 100 if status is JobStatus.SUCCEEDED else jobs.c.progress,
            "lease_token": None,
            "lease_expires_at": None,
            "error_code": code,
            "error_message": message,
        },
    )
    fail_pending(conn, task_uuid, code, message, now)
    insert_deliveries(conn, task_uuid, new, now)


def _reap(conn: sa.Connection, now: float) -> int:
    q = sa.select(jobs.c.task_uuid, jobs.c.cancel_requested).where(
        jobs.c.status == JobStatus.RUNNING.value,
        jobs.c.lease_expires_at < now,
        sa.or_(jobs.c.attempts >= jobs.c.max_attempts, jobs.c.cancel_requested),
    )
    rows = list(conn.execute(q))
    for task_uuid, canceled in rows:
        status, why = reaped(canceled)
        conn.execute(
            jobs.update()
            .where(jobs.c.task_uuid == task_uuid)
            .values(
                status=status.value,
                finished_at=now,
                lease_token=None,
                lease_expires_at=None,
                error_code=why.code,
                error_message=why.message,
            )
        )
        fail_pending(conn, task_uuid, why.code, why.message, now)
    return len(rows)
