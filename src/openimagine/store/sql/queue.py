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
    ANY,
    CANCELED,
    Capability,
    Claim,
    JobStatus,
    Result,
    ResultStatus,
    ResultUpdate,
    reaped,
)
from openimagine.errors import LeaseLost
from openimagine.store.sql import capabilities, completions, raw, turns
from openimagine.store.sql.completions import Leased
from openimagine.store.sql.executor import Executor, Replanned, Row, drive
from openimagine.store.sql.shared import (
    Context,
    add_deliveries,
    count_queued,
    fail_pending,
    fail_unfinished,
    finished_results,
    insert_deliveries,
    load_job,
    store_results,
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
# PostgreSQL's claim: one statement, one round trip. The expired branch runs first; the queued
# one only when it found nothing (a one-time filter on `expired`). Both lock their row with
# SKIP LOCKED, so concurrent workers pass each other instead of waiting. The key's queued count
# goes down in the same statement; whether the job has finished results (a retry's) comes
# back with it, so a first attempt needs no second statement. Each branch also filters by
# the worker's capability (`capabilities`): an expired lease it cannot run is not its to take.
_CLAIM_PG = """
WITH expired AS (
    SELECT task_uuid, false AS fresh FROM jobs WHERE {expired} {order} FOR UPDATE SKIP LOCKED
), queued AS (
    SELECT task_uuid, true AS fresh FROM jobs
    WHERE NOT EXISTS (SELECT 1 FROM expired) AND {queued} {order} FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT task_uuid, fresh FROM expired UNION ALL SELECT task_uuid, fresh FROM queued
), claimed AS (
    UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = :worker,
        lease_token = :token, lease_expires_at = :expires,
        started_at = COALESCE(started_at, :now)
    FROM picked WHERE jobs.task_uuid = picked.task_uuid
    RETURNING {columns}, picked.fresh
), counted AS (
    INSERT INTO key_queue (owner, shard, queued) SELECT owner, {shard}, -1 FROM claimed
    WHERE fresh
    ON CONFLICT (owner, shard) DO UPDATE SET queued = key_queue.queued + excluded.queued
)
SELECT *, EXISTS (SELECT 1 FROM results r WHERE r.task_uuid = claimed.task_uuid) FROM claimed
"""
_CANCEL_REQUESTED = raw.JOB_COLUMNS.index("cancel_requested")
_LEASES_KEPT = 8
_PROBE = "SELECT 1 FROM jobs WHERE (({queued}) OR ({expired})){fits} LIMIT 1"


@functools.cache
def _claim_pg(shape: capabilities.Shape) -> str:
    """PostgreSQL's claim for a capability of this shape (a constant text: prepared)."""
    fits = capabilities.where(shape)
    return _CLAIM_PG.format(
        expired=_EXPIRED + fits,
        queued=_QUEUED + _UNDER_LIMIT + fits,
        order=_ORDER,
        columns=raw.columns(raw.JOB_COLUMNS, "jobs"),
        shard=raw.SHARD["postgresql"],
    )


@functools.cache
def _probe_sql(shape: capabilities.Shape) -> str:
    fits = capabilities.where(shape)
    return Replanned(_PROBE.format(queued=_QUEUED, expired=_EXPIRED, fits=fits))


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
        f"AND status = 'running' RETURNING {raw.columns(raw.JOB_COLUMNS)}"
    )


class SqlQueue:
    """`QueueStore` over SQL."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        # PostgreSQL: the jobs this queue leased, by (task, token), for one-statement
        # completions (`completions`). A worker holds one at a time; a few more are kept
        # for a lease lost without a word.
        self._leased: dict[tuple[str, str], Leased] = {}
        self._fast = ctx.db.dialect == "postgresql"

    async def claim(
        self,
        worker_id: str,
        lease_s: float,
        *,
        max_running: int = 0,
        capability: Capability = ANY,
    ) -> Claim | None:
        """Lease the next runnable job that `capability` fits: a running one whose lease ran
        out first, else the queued one first in turn (fair share) whose key runs fewer jobs
        than its limit. The jobs it does not fit are passed over (a claim reads past them)."""
        now = self._ctx.now()
        # perf: on SQLite a reader answers "nothing" first, so an empty queue (or one of jobs
        # this worker cannot run) never takes the write lock away from submits. PostgreSQL's
        # claim locks rows, never the queue.
        sqlite = self._ctx.db.dialect == "sqlite"
        if sqlite and not await self._ctx.db.read(_anything, now, capability):
            return None
        token = secrets.token_hex(16)
        args = (worker_id, token, now, lease_s, max_running, capability)
        claim = await self._ctx.db.work(_claim, *args)
        if claim is not None and self._fast:
            self._leased[claim.job.task_uuid, token] = Leased.of(claim)
            while len(self._leased) > _LEASES_KEPT:
                del self._leased[next(iter(self._leased))]
        return claim

    async def wait(self, timeout_s: float) -> None:
        """Return when a job may have arrived (a wake-up), or after `timeout_s`."""
        await self._ctx.db.wait_for_work(timeout_s)

    async def heartbeat(self, task_uuid: str, token: str, lease_s: float) -> bool:
        """Extend the lease; return whether cancel was requested."""
        values = {"lease_expires_at": self._ctx.now() + lease_s}
        return await self._ctx.db.work(_beat, task_uuid, token, values)

    async def progress(self, task_uuid: str, token: str, percent: int) -> bool:
        """Record progress; return whether cancel was requested."""
        values = {"progress": max(0, min(100, percent))}
        return await self._ctx.db.work(_beat, task_uuid, token, values)

    async def complete_result(
        self,
        task_uuid: str,
        token: str,
        update: ResultUpdate,
        deliveries: Sequence[NewDelivery] = (),
        *,
        last: bool = False,
    ) -> None:
        """Mark one result successful, with its deliveries, in one transaction; with `last`,
        the job succeeds in it too."""
        now = self._ctx.now()
        leased = (self._leased.pop if last else self._leased.get)((task_uuid, token), None)
        ending = _ending(JobStatus.SUCCEEDED, now) if last else None
        if leased is not None:
            args = (leased, token, update, deliveries, now, ending)
            if await self._ctx.db.work(completions.complete, *args):
                return
        try:
            await self._ctx.db.work(_complete, task_uuid, token, update, deliveries, now, ending)
        except LeaseLost:
            # A completion tried again after its first try committed unseen (the connection
            # dropped with the answer) finds its own file recorded: done, not lost. Telling
            # the worker otherwise would have it delete a file that is served.
            if await self._ctx.db.work(_recorded, update.video_uuid) != update.blob_key:
                raise

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
        values = _ending(status, now, error_code, error_message)
        leased = self._leased.pop((task_uuid, token), None)
        fast = leased is not None and not deliveries
        if fast and await self._ctx.db.work(completions.finish, leased, token, values):
            return
        await self._ctx.db.work(_finish, task_uuid, token, values, deliveries, now)

    async def release(self, task_uuid: str, token: str) -> None:
        """Hand a running job back to the queue, first of its key's, without spending an
        attempt; a job whose cancel was asked meanwhile ends canceled instead."""
        self._leased.pop((task_uuid, token), None)
        await self._ctx.db.write(_release, task_uuid, token, self._ctx.now())

    async def reap_expired(self) -> int:
        """Fail (or cancel) jobs whose lease expired with no attempts left (or cancel asked)."""
        now = self._ctx.now()
        if not await self._ctx.db.read(_reapable, now):  # perf: mostly nothing; no write lock
            return 0
        return await self._ctx.db.write(_reap, now)


async def _recorded(ex: Executor, video_uuid: str) -> str | None:
    """The file a result records, if it has finished."""
    row = await ex.fetchone("SELECT blob_key FROM results WHERE video_uuid = :v", {"v": video_uuid})
    return None if row is None else row[0]


def _ending(
    status: JobStatus, now: float, code: str | None = None, message: str | None = None
) -> dict[str, Any]:
    """The job's columns as `status` ends it."""
    values: dict[str, Any] = {
        "status": status.value,
        "finished_at": now,
        "lease_token": None,
        "lease_expires_at": None,
        "error_code": code,
        "error_message": message,
    }
    if status is JobStatus.SUCCEEDED:
        values["progress"] = 100
    return values


class _Raw(str):
    """An SQL expression as a value (`attempts - 1`), not a parameter."""

    __slots__ = ()


def _anything(conn: sa.Connection, now: float, capability: Capability) -> bool:
    params = {"now": now, **capabilities.params(capability)}
    sql = _probe_sql(capabilities.shape(capability))
    return raw.execute(conn, sql, params).fetchone() is not None


async def _claim(
    ex: Executor,
    worker_id: str,
    token: str,
    now: float,
    lease_s: float,
    max_running: int,
    capability: Capability,
) -> Claim | None:
    params = {"worker": worker_id, "token": token, "expires": now + lease_s, "now": now}
    params["max_running"] = max_running
    params.update(capabilities.params(capability))
    shape = capabilities.shape(capability)
    if ex.dialect == "postgresql":
        row = await ex.fetchone(_claim_pg(shape), params)
        if row is None:
            return None
        finished = await finished_results(ex, row[0]) if row[-1] else []
    else:
        fits = capabilities.where(shape)
        row = await ex.fetchone(_claim_sql(_EXPIRED + fits, ex.dialect), params)
        fresh = row is None
        if fresh:
            row = await ex.fetchone(_claim_sql(_QUEUED + _UNDER_LIMIT + fits, ex.dialect), params)
        if row is None:
            return None
        if fresh:
            await ex.execute(raw.count_queued_sql(ex.dialect), {"owner": row[1], "n": -1})
        finished = await finished_results(ex, row[0])
    job = raw.job_from(row)
    results = raw.merge(job.task_uuid, raw.plan_from(row[raw.PLAN]), finished)
    return Claim(job=job, token=token, results=tuple(results))


async def _fence(ex: Executor, task_uuid: str, token: str, values: dict[str, Any]) -> Row:
    """Update the job only while `token` holds its lease; the job's row after it (as
    `raw.JOB_COLUMNS`). `LeaseLost` (and no change) otherwise."""
    assignments = tuple(
        f"{name} = {value}" if isinstance(value, _Raw) else f"{name} = :{name}"
        for name, value in values.items()
    )
    params = {k: v for k, v in values.items() if not isinstance(v, _Raw)}
    params.update(task=task_uuid, token=token)
    row = await ex.fetchone(_fence_sql(assignments), params)
    if row is None:
        raise LeaseLost(task_uuid)
    return row


async def _beat(ex: Executor, task_uuid: str, token: str, values: dict[str, Any]) -> bool:
    """Whether cancel was requested."""
    return bool((await _fence(ex, task_uuid, token, values))[_CANCEL_REQUESTED])


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
        hooks = failure_webhook(job.spec.webhook_url)
        drive(_finish(raw.executor(conn), task_uuid, token, values, hooks, now))
        return
    turns.hold(conn, job.owner)
    values = {
        "status": JobStatus.QUEUED.value,
        "attempts": _Raw("attempts - 1"),
        "lease_owner": None,
        "lease_token": None,
        "lease_expires_at": None,
    }
    drive(_fence(raw.executor(conn), task_uuid, token, values))
    turns.requeued(conn, task_uuid, job.owner)
    count_queued(conn, job.owner, 1)


async def _complete(
    ex: Executor,
    task_uuid: str,
    token: str,
    update: ResultUpdate,
    new: Sequence[NewDelivery],
    now: float,
    ending: dict[str, Any] | None = None,
) -> None:
    """Store one successful result; with `ending`, end the job with it (see `_finish`)."""
    async with ex.atomic():
        row = await _fence(ex, task_uuid, token, {})
        job = raw.job_from(row)
        done = [
            Result(
                video_uuid, task_uuid, index, seed, ResultStatus.SUCCESS, update.blob_key,
                update.content_type, update.size_bytes, cost, update.nsfw, None, None, now,
                update.expires_at,
            )
            for index, (video_uuid, seed, cost) in enumerate(raw.plan_from(row[raw.PLAN]))
            if video_uuid == update.video_uuid
        ]  # fmt: skip
        await store_results(ex, job, done)
        await add_deliveries(ex, task_uuid, new, now)
        if ending is not None:
            await _finish(ex, task_uuid, token, ending, (), now)


async def _finish(
    ex: Executor,
    task_uuid: str,
    token: str,
    values: dict[str, Any],
    new: Sequence[NewDelivery],
    now: float,
) -> None:
    """The terminal transition; results still processing take the error."""
    async with ex.atomic():
        row = await _fence(ex, task_uuid, token, values)
        plan = raw.plan_from(row[raw.PLAN])
        code, message = values["error_code"], values["error_message"]
        await fail_unfinished(ex, raw.job_from(row), plan, code, message, now)
        await add_deliveries(ex, task_uuid, new, now)


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
