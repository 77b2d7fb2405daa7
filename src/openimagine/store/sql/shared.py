"""What the parts of the SQL store share: the database, the clock, and the statements on a
job's row, its results, and deliveries."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from openimagine.domain.deliveries import DeliveryStatus, NewDelivery, destination
from openimagine.domain.jobs import Job, Result, ResultStatus
from openimagine.domain.usage import UsageEntry
from openimagine.store.sql import raw
from openimagine.store.sql.database import Database
from openimagine.store.sql.tables import deliveries, usage


@dataclass
class Context:
    """The database and the clock every part reads (tests move the clock)."""

    db: Database
    clock: Callable[[], float] = field(default=time.time)

    def now(self) -> float:
        """The current time on the store's clock."""
        return self.clock()


def load_job(conn: sa.Connection, task_uuid: str) -> tuple[Job, raw.Plan] | None:
    """A job and its results plan."""
    row = raw.execute(conn, raw.JOB_SELECT + " WHERE task_uuid = :t", {"t": task_uuid}).fetchone()
    return None if row is None else (raw.job_from(row), raw.plan_from(row[raw.PLAN]))


def finished_of(conn: sa.Connection, task_uuid: str) -> list[Result]:
    """A job's finished results (those with a row)."""
    sql = raw.RESULT_SELECT + " WHERE task_uuid = :t ORDER BY idx"
    return [raw.result_from(r) for r in raw.execute(conn, sql, {"t": task_uuid}).fetchall()]


def results_of(conn: sa.Connection, task_uuid: str, plan: raw.Plan) -> list[Result]:
    """A job's results, in order."""
    return raw.merge(task_uuid, plan, finished_of(conn, task_uuid))


_RESULT_ROW = (
    "(:video_uuid_{i}, :task_uuid_{i}, :idx_{i}, :seed_{i}, :status_{i}, :blob_key_{i}, "
    ":content_type_{i}, :size_bytes_{i}, :cost_{i}, :nsfw_{i}, :error_code_{i}, "
    ":error_message_{i}, :completed_at_{i}, :expires_at_{i})"
)


def insert_results(conn: sa.Connection, rows: Sequence[Result]) -> None:
    """Store finished results."""
    if not rows:
        return
    values = ", ".join(_RESULT_ROW.format(i=i) for i in range(len(rows)))
    params = {}
    for i, r in enumerate(rows):
        params.update(
            {
                f"video_uuid_{i}": r.video_uuid,
                f"task_uuid_{i}": r.task_uuid,
                f"idx_{i}": r.index,
                f"seed_{i}": r.seed,
                f"status_{i}": r.status.value,
                f"blob_key_{i}": r.blob_key,
                f"content_type_{i}": r.content_type,
                f"size_bytes_{i}": r.size_bytes,
                f"cost_{i}": r.cost,
                f"nsfw_{i}": r.nsfw,
                f"error_code_{i}": r.error_code,
                f"error_message_{i}": r.error_message,
                f"completed_at_{i}": r.completed_at,
                f"expires_at_{i}": r.expires_at,
            }
        )
    sql = f"INSERT INTO results ({raw.columns(raw.RESULT_COLUMNS)}) VALUES {values}"  # noqa: S608
    raw.execute(conn, sql, params)
    _record_usage(conn, rows)


def fail_pending(
    conn: sa.Connection,
    task_uuid: str,
    plan: raw.Plan,
    code: str | None,
    message: str | None,
    now: float,
) -> None:
    """Results still processing take the job's error."""
    pending = raw.unfinished(task_uuid, plan, finished_of(conn, task_uuid))
    insert_results(
        conn,
        [
            Result(
                r.video_uuid, task_uuid, r.index, r.seed, ResultStatus.ERROR, None, None, None,
                r.cost, None, code or "inferenceError",
                message or "The task did not complete.", now, None,
            )
            for r in pending
        ],
    )  # fmt: skip


def count_queued(conn: sa.Connection, owner: str, n: int) -> None:
    """`n` more (or fewer) jobs of `owner` are queued: in the transaction that queues them."""
    raw.execute(conn, raw.count_queued_sql(conn.dialect.name), {"owner": owner, "n": n})


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
                "host": destination(d.url),
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for d in new
        ],
    )


def _record_usage(conn: sa.Connection, rows: Sequence[Result]) -> None:
    """Ledger entries for finished results, in the transaction that finishes them."""
    jobs: dict[str, Job | None] = {}
    entries = []
    for r in rows:
        if r.task_uuid not in jobs:
            found = load_job(conn, r.task_uuid)
            jobs[r.task_uuid] = None if found is None else found[0]
        job = jobs[r.task_uuid]
        if job is not None:
            entries.append(UsageEntry.of(job, r, r.completed_at or 0.0))
    if entries:
        conn.execute(usage.insert(), [_usage_row(e) for e in entries])


def _usage_row(entry: UsageEntry) -> dict[str, object]:
    return {
        name: getattr(entry, name).value if name == "status" else getattr(entry, name)
        for name in entry.__slots__
    }
