"""What the parts of the SQL store share: the database, the clock, and a few statements."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from openimagine.domain.deliveries import DeliveryStatus, NewDelivery
from openimagine.domain.jobs import Job, JobStatus, Result, ResultStatus
from openimagine.store.sql.database import Database
from openimagine.store.sql.rows import to_job, to_result
from openimagine.store.sql.tables import deliveries, jobs, results


@dataclass
class Context:
    """The database and the clock every part reads (tests move the clock)."""

    db: Database
    clock: Callable[[], float] = field(default=time.time)

    def now(self) -> float:
        """The current time on the store's clock."""
        return self.clock()


def job_row(conn: sa.Connection, task_uuid: str) -> Job | None:
    """A job by its task UUID."""
    row = conn.execute(jobs.select().where(jobs.c.task_uuid == task_uuid)).first()
    return None if row is None else to_job(row)


def results_of(conn: sa.Connection, task_uuid: str) -> list[Result]:
    """A job's results, in order."""
    q = results.select().where(results.c.task_uuid == task_uuid).order_by(results.c.idx)
    return [to_result(r) for r in conn.execute(q)]


def fail_pending(
    conn: sa.Connection, task_uuid: str, code: str | None, message: str | None, now: float
) -> None:
    """Results still processing take the job's error."""
    conn.execute(
        results.update()
        .where(
            results.c.task_uuid == task_uuid,
            results.c.status == ResultStatus.PROCESSING.value,
        )
        .values(
            status=ResultStatus.ERROR.value,
            error_code=code or "inferenceError",
            error_message=message or "The task did not complete.",
            completed_at=now,
        )
    )


def insert_deliveries(
    conn: sa.Connection, task_uuid: str, new: Sequence[NewDelivery], now: float
) -> None:
    """Record deliveries, due now."""
    if not new:
        return
    conn.execute(
        deliveries.insert(),
        [
            {
                "id": str(uuid.uuid4()),
                "task_uuid": task_uuid,
                "kind": d.kind.value,
                "event": d.event.value,
                "video_uuid": d.video_uuid,
                "url": d.url,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for d in new
        ],
    )


def place() -> sa.Label[int]:
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
