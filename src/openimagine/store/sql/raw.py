"""Statements on the driver directly: one SQL text for both dialects, executed on the DBAPI
connection under SQLAlchemy's transaction, with rows mapped by position.

perf: a Core statement costs tens of microseconds of Python per execution (compile cache
lookup, result machinery); the statements on every submit, poll and claim skip that. They are
written with `:name` parameters (sqlite3's style) and rewritten once for psycopg's
`%(name)s`.

Results: a job row carries its `results_plan` (each result's videoUUID, seed and cost, fixed
at submit) and the `results` table holds rows of finished results only; `merge` puts them
together as the domain's `Result`s.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from openimagine.domain.jobs import Job, JobStatus, NewJob, Result, ResultStatus
from openimagine.store.sql.codec import spec_from_json
from openimagine.store.sql.executor import SyncExecutor

JOB_COLUMNS = (
    "task_uuid", "owner", "task_type", "request", "request_hash", "status", "attempts",
    "max_attempts", "progress", "cancel_requested", "number_results", "created_at",
    "started_at", "finished_at", "lease_owner", "lease_token", "lease_expires_at",
    "error_code", "error_message", "seq", "results_plan", "turn",
)  # fmt: skip
RESULT_COLUMNS = (
    "video_uuid", "task_uuid", "idx", "seed", "status", "blob_key", "content_type",
    "size_bytes", "cost", "nsfw", "error_code", "error_message", "completed_at", "expires_at",
)  # fmt: skip
PLAN = JOB_COLUMNS.index("results_plan")

Plan = list[tuple[str, int, float]]  # per result: videoUUID, seed, cost


def columns(names: Sequence[str], table: str = "") -> str:
    """`a, b, c` (or `t.a, t.b, t.c`) for a SELECT list."""
    prefix = f"{table}." if table else ""
    return ", ".join(prefix + n for n in names)


JOB_SELECT = f"SELECT {columns(JOB_COLUMNS)} FROM jobs"  # noqa: S608 - constant names
RESULT_SELECT = f"SELECT {columns(RESULT_COLUMNS)} FROM results"  # noqa: S608


# `n` more (or fewer) queued jobs of a key (`tables.key_queue`), on the row of this
# connection's shard: PostgreSQL's concurrent batches of one key never wait for each other's
# row lock (a key's count is the sum of its shards); SQLite has one writer and one shard.
_COUNT_QUEUED = """
INSERT INTO key_queue (owner, shard, queued) VALUES (:owner, {shard}, :n)
ON CONFLICT (owner, shard) DO UPDATE SET queued = key_queue.queued + excluded.queued
"""
SHARDS = 8
SHARD = {"postgresql": f"mod(pg_backend_pid(), {SHARDS})", "sqlite": "0"}


@functools.cache
def count_queued_sql(dialect: str) -> str:
    """The statement that counts `:n` more queued jobs of `:owner`."""
    return _COUNT_QUEUED.format(shard=SHARD[dialect])


def execute(conn: sa.Connection, sql: str, params: Mapping[str, Any] | None = None) -> Any:
    """Run `sql` on the connection's driver; returns the driver's cursor."""
    driver = conn.connection.driver_connection
    assert driver is not None  # noqa: S101 - a checked-out connection has its driver
    return SyncExecutor(driver, conn.dialect.name).cursor(sql, params)


def executor(conn: sa.Connection) -> SyncExecutor:
    """The hot path's executor over a SQLAlchemy connection (on a thread)."""
    return SyncExecutor(conn.connection.driver_connection, conn.dialect.name)


def plan_json(new: NewJob) -> str:
    """The stored plan of a new job's results."""
    return orjson.dumps(list(zip(new.video_uuids, new.seeds, new.costs, strict=True))).decode()


def job_from(row: Sequence[Any]) -> Job:
    """A `jobs` row selected as `JOB_COLUMNS`."""
    return Job(
        task_uuid=row[0],
        owner=row[1],
        task_type=row[2],
        spec=spec_from_json(row[3]),
        request_hash=row[4],
        status=JobStatus(row[5]),
        attempts=row[6],
        max_attempts=row[7],
        progress=row[8],
        cancel_requested=bool(row[9]),
        number_results=row[10],
        created_at=row[11],
        started_at=row[12],
        finished_at=row[13],
        lease_owner=row[14],
        lease_token=row[15],
        lease_expires_at=row[16],
        error_code=row[17],
        error_message=row[18],
        seq=row[19],
        turn=row[21],
    )


def plan_from(raw_plan: str) -> Plan:
    """A stored plan."""
    return [(str(v), int(seed), float(cost)) for v, seed, cost in orjson.loads(raw_plan)]


def result_from(row: Sequence[Any]) -> Result:
    """A `results` row selected as `RESULT_COLUMNS`."""
    return Result(
        video_uuid=row[0],
        task_uuid=row[1],
        index=row[2],
        seed=row[3],
        status=ResultStatus(row[4]),
        blob_key=row[5],
        content_type=row[6],
        size_bytes=row[7],
        cost=row[8],
        nsfw=None if row[9] is None else bool(row[9]),
        error_code=row[10],
        error_message=row[11],
        completed_at=row[12],
        expires_at=row[13],
    )


def merge(task_uuid: str, plan: Plan, finished: Iterable[Result]) -> list[Result]:
    """A job's results in order: the finished ones as stored, the others processing."""
    done = {r.index: r for r in finished}
    return [
        done.get(i)
        or Result(video, task_uuid, i, seed, ResultStatus.PROCESSING, None, None, None, cost,
                  None, None, None, None, None)
        for i, (video, seed, cost) in enumerate(plan)
    ]  # fmt: skip


def unfinished(task_uuid: str, plan: Plan, finished: Iterable[Result]) -> list[Result]:
    """The results of a plan that have no row yet (still processing)."""
    return [r for r in merge(task_uuid, plan, finished) if r.status is ResultStatus.PROCESSING]
