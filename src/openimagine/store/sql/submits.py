"""The statements of every submit and poll, on the driver directly (see `raw`): a batch of
jobs inserted with their queue numbers, a job read with its results in one statement, and a
queued job's place from the head of the queue."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from openimagine.domain.jobs import Job, JobStatus, NewJob, Result
from openimagine.errors import Conflict
from openimagine.store.sql import raw
from openimagine.store.sql.codec import spec_json
from openimagine.store.sql.shared import add_hole

_JOB_ROW = (
    "(:task_uuid_{i}, :owner_{i}, :task_type_{i}, :model_{i}, :request_{i}, :request_hash_{i},"
    " 'queued', 0, 0, :max_attempts_{i}, 0, false, :number_results_{i}, :created_at_{i},"
    " :seq_{i}, :results_plan_{i})"
)
_INSERT_JOBS = """
INSERT INTO jobs (task_uuid, owner, task_type, model, request, request_hash, status, priority,
    attempts, max_attempts, progress, cancel_requested, number_results, created_at, seq,
    results_plan)
VALUES {rows}
ON CONFLICT (task_uuid) DO NOTHING RETURNING task_uuid
"""
_RESERVE = "UPDATE queue_counter SET next_seq = next_seq + :n WHERE id = 1 RETURNING next_seq"
_SELECT_JOB = f"""
SELECT {raw.columns(raw.JOB_COLUMNS, "j")}, {raw.columns(raw.RESULT_COLUMNS, "r")}
FROM jobs j LEFT JOIN results r ON r.task_uuid = j.task_uuid
WHERE j.task_uuid = :task_uuid ORDER BY r.idx
"""  # noqa: S608 - the column names are constants
_HEAD = "SELECT min(seq) FROM jobs WHERE status = 'queued'"
_HOLES = "SELECT count(*) FROM queue_holes WHERE seq >= :head AND seq < :seq"

Creation = tuple[NewJob, float, Callable[[raw.Conn], None]]


@functools.cache
def _values(template: str, n: int) -> str:
    return ", ".join(template.format(i=i) for i in range(n))


def create(conn: raw.Conn, creations: list[Creation]) -> list[tuple[bool, Any]]:
    """Insert the jobs of a batch of submits in one statement, each with the next queue
    number. A task UUID that exists already gives the stored job when it is the same request
    from the same owner, else `Conflict`; its unused number becomes a hole."""
    n = len(creations)
    base = raw.execute(conn, _RESERVE, {"n": n}).fetchone()[0] - n
    params: dict[str, Any] = {}
    for i, (new, now, _wake) in enumerate(creations):
        params.update(_job_params(new, now, base + i, i))
    sql = _INSERT_JOBS.format(rows=_values(_JOB_ROW, n))
    inserted = {row[0] for row in raw.execute(conn, sql, params).fetchall()}
    if inserted:
        creations[0][2](conn)  # wake the workers once this batch commits
    outcomes: list[tuple[bool, Any]] = []
    for i, (new, now, _wake) in enumerate(creations):
        if new.task_uuid in inserted:
            inserted.discard(new.task_uuid)  # a second submit of it in this batch finds it
            outcomes.append((True, (_new_job(new, now, base + i), _new_results(new), True)))
        else:
            add_hole(conn, base + i)
            outcomes.append(_existing(conn, new))
    return outcomes


def _existing(conn: raw.Conn, new: NewJob) -> tuple[bool, Any]:
    found = get(conn, new.task_uuid, None)
    if found is None:  # deleted meanwhile
        return False, Conflict(f"taskUUID {new.task_uuid} is being deleted.", parameter="taskUUID")
    existing, results = found
    if existing.request_hash != new.request_hash or existing.owner != new.owner:
        return False, Conflict(
            f"taskUUID {new.task_uuid} was already used for a different request.",
            parameter="taskUUID",
        )
    return True, (existing, results, False)


def _job_params(new: NewJob, now: float, seq: int, i: int) -> dict[str, Any]:
    return {
        f"task_uuid_{i}": new.task_uuid,
        f"owner_{i}": new.owner,
        f"task_type_{i}": new.task_type,
        f"model_{i}": new.spec.model,
        f"request_{i}": spec_json(new.spec),
        f"request_hash_{i}": new.request_hash,
        f"max_attempts_{i}": new.max_attempts,
        f"number_results_{i}": len(new.video_uuids),
        f"created_at_{i}": now,
        f"seq_{i}": seq,
        f"results_plan_{i}": raw.plan_json(new),
    }


def get(conn: raw.Conn, task_uuid: str, owner: str | None) -> tuple[Job, list[Result]] | None:
    """A job and its results (owner None: any owner)."""
    rows = raw.execute(conn, _SELECT_JOB, {"task_uuid": task_uuid}).fetchall()
    if not rows:
        return None
    job = raw.job_from(rows[0])
    if owner is not None and job.owner != owner:
        return None
    width = len(raw.JOB_COLUMNS)
    finished = [raw.result_from(row[width:]) for row in rows if row[width] is not None]
    return job, raw.merge(task_uuid, raw.plan_from(rows[0][raw.PLAN]), finished)


def position(conn: raw.Conn, seq: int) -> int | None:
    """How many queued jobs are claimed before the queued job numbered `seq`: its distance
    from the head of the queue, less the holes between (O(log n) in the queue's length)."""
    head = raw.execute(conn, _HEAD).fetchone()[0]
    if head is None or seq < head:
        return None
    holes = raw.execute(conn, _HOLES, {"head": head, "seq": seq}).fetchone()[0]
    return int(seq - head - holes)


def _new_job(new: NewJob, now: float, seq: int) -> Job:
    """The row `create` inserted, as a read would return it."""
    return Job(
        task_uuid=new.task_uuid,
        owner=new.owner,
        task_type=new.task_type,
        spec=new.spec,
        request_hash=new.request_hash,
        status=JobStatus.QUEUED,
        attempts=0,
        max_attempts=new.max_attempts,
        progress=0,
        cancel_requested=False,
        number_results=len(new.video_uuids),
        created_at=now,
        started_at=None,
        finished_at=None,
        lease_owner=None,
        lease_token=None,
        lease_expires_at=None,
        error_code=None,
        error_message=None,
        seq=seq,
    )


def _new_results(new: NewJob) -> list[Result]:
    plan = list(zip(new.video_uuids, new.seeds, new.costs, strict=True))
    return raw.merge(new.task_uuid, plan, ())
