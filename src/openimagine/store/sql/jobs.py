"""`SqlJobs`: the API's reads and writes of jobs (the hottest are in `submits`)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from openimagine.domain.deliveries import Delivery, failure_webhook
from openimagine.domain.jobs import CANCELED, Job, JobStatus, NewJob, Result
from openimagine.domain.quotas import Admission
from openimagine.errors import Conflict, NotFound
from openimagine.store.sql import raw, submits, turns
from openimagine.store.sql.rows import to_delivery
from openimagine.store.sql.shared import (
    Context,
    count_queued,
    fail_pending,
    insert_deliveries,
    load_job,
    results_of,
)
from openimagine.store.sql.tables import deliveries

_NO_QUOTA = Admission()


class SqlJobs:
    """`JobStore` over SQL."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def create(
        self, new: NewJob, quota: Admission = _NO_QUOTA
    ) -> tuple[Job, list[Result], bool]:
        """Insert a job and its results; idempotent on (task_uuid, request_hash, owner);
        `QuotaExceeded` past a quota. Idle workers are woken once it commits."""
        created: tuple[Job, list[Result], bool] = await self._ctx.db.write_together(
            submits.create, new, self._ctx.now(), quota
        )
        return created

    async def get(self, task_uuid: str, owner: str | None) -> tuple[Job, list[Result]] | None:
        """A job and its results (owner None: any owner), in one statement."""
        return await self._ctx.db.read_hot(submits.get, task_uuid, owner)

    async def get_placed(
        self, task_uuid: str, owner: str | None
    ) -> tuple[Job, list[Result], int | None] | None:
        """A job, its results and its queue place, in one statement."""
        return await self._ctx.db.read_hot(submits.get_placed, task_uuid, owner)

    async def finished_result(self, video_uuid: str) -> Result | None:
        """A finished result by its videoUUID."""
        return await self._ctx.db.read(_finished_result, video_uuid)

    async def page(
        self, owner: str, after: str | None, limit: int, *, descending: bool = True
    ) -> list[tuple[Job, list[Result]]]:
        """A page of the owner's jobs by (created_at, task_uuid), after the job `after`."""
        return await self._ctx.db.read(_page, owner, after, limit, descending)

    async def delete(self, task_uuid: str, owner: str) -> tuple[Job, list[Result]] | None:
        """Remove a job no worker holds; a running one raises `Conflict`."""
        return await self._ctx.db.write(_delete, task_uuid, owner)

    async def cancel(self, task_uuid: str, owner: str | None) -> Job:
        """Cancel a queued job now, or flag a running one for its worker."""
        return await self._ctx.db.write(_cancel, task_uuid, owner, self._ctx.now())

    async def deliveries(self, task_uuid: str) -> list[Delivery]:
        """A job's deliveries, oldest first (an upload before the webhook of its result)."""
        return await self._ctx.db.read(_deliveries, task_uuid)


def _finished_result(conn: sa.Connection, video_uuid: str) -> Result | None:
    sql = raw.RESULT_SELECT + " WHERE video_uuid = :v"
    row = raw.execute(conn, sql, {"v": video_uuid}).fetchone()
    return None if row is None else raw.result_from(row)


def _page(
    conn: sa.Connection, owner: str, after: str | None, limit: int, descending: bool
) -> list[tuple[Job, list[Result]]]:
    params: dict[str, Any] = {"owner": owner, "limit": limit}
    where = "owner = :owner"
    if after is not None:
        cursor = raw.execute(
            conn,
            "SELECT created_at FROM jobs WHERE task_uuid = :after AND owner = :owner",
            {"after": after, "owner": owner},
        ).fetchone()
        if cursor is None:
            raise NotFound(f"No video with id {after}.", parameter="after")
        op = "<" if descending else ">"
        where += f" AND (created_at {op} :at OR (created_at = :at AND task_uuid {op} :after))"
        params.update(at=cursor[0], after=after)
    order = "DESC" if descending else "ASC"
    sql = (
        f"{raw.JOB_SELECT} WHERE {where} "
        f"ORDER BY created_at {order}, task_uuid {order} LIMIT :limit"
    )
    rows = raw.execute(conn, sql, params).fetchall()
    if not rows:
        return []
    tasks = [row[0] for row in rows]
    marks = ", ".join(f":t{i}" for i in range(len(tasks)))
    finished: dict[str, list[Result]] = {t: [] for t in tasks}
    sql = f"{raw.RESULT_SELECT} WHERE task_uuid IN ({marks}) ORDER BY task_uuid, idx"
    for r in raw.execute(conn, sql, {f"t{i}": t for i, t in enumerate(tasks)}).fetchall():
        finished[r[1]].append(raw.result_from(r))
    return [
        (raw.job_from(row), raw.merge(row[0], raw.plan_from(row[raw.PLAN]), finished[row[0]]))
        for row in rows
    ]


def _delete(conn: sa.Connection, task_uuid: str, owner: str) -> Any:
    turns.hold(conn, owner)  # before the job's row: a queued job's removal moves its key's turns
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""  # a claim skips it
    found = raw.execute(
        conn,
        f"{raw.JOB_SELECT} WHERE task_uuid = :t AND owner = :o{lock}",
        {"t": task_uuid, "o": owner},
    ).fetchone()
    if found is None:
        return None
    job, plan = raw.job_from(found), raw.plan_from(found[raw.PLAN])
    if job.status is JobStatus.RUNNING:
        raise Conflict(
            f"Task {task_uuid} is running: cancel it, then delete it once it stops.",
            code="taskRunning",
            parameter="taskUUID",
        )
    removed = results_of(conn, task_uuid, plan)
    for table in ("deliveries", "results", "jobs"):
        raw.execute(conn, f"DELETE FROM {table} WHERE task_uuid = :t", {"t": task_uuid})  # noqa: S608
    if job.status is JobStatus.QUEUED:
        count_queued(conn, job.owner, -1)
        turns.left_queue(conn, job.owner, job.turn)
    return job, removed


def _cancel(conn: sa.Connection, task_uuid: str, owner: str | None, now: float) -> Job:
    found = load_job(conn, task_uuid)
    if found is None or (owner is not None and found[0].owner != owner):
        raise NotFound(f"No task with taskUUID {task_uuid}.", parameter="taskUUID")
    job, plan = found
    if job.status is JobStatus.QUEUED:
        turns.hold(conn, job.owner)  # before the job's row (see `turns`)
    # Guarded by the status read: on PostgreSQL a worker may claim the job meanwhile, and then
    # it is canceled as a running one (its worker stops within a step). Its turn is read as
    # updated: another cancel of its key may have moved it since `load_job`.
    left = (
        job.status is JobStatus.QUEUED
        and raw.execute(
            conn,
            "UPDATE jobs SET status = :s, cancel_requested = true, finished_at = :now, "
            "error_code = :code, error_message = :message WHERE task_uuid = :t "
            "AND status = 'queued' RETURNING turn",
            {
                "s": JobStatus.CANCELED.value,
                "now": now,
                "code": CANCELED.code,
                "message": CANCELED.message,
                "t": task_uuid,
            },
        ).fetchone()
    )
    if left:
        fail_pending(conn, task_uuid, plan, CANCELED.code, CANCELED.message, now)
        count_queued(conn, job.owner, -1)
        turns.left_queue(conn, job.owner, int(left[0]))
        insert_deliveries(conn, task_uuid, failure_webhook(job.spec.webhook_url), now)
    elif job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        raw.execute(
            conn, "UPDATE jobs SET cancel_requested = true WHERE task_uuid = :t", {"t": task_uuid}
        )
    updated = load_job(conn, task_uuid)
    assert updated is not None  # noqa: S101 - read in this transaction
    return updated[0]


def _deliveries(conn: sa.Connection, task_uuid: str) -> list[Delivery]:
    q = (
        deliveries.select()
        .where(deliveries.c.task_uuid == task_uuid)
        .order_by(deliveries.c.created_at, deliveries.c.kind, deliveries.c.id)
    )
    return [to_delivery(r) for r in conn.execute(q)]
