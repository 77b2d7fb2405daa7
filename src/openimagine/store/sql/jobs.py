"""`SqlJobs`: the API's reads and writes of jobs."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from openimagine.domain.deliveries import Delivery
from openimagine.domain.jobs import CANCELED, Job, JobStatus, NewJob, Result, ResultStatus
from openimagine.errors import Conflict, NotFound
from openimagine.store.sql.rows import to_delivery, to_job, to_result
from openimagine.store.sql.shared import Context, fail_pending, job_row, place, results_of
from openimagine.store.sql.tables import deliveries, jobs, results


class SqlJobs:
    """`JobStore` over SQL."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def create(self, new: NewJob) -> tuple[Job, list[Result], bool]:
        """Insert a job and its results; idempotent on (task_uuid, request_hash, owner)."""
        return await self._ctx.db.write(_create, new, self._ctx.now())

    async def get(self, task_uuid: str, owner: str | None) -> tuple[Job, list[Result]] | None:
        """A job and its results (owner None: any owner)."""
        return await self._ctx.db.read(_get, task_uuid, owner)

    async def get_with_place(
        self, task_uuid: str, owner: str | None
    ) -> tuple[Job, list[Result], int | None] | None:
        """`get` plus the queue place, in one statement (a poll is hot)."""
        return await self._ctx.db.read(_get_with_place, task_uuid, owner)

    async def result(self, video_uuid: str) -> Result | None:
        """One result by its videoUUID."""
        return await self._ctx.db.read(_result, video_uuid)

    async def page(
        self, owner: str, after: str | None, limit: int, *, descending: bool = True
    ) -> list[tuple[Job, list[Result]]]:
        """A page of the owner's jobs by (created_at, task_uuid), after the job `after`."""
        return await self._ctx.db.read(_page, owner, after, limit, descending)

    async def delete(self, task_uuid: str, owner: str) -> tuple[Job, list[Result]] | None:
        """Remove a job no worker holds; a running one raises `Conflict`."""
        return await self._ctx.db.write(_delete, task_uuid, owner, self._ctx.db.dialect)

    async def cancel(self, task_uuid: str, owner: str | None) -> Job:
        """Cancel a queued job now, or flag a running one for its worker."""
        return await self._ctx.db.write(_cancel, task_uuid, owner, self._ctx.now())

    async def deliveries(self, task_uuid: str) -> list[Delivery]:
        """A job's deliveries, oldest first."""
        return await self._ctx.db.read(_deliveries, task_uuid)


def _create(conn: sa.Connection, new: NewJob, now: float) -> tuple[Job, list[Result], bool]:
    existing = job_row(conn, new.task_uuid)
    if existing is not None:
        if existing.request_hash != new.request_hash or existing.owner != new.owner:
            raise Conflict(
                f"taskUUID {new.task_uuid} was already used for a different request.",
                parameter="taskUUID",
            )
        return existing, results_of(conn, new.task_uuid), False
    conn.execute(jobs.insert().values(**_job_values(new, now)))
    conn.execute(results.insert(), _result_values(new))
    job = job_row(conn, new.task_uuid)
    assert job is not None  # noqa: S101 - inserted in this transaction
    return job, results_of(conn, new.task_uuid), True


def _get(conn: sa.Connection, task_uuid: str, owner: str | None) -> Any:
    job = job_row(conn, task_uuid)
    if job is None or (owner is not None and job.owner != owner):
        return None
    return job, results_of(conn, task_uuid)


def _get_with_place(conn: sa.Connection, task_uuid: str, owner: str | None) -> Any:
    row = conn.execute(sa.select(jobs, place()).where(jobs.c.task_uuid == task_uuid)).first()
    if row is None:
        return None
    job = to_job(row)
    if owner is not None and job.owner != owner:
        return None
    queued = job.status is JobStatus.QUEUED
    return job, results_of(conn, task_uuid), row.place if queued else None


def _result(conn: sa.Connection, video_uuid: str) -> Result | None:
    row = conn.execute(results.select().where(results.c.video_uuid == video_uuid)).first()
    return None if row is None else to_result(row)


def _page(
    conn: sa.Connection, owner: str, after: str | None, limit: int, descending: bool
) -> list[tuple[Job, list[Result]]]:
    q = jobs.select().where(jobs.c.owner == owner)
    if after is not None:
        cursor = conn.execute(
            sa.select(jobs.c.created_at).where(jobs.c.task_uuid == after, jobs.c.owner == owner)
        ).first()
        if cursor is None:
            raise NotFound(f"No video with id {after}.", parameter="after")
        q = q.where(_beyond(cursor[0], after, descending))
    keys = (jobs.c.created_at, jobs.c.task_uuid)
    q = q.order_by(*(k.desc() if descending else k.asc() for k in keys)).limit(limit)
    page = [to_job(r) for r in conn.execute(q)]
    if not page:
        return []
    rq = (
        results.select()
        .where(results.c.task_uuid.in_([j.task_uuid for j in page]))
        .order_by(results.c.task_uuid, results.c.idx)
    )
    grouped: dict[str, list[Result]] = {j.task_uuid: [] for j in page}
    for row in conn.execute(rq):
        result = to_result(row)
        grouped[result.task_uuid].append(result)
    return [(j, grouped[j.task_uuid]) for j in page]


def _beyond(created_at: float, task_uuid: str, descending: bool) -> sa.ColumnElement[bool]:
    """Rows after the cursor (created_at, task_uuid) in the page order."""
    if descending:
        return sa.or_(
            jobs.c.created_at < created_at,
            sa.and_(jobs.c.created_at == created_at, jobs.c.task_uuid < task_uuid),
        )
    return sa.or_(
        jobs.c.created_at > created_at,
        sa.and_(jobs.c.created_at == created_at, jobs.c.task_uuid > task_uuid),
    )


def _delete(conn: sa.Connection, task_uuid: str, owner: str, dialect: str) -> Any:
    q = jobs.select().where(jobs.c.task_uuid == task_uuid, jobs.c.owner == owner)
    if dialect == "postgresql":
        q = q.with_for_update()  # a claim (SKIP LOCKED) passes it by meanwhile
    row = conn.execute(q).first()
    if row is None:
        return None
    job = to_job(row)
    if job.status is JobStatus.RUNNING:
        raise Conflict(
            f"Task {task_uuid} is running: cancel it, then delete it once it stops.",
            code="taskRunning",
            parameter="taskUUID",
        )
    removed = results_of(conn, task_uuid)
    conn.execute(deliveries.delete().where(deliveries.c.task_uuid == task_uuid))
    conn.execute(results.delete().where(results.c.task_uuid == task_uuid))
    conn.execute(jobs.delete().where(jobs.c.task_uuid == task_uuid))
    return job, removed


def _cancel(conn: sa.Connection, task_uuid: str, owner: str | None, now: float) -> Job:
    job = job_row(conn, task_uuid)
    if job is None or (owner is not None and job.owner != owner):
        raise NotFound(f"No task with taskUUID {task_uuid}.", parameter="taskUUID")
    if job.status is JobStatus.QUEUED:
        code, message = CANCELED.code, CANCELED.message
        conn.execute(
            jobs.update()
            .where(jobs.c.task_uuid == task_uuid)
            .values(
                status=JobStatus.CANCELED.value,
                cancel_requested=True,
                finished_at=now,
                error_code=code,
                error_message=message,
            )
        )
        fail_pending(conn, task_uuid, code, message, now)
    elif job.status is JobStatus.RUNNING:
        conn.execute(
            jobs.update().where(jobs.c.task_uuid == task_uuid).values(cancel_requested=True)
        )
    updated = job_row(conn, task_uuid)
    assert updated is not None  # noqa: S101 - read in this transaction
    return updated


def _deliveries(conn: sa.Connection, task_uuid: str) -> list[Delivery]:
    q = (
        deliveries.select()
        .where(deliveries.c.task_uuid == task_uuid)
        .order_by(deliveries.c.created_at, deliveries.c.id)
    )
    return [to_delivery(r) for r in conn.execute(q)]


def _job_values(new: NewJob, now: float) -> dict[str, Any]:
    return {
        "task_uuid": new.task_uuid,
        "owner": new.owner,
        "task_type": new.task_type,
        "model": new.spec.model,
        "request": new.spec.to_json(),
        "request_hash": new.request_hash,
        "status": JobStatus.QUEUED.value,
        "priority": 0,
        "attempts": 0,
        "max_attempts": new.max_attempts,
        "progress": 0,
        "cancel_requested": False,
        "number_results": len(new.video_uuids),
        "created_at": now,
    }


def _result_values(new: NewJob) -> list[dict[str, Any]]:
    return [
        {
            "video_uuid": video_uuid,
            "task_uuid": new.task_uuid,
            "idx": i,
            "seed": seed,
            "status": ResultStatus.PROCESSING.value,
            "cost": cost,
        }
        for i, (video_uuid, seed, cost) in enumerate(
            zip(new.video_uuids, new.seeds, new.costs, strict=True)
        )
    ]
