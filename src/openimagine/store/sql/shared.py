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
from openimagine.store.sql.executor import Executor, drive


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


_FINISHED = raw.RESULT_SELECT + " WHERE task_uuid = :t ORDER BY idx"


async def finished_results(ex: Executor, task_uuid: str) -> list[Result]:
    """A job's finished results (those with a row)."""
    return [raw.result_from(r) for r in await ex.fetchall(_FINISHED, {"t": task_uuid})]


def finished_of(conn: sa.Connection, task_uuid: str) -> list[Result]:
    """`finished_results` within a SQLAlchemy transaction."""
    return drive(finished_results(raw.executor(conn), task_uuid))


def results_of(conn: sa.Connection, task_uuid: str, plan: raw.Plan) -> list[Result]:
    """A job's results, in order."""
    return raw.merge(task_uuid, plan, finished_of(conn, task_uuid))


_RESULT_ROW = (
    "(:video_uuid_{i}, :task_uuid_{i}, :idx_{i}, :seed_{i}, :status_{i}, :blob_key_{i}, "
    ":content_type_{i}, :size_bytes_{i}, :cost_{i}, :nsfw_{i}, :error_code_{i}, "
    ":error_message_{i}, :completed_at_{i}, :expires_at_{i})"
)
_USAGE_COLUMNS = UsageEntry.__slots__
_USAGE_ROW = "(" + ", ".join(f":{name}_{{i}}" for name in _USAGE_COLUMNS) + ")"
_DELIVERY_COLUMNS = (
    "id", "task_uuid", "kind", "event", "video_uuid", "url", "host", "status", "attempts",
    "next_attempt_at", "created_at",
)  # fmt: skip
_DELIVERY_ROW = "(" + ", ".join(f":{name}_{{i}}" for name in _DELIVERY_COLUMNS) + ")"


def _values(
    row: str, names: Sequence[str], rows: Sequence[Sequence[object]]
) -> tuple[str, dict[str, object]]:
    """`VALUES` rows for a multi-row INSERT, and their parameters."""
    params = {
        f"{name}_{i}": value
        for i, r in enumerate(rows)
        for name, value in zip(names, r, strict=True)
    }
    return ", ".join(row.format(i=i) for i in range(len(rows))), params


async def store_results(ex: Executor, job: Job | None, rows: Sequence[Result]) -> None:
    """Store finished results of `job`, and their usage ledger entries (same transaction).
    `job` None: read it (all of `rows` are of one job)."""
    if not rows:
        return
    values, params = _values(
        _RESULT_ROW,
        raw.RESULT_COLUMNS,
        [
            (
                r.video_uuid,
                r.task_uuid,
                r.index,
                r.seed,
                r.status.value,
                r.blob_key,
                r.content_type,
                r.size_bytes,
                r.cost,
                r.nsfw,
                r.error_code,
                r.error_message,
                r.completed_at,
                r.expires_at,
            )
            for r in rows
        ],
    )
    sql = f"INSERT INTO results ({raw.columns(raw.RESULT_COLUMNS)}) VALUES {values}"  # noqa: S608
    await ex.execute(sql, params)
    if job is None:
        found = await ex.fetchone(
            raw.JOB_SELECT + " WHERE task_uuid = :t", {"t": rows[0].task_uuid}
        )
        if found is None:
            return
        job = raw.job_from(found)
    entries = [UsageEntry.of(job, r, r.completed_at or 0.0) for r in rows]
    values, params = _values(
        _USAGE_ROW,
        _USAGE_COLUMNS,
        [tuple(_usage_value(e, name) for name in _USAGE_COLUMNS) for e in entries],
    )
    await ex.execute(f"INSERT INTO usage ({', '.join(_USAGE_COLUMNS)}) VALUES {values}", params)  # noqa: S608


def _usage_value(entry: UsageEntry, name: str) -> object:
    value = getattr(entry, name)
    return value.value if name == "status" else value


async def fail_unfinished(
    ex: Executor,
    job: Job,
    plan: raw.Plan,
    code: str | None,
    message: str | None,
    now: float,
) -> None:
    """Results still processing take the job's error."""
    task_uuid = job.task_uuid
    pending = raw.unfinished(task_uuid, plan, await finished_results(ex, task_uuid))
    failed = [
        Result(
            r.video_uuid, task_uuid, r.index, r.seed, ResultStatus.ERROR, None, None, None,
            r.cost, None, code or "inferenceError", message or "The task did not complete.",
            now, None,
        )
        for r in pending
    ]  # fmt: skip
    await store_results(ex, job, failed)


def fail_pending(
    conn: sa.Connection,
    task_uuid: str,
    plan: raw.Plan,
    code: str | None,
    message: str | None,
    now: float,
) -> None:
    """`fail_unfinished` within a SQLAlchemy transaction, the job read by its UUID."""
    found = load_job(conn, task_uuid)
    if found is not None:
        drive(fail_unfinished(raw.executor(conn), found[0], plan, code, message, now))


def count_queued(conn: sa.Connection, owner: str, n: int) -> None:
    """`n` more (or fewer) jobs of `owner` are queued: in the transaction that queues them."""
    raw.execute(conn, raw.count_queued_sql(conn.dialect.name), {"owner": owner, "n": n})


async def add_deliveries(
    ex: Executor, task_uuid: str, new: Sequence[NewDelivery], now: float
) -> None:
    """Record deliveries, due now."""
    if not new:
        return
    values, params = _values(
        _DELIVERY_ROW,
        _DELIVERY_COLUMNS,
        [
            (
                str(uuid.uuid4()),
                task_uuid,
                d.kind.value,
                d.event.value,
                d.video_uuid,
                d.url,
                destination(d.url),
                DeliveryStatus.PENDING.value,
                0,
                now,
                now,
            )
            for d in new
        ],
    )
    sql = f"INSERT INTO deliveries ({', '.join(_DELIVERY_COLUMNS)}) VALUES {values}"  # noqa: S608
    await ex.execute(sql, params)


def insert_deliveries(
    conn: sa.Connection, task_uuid: str, new: Sequence[NewDelivery], now: float
) -> None:
    """`add_deliveries` within a SQLAlchemy transaction."""
    drive(add_deliveries(raw.executor(conn), task_uuid, new, now))
