"""`SqlStore`: the TaskStore on SQLite (WAL, the embedded default) or PostgreSQL."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from openimagine.domain.jobs import Claim, Job, JobStatus, Result, ResultStatus
from openimagine.errors import Conflict, LeaseLost, NotFound
from openimagine.store.base import NewJob, OutboxItem, ResultUpdate
from openimagine.store.engine import Engines, make_engines, run_migrations
from openimagine.store.extras import ExtrasMixin
from openimagine.store.rows import to_job, to_result
from openimagine.store.tables import jobs, results, webhook_outbox

_TERMINAL = tuple(s.value for s in JobStatus if s.terminal)


class SqlStore(ExtrasMixin):
    """The store over SQLAlchemy Core; one schema and one code path for both dialects.

    The claim differs by dialect only in locking: PostgreSQL selects the candidate
    `FOR UPDATE SKIP LOCKED` so concurrent workers never wait on each other; SQLite runs the
    same statement inside `BEGIN IMMEDIATE`, which serializes writers.
    """

    def __init__(
        self, url: str, *, pool_size: int = 10, clock: Callable[[], float] = time.time
    ) -> None:
        self.url = url
        self.engines: Engines = make_engines(url, pool_size)
        self.clock = clock

    async def migrate(self) -> None:
        """Create or upgrade the schema."""
        await anyio.to_thread.run_sync(run_migrations, self.url)

    async def close(self) -> None:
        """Release connections."""
        await self.engines.dispose()

    # -- jobs --------------------------------------------------------------------------------

    async def create_job(self, new: NewJob) -> tuple[Job, list[Result], bool]:
        """Insert a job and its results; idempotent on (task_uuid, request_hash)."""
        now = self.clock()
        async with self.engines.write.begin() as conn:
            existing = await self._job_row(conn, new.task_uuid)
            if existing is not None:
                return await self._existing(conn, existing, new)
            await conn.execute(jobs.insert().values(**_job_values(new, now)))
            await conn.execute(results.insert(), _result_values(new))
            job = await self._job_row(conn, new.task_uuid)
            assert job is not None  # noqa: S101 - inserted in this transaction
            return job, await self._results(conn, new.task_uuid), True

    async def _existing(
        self, conn: AsyncConnection, job: Job, new: NewJob
    ) -> tuple[Job, list[Result], bool]:
        if job.request_hash != new.request_hash or job.owner != new.owner:
            raise Conflict(
                f"taskUUID {new.task_uuid} was already used for a different request.",
                parameter="taskUUID",
            )
        return job, await self._results(conn, new.task_uuid), False

    async def _job_row(self, conn: AsyncConnection, task_uuid: str) -> Job | None:
        row = (await conn.execute(jobs.select().where(jobs.c.task_uuid == task_uuid))).first()
        return None if row is None else to_job(row)

    async def _results(self, conn: AsyncConnection, task_uuid: str) -> list[Result]:
        q = results.select().where(results.c.task_uuid == task_uuid).order_by(results.c.idx)
        return [to_result(r) for r in await conn.execute(q)]

    async def get_job(self, task_uuid: str, owner: str | None) -> tuple[Job, list[Result]] | None:
        """A job and its results (owner None: any owner)."""
        async with self.engines.read.connect() as conn:
            job = await self._job_row(conn, task_uuid)
            if job is None or (owner is not None and job.owner != owner):
                return None
            return job, await self._results(conn, task_uuid)

    async def get_result(self, video_uuid: str) -> Result | None:
        """One result by its videoUUID."""
        async with self.engines.read.connect() as conn:
            q = results.select().where(results.c.video_uuid == video_uuid)
            row = (await conn.execute(q)).first()
            return None if row is None else to_result(row)

    async def queue_position(self, task_uuid: str) -> int | None:
        """How many queued jobs are ahead of this one (None unless it is queued)."""
        q = sa.select(jobs.c.status, _place()).where(jobs.c.task_uuid == task_uuid)
        async with self.engines.read.connect() as conn:
            row = (await conn.execute(q)).first()
        return row.place if row is not None and row.status == JobStatus.QUEUED.value else None

    async def get_job_and_place(
        self, task_uuid: str, owner: str | None
    ) -> tuple[Job, list[Result], int | None] | None:
        """`get_job` plus `queue_position`, in one statement and connection (a poll is hot)."""
        q = sa.select(jobs, _place()).where(jobs.c.task_uuid == task_uuid)
        async with self.engines.read.connect() as conn:
            row = (await conn.execute(q)).first()
            if row is None:
                return None
            job = to_job(row)
            if owner is not None and job.owner != owner:
                return None
            queued = job.status is JobStatus.QUEUED
            return job, await self._results(conn, task_uuid), row.place if queued else None

    # -- worker side -------------------------------------------------------------------------

    def _claimable(self, now: float) -> sa.ColumnElement[bool]:
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

    async def claim_next(self, worker_id: str, lease_s: float) -> Claim | None:
        """Lease the next runnable job: queued, or running with an expired lease."""
        now = self.clock()
        # perf: idle workers poll often; look on the read engine first so an empty queue never
        # takes SQLite's write lock away from submits.
        async with self.engines.read.connect() as conn:
            probe = sa.select(jobs.c.task_uuid).where(self._claimable(now)).limit(1)
            if (await conn.execute(probe)).first() is None:
                return None
        token = secrets.token_hex(16)
        candidate = (
            sa.select(jobs.c.task_uuid)
            .where(self._claimable(now))
            .order_by(jobs.c.priority.desc(), jobs.c.created_at, jobs.c.task_uuid)
            .limit(1)
        )
        if self.engines.dialect == "postgresql":
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
        async with self.engines.write.begin() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                return None
            job = to_job(row)
            return Claim(
                job=job, token=token, results=tuple(await self._results(conn, job.task_uuid))
            )

    async def _fence(self, conn: AsyncConnection, task_uuid: str, token: str, **values: Any) -> Job:
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
        row = (await conn.execute(stmt)).first()
        if row is None:
            raise LeaseLost(task_uuid)
        return to_job(row)

    async def heartbeat(self, task_uuid: str, token: str, lease_s: float) -> bool:
        """Extend the lease; return whether cancel was requested."""
        async with self.engines.write.begin() as conn:
            job = await self._fence(conn, task_uuid, token, lease_expires_at=self.clock() + lease_s)
            return job.cancel_requested

    async def set_progress(self, task_uuid: str, token: str, progress: int) -> bool:
        """Record progress; return whether cancel was requested."""
        async with self.engines.write.begin() as conn:
            job = await self._fence(conn, task_uuid, token, progress=max(0, min(100, progress)))
            return job.cancel_requested

    async def complete_result(
        self, task_uuid: str, token: str, update: ResultUpdate, outbox: Sequence[OutboxItem] = ()
    ) -> None:
        """Mark one result successful, with its outbox rows, in one transaction."""
        now = self.clock()
        async with self.engines.write.begin() as conn:
            await self._fence(conn, task_uuid, token)
            await conn.execute(
                results.update()
                .where(results.c.video_uuid == update.video_uuid, results.c.task_uuid == task_uuid)
                .values(
                    status=ResultStatus.SUCCESS.value,
                    blob_key=update.blob_key,
                    content_type=update.content_type,
                    size_bytes=update.size_bytes,
                    # A cost priced at submit stays; V2V is priced once its input is probed.
                    cost=results.c.cost if update.cost is None else update.cost,
                    nsfw=update.nsfw,
                    completed_at=now,
                    expires_at=update.expires_at,
                )
            )
            await self._insert_outbox(conn, outbox, now)

    async def _insert_outbox(
        self, conn: AsyncConnection, outbox: Sequence[OutboxItem], now: float
    ) -> None:
        if not outbox:
            return
        await conn.execute(
            webhook_outbox.insert(),
            [
                {
                    "id": o.id,
                    "task_uuid": o.task_uuid,
                    "kind": o.kind,
                    "url": o.url,
                    "payload": o.payload,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for o in outbox
            ],
        )

    async def finish_job(
        self,
        task_uuid: str,
        token: str,
        status: JobStatus,
        error_code: str | None = None,
        error_message: str | None = None,
        outbox: Sequence[OutboxItem] = (),
    ) -> None:
        """Terminal transition; results still processing take the error."""
        if not status.terminal:
            raise ValueError(f"finish_job needs a terminal status, got {status}")
        now = self.clock()
        async with self.engines.write.begin() as conn:
            await self._fence(
                conn,
                task_uuid,
                token,
                status=status.value,
                finished_at=now,
                progress=100 if status is JobStatus.SUCCEEDED else jobs.c.progress,
                lease_token=None,
                lease_expires_at=None,
                error_code=error_code,
                error_message=error_message,
            )
            await self._fail_pending(conn, [task_uuid], error_code, error_message, now)
            await self._insert_outbox(conn, outbox, now)

    async def _fail_pending(
        self,
        conn: AsyncConnection,
        task_uuids: Sequence[str],
        code: str | None,
        message: str | None,
        now: float,
    ) -> None:
        await conn.execute(
            results.update()
            .where(
                results.c.task_uuid.in_(task_uuids),
                results.c.status == ResultStatus.PROCESSING.value,
            )
            .values(
                status=ResultStatus.ERROR.value,
                error_code=code or "inferenceError",
                error_message=message or "The task did not complete.",
                completed_at=now,
            )
        )

    async def release_job(self, task_uuid: str, token: str) -> None:
        """Hand a running job back to the queue without spending an attempt."""
        async with self.engines.write.begin() as conn:
            await self._fence(
                conn,
                task_uuid,
                token,
                status=JobStatus.QUEUED.value,
                attempts=jobs.c.attempts - 1,
                lease_owner=None,
                lease_token=None,
                lease_expires_at=None,
            )

    async def reap_expired(self) -> int:
        """Fail (or cancel) jobs whose lease expired with no attempts left (or cancel asked)."""
        now = self.clock()
        async with self.engines.write.begin() as conn:
            q = sa.select(jobs.c.task_uuid, jobs.c.cancel_requested).where(
                jobs.c.status == JobStatus.RUNNING.value,
                jobs.c.lease_expires_at < now,
                sa.or_(jobs.c.attempts >= jobs.c.max_attempts, jobs.c.cancel_requested),
            )
            rows = list(await conn.execute(q))
            for task_uuid, canceled in rows:
                status = JobStatus.CANCELED if canceled else JobStatus.FAILED
                code = "taskCancelled" if canceled else "workerLost"
                message = (
                    "The task was cancelled."
                    if canceled
                    else "The worker running this task stopped responding too many times."
                )
                await conn.execute(
                    jobs.update()
                    .where(jobs.c.task_uuid == task_uuid)
                    .values(
                        status=status.value,
                        finished_at=now,
                        lease_token=None,
                        lease_expires_at=None,
                        error_code=code,
                        error_message=message,
                    )
                )
                await self._fail_pending(conn, [task_uuid], code, message, now)
            return len(rows)

    async def request_cancel(self, task_uuid: str, owner: str | None) -> Job:
        """Cancel a queued job now, or flag a running one for its worker."""
        now = self.clock()
        async with self.engines.write.begin() as conn:
            job = await self._job_row(conn, task_uuid)
            if job is None or (owner is not None and job.owner != owner):
                raise NotFound(f"No task with taskUUID {task_uuid}.", parameter="taskUUID")
            if job.status is JobStatus.QUEUED:
                code, message = "taskCancelled", "The task was cancelled."
                await conn.execute(
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
                await self._fail_pending(conn, [task_uuid], code, message, now)
            elif job.status is JobStatus.RUNNING:
                await conn.execute(
                    jobs.update().where(jobs.c.task_uuid == task_uuid).values(cancel_requested=True)
                )
            updated = await self._job_row(conn, task_uuid)
            assert updated is not None  # noqa: S101
            return updated


def _place() -> sa.Label[int]:
    """The number of queued jobs that run before the outer `jobs` row (claim order:
    priority, then age), as a correlated column `place`."""
    ahead = jobs.alias("ahead")
    count = sa.select(sa.func.count()).where(
        ahead.c.status == JobStatus.QUEUED.value,
        sa.or_(
            ahead.c.priority > jobs.c.priority,
            sa.and_(ahead.c.priority == jobs.c.priority, ahead.c.created_at < jobs.c.created_at),
        ),
    )
    return count.scalar_subquery().label("place")


def _job_values(new: NewJob, now: float) -> dict[str, Any]:
    return {
        "task_uuid": new.task_uuid,
        "owner": new.owner,
        "task_type": new.task_type,
        "model": new.model,
        "request": new.request,
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
