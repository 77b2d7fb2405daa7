"""`SqlQueue`: claims, leases, progress and completion, every write fenced by a lease token.

The claim differs by dialect only in locking: PostgreSQL selects the candidate
`FOR UPDATE SKIP LOCKED` so concurrent workers never wait on each other; SQLite runs the same
statement inside `BEGIN IMMEDIATE`, which serializes writers. Every statement a running job
repeats (claim, heartbeat, progress, completion) runs on the driver directly (see `raw`).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from openimagine.domain.deliveries import NewDelivery, failure_webhook
from openimagine.domain.jobs import (
    CANCELED,
    Claim,
    JobStatus,
    Result,
    ResultStatus,
    ResultUpdate,
    reaped,
)
from openimagine.errors import LeaseLost
from openimagine.store.sql import raw, turns
from openimagine.store.sql.executor import Replanned
from openimagine.store.sql.shared import (
    Context,
    count_queued,
    fail_pending,
    finished_of,
    insert_deliveries,
    insert_results,
    load_job,
)

# A lease that ran out before its last attempt: the job runs again (oldest first).
_EXPIRED = (
    "status = 'running' AND cancel_requested = false AND lease_expires_at < :now"
    " AND attempts < max_attempts"
)
_QUEUED = "status = 'queued' AND cancel_requested = false"
# A key's `max_running` override, else the worker's default (0: none).
_RUN_LIMIT = (
    "COALESCE((SELECT k.max_running FROM api_keys k WHERE k.id = jobs.owner), :max_running)"
)
_RUNNING_OF = "(SELECT count(*) FROM jobs r WHERE r.owner = jobs.owner AND r.status = 'running')"
_UNDER_LIMIT = f" AND ({_RUN_LIMIT} = 0 OR {_RUNNING_OF} < {_RUN_LIMIT})"
# Fair share: keys with queued work take turns, each oldest first (see `turns`).
_ORDER = "ORDER BY turn, seq LIMIT 1"
_CLAIM = """
UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = :worker,
    lease_token = :token, lease_expires_at = :expires, started_at = COALESCE(started_at, :now)
WHERE task_uuid = (SELECT task_uuid FROM jobs WHERE {where} {order}{lock})
RETURNING {columns}
"""
_PROBE = Replanned(f"SELECT 1 FROM jobs WHERE ({_QUEUED}) OR ({_EXPIRED}) LIMIT 1")  # noqa: S608
_RESULTS = (
    f"SELECT {raw.columns(raw.RESULT_COLUMNS)} FROM results WHERE task_uuid = :task ORDER BY idx"  # noqa: S608
)
_COMPLETE = """
UPDATE results SET status = 'success', blob_key = :blob_key, content_type = :content_type,
    size_bytes = :size_bytes, nsfw = :nsfw, completed_at = :now, expires_at = :expires_at
WHERE video_uuid = :video_uuid AND task_uuid = :task
"""


@functools.cache
def _claim_sql(where: str, dialect: str) -> str:
    lock = " FOR UPDATE SKIP LOCKED" if dialect == "postgresql" else ""
    sql = _CLAIM.format(where=where, order=_ORDER, lock=lock, columns=raw.columns(raw.JOB_COLUMNS))
    return Replanned(sql)


@functools.cache
def _fence_sql(assignments: tuple[str, ...]) -> str:
    sets = ", ".join(assignments) or "lease_token = lease_token"
    return (
        f"UPDATE jobs SET {sets} WHERE task_uuid = :task AND lease_token = :token "  # noqa: S608
        "AND status = 'running' RETURNING cancel_requested, results_plan"
    )


class SqlQueue:
    """`QueueStore` over SQL."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def claim(self, worker_id: str, lease_s: float, *, max_running: int = 0) -> Claim | None:
        """Lease the next runnable job: a running one whose lease ran out first, else the
        queued one first in turn (fair share) whose key runs fewer jobs than its limit."""
        now = self._ctx.now()
        # perf: idle workers look often; a reader answers "nothing", so an empty queue never
        # takes the write lock away from submits.
        if not await self._ctx.db.read(_anything, now):
            return None
        token = secrets.token_hex(16)
        return await self._ctx.db.write(_claim, worker_id, token, now, lease_s, max_running)

    async def wait(self, timeout_s: float) -> None:
        """Return when a job may have arrived (a wake-up), or after `timeout_s`."""
        await self._ctx.db.wait_for_work(timeout_s)

    async def heartbeat(self, task_uuid: str, token: str, lease_s: float) -> bool:
        """Extend the lease; return whether cancel was requested."""
        values = {"lease_expires_at": self._ctx.now() + lease_s}
        return await self._ctx.db.write(_beat, task_uuid, token, values)

    async def progress(self, task_uuid: str, token: str, percent: int) -> bool:
        """Record progress; return whether cancel was requested."""
        values = {"progress": max(0, min(100, percent))}
        return await self._ctx.db.write(_beat, task_uuid, token, values)

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
        now = self._ctx.now()
        values: dict[str, Any] = {
            "status": status.value,
            "finished_at": now,
            "lease_token": None,
            "lease_expires_at": None,
            "error_code": error_code,
            "error_message": error_message,
        }
        if status is JobStatus.SUCCEEDED:
            values["progress"] = 100
        await self._ctx.db.write(_finish, task_uuid, token, values, deliveries, now)

    async def release(self, task_uuid: str, token: str) -> None:
        """Hand a running job back to the queue, first of its key's, without spending an
        attempt; a job whose cancel was asked meanwhile ends canceled instead."""
        await self._ctx.db.write(_release, task_uuid, token, self._ctx.now())

    async def reap_expired(self) -> int:
        """Fail (or cancel) jobs whose lease expired with no attempts left (or cancel asked)."""
        now = self._ctx.now()
        if not await self._ctx.db.read(_reapable, now):  # perf: mostly nothing; no write lock
            return 0
        return await self._ctx.db.write(_reap, now)


class _Raw(str):
    """An SQL expression as a value (`attempts - 1`), not a parameter."""

    __slots__ = ()


def _anything(conn: sa.Connection, now: float) -> bool:
    return raw.execute(conn, _PROBE, {"now": now}).fetchone() is not None


def _claim(
    conn: sa.Connection, worker_id: str, token: str, now: float, lease_s: float, max_running: int
) -> Claim | None:
    params = {"worker": worker_id, "token": token, "expires": now + lease_s, "now": now}
    params["max_running"] = max_running
    row = None
    for where in (_EXPIRED, _QUEUED + _UNDER_LIMIT):
        row = raw.execute(conn, _claim_sql(where, conn.dialect.name), params).fetchone()
        if row is not None:
            break
    if row is None:
        return None
    job = raw.job_from(row)
    if where != _EXPIRED:
        count_queued(conn, job.owner, -1)
    results = raw.merge(
        job.task_uuid, raw.plan_from(row[raw.PLAN]), finished_of(conn, job.task_uuid)
    )
    return Claim(job=job, token=token, results=tuple(results))


def _fence(
    conn: sa.Connection, task_uuid: str, token: str, values: dict[str, Any]
) -> tuple[bool, raw.Plan]:
    """Update the job only while `token` holds its lease: whether cancel was requested, and
    its results plan. `LeaseLost` (and no change) otherwise."""
    assignments = tuple(
        f"{name} = {value}" if isinstance(value, _Raw) else f"{name} = :{name}"
        for name, value in values.items()
    )
    params = {k: v for k, v in values.items() if not isinstance(v, _Raw)}
    params.update(task=task_uuid, token=token)
    row = raw.execute(conn, _fence_sql(assignments), params).fetchone()
    if row is None:
        raise LeaseLost(task_uuid)
    return bool(row[0]), raw.plan_from(row[1])


def _beat(conn: sa.Connection, task_uuid: str, token: str, values: dict[str, Any]) -> bool:
    return _fence(conn, task_uuid, token, values)[0]


def _release(conn: sa.Connection, task_uuid: str, token: str, now: float) -> None:
    """Back to the queue, before its key's other queued jobs (`turns.requeued`). A job asked
    to cancel ends canceled: queued, it could be neither claimed nor reaped."""
    found = load_job(conn, task_uuid)
    if found is None:
        raise LeaseLost(task_uuid)
    job = found[0]
    if job.cancel_requested:
        values: dict[str, Any] = {
            "status": JobStatus.CANCELED.value,
            "finished_at": now,
            "lease_token": None,
            "lease_expires_at": None,
            "error_code": CANCELED.code,
            "error_message": CANCELED.message,
        }
        _finish(conn, task_uuid, token, values, failure_webhook(job.spec.webhook_url), now)
        return
    turns.hold(conn, job.owner)
    values = {
        "status": JobStatus.QUEUED.value,
        "attempts": _Raw("attempts - 1"),
        "lease_owner": None,
        "lease_token": None,
        "lease_expires_at": None,
    }
    _fence(conn, task_uuid, token, values)
    turns.requeued(conn, task_uuid, job.owner)
    count_queued(conn, job.owner, 1)


def _complete(
    conn: sa.Connection,
    task_uuid: str,
    token: str,
    update: ResultUpdate,
    new: Sequence[NewDelivery],
    now: float,
) -> None:
    _, plan = _fence(conn, task_uuid, token, {})
    for index, (video_uuid, seed, cost) in enumerate(plan):
        if video_uuid == update.video_uuid:
            done = Result(
                video_uuid, task_uuid, index, seed, ResultStatus.SUCCESS, update.blob_key,
                update.content_type, update.size_bytes, cost, update.nsfw, None, None, now,
                update.expires_at,
            )  # fmt: skip
            insert_results(conn, [done])
    insert_deliveries(conn, task_uuid, new, now)


def _finish(
    conn: sa.Connection,
    task_uuid: str,
    token: str,
    values: dict[str, Any],
    new: Sequence[NewDelivery],
    now: float,
) -> None:
    _, plan = _fence(conn, task_uuid, token, values)
    fail_pending(conn, task_uuid, plan, values["error_code"], values["error_message"], now)
    insert_deliveries(conn, task_uuid, new, now)


_REAPABLE = Replanned(
    "SELECT task_uuid, cancel_requested, results_plan FROM jobs WHERE status = 'running' "
    "AND lease_expires_at < :now AND (attempts >= max_attempts OR cancel_requested = true)"
)
_ANY_REAPABLE = Replanned(_REAPABLE + " LIMIT 1")


def _reapable(conn: sa.Connection, now: float) -> bool:
    return raw.execute(conn, _ANY_REAPABLE, {"now": now}).fetchone() is not None


_REAP = (
    "UPDATE jobs SET status = :status, finished_at = :finished_at, lease_token = :lease_token,"
    " lease_expires_at = :lease_expires_at, error_code = :error_code, error_message ="
    " :error_message WHERE task_uuid = :task AND status = 'running' AND lease_expires_at < :now"
    " RETURNING task_uuid"
)


def _reap(conn: sa.Connection, now: float) -> int:
    rows = raw.execute(conn, _REAPABLE, {"now": now}).fetchall()
    reaped_jobs = 0
    for task_uuid, canceled, plan in rows:
        status, why = reaped(bool(canceled))
        values = {
            "status": status.value,
            "finished_at": now,
            "lease_token": None,
            "lease_expires_at": None,
            "error_code": why.code,
            "error_message": why.message,
            "task": task_uuid,
        }
        values["now"] = now
        # Only the row as read: on PostgreSQL its worker may have finished it meanwhile.
        if not raw.execute(conn, _REAP, values).fetchone():
            continue
        reaped_jobs += 1
        fail_pending(conn, task_uuid, raw.plan_from(plan), why.code, why.message, now)
        found = load_job(conn, task_uuid)
        if found is not None:
            insert_deliveries(conn, task_uuid, failure_webhook(found[0].spec.webhook_url), now)
    return reaped_jobs
